"""Reports over the lasting history: per VM and per host, for a window of time, in CSV, JSON, Markdown or
HTML (`vimtui report`).

`build_report()` reads an `Archive` (a read-only handle does: a report runs beside a TUI that writes) and
makes one frozen `Report`; the renderers only format it, so the four formats always agree.

What a subject (a VM or a host) gets, over the window [since, until]:

- its labels, as the fleet described them (`Archive.describe`): name, host, group, tenant, uuid. A key never
  described (a file from before labels) is named by its key: a VM by its uuid, its group by its host's.
- per metric (VMs: cpu and mem in %, disk_rd, disk_wr, net_rx, net_tx in bytes/s; hosts: cpu, mem) the
  average, the peak and the number of samples, from `Archive.summary` (so from 10-second buckets for
  windows under an hour where the fine tier reaches back, else from 5-minute ones, by default).
- its uptime: the seconds of the window covered by buckets (of the tier the figures come from) that hold a
  sample of the subject, each bucket clipped to the window, and that as a share of the window. The fleet
  samples a VM only while it runs (a VM shut off or gone has no rates), so for a VM this is the time it was
  seen running, to within one bucket at each start and stop; for a host, the time it was reachable and
  sampled (hosts are sampled every `host_stats_every` polls: with buckets shorter than that, some
  buckets of a healthy host stay empty). Time before the history begins counts as not up.
- its state changes: the lifecycle events noted in the window whose kind is in `STATE_KINDS` (started,
  stopped, shutdown, crashed, suspended, resumed, pmsuspended, reboot, and "state" notes), with time and
  detail; and its alerts: the "alert firing" and "alert resolved" notes, with severity and message.
- each metric as a short series (about 60 points, each a whole number of buckets: `Archive.timelines`) for
  the charts: plotext text charts in Markdown, inline SVG in HTML.

Filters (all given ones must hold): `host` (a VM's host, or the host itself), `group` (the host's group or
below it: "dc1" matches "dc1" and "dc1/rack3", not "dc10"), `tenant` (VMs of that tenant; hosts have
none, so a tenant filter leaves them out).

Numbers: JSON and CSV carry them as numbers (7 significant digits: the archive keeps float32), in base
units (percent, bytes per second, seconds); times in JSON are both epoch seconds and ISO 8601 UTC.
Markdown and HTML round for reading: percentages to 0.1, byte rates in KiB/MiB/GiB per second with one
decimal, times in UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, overload

from vimtui.core import metrics
from vimtui.core.monitor.archive import Archive, Timeline

__all__ = [
    "FORMATS",
    "HOST_METRICS",
    "METRICS",
    "STATE_KINDS",
    "VM_METRICS",
    "AlertEvent",
    "Filters",
    "MetricFigures",
    "Report",
    "Series",
    "StateChange",
    "Subject",
    "build_report",
]

Format = Literal["csv", "json", "md", "html"]
FORMATS: tuple[Format, ...] = ("csv", "json", "md", "html")


class _Figures(Mapping[str, tuple[str, str]]):
    """History name -> (title, unit) of every report figure: the registry's metrics declared `report`
    (read when asked, so a metric declared later is a figure too)."""

    def _all(self) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        for subject in ("vm", "host"):
            for m in metrics.report_figures(subject):
                assert m.history is not None
                out.setdefault(m.history, (m.title, m.unit))
        return out

    def __getitem__(self, name: str) -> tuple[str, str]:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


class _Names(Sequence[str]):
    """The report figures of VMs or of hosts, in the registry's order (read when asked)."""

    def __init__(self, subject: metrics.Subject) -> None:
        self.subject = subject

    def _names(self) -> tuple[str, ...]:
        return tuple(m.history for m in metrics.report_figures(self.subject) if m.history is not None)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[str, ...]: ...
    def __getitem__(self, i: int | slice) -> str | tuple[str, ...]:
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())


METRICS: Mapping[str, tuple[str, str]] = _Figures()
"""What the fleet archives and a report shows: name -> (title, unit): "cpu" -> ("CPU", "%")."""
VM_METRICS: Sequence[str] = _Names("vm")
HOST_METRICS: Sequence[str] = _Names("host")
STATE_KINDS = frozenset(
    {"started", "stopped", "shutdown", "crashed", "suspended", "resumed", "pmsuspended", "reboot", "state"}
)
"""Event kinds that count as a state change (libvirt lifecycle names as the fleet notes them)."""
SEVERITIES = ("critical", "warning", "info")
DEFAULT_POINTS = 60
"""Points per chart series."""
DEFAULT_TOP = 5
"""VMs charted in Markdown and HTML: the busiest by average CPU."""


# -- the model ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    """Which subjects a report covers; None: any."""

    host: str | None = None
    group: str | None = None
    tenant: str | None = None

    def describe(self) -> str:
        """As a report says it: "host kvm01, group dc1"; empty without filters."""
        return ", ".join(f"{k} {v}" for k, v in self._items() if v is not None)

    def _items(self) -> tuple[tuple[str, str | None], ...]:
        return (("host", self.host), ("group", self.group), ("tenant", self.tenant))

    def as_dict(self) -> dict[str, str | None]:
        return dict(self._items())

    def matches(self, kind: str, host: str, group: str, tenant: str) -> bool:
        if self.host is not None and host != self.host:
            return False
        if self.group is not None:
            want = self.group.strip("/")
            if want and group != want and not group.startswith(want + "/"):
                return False
        return self.tenant is None or (kind == "vm" and tenant == self.tenant)


@dataclass(frozen=True, slots=True)
class MetricFigures:
    """One metric of one subject over the window."""

    avg: float
    peak: float
    samples: int


@dataclass(frozen=True, slots=True)
class Series:
    """A metric as a short series: slot start times, averages and peaks, gaps left out."""

    times: tuple[float, ...]
    avgs: tuple[float, ...]
    peaks: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class StateChange:
    t: float
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class AlertEvent:
    t: float
    state: str
    """Either "firing" or "resolved" (what followed "alert " in the event's kind)."""
    severity: str
    """critical, warning, info; empty when the text did not start with one."""
    message: str


@dataclass(frozen=True, slots=True)
class Subject:
    """One VM or host in a report."""

    key: str
    """The archive's key: "host/uuid" for a VM, "host" for a host."""
    kind: Literal["vm", "host"]
    name: str
    host: str
    group: str
    tenant: str
    uuid: str
    uptime: float
    """Seconds of the window covered by buckets with samples (see the module)."""
    uptime_pct: float
    first_seen: float | None
    """Start of the first bucket with samples in the window."""
    last_seen: float | None
    """End of the last one."""
    metrics: Mapping[str, MetricFigures]
    """Per metric with samples in the window."""
    state_changes: tuple[StateChange, ...]
    alerts: tuple[AlertEvent, ...]
    series: Mapping[str, Series]

    @property
    def samples(self) -> int:
        """Samples of its most sampled metric: the polls that saw it."""
        return max((m.samples for m in self.metrics.values()), default=0)

    @property
    def alerts_fired(self) -> int:
        return sum(1 for a in self.alerts if a.state == "firing")

    @property
    def alerts_resolved(self) -> int:
        return sum(1 for a in self.alerts if a.state == "resolved")

    @property
    def label(self) -> str:
        """How the text formats name it: a VM with its host."""
        return f"{self.name} ({self.host})" if self.kind == "vm" else self.name

    def avg(self, metric: str) -> float | None:
        m = self.metrics.get(metric)
        return None if m is None else m.avg


@dataclass(frozen=True, slots=True)
class Report:
    since: float
    until: float
    filters: Filters
    hosts: tuple[Subject, ...]
    vms: tuple[Subject, ...]
    step: int | None
    """Bucket length the figures come from (fine or coarse tier); None when nothing had samples."""
    slot: float | None
    """Length of a chart point."""
    source: str = ""
    """The archive's file."""
    generated: float = 0.0
    top: int = DEFAULT_TOP
    """VMs charted in Markdown and HTML."""

    @property
    def window(self) -> float:
        return self.until - self.since

    @property
    def empty(self) -> bool:
        return not (self.hosts or self.vms)

    @property
    def subjects(self) -> tuple[Subject, ...]:
        return self.hosts + self.vms

    def busiest(self, n: int) -> tuple[Subject, ...]:
        """The n VMs with the highest average CPU (then by name)."""
        ranked = sorted(self.vms, key=lambda s: (-(s.avg("cpu") or 0.0), s.name, s.key))
        return tuple(ranked[: max(0, n)])


# -- building -----------------------------------------------------------------------------------------


def _identity(
    key: str, labels: Mapping[str, Mapping[str, str]]
) -> tuple[Literal["vm", "host"], dict[str, str]]:
    """A key's kind and labels, completed from its host's labels and the key itself."""
    mine = labels.get(key, {})
    host, sep, uuid = key.partition("/")
    kind: Literal["vm", "host"] = (
        "vm" if (mine.get("kind") == "vm" or (sep and mine.get("kind") != "host")) else "host"
    )
    host = mine.get("host") or host
    group = mine.get("group")
    if group is None:
        group = labels.get(host, {}).get("group", "")
    if kind == "host":
        return kind, {
            "name": mine.get("name") or host,
            "host": host,
            "group": group,
            "tenant": "",
            "uuid": "",
        }
    uuid = mine.get("uuid") or uuid
    info = {"name": mine.get("name") or uuid, "host": host, "group": group, "tenant": mine.get("tenant", "")}
    return kind, info | {"uuid": uuid}


def _alert(t: float, kind: str, text: str) -> AlertEvent:
    severity, sep, message = text.partition(": ")
    if not sep or severity not in SEVERITIES:
        severity, message = "", text
    return AlertEvent(t, kind.removeprefix("alert").strip(), severity, message)


def build_report(
    archive: Archive,
    since: float,
    until: float,
    filters: Filters = Filters(),
    *,
    points: int = DEFAULT_POINTS,
    top: int = DEFAULT_TOP,
    clock: Callable[[], float] | None = None,
) -> Report:
    """The report of [since, until] from `archive` (blocking reads: not on an event loop). Subjects are the
    keys with samples, state changes or alerts in the window that pass `filters`."""
    summary = archive.summary(None, since, until)
    notes = archive.events(since, until)
    changes: dict[str, list[StateChange]] = {}
    alerts: dict[str, list[AlertEvent]] = {}
    for t, key, kind, text in notes:
        if kind in STATE_KINDS:
            changes.setdefault(key, []).append(StateChange(t, kind, text))
        elif kind == "alert" or kind.startswith("alert "):
            alerts.setdefault(key, []).append(_alert(t, kind, text))
    keys = set(summary) | set(changes) | set(alerts)
    labels = archive.labels(keys | {k.partition("/")[0] for k in keys})
    chosen: dict[str, tuple[Literal["vm", "host"], dict[str, str]]] = {}
    for key in keys:
        kind, info = _identity(key, labels)
        if filters.matches(kind, info["host"], info["group"], info["tenant"]):
            chosen[key] = (kind, info)
    timelines = archive.timelines(chosen, since, until, points) if chosen else {}
    window = max(until - since, 0.0)
    hosts: list[Subject] = []
    vms: list[Subject] = []
    for key, (kind, info) in chosen.items():
        tl: Timeline | None = timelines.get(key)
        wanted = VM_METRICS if kind == "vm" else HOST_METRICS
        per = summary.get(key, {})
        uptime = tl.covered if tl is not None else 0.0
        subject = Subject(
            key=key,
            kind=kind,
            name=info["name"],
            host=info["host"],
            group=info["group"],
            tenant=info["tenant"],
            uuid=info["uuid"],
            uptime=uptime,
            uptime_pct=100.0 * uptime / window if window > 0 else 0.0,
            first_seen=tl.first if tl is not None else None,
            last_seen=tl.last if tl is not None else None,
            metrics={m: MetricFigures(*per[m]) for m in wanted if m in per},
            state_changes=tuple(changes.get(key, ())),
            alerts=tuple(alerts.get(key, ())),
            series={
                m: Series(tuple(s[0]), tuple(s[1]), tuple(s[2]))
                for m in wanted
                if tl is not None and (s := tl.series.get(m)) is not None
            },
        )
        (vms if kind == "vm" else hosts).append(subject)
    hosts.sort(key=lambda s: (s.name, s.key))
    vms.sort(key=lambda s: (s.host, s.name, s.key))
    any_tl = next(iter(timelines.values()), None)
    return Report(
        since=since,
        until=until,
        filters=filters,
        hosts=tuple(hosts),
        vms=tuple(vms),
        step=any_tl.step if any_tl is not None else None,
        slot=any_tl.slot if any_tl is not None else None,
        source=str(archive.path),
        generated=clock() if clock is not None else datetime.now(UTC).timestamp(),
        top=top,
    )
