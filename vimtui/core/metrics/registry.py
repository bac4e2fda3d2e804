"""The metric registry: each metric declared once, and what every consumer reads from it.

A `Metric` says what it measures (name, subject, unit, titles), where its value comes from (a field of
the subject's rates, or a function of the VmState/HostState and the time), and where it shows: a column
of the VM table, a field of the `/` filter, an alert metric, an exporter series, a figure of the history
and the reports. The table, the filter, the alert engine, the exporter, the fleet's history and the
reports all read this registry; none keeps its own list.

The poll's parse (vimtui.core.poll.stats) is not part of it: metrics read the records it makes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal

from vimtui.core.model import HostState, VmState
from vimtui.core.poll.stats import HostRates, VmRates

Subject = Literal["vm", "host"]
Value = Callable[[Any, float], "float | None"]
"""A metric's value of a subject (VmState or HostState) at a wall time; None: unknown, never 0."""

UNITS = ("%", "B/s", "B", "s", "/s", "", "bool")
"""Percent, bytes per second, bytes, seconds, a count per second, a plain number, yes/no (1 or 0)."""


@dataclass(frozen=True, slots=True)
class Column:
    """The metric as a column of the VM table (sortable by `id`)."""

    id: str
    """What `:sort` and the table's sort_by take ("cpu")."""
    header: str
    width: int
    max_width: int = 0
    """Widest it grows to with room to spare; 0: `width`."""
    priority: int = 50
    """Columns are dropped lowest priority first when the screen is narrow."""
    order: int = 500
    """Place among the columns, left to right (the table's own columns: name 10, state 30, ip 90 ...)."""
    pair: tuple[str, str] | None = None
    """Show two metrics' values as "a/b" instead of this one's (sorting still by this one)."""
    pair_missing: str = "-"
    """What an unknown side of a pair shows."""


@dataclass(frozen=True, slots=True)
class FilterField:
    """The metric as a numeric field of the `/` filter (`cpu>50`)."""

    name: str
    example: str
    """Shown in the error for a bad value: "cpu>50"."""


@dataclass(frozen=True, slots=True)
class Series:
    """The metric as an exporter family (OpenMetrics and the classic text format)."""

    name: str
    """The family's name; a counter's samples add `_total`."""
    help: str
    kind: Literal["gauge", "counter"] = "gauge"
    unit: str = ""
    """OpenMetrics UNIT (the name ends with it), or ""."""
    divide: float = 1.0
    """The value over this is the base unit Prometheus wants (100: a percentage as a 0..1 ratio)."""
    lasting: bool = False
    """Still written while the subject's host is not answering (a size, a count), where measurements
    are left out."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric, declared once (see the module)."""

    name: str
    """"vm.cpu_pct": the subject, a dot, what it is; the alert rules' `metric`."""
    subject: Subject
    unit: str
    """One of UNITS: how values are checked, parsed in filters and formatted for the screen."""
    title: str
    """For headings and reports: "Disk read"."""
    help: str
    value: Value | None = None
    """The value of a subject at a time; None with `rates_field` (then read from the rates) or `events`."""
    rates_field: str | None = None
    """The VmRates / HostRates field the value is (read by position on the hot paths)."""
    label: str = ""
    """For alert messages ("disk read"); "" : the title."""
    at_least: str | None = None
    """A metric that is a lower bound of this one where this one is unknown: the table shows it as
    "> value" and sorts by it, and a filter's > and >= take it (a bound past the number settles them)."""
    events: bool = False
    """Known only from libvirt events, which the alert engine follows (the guest agent's presence)."""
    column: Column | None = None
    filter: FilterField | None = None
    alert: bool = False
    """A metric alert rules can watch (a `bool` one is a condition: no threshold)."""
    export: Series | None = None
    history: str | None = None
    """Its name in the in-memory history and the archive: recorded every poll, a figure of the reports
    (with `report`), graphed by the screen."""
    report: bool = False
    getter: Value = field(init=False, repr=False, compare=False)
    """`value`, or the rates field read from the subject's rates."""

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"{self.name}: unit {self.unit!r} is not one of {UNITS}")
        if self.subject not in ("vm", "host") or not self.name.startswith(self.subject + "."):
            raise ValueError(f"{self.name}: the name starts with its subject ({self.subject}.)")
        if (self.value is None) == (self.rates_field is None) and not self.events:
            raise ValueError(f"{self.name}: give its value or its rates field")
        if self.report and self.history is None:
            raise ValueError(f"{self.name}: a report figure comes from the history: give it a history name")
        getter = self.value
        if self.rates_field is not None:
            getter = _rates_getter(self.subject, self.rates_field)
        object.__setattr__(self, "getter", getter or _unknown)
        object.__setattr__(self, "label", self.label or self.title)

    @property
    def condition(self) -> bool:
        """A yes/no metric (1 or 0): alert rules on it take no threshold."""
        return self.unit == "bool"

    @property
    def rates_index(self) -> int:
        """Its field's position in VmRates (a NamedTuple), for the hot loops; -1 without one."""
        if self.rates_field is None or self.subject != "vm":
            return -1
        return VmRates._fields.index(self.rates_field)


def _unknown(_subject: Any, _now: float) -> float | None:
    return None


def _rates_getter(subject: Subject, name: str) -> Value:
    if subject == "vm":
        i = VmRates._fields.index(name)

        def vm_rate(vm: VmState, _now: float) -> float | None:
            r = vm.rates
            return None if r is None else r[i]  # type: ignore[return-value]  # a number field by construction

        return vm_rate
    if name not in HostRates.__dataclass_fields__:
        raise ValueError(f"HostRates has no field {name!r}")

    def host_rate(h: HostState, _now: float) -> float | None:
        r = h.rates
        return None if r is None or not h.status.healthy else getattr(r, name)  # type: ignore[no-any-return]

    return host_rate


# ---------------------------------------------------------------------------------------------- the registry

_metrics: dict[str, Metric] = {}
_generation = 0


def declare(*metrics: Metric) -> None:
    """Add metrics to the registry (a name may be declared once)."""
    global _generation
    for m in metrics:
        if m.name in _metrics:
            raise ValueError(f"metric {m.name!r} is declared twice")
        for other in _metrics.values():
            _check_clash(m, other)
        _metrics[m.name] = m
    _generation += 1


def _check_clash(m: Metric, other: Metric) -> None:
    pairs = (
        ("column", m.column and m.column.id, other.column and other.column.id),
        ("filter field", m.filter and m.filter.name, other.filter and other.filter.name),
        ("series", m.export and m.export.name, other.export and other.export.name),
    )
    for what, mine, theirs in pairs:
        if mine and mine == theirs:
            raise ValueError(f"{m.name}: {what} {mine!r} is {other.name}'s")
    if m.history and m.history == other.history and m.subject == other.subject:
        raise ValueError(f"{m.name}: history name {m.history!r} is {other.name}'s")


@contextlib.contextmanager
def declared(*metrics: Metric) -> Iterator[None]:
    """Metrics declared for the duration of a block (tests)."""
    global _generation
    declare(*metrics)
    try:
        yield
    finally:
        for m in metrics:
            _metrics.pop(m.name, None)
        _generation += 1


def generation() -> int:
    """Changes whenever the registry does: a key for what is derived from it."""
    return _generation


def get(name: str) -> Metric | None:
    return _metrics.get(name)


def all_metrics() -> tuple[Metric, ...]:
    return tuple(_metrics.values())


def of(subject: Subject) -> tuple[Metric, ...]:
    return tuple(m for m in _metrics.values() if m.subject == subject)


def alert_metrics() -> tuple[Metric, ...]:
    """What alert rules can watch, VMs' first."""
    return tuple(sorted((m for m in _metrics.values() if m.alert), key=lambda m: m.subject != "vm"))


def columns() -> tuple[Metric, ...]:
    """The metrics shown as VM table columns, in their order."""
    return tuple(sorted((m for m in of("vm") if m.column), key=lambda m: m.column.order))  # type: ignore[union-attr]


def filter_fields() -> dict[str, Metric]:
    """Filter field name -> its metric (VM metrics: the filter is over VMs)."""
    return {m.filter.name: m for m in of("vm") if m.filter is not None}


def series(subject: Subject) -> tuple[Metric, ...]:
    return tuple(m for m in of(subject) if m.export is not None)


def history(subject: Subject) -> tuple[Metric, ...]:
    """The metrics recorded in the history every poll, in the order of their values."""
    return tuple(m for m in of(subject) if m.history is not None)


def history_names(subject: Subject) -> tuple[str, ...]:
    return tuple(m.history for m in history(subject) if m.history is not None)


def percent_history_names(subject: Subject) -> frozenset[str]:
    """The history names of percentages (stored in 0.01 % steps)."""
    return frozenset(m.history for m in history(subject) if m.history is not None and m.unit == "%")


def report_figures(subject: Subject) -> tuple[Metric, ...]:
    return tuple(m for m in of(subject) if m.report)


def rates_row(subject: Subject) -> Callable[[Any], tuple[float | None, ...]] | None:
    """The history values of a VM from its VmRates, in `history_names` order, as one C call (an
    itemgetter), when every history metric of `subject` is a rates field; else None (see history_row).
    The fleet records every VM at every poll: this is its per-VM call."""
    metrics = history(subject)
    index = [m.rates_index for m in metrics]
    if subject != "vm" or len(index) < 2 or not all(i >= 0 for i in index):
        return None
    return itemgetter(*index)  # type: ignore[no-any-return]


def history_row(subject: Subject) -> Callable[[Any, float], tuple[float | None, ...]]:
    """A function giving a subject's history values, in `history_names` order: one C call for the usual
    case of VM metrics that are all rates fields (the fleet records every VM at every poll)."""
    metrics = history(subject)
    index = [m.rates_index for m in metrics]
    if subject == "vm" and metrics and all(i >= 0 for i in index):
        get = rates_row(subject) or (lambda r: (r[index[0]],))
        nothing = (None,) * len(index)

        def from_rates(vm: VmState, _now: float) -> tuple[float | None, ...]:
            r = vm.rates
            return nothing if r is None else get(r)

        return from_rates
    getters = [m.getter for m in metrics]
    return lambda s, now: tuple(g(s, now) for g in getters)
