"""The VM table's columns, how they fit a width, their cells' text and their sort orders (no Textual).

The table's own columns (mark, name, host, state, the CPU sparkline, IP, tags) are declared here; every
other column is a metric's, from the metric registry (vimtui.core.metrics: its `Column`), with its header,
width, sort key and cell, the value formatted by its unit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from typing import Any

from rich.cells import cell_len, set_cell_size

from vimtui.core import metrics
from vimtui.core.model import VmState
from vimtui.core.units import MISSING
from vimtui.ui import format as fmt

SPARK_CELLS = 8
"""Cells of the CPU sparkline: one per sample, newest on the right."""

_MAX_STR = "\U0010ffff"
_INF = float("inf")


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its id (what `sort_by` takes), header label and width range.

    Columns are dropped lowest `priority` first until the rest fit; `priority >= 100` never goes. Space left
    over widens the flexible columns (`max_width > width`) in display order."""

    id: str
    label: str
    width: int
    max_width: int
    priority: int
    right: bool = False
    sort: str | None = None
    """The column that sorting by this one means (the sparkline sorts by CPU); None: itself."""
    order: int = 0
    metric: metrics.Metric | None = None
    """The metric it shows; None for the table's own columns."""
    text: Callable[[VmState, float], str] | None = None
    """A metric column's cell text at a time (compiled once from its declaration: `metric_cell`)."""


OWN_COLUMNS: tuple[Column, ...] = (
    Column("mark", "", 1, 1, 100, order=0),
    Column("name", "NAME", 12, 32, 100, order=10),
    Column("host", "HOST", 6, 16, 50, order=20),
    Column("state", "STATE", 7, 7, 100, order=30),
    Column("spark", "", SPARK_CELLS, SPARK_CELLS, 25, sort="cpu", order=55),
    Column("ip", "IP", 15, 15, 15, order=90),
    Column("tags", "TAGS", 4, 40, 1, order=110),
)

_columns: tuple[int, tuple[Column, ...]] = (-1, ())


def columns() -> tuple[Column, ...]:
    """Every column in display order: the table's own and the metrics'."""
    global _columns
    gen = metrics.generation()
    if _columns[0] != gen:
        of_metrics = []
        for m in metrics.columns():
            c = m.column
            assert c is not None
            widest = c.max_width or c.width
            cell = metric_cell(m)
            of_metrics.append(
                Column(c.id, c.header, c.width, widest, c.priority, True, None, c.order, m, cell)
            )
        _columns = (gen, tuple(sorted((*OWN_COLUMNS, *of_metrics), key=lambda c: c.order)))
    return _columns[1]


def sort_columns() -> tuple[str, ...]:
    """What `sort_by` accepts."""
    return tuple(c.id for c in columns() if c.sort is None)


@dataclass(frozen=True, slots=True)
class Slot:
    column: Column
    x: int
    width: int


def layout(width: int) -> tuple[Slot, ...]:
    """The columns that fit in `width` cells, with their widths: a column and one space per column."""
    every = columns()
    kept = list(every)

    def need(cols: list[Column]) -> int:
        return sum(c.width for c in cols) + len(cols) - 1

    for col in sorted(every, key=lambda c: c.priority):
        if need(kept) <= width or col.priority >= 100:
            break
        kept.remove(col)
    widths = {c.id: c.width for c in kept}
    spare = width - need(kept)
    if spare < 0:  # narrower than the columns that never go: the name gives way, down to 4 cells
        widths["name"] = max(4, widths["name"] + spare)
    for col in kept:
        if spare <= 0:
            break
        grow = min(spare, col.max_width - col.width)
        widths[col.id] += grow
        spare -= grow
    slots: list[Slot] = []
    x = 0
    for col in kept:
        slots.append(Slot(col, x, widths[col.id]))
        x += widths[col.id] + 1
    return tuple(slots)


def fit(text: str, width: int, right: bool) -> str:
    """`text` in exactly `width` cells: padded, or cut with an ellipsis."""
    if text.isascii():
        n = len(text)
        if n == width:
            return text
        if n < width:
            return text.rjust(width) if right else text.ljust(width)
        return text[: width - 1] + "…" if width > 1 else text[:width]
    n = cell_len(text)
    if n == width:
        return text
    if n < width:
        pad = " " * (width - n)
        return pad + text if right else text + pad
    return set_cell_size(text, width - 1) + "…" if width > 1 else set_cell_size(text, width)


# ------------------------------------------------------------------------------------------- cells


def _number(value: float | None, missing: str = MISSING) -> str:
    if value is None or value != value:
        return missing
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


_BY_UNIT: dict[str, Callable[..., str]] = {
    "%": fmt.pct,
    "B/s": partial(fmt.rate, per=""),
    "B": fmt.size,
    "s": fmt.duration,
}
"""The screen's text of a value, by unit (each takes `missing=`)."""


def value_text(metric: metrics.Metric, value: float | None, missing: str = MISSING) -> str:
    """A metric's value as the screen shows it, by its unit."""
    return _BY_UNIT.get(metric.unit, _number)(value, missing=missing)


def metric_cell(m: metrics.Metric) -> Callable[[VmState, float], str]:
    """A metric column's cell text, compiled from its declaration (the visible rows' cells are made on
    every tick): its value ("" when unknown), else "> lower bound" (`at_least`), or its pair "a/b"."""
    col = m.column
    assert col is not None
    if col.pair is None:
        get, show = m.getter, partial(_BY_UNIT.get(m.unit, _number), missing="")
        low = metrics.get(m.at_least) if m.at_least else None
        if low is None:
            return lambda vm, now: show(get(vm, now))
        least, show_least = low.getter, partial(_BY_UNIT.get(low.unit, _number), missing="")

        def or_least(vm: VmState, now: float) -> str:
            value = get(vm, now)
            if value is None and (lowest := least(vm, now)) is not None:
                return "> " + show_least(lowest)
            return show(value)

        return or_least
    a, b = metrics.get(col.pair[0]), metrics.get(col.pair[1])
    if a is None or b is None:
        raise ValueError(f"{m.name}: its column pairs undeclared metrics {col.pair}")
    get_a, get_b, missing = a.getter, b.getter, col.pair_missing
    show_a = partial(_BY_UNIT.get(a.unit, _number), missing=missing)
    show_b = partial(_BY_UNIT.get(b.unit, _number), missing=missing)

    def pair(vm: VmState, now: float) -> str:
        va, vb = get_a(vm, now), get_b(vm, now)
        if va is None and vb is None:
            return ""
        return f"{show_a(va)}/{show_b(vb)}"

    return pair


# ------------------------------------------------------------------------------------------- sorting
# This is the O(N) part of a tick, so no Python call is made per VM where it can be helped: attribute
# lists come from C (`map` with `attrgetter`), a column's sort keys from one list comprehension (a rates
# field read by position; other metrics by their value function), and orders are permutations sorted by
# `list.__getitem__`. A key is the column's value, or `missing` where that is unknown: +inf / U+10FFFF
# ascending, -inf / "" descending, so that unknown sorts last both ways within one `sorted`.

NAME = attrgetter("name")
HOST = attrgetter("host")
UUID = attrgetter("uuid")
HOST_NAME = attrgetter("host", "name")

_Keys = Callable[[Sequence[VmState], Any, float, set[str]], list[Any]]


def _keys_state(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
    return [v.state or missing for v in vms]


def _keys_ip(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
    return [v.ips[0] if v.ips else missing for v in vms]


def _keys_tags(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
    return [",".join(d.tags) if (d := v.details) is not None and d.tags else missing for v in vms]


def _keys_mark(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
    return [0 if v.key in marks else 1 for v in vms]


_OWN_KEYS: dict[str, tuple[_Keys, bool]] = {
    "state": (_keys_state, False),
    "ip": (_keys_ip, False),
    "tags": (_keys_tags, False),
    "mark": (_keys_mark, True),
}
"""The table's own columns -> (their sort keys for a list of VMs, numeric?)."""


def _metric_keys(m: metrics.Metric) -> _Keys:
    low = metrics.get(m.at_least) if m.at_least else None
    if low is not None:
        get, least = m.getter, low.getter

        def or_least(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
            return [
                x if (x := get(v, now)) is not None else missing if (y := least(v, now)) is None else y
                for v in vms
            ]

        return or_least
    i = m.rates_index
    if i >= 0:

        def of_rates(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
            return [missing if (r := v.rates) is None or (x := r[i]) is None else x for v in vms]

        return of_rates
    get = m.getter

    def of_value(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
        return [missing if (x := get(v, now)) is None else x for v in vms]

    return of_value


def sort_keys(column: str) -> tuple[_Keys, bool] | None:
    """A column's sort keys and whether they are numbers; None for host and name (sorted apart) and for
    an unknown column."""
    own = _OWN_KEYS.get(column)
    if own is not None:
        return own
    col = next((c for c in columns() if c.id == column and c.metric is not None), None)
    return None if col is None or col.metric is None else (_metric_keys(col.metric), True)


class Sorter:
    """Orders VMs for the table, as a permutation: indices into the caller's sequence in display order.

    The VMs themselves are never moved: with every row new each tick, building a list of 10,000 objects in
    a sorted (so scattered) order costs more than sorting does, in cache misses. Keys are read in input
    order, and only the rows on screen are ever fetched through the permutation.

    The host/name permutation of the last input is remembered: an input with the same hosts and names at
    the same places (every tick of a steady fleet) is not sorted again."""

    def __init__(self) -> None:
        self._hosts: list[str] = []
        self._names: list[str] = []
        self._perm: list[int] = []

    def by_host(self, vms: Sequence[VmState]) -> list[int]:
        """Indices of `vms` in host then name order (stable). Do not modify the list: it is kept."""
        hosts = list(map(HOST, vms))
        names = list(map(NAME, vms))
        if hosts != self._hosts or names != self._names:
            perm = sorted(range(len(names)), key=names.__getitem__)
            perm.sort(key=hosts.__getitem__)
            self._hosts, self._names, self._perm = hosts, names, perm
        return self._perm

    def sort(
        self,
        vms: Sequence[VmState],
        column: str,
        reverse: bool,
        *,
        now: float = 0.0,
        marks: set[str] | None = None,
    ) -> Sequence[int]:
        """Indices of `vms` ordered by `column` (one of sort_columns()), ties in host then name order,
        unknown values last whichever the direction. Stable; host descending is the exact reverse of host
        ascending."""
        keyed = None if column in ("host", "name") else sort_keys(column)
        if keyed is None and column not in ("host", "name"):
            raise ValueError(f"unknown column {column!r}; one of {', '.join(sort_columns())}")
        base = self.by_host(vms)
        if column == "host":
            return base[::-1] if reverse else base
        if keyed is None:  # name
            return sorted(base, key=self._names.__getitem__, reverse=reverse)
        keys_of, numeric = keyed
        if numeric:
            missing: Any = -_INF if reverse else _INF
        else:
            missing = "" if reverse else _MAX_STR
        keys = keys_of(vms, missing, now, marks if marks is not None else set())
        # sorted(reverse=True) keeps equal items in their original order: ties stay in host/name order
        return sorted(base, key=keys.__getitem__, reverse=reverse)


def sort_vms(
    vms: Sequence[VmState], column: str, reverse: bool, *, now: float = 0.0, marks: set[str] | None = None
) -> list[VmState]:
    """`vms` in the order `Sorter().sort(...)` gives, for a one-off sort."""
    return [vms[i] for i in Sorter().sort(vms, column, reverse, now=now, marks=marks)]
