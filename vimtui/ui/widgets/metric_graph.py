"""One metric chart: a private plotext figure drawn into the widget's size.

Each `MetricGraph` owns a private plotext figure (plotext's module-level `plotext.figure` is never
touched), so two graphs built one after the other cannot leak data, titles or sizes into each other.
A graph builds its chart lazily in `render()`, sized to the widget, and keeps the result until its data,
its size or its colours change. Colours come from the theme through component classes in `DEFAULT_CSS`
(`$text-primary`, `$text-accent`, ...); the frame and the tick labels carry no colour of their own, so
they take the widget's `color`. With NO_COLOR, or a theme whose series colours are all greys, the chart is
drawn without any colour at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from plotext import marker as plotext_marker
from plotext._kernel.terminal import terminal as plotext_terminal
from rich.color import Color as RichColor
from rich.color import ColorType
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from vimtui.ui.widgets.graph_data import (
    RELATIVE_STEPS,
    WINDOW_SECONDS,
    Series,
    Unit,
    Window,
    downsample,
    fmt_value,
    x_ticks,
    y_ticks,
)

_MIN_PLOT_WIDTH = 16
_MIN_PLOT_HEIGHT = 5

PlotextColor = int | tuple[int, int, int]
"""What a plotext pixel takes: a palette index (ANSI themes) or an (r, g, b) triple."""


_EMPTY_PLOTS: dict[tuple[object, ...], Text] = {}
"""Empty charts by (width, height, unit, window, look): see MetricGraph._build."""


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
        self.note = ""
        """Said after the heading: what a percentage is of ("of 96M", the VM's memory now)."""
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
        """The title with its unit: "CPU %", "Disk B/s", and the note ("Memory % of 96M")."""
        return f"{self.title} {self.unit}" + (f" {self.note}" if self.note else "")

    def set_note(self, note: str) -> None:
        if note != self.note:
            self.note = note
            self._version += 1
            self.refresh()

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
            line.append(" " + (fmt_value(s.values[-1], self.unit) if fresh else "-"))
        return line

    def _build(self, width: int, height: int, look: _Look) -> Text:
        self.builds += 1
        title = self._title_line(look)
        title.truncate(max(0, width))
        if width < _MIN_PLOT_WIDTH or height - 1 < _MIN_PLOT_HEIGHT:
            return title
        if self._window in RELATIVE_STEPS and not any(s.values for s in self._series[:2]):
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
            ts, vs, breaks = downsample(
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
