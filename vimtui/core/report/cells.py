"""What every report format shares: times, figures and units as text, the header lines, the table rows."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from vimtui.core.report.model import (
    METRICS,
    AlertEvent,
    Report,
    StateChange,
    Subject,
)
from vimtui.core.units import format_bytes, format_duration


def num(x: float) -> float:
    """A figure for JSON and CSV: 7 significant digits (what float32 holds), as a number."""
    return float(f"{x:.7g}") if math.isfinite(x) else 0.0


def iso(t: float) -> str:
    """ISO 8601 UTC, to the second: "2024-05-01T12:00:00Z"."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def when(t: float) -> str:
    """A time for reading: "2024-05-01 12:00:00" (UTC)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def fmt_rate(x: float | None) -> str:
    """Bytes per second in the binary units of the screen and the CLI (core/units): "512B/s", "1.5K/s"."""
    return "-" if x is None else format_bytes(x) + "/s"


def fmt_value(metric: str, x: float | None) -> str:
    return fmt_pct(x) if METRICS[metric][1] == "%" else fmt_rate(x)


def fmt_duration(seconds: float) -> str:
    """Seconds for reading, as the screen shows them (core/units): "45s", "1m30s", "2h5m", "1d2h"."""
    return format_duration(seconds)


def unit_slug(metric: str) -> str:
    return "pct" if METRICS[metric][1] == "%" else "bytes_per_s"


def time_label(t: float, span: float) -> str:
    fmt = "%H:%M:%S" if span <= 600 else "%H:%M" if span <= 2 * 86400 else "%m-%d %H:%M"
    return datetime.fromtimestamp(t, UTC).strftime(fmt)


def gaps(times: Sequence[float], slot: float) -> list[int]:
    """Indices of the points that follow a gap (more than one empty slot): no line into them."""
    return [i for i in range(1, len(times)) if times[i] - times[i - 1] > 1.5 * slot]


def header_lines(report: Report, *, escape: Callable[[str], str]) -> list[tuple[str, str]]:
    step = report.step
    tier = f"{step}-second buckets" if step is not None else "no samples in the window"
    if step is not None and report.slot is not None:
        tier += f"; chart points of {fmt_duration(report.slot)}"
    return [
        (
            "Window",
            f"{when(report.since)} to {when(report.until)} UTC ({fmt_duration(report.window)})",
        ),
        ("Filters", escape(report.filters.describe()) or "none"),
        ("Figures from", tier),
        ("Subjects", f"{plural(len(report.hosts), 'host')}, {plural(len(report.vms), 'VM')}"),
        (
            "Uptime",
            "the part of the window covered by buckets with samples. VMs are sampled only while they "
            "run, so this is time running (to within a bucket at each start and stop); for a host, "
            "time reachable and sampled.",
        ),
    ]


def row_common(s: Subject) -> list[str]:
    return [fmt_duration(s.uptime), fmt_pct(s.uptime_pct)]


def row_tail(s: Subject) -> list[str]:
    return [str(len(s.state_changes)), str(s.alerts_fired), str(s.alerts_resolved)]


HOST_HEAD = ["Host", "Group", "Uptime", "Up %", "Samples"]
VM_HEAD = ["VM", "Host", "Group", "Tenant", "Uptime", "Up %", "Samples"]
TAIL_HEAD = ["State changes", "Alerts fired", "Alerts resolved"]


def metric_head(metrics: Sequence[str]) -> list[str]:
    out = []
    for m in metrics:
        title, unit = METRICS[m]
        suffix = " %" if unit == "%" else ""
        out += [f"{title} avg{suffix}", f"{title} peak{suffix}"]
    return out


def metric_cells(s: Subject, metrics: Sequence[str]) -> list[str]:
    out = []
    for m in metrics:
        f = s.metrics.get(m)
        out += [fmt_value(m, None if f is None else f.avg), fmt_value(m, None if f is None else f.peak)]
    return out


def event_rows(
    report: Report,
) -> tuple[list[tuple[float, Subject, StateChange]], list[tuple[float, Subject, AlertEvent]]]:
    changes = sorted(
        ((c.t, s, c) for s in report.subjects for c in s.state_changes), key=lambda e: (e[0], e[1].key)
    )
    alerts = sorted(((a.t, s, a) for s in report.subjects for a in s.alerts), key=lambda e: (e[0], e[1].key))
    return changes, alerts
