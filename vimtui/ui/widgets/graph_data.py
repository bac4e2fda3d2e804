"""What the graphs show, apart from drawing it: windows, the charts of a VM or host, axis ticks, and the
series thinned to the plot's width with gaps kept."""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from vimtui.core.units import format_bytes, nice_step

Window = Literal["5m", "15m", "1h", "24h"]
"""How far back a graph looks."""
MetricSet = Literal["all", "cpu", "mem", "disk", "net"]
"""Which charts a panel shows: all of them, or one alone and larger."""
Kind = Literal["vm", "host"]
Unit = Literal["%", "B/s"]

WINDOWS: tuple[Window, ...] = get_args(Window)
METRIC_SETS: tuple[MetricSet, ...] = get_args(MetricSet)
WINDOW_SECONDS: dict[Window, float] = {"5m": 300.0, "15m": 900.0, "1h": 3600.0, "24h": 86400.0}


@dataclass(frozen=True)
class Series:
    """One line on a chart: sample times (wall clock, seconds) and values, oldest first, gaps left out."""

    label: str
    times: Sequence[float]
    values: Sequence[float]


@dataclass(frozen=True)
class GraphSpec:
    """One chart of a panel: which metrics of the history it draws, and how to name them."""

    id: str
    title: str
    unit: Unit
    metrics: tuple[tuple[str, str], ...]
    """(history metric, legend label) pairs, one or two."""
    kinds: tuple[Kind, ...]


GRAPHS: tuple[GraphSpec, ...] = (
    GraphSpec("cpu", "CPU", "%", (("cpu", "cpu"),), ("vm", "host")),
    GraphSpec("mem", "Memory", "%", (("mem", "mem"),), ("vm", "host")),
    GraphSpec("disk", "Disk", "B/s", (("disk_rd", "read"), ("disk_wr", "write")), ("vm",)),
    GraphSpec("net", "Net", "B/s", (("net_rx", "rx"), ("net_tx", "tx")), ("vm",)),
)


# -- units and ticks ---------------------------------------------------------------------------------


def fmt_number(x: float) -> str:
    """A tick value without trailing zeros: 100 -> "100", 2.5 -> "2.5", 0.25 -> "0.25"."""
    if x == int(x):
        return f"{x:.0f}"
    return f"{x:.1f}".rstrip("0").rstrip(".") if x >= 1 else f"{x:.2g}"


def fmt_value(value: float, unit: Unit) -> str:
    return f"{value:.1f}%" if unit == "%" else format_bytes(value)


def y_ticks(unit: Unit, peak: float, intervals: int) -> tuple[float, list[float], list[str]]:
    """(upper limit, tick positions, tick labels) of a y axis from 0 with about `intervals` steps.
    Percentages run to 100 ("0%" .. "100%"); byte rates pick K, M or G from the peak ("0", "1.5M")."""
    intervals = max(1, intervals)
    if unit == "%":
        top = max(100.0, peak)
        if top == 100.0:
            step = 25.0 if intervals >= 4 else 50.0 if intervals >= 2 else 100.0
        else:
            step = nice_step(top / intervals)
        n = max(1, math.ceil(top / step - 1e-9))
        ticks = [i * step for i in range(n + 1)]
        return n * step, ticks, [f"{fmt_number(t)}%" for t in ticks]
    scale, suffix = 1.0, ""
    for k, letter in enumerate("KMGT", start=1):
        if peak >= 1000.0 * 1024.0 ** (k - 1):  # as in the tables: never "1000M", rather "0.98G"
            scale, suffix = 1024.0**k, letter
    top_units = peak / scale if peak > 0 else 1.0
    step = nice_step(top_units / intervals)
    n = max(1, math.ceil(top_units / step - 1e-9))
    ticks_units = [i * step for i in range(n + 1)]
    labels = ["0" if t == 0 else f"{fmt_number(t)}{suffix}" for t in ticks_units]
    return n * step * scale, [t * scale for t in ticks_units], labels


RELATIVE_STEPS: dict[Window, tuple[float, ...]] = {"5m": (60.0, 150.0, 300.0), "15m": (300.0, 900.0)}
_ABSOLUTE_STEPS: dict[Window, tuple[float, ...]] = {
    "1h": (900.0, 1800.0, 3600.0),
    "24h": (4 * 3600.0, 6 * 3600.0, 12 * 3600.0),
}


def x_ticks(window: Window, now: float, width: int) -> tuple[list[float], list[str]]:
    """Tick positions (seconds relative to `now`, so in [-window, 0]) and labels for a plot `width`
    columns wide. 5m and 15m read relative to now ("-15m", "-10m", "-5m", "now"); 1h and 24h read local
    wall-clock time ("13:45"), on round times. The densest spacing whose labels fit is taken."""
    span = WINDOW_SECONDS[window]
    if window in RELATIVE_STEPS:
        steps, label_width = RELATIVE_STEPS[window], 6
    else:
        steps, label_width = _ABSOLUTE_STEPS[window], 7
    room = max(2, width // label_width)
    if window in RELATIVE_STEPS:
        for step in steps:
            if span / step + 1 <= room or step == steps[-1]:
                break
        count = int(span // step)
        positions = [-i * step for i in range(count, -1, -1)]
        labels = [("now" if p == 0 else f"-{fmt_number(-p / 60)}m") for p in positions]
        return positions, labels
    offset = time.localtime(now).tm_gmtoff
    for step in steps:
        if span / step <= room or step == steps[-1]:
            break
    first = math.ceil((now - span + offset) / step) * step - offset
    positions, labels = [], []
    t = first
    while t <= now:
        positions.append(t - now)
        labels.append(time.strftime("%H:%M", time.localtime(t)))
        t += step
    return positions, labels


ARCHIVE_FROM = 900.0
"""Windows longer than this (1 h, 24 h) take what this run has not seen from the archive."""
ARCHIVE_REREAD = 60.0
"""Seconds before a window's archived part is read again (this run's memory has the newest part)."""


def archived_before(
    past: tuple[list[float], list[float]], began: float, times: list[float], values: list[float]
) -> tuple[list[float], list[float]]:
    """The archive's points from before `began` (this run's first sample of the target), then this run's.
    A slot of this run that starts before `began` (the minute a restart fell in, on the minute ring) holds
    only this run's samples: it is drawn at `began`, after the earlier run's points of that minute."""
    cut = bisect_left(past[0], began)
    if times and times[0] < began:
        times = [began, *times[1:]]
    if not cut:
        return times, values
    return past[0][:cut] + times, past[1][:cut] + values


def gap_indices(times: Sequence[float], step: float) -> list[int]:
    """Indices of the points that follow a gap: the line must not be drawn into them. A gap is a jump
    longer than 2.5 typical sample spacings (the median one, so a 2 s poll on 1 s slots is no gap)."""
    if len(times) < 2:
        return []
    diffs = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    typical = max(step, diffs[len(diffs) // 2])
    limit = 2.5 * typical
    return [i for i in range(1, len(times)) if times[i] - times[i - 1] > limit]


def downsample(
    times: Sequence[float],
    values: Sequence[float],
    step: float,
    start: float,
    span: float,
    buckets: int,
    resolution: float = 0.0,
) -> tuple[list[float], list[float], list[int]]:
    """At most two points (the lowest and the highest, in time order) per column of `buckets` over
    [start, start + span], one (the highest) when they differ by no more than `resolution`: plotext
    spends tens of microseconds a point, and a column cannot show more. Buckets never straddle a gap;
    returns (times, values, indices of the points that follow a gap)."""
    out_t: list[float] = []
    out_v: list[float] = []
    breaks: list[int] = []
    gaps = set(gap_indices(times, step))
    scale = buckets / span if span > 0 else 0.0
    bucket = lo = hi = 0  # the open bucket, and the indices of its lowest and highest points
    for i, t in enumerate(times):
        b = int((t - start) * scale)
        if i == 0 or b != bucket or i in gaps:
            if i:
                _flush(times, values, lo, hi, resolution, out_t, out_v)
            if i in gaps:
                breaks.append(len(out_t))
            bucket, lo, hi = b, i, i
        elif values[i] < values[lo]:
            lo = i
        elif values[i] > values[hi]:
            hi = i
    if times:
        _flush(times, values, lo, hi, resolution, out_t, out_v)
    return out_t, out_v, breaks


def _flush(
    times: Sequence[float],
    values: Sequence[float],
    lo: int,
    hi: int,
    resolution: float,
    out_t: list[float],
    out_v: list[float],
) -> None:
    for j in sorted({lo, hi}) if values[hi] - values[lo] > resolution else (hi,):
        out_t.append(times[j])
        out_v.append(values[j])
