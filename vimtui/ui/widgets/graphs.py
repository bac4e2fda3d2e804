"""A panel of metric graphs for one VM or host, fed from the in-memory history and, for windows longer than
this run has seen, the lasting archive.

`GraphPanel` reads only the graphs on screen, and only when the caller's version token (or `now`) moved
since the last draw."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING

from textual import events
from textual.app import ComposeResult
from textual.reactive import reactive
from textual.widget import Widget

from vimtui.core.model import VmState
from vimtui.core.monitor.rings import History
from vimtui.ui.format import size
from vimtui.ui.widgets.graph_data import (
    ARCHIVE_FROM,
    ARCHIVE_REREAD,
    GRAPHS,
    METRIC_SETS,
    WINDOW_SECONDS,
    WINDOWS,
    GraphSpec,
    Kind,
    MetricSet,
    Series,
    Window,
    archived_before,
)
from vimtui.ui.widgets.metric_graph import MetricGraph

if TYPE_CHECKING:
    from vimtui.core.monitor.archive import Archive


MIN_GRAPH_WIDTH = 36
"""Below twice this (plus the gutter) a panel lays its graphs out in one column."""
MIN_GRAPH_HEIGHT = 8
"""Rows a graph needs to be worth showing: a panel shows only as many as fit."""


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
        self._laid_out: tuple[object, ...] | None = None
        """(size, kind, metric set) the layout was picked for"""
        self.draw_count = 0
        """How many times the panel read the history into its graphs (skipped draws do not count)."""
        self.archive: Archive | None = None
        """The lasting history: windows longer than this run's memory take their older part from it."""
        self._past: dict[
            tuple[str, Kind, Window], tuple[float, dict[str, tuple[list[float], list[float]]]]
        ] = {}
        """(target, kind, window) -> (read at, metric -> (times, values)) from the archive"""
        self._reading: set[tuple[str, Kind, Window]] = set()

    @staticmethod
    def vm_notes(vm: VmState | None) -> dict[str, str]:
        """The memory graph's note for a VM: the memory it has now (balloon.current), which the percentage
        is of; a balloon change shows here as in the MEM column."""
        kib = vm.memory_kib if vm is not None else None
        return {"mem": f"of {size(kib * 1024)}"} if kib else {}

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
        notes: Mapping[str, str] | None = None,
    ) -> None:
        """Show `target`'s metrics (a VM key with kind "vm", a host name with kind "host") from `history`
        up to `now`. `version` is a cheap token of the data (the fleet state's version, say): when it
        did not change since the last draw, nothing is read or redrawn; without it, `now` is the token.
        Off screen, the draw waits until the panel is shown. `archive`: the lasting history, for the
        part of a long window that this run did not see. `notes`: graph id -> what its heading adds
        ({"mem": "of 96M"}: the memory a percentage is of, so a balloon change shows)."""
        if self.is_mounted:
            for spec in GRAPHS:
                self.graph(spec.id).set_note((notes or {}).get(spec.id, ""))
        self.target, self.kind, self._history = target, kind, history
        self.archive = archive
        self._now, self._version = now, version
        if self.size.area and self._laid_out != (self.size, self.kind, self.metric_set):
            # a panel mounted just before (the wall's) is sized before its Resize event is handled:
            # waiting for that event would paint the default layout (two columns, a VM's four graphs);
            # a hidden panel (no size) keeps its layout
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
        self._laid_out = (self.size, self.kind, self.metric_set)
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
        began = history.began(self.target) if self.target is not None else None
        if began is None:
            began = self._now
        for spec in GRAPHS:
            if spec.id not in self._shown:
                continue
            series: list[Series] = []
            if self.target is not None:
                for metric, label in spec.metrics:
                    times, values = history.series(self.target, metric, span, self._now)
                    if past is not None and metric in past:
                        times, values = archived_before(past[metric], began, times, values)
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
