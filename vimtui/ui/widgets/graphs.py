"""Metric graphs: one plotext chart per widget, and a panel of them for one VM or host.

Each `MetricGraph` owns a private plotext figure (plotext's module-level `plotext.figure` is never
touched), so two graphs built one after the other cannot leak data, titles or sizes into each other.
A graph builds its chart lazily in `render()`, sized to the widget, and keeps the result until its data,
its size or its colours change. Colours come from the theme through component classes in `DEFAULT_CSS`
(`$text-primary`, `$text-accent`, ...); the frame and the tick labels carry no colour of their own, so
they take the widget's `color`. With NO_COLOR, or a theme whose series colours are all greys, the chart is
drawn without any colour at all.

`GraphPanel` feeds the graphs from a `History`: it reads only the graphs on screen, and only when the
caller's version token (or `now`) moved since the last draw.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from plotext import marker as plotext_marker
from plotext._kernel.terminal import terminal as plotext_terminal
from rich.color import Color as RichColor
from rich.color import ColorType
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.reactive import reactive
from textual.widget import Widget

from vimtui.core.monitor.rings import History
from vimtui.core.units import nice_step

if TYPE_CHECKING:
    from vimtui.core.monitor.archive import Archive

Window = Literal["5m", "15m", "1h", "24h"]
"""How far back a graph looks."""
MetricSet = Literal["all", "cpu", "mem", "disk", "net"]
"""Which charts a panel shows: all of them, or one alone and larger."""
Kind = Literal["vm", "host"]
Unit = Literal["%", "B/s"]

WINDOWS: tuple[Window, ...] = get_args(Window)
METRIC_SETS: tuple[MetricSet, ...] = get_args(MetricSet)
WINDOW_SECONDS: dict[Window, float] = {"5m": 300.0, "15m": 900.0, "1h": 3600.0, "24h": 86400.0}

MIN_GRAPH_WIDTH = 36
"""Below twice this (plus the gutter) a panel lays its graphs out in one column."""
MIN_GRAPH_HEIGHT = 8
"""Rows a graph needs to be worth showing: a panel shows only as many as fit."""
_MIN_PLOT_WIDTH = 16
_MIN_PLOT_HEIGHT = 5

PlotextColor = int | tuple[int, int, int]
"""What a plotext pixel takes: a palette index (ANSI themes) or an (r, g, b) triple."""


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


def _fmt_number(x: float) -> str:
    """A tick value without trailing zeros: 100 -> "100", 2.5 -> "2.5", 0.25 -> "0.25"."""
    if x == int(x):
        return f"{x:.0f}"
    return f"{x:.1f}".rstrip("0").rstrip(".") if x >= 1 else f"{x:.2g}"


def _fmt_bytes(n: float) -> str:
    """Compact binary units, as in the tables: "512B", "1.2K", "34K", "412M"."""
    if n < 999.5:
        return f"{n:.0f}B"
    for unit in "KMGT":
        n /= 1024.0
        if n < 999.5 or unit == "T":
            return f"{n:.1f}{unit}" if n < 9.95 else f"{n:.0f}{unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def _fmt_value(value: float, unit: Unit) -> str:
    return f"{value:.1f}%" if unit == "%" else _fmt_bytes(value)


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
        return n * step, ticks, [f"{_fmt_number(t)}%" for t in ticks]
    scale, suffix = 1.0, ""
    for k, letter in enumerate("KMGT", start=1):
        if peak >= 1000.0 * 1024.0 ** (k - 1):  # as in the tables: never "1000M", rather "0.98G"
            scale, suffix = 1024.0**k, letter
    top_units = peak / scale if peak > 0 else 1.0
    step = nice_step(top_units / intervals)
    n = max(1, math.ceil(top_units / step - 1e-9))
    ticks_units = [i * step for i in range(n + 1)]
    labels = ["0" if t == 0 else f"{_fmt_number(t)}{suffix}" for t in ticks_units]
    return n * step * scale, [t * scale for t in ticks_units], labels


_RELATIVE_STEPS: dict[Window, tuple[float, ...]] = {"5m": (60.0, 150.0, 300.0), "15m": (300.0, 900.0)}
_ABSOLUTE_STEPS: dict[Window, tuple[float, ...]] = {
    "1h": (900.0, 1800.0, 3600.0),
    "24h": (4 * 3600.0, 6 * 3600.0, 12 * 3600.0),
}


def x_ticks(window: Window, now: float, width: int) -> tuple[list[float], list[str]]:
    """Tick positions (seconds relative to `now`, so in [-window, 0]) and labels for a plot `width`
    columns wide. 5m and 15m read relative to now ("-15m", "-10m", "-5m", "now"); 1h and 24h read local
    wall-clock time ("13:45"), on round times. The densest spacing whose labels fit is taken."""
    span = WINDOW_SECONDS[window]
    if window in _RELATIVE_STEPS:
        steps, label_width = _RELATIVE_STEPS[window], 6
    else:
        steps, label_width = _ABSOLUTE_STEPS[window], 7
    room = max(2, width // label_width)
    if window in _RELATIVE_STEPS:
        for step in steps:
            if span / step + 1 <= room or step == steps[-1]:
                break
        count = int(span // step)
        positions = [-i * step for i in range(count, -1, -1)]
        labels = [("now" if p == 0 else f"-{_fmt_number(-p / 60)}m") for p in positions]
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


_EMPTY_PLOTS: dict[tuple[object, ...], Text] = {}
"""Empty charts by (width, height, unit, window, look): see MetricGraph._build."""

ARCHIVE_FROM = 900.0
"""Windows longer than this (1 h, 24 h) take what this run has not seen from the archive."""
ARCHIVE_REREAD = 60.0
"""Seconds before a window's archived part is read again (this run's memory has the newest part)."""


def _before(
    past: tuple[list[float], list[float]], start: float, times: list[float], values: list[float]
) -> tuple[list[float], list[float]]:
    """The archive's points before `start` (where this run's memory begins), then this run's."""
    cut = bisect_left(past[0], start)
    if not cut:
        return times, values
    return past[0][:cut] + times, past[1][:cut] + values


def _gap_indices(times: Sequence[float], step: float) -> list[int]:
    """Indices of the points that follow a gap: the line must not be drawn into them. A gap is a jump
    longer than 2.5 typical sample spacings (the median one, so a 2 s poll on 1 s slots is no gap)."""
    if len(times) < 2:
        return []
    diffs = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    typical = max(step, diffs[len(diffs) // 2])
    limit = 2.5 * typical
    return [i for i in range(1, len(times)) if times[i] - times[i - 1] > limit]


def _downsample(
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
    gaps = set(_gap_indices(times, step))
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


def _plotext_color(color: RichColor | None) -> PlotextColor | None:
    if color is None or color.type == ColorType.DEFAULT:
        return None
    if color.type in (ColorType.STANDARD, ColorType.EIGHT_BIT) and color.number is not None:
        return color.number
    r, g, b = color.get_truecolor()
    return (r, g, b)


def _is_grey(color: RichColor | None) -> bool:
    if color is None or color.type == ColorType.DEFAULT:
        return True
    r, g, b = color.get_truecolor()
    return max(r, g, b) - min(r, g, b) < 24


# -- the graph ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Look:
    """Everything of the theme a build depends on: part of the cache key."""

    title: Style
    series: tuple[Style, ...]
    colors: tuple[PlotextColor | None, ...]
    mono: bool


_MARKERS = ("hd", "braille")
_COLOR_GLYPHS = ("━", "━")
_MONO_GLYPHS = ("━", "┅")


class MetricGraph(Widget):
    """One chart of one or two series over a time window, drawn by plotext into the widget's size."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "metric-graph--title",
        "metric-graph--series-1",
        "metric-graph--series-2",
    }
    """
    | Class | Description |
    | :- | :- |
    | `metric-graph--title` | The title line. |
    | `metric-graph--series-1` | The colour of the first series (only `color` is used). |
    | `metric-graph--series-2` | The colour of the second series (only `color` is used). |
    """

    DEFAULT_CSS = """
    MetricGraph {
        width: 1fr;
        height: 1fr;
        min-height: 1;
        color: $text-muted;
    }
    MetricGraph > .metric-graph--title {
        color: $foreground;
        text-style: bold;
    }
    MetricGraph > .metric-graph--series-1 {
        color: $text-primary;
    }
    MetricGraph > .metric-graph--series-2 {
        color: $text-accent;
    }
    """

    def __init__(
        self,
        title: str,
        unit: Unit = "%",
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.title = title
        self.unit: Unit = unit
        self._terminal = plotext_terminal()
        self._terminal.limit(False, False)  # sized by the widget, never by the real terminal
        self._figure: Any = self._terminal._master
        """This graph's own plotext figure."""
        self._series: tuple[Series, ...] = ()
        self._window: Window = "15m"
        self._now = 0.0
        self._step = 1.0
        self._version = 0
        self._cache_key: tuple[object, ...] | None = None
        self._cache = Text()
        self.builds = 0
        """How many times plotext built this chart (the rest came from the cache)."""

    @property
    def series(self) -> tuple[Series, ...]:
        """The series last given to `update_series`."""
        return self._series

    @property
    def window(self) -> Window:
        return self._window

    @property
    def heading(self) -> str:
        """The title with its unit: "CPU %", "Disk B/s"."""
        return f"{self.title} {self.unit}"

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._theme_changed, init=False)

    def _theme_changed(self) -> None:
        self.refresh()

    def update_series(
        self, series: Sequence[Series], *, window: Window, now: float, step: float = 1.0
    ) -> None:
        """Show new data. `now` is the right edge of the time axis; `step` the history's slot length, the
        shortest spacing that is not a gap. Always rebuilds on the next render."""
        self._series = tuple(series)
        self._window = window
        self._now = now
        self._step = step
        self._version += 1
        self.refresh()

    def clear_series(self) -> None:
        """Drop the data (no target): the chart shows its frame and axes, empty."""
        self.update_series((), window=self._window, now=self._now, step=self._step)

    def render(self) -> Text:
        width, height = self.size
        look = self._look()
        key = (self._version, width, height, look)
        if key != self._cache_key:
            self._cache = self._build(width, height, look)
            self._cache_key = key
        return self._cache

    def _look(self) -> _Look:
        title = self.get_component_rich_style("metric-graph--title", partial=True)
        styles = tuple(
            self.get_component_rich_style(f"metric-graph--series-{i}", partial=True) for i in (1, 2)
        )
        colors = tuple(_plotext_color(s.color) for s in styles)
        mono = bool(getattr(self.app, "no_color", False)) or all(_is_grey(s.color) for s in styles)
        if mono:
            return _Look(Style(bold=True), (Style(), Style()), (None, None), True)
        return _Look(title, styles, colors, False)

    def _title_line(self, look: _Look) -> Text:
        line = Text(no_wrap=True, overflow="crop", end="")
        line.append(self.heading, style=look.title)
        step = self._step
        for i, s in enumerate(self._series[:2]):
            glyphs = _MONO_GLYPHS if look.mono else _COLOR_GLYPHS
            line.append("  ")
            line.append(glyphs[i], style=look.series[i])
            if len(self._series) > 1:
                line.append(f" {s.label}")
            fresh = bool(s.times) and self._now - s.times[-1] <= max(10.0, 3 * step)
            line.append(" " + (_fmt_value(s.values[-1], self.unit) if fresh else "-"))
        return line

    def _build(self, width: int, height: int, look: _Look) -> Text:
        self.builds += 1
        title = self._title_line(look)
        title.truncate(max(0, width))
        if width < _MIN_PLOT_WIDTH or height - 1 < _MIN_PLOT_HEIGHT:
            return title
        if self._window in _RELATIVE_STEPS and not any(s.values for s in self._series[:2]):
            # an empty chart on a relative time axis is the same whenever it is drawn: from a cache (while
            # hosts connect, every graph is empty and redrawn at each update: 7 ms of plotext each)
            key = (width, height, self.unit, self._window, look)
            body = _EMPTY_PLOTS.get(key)
            if body is None:
                if len(_EMPTY_PLOTS) > 32:
                    _EMPTY_PLOTS.clear()
                body = _EMPTY_PLOTS[key] = self._plot(width, height - 1, look)
            body = body.copy()
        else:
            body = self._plot(width, height - 1, look)
        out = Text("\n", no_wrap=True, overflow="crop", end="").join([title, body])
        out.no_wrap = True
        return out

    def _plot(self, width: int, height: int, look: _Look) -> Text:
        fig = self._figure
        fig.clear()  # data, settings, sizes: nothing of the last build survives
        fig.theme("colorless")  # frame and ticks without colour: they take the widget's own
        fig.canvas("default")
        fig.plot_size(width, height)
        now, span = self._now, WINDOW_SECONDS[self._window]
        series = self._series[:2]
        peak = max((max(s.values) for s in series if s.values), default=0.0)
        # inside the frame: rows less the two borders and the x labels; at least two rows per tick
        top, yt, yl = y_ticks(self.unit, peak, min(4, max(1, (height - 3) // 2)))
        fig.ruler("y").lim(0, top)
        fig.ruler("y").ticks(yt, yl)
        canvas_width = max(1, width - max(len(label) for label in yl) - 2)
        canvas_height = max(1, height - 3)
        for i, s in enumerate(series):
            if not s.values:
                continue
            ts, vs, breaks = _downsample(
                s.times, s.values, self._step, now - span, span, canvas_width, top / (2 * canvas_height)
            )
            glyph = _MARKERS[i] if look.mono else _MARKERS[0]
            sig = fig.signal([t - now for t in ts], vs, marker=plotext_marker(glyph, look.colors[i]))
            sig.lines()
            for index in breaks:
                sig.line(index, False)
            fig.draw(sig)
        fig.legend(False)
        xt, xl = x_ticks(self._window, now, canvas_width)
        fig.ruler("x").lim(-span, 0)
        fig.ruler("x").ticks(xt, xl)
        ansi = fig.build().string(colorless=look.mono)
        return Text.from_ansi(ansi.rstrip("\n"), no_wrap=True, end="")


# -- the panel ---------------------------------------------------------------------------------------


class GraphPanel(Widget):
    """The graphs of one VM or host, laid out in a grid that fits the panel's size."""

    DEFAULT_CSS = """
    GraphPanel {
        layout: grid;
        grid-size: 2;
        grid-columns: 1fr;
        grid-rows: 1fr;
        grid-gutter: 0 1;
        height: 1fr;
    }
    GraphPanel.-one-column {
        grid-size: 1;
    }
    """

    window: reactive[Window] = reactive[Window]("15m")
    """How far back the graphs look; `cycle_window` steps through `WINDOWS`."""
    metric_set: reactive[MetricSet] = reactive[MetricSet]("all")
    """All the target's graphs, or one of them alone; `cycle_metrics` steps through `METRIC_SETS`."""

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.target: str | None = None
        self.kind: Kind = "vm"
        self._history: History | None = None
        self._now = 0.0
        self._version: object = None
        self._drawn: tuple[object, ...] | None = None
        self._stale = False
        self._shown: tuple[str, ...] = ()
        self.draw_count = 0
        """How many times the panel read the history into its graphs (skipped draws do not count)."""
        self.archive: Archive | None = None
        """The lasting history: windows longer than this run's memory take their older part from it."""
        self._past: dict[
            tuple[str, Kind, Window], tuple[float, dict[str, tuple[list[float], list[float]]]]
        ] = {}
        """(target, kind, window) -> (read at, metric -> (times, values)) from the archive"""
        self._reading: set[tuple[str, Kind, Window]] = set()

    def compose(self) -> ComposeResult:
        for spec in GRAPHS:
            yield MetricGraph(spec.title, spec.unit, id=f"graph-{spec.id}")

    def graph(self, graph_id: str) -> MetricGraph:
        """The graph "cpu", "mem", "disk" or "net"."""
        return self.query_one(f"#graph-{graph_id}", MetricGraph)

    @property
    def shown(self) -> tuple[str, ...]:
        """Ids of the graphs the layout shows, in order."""
        return self._shown

    def show(
        self,
        target: str | None,
        kind: Kind,
        history: History,
        *,
        now: float,
        version: object = None,
        archive: Archive | None = None,
    ) -> None:
        """Show `target`'s metrics (a VM key with kind "vm", a host name with kind "host") from `history`
        up to `now`. `version` is a cheap token of the data (the fleet state's version, say): when it
        did not change since the last draw, nothing is read or redrawn; without it, `now` is the token.
        Off screen, the draw waits until the panel is shown. `archive`: the lasting history, for the
        part of a long window that this run did not see."""
        kind_changed = kind != self.kind
        self.target, self.kind, self._history = target, kind, history
        self.archive = archive
        self._now, self._version = now, version
        if kind_changed:
            self._layout()
        self._draw()

    def cycle_window(self) -> Window:
        """The next window (5m, 15m, 1h, 24h, then 5m again); returns it."""
        self.window = WINDOWS[(WINDOWS.index(self.window) + 1) % len(WINDOWS)]
        return self.window

    def cycle_metrics(self) -> MetricSet:
        """The next metric set (all, cpu, mem, disk, net, then all), skipping sets the kind has not."""
        order = self._metric_sets()
        current = self.metric_set if self.metric_set in order else "all"
        self.metric_set = order[(order.index(current) + 1) % len(order)]
        return self.metric_set

    def redraw(self) -> None:
        """Read the history again even if the version token did not move."""
        self._draw(force=True)

    # -- internals ---------------------------------------------------------------------------------

    def _metric_sets(self) -> list[MetricSet]:
        ids = {spec.id for spec in GRAPHS if self.kind in spec.kinds}
        return [m for m in METRIC_SETS if m == "all" or m in ids]

    def _wanted(self) -> list[GraphSpec]:
        specs = [spec for spec in GRAPHS if self.kind in spec.kinds]
        chosen = [spec for spec in specs if spec.id == self.metric_set]
        return chosen or specs

    def watch_window(self) -> None:
        self._draw(force=True)

    def watch_metric_set(self) -> None:
        self._layout()

    def on_resize(self, event: events.Resize) -> None:
        self._layout()

    def on_show(self) -> None:
        if self._stale:
            self._draw(force=True)

    def _layout(self) -> None:
        """Pick the columns and the graphs that fit; newly shown graphs get their data."""
        if not self.is_mounted:
            return
        width, height = self.size
        specs = self._wanted()
        wide = width >= 2 * MIN_GRAPH_WIDTH + 1
        columns = 2 if wide and len(specs) > 1 else 1
        rows = max(1, height // MIN_GRAPH_HEIGHT)
        shown = tuple(spec.id for spec in specs[: columns * rows])
        self.set_class(columns == 1, "-one-column")
        for spec in GRAPHS:
            self.graph(spec.id).display = spec.id in shown
        if shown != self._shown:
            self._shown = shown
            self._draw(force=True)

    def _draw(self, *, force: bool = False) -> None:
        history = self._history
        if history is None or not self.is_mounted:
            return
        token = (self.target, self.kind, id(history), self._now if self._version is None else self._version)
        if not force and token == self._drawn:
            return
        if not self.display or not self.is_on_screen:
            self._stale = True
            return
        self._stale = False
        self._drawn = token
        self.draw_count += 1
        span = WINDOW_SECONDS[self.window]
        step = history.fine_step if span <= history.fine_span else history.coarse_step
        past = self._archived(span)
        for spec in GRAPHS:
            if spec.id not in self._shown:
                continue
            series: list[Series] = []
            if self.target is not None:
                for metric, label in spec.metrics:
                    times, values = history.series(self.target, metric, span, self._now)
                    if past is not None and metric in past:
                        times, values = _before(past[metric], times[0] if times else self._now, times, values)
                    series.append(Series(label, times, values))
            self.graph(spec.id).update_series(series, window=self.window, now=self._now, step=step)

    def _archived(self, span: float) -> dict[str, tuple[list[float], list[float]]] | None:
        """What the archive holds of the target over the window (None until read, or without an archive,
        or for the short windows this run's memory covers). Read on a thread, again after ARCHIVE_REREAD
        seconds; the panel redraws when a read arrives."""
        if self.archive is None or self.target is None or span <= ARCHIVE_FROM:
            return None
        key = (self.target, self.kind, self.window)
        cached = self._past.get(key)
        if (cached is None or self._now - cached[0] > ARCHIVE_REREAD) and key not in self._reading:
            self._reading.add(key)
            metrics = [m for spec in GRAPHS if self.kind in spec.kinds for m, _ in spec.metrics]
            self.run_worker(
                partial(self._read_archive, self.archive, key, metrics, self._now - span, self._now),
                thread=True,
                group="graph-archive",
            )
        return cached[1] if cached is not None else None

    def _read_archive(
        self, archive: Archive, key: tuple[str, Kind, Window], metrics: list[str], since: float, until: float
    ) -> None:
        got = {m: archive.series(key[0], m, since, until) for m in metrics}
        self.app.call_from_thread(self._archive_read, key, until, got)

    def _archive_read(
        self, key: tuple[str, Kind, Window], at: float, got: dict[str, tuple[list[float], list[float]]]
    ) -> None:
        self._reading.discard(key)
        if len(self._past) > 64:
            self._past.clear()
        self._past[key] = (at, got)
        if key == (self.target, self.kind, self.window):
            self._draw(force=True)
