"""MetricGraph and GraphPanel: what the charts read and show, on a fixed clock and fixed terminal sizes."""

from __future__ import annotations

import re
from collections.abc import Iterator

import plotext
import pytest
from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.theme import Theme

from vimtui.core import metrics
from vimtui.core.monitor.rings import History
from vimtui.ui.widgets.graph_data import Series
from vimtui.ui.widgets.graphs import GraphPanel
from vimtui.ui.widgets.metric_graph import MetricGraph

NOW = 1_700_000_000.0
"""A fixed clock: every test reads the history up to here."""
GAP = range(400, 500)
"""Seconds (from the start of the 15 minutes) with no sample: a host that did not answer."""


def ramp_history() -> History:
    """A VM whose CPU ramps 0..100 % over the last 15 minutes (a sample every second), with a gap in the
    middle; disk reads of 2 MiB/s, writes of 512 KiB/s, net in the KiB/s."""
    history = History(metrics.history_names("vm"))
    for i in range(900):
        if i in GAP:
            continue
        history.record(
            "vm-1",
            NOW - 899 + i,
            {
                "cpu": i * 100.0 / 899,
                "mem": 40.0,
                "disk_rd": 2.0 * 1024**2,
                "disk_wr": 512.0 * 1024,
                "net_rx": 300.0 * 1024,
                "net_tx": 20.0 * 1024,
            },
        )
    return history


class PanelApp(App[None]):
    def compose(self) -> ComposeResult:
        yield GraphPanel(id="panel")


class TwoGraphsApp(App[None]):
    def compose(self) -> ComposeResult:
        yield MetricGraph("Alpha", "%", id="a")
        yield MetricGraph("Beta", "B/s", id="b")


def plain(graph: MetricGraph) -> str:
    return graph.render().plain


def canvas_rows(text: str) -> list[str]:
    """The rows inside the plot frame, without the y labels and the frame's sides."""
    rows: list[str] = []
    inside = False
    for line in text.splitlines():
        if "┌" in line:
            inside = True
            continue
        if "└" in line:
            break
        if inside:
            left = re.match(r"[^┤│]*[┤│]", line)
            assert left is not None, line
            rows.append(line[left.end() : line.rindex("│")])
    return rows


def x_labels(text: str) -> list[str]:
    """The words of the last line: the time axis labels."""
    return text.splitlines()[-1].split()


def colored_spans(text: Text) -> list[Style]:
    styles = [text.style, *(span.style for span in text.spans)]
    parsed = [s if isinstance(s, Style) else Style.parse(s) for s in styles]
    return [s for s in parsed if s.color is not None or s.bgcolor is not None]


@pytest.fixture
def no_color_unset(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("NO_COLOR", raising=False)
    yield


async def test_titles_units_and_15m_labels(no_color_unset: None) -> None:
    app = PanelApp()
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.query_one(GraphPanel)
        panel.show("vm-1", "vm", ramp_history(), now=NOW)
        await pilot.pause()
        cpu = plain(panel.graph("cpu"))
        assert cpu.splitlines()[0].startswith("CPU %")
        assert "0%" in cpu and "100%" in cpu
        assert x_labels(cpu) == ["-15m", "-10m", "-5m", "now"]
        assert plain(panel.graph("mem")).startswith("Memory %  ━ 40.0%")
        disk = plain(panel.graph("disk"))
        assert disk.startswith("Disk B/s")
        assert "read 2.0M" in disk.splitlines()[0] and "write 512K" in disk.splitlines()[0]
        assert re.search(r"^\s*2M┤", disk, re.MULTILINE), disk  # scaled to M from the peak
        net = plain(panel.graph("net"))
        assert net.startswith("Net B/s")
        assert re.search(r"^\s*\d+K┤", net, re.MULTILINE), net  # scaled to K from the peak


async def test_a_gap_is_neither_zero_nor_bridged(no_color_unset: None) -> None:
    app = PanelApp()
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.query_one(GraphPanel)
        panel.show("vm-1", "vm", ramp_history(), now=NOW)
        await pilot.pause()
        rows = canvas_rows(plain(panel.graph("cpu")))
        width = len(rows[0])
        # the gap spans x in [-499, -400] of [-899, 0]: columns around 45..55 % of the canvas
        middle = range(int(width * 0.47), int(width * 0.53) + 1)
        assert all(row[c] == " " for row in rows for c in middle), "\n".join(rows)
        # and the ramp is drawn on both sides of it
        assert any(row[int(width * 0.3)] != " " for row in rows)
        assert any(row[int(width * 0.7)] != " " for row in rows)


async def test_the_24h_window_reads_the_minute_slots(no_color_unset: None) -> None:
    history = History(metrics.history_names("vm"))
    for minute in range(24 * 60, 15, -1):  # a sample a minute for a day, then one every 2 s
        history.record("vm-1", NOW - minute * 60, {"cpu": 50.0})
    for s in range(900, -1, -2):
        history.record("vm-1", NOW - s, {"cpu": 50.0})
    app = PanelApp()
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.query_one(GraphPanel)
        panel.show("vm-1", "vm", history, now=NOW)
        await pilot.pause()
        fine = panel.graph("cpu").series[0].times
        assert fine[1] - fine[0] == 2.0 and fine[0] >= NOW - 900

        panel.window = "24h"
        await pilot.pause()
        graph = panel.graph("cpu")
        times = graph.series[0].times
        assert times[1] - times[0] == 60.0
        assert times[0] <= NOW - 23 * 3600
        text = plain(graph)
        rows = canvas_rows(text)
        assert any(row[: len(row) // 4].strip() for row in rows), text  # a day ago is drawn
        labels = x_labels(text)
        assert labels and all(re.fullmatch(r"\d\d:\d\d", label) for label in labels), labels
        every_4h = {"00:00", "04:00", "08:00", "12:00", "16:00", "20:00"}
        assert len(every_4h & set(labels)) >= 5, labels


async def test_switching_the_window_changes_the_labels(no_color_unset: None) -> None:
    app = PanelApp()
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.query_one(GraphPanel)
        panel.show("vm-1", "vm", ramp_history(), now=NOW)
        await pilot.pause()
        seen = {panel.window: x_labels(plain(panel.graph("cpu")))}
        for expected in ("1h", "24h", "5m", "15m"):
            assert panel.cycle_window() == expected
            await pilot.pause()
            assert panel.graph("cpu").window == expected
            seen[expected] = x_labels(plain(panel.graph("cpu")))
        assert seen["15m"] == ["-15m", "-10m", "-5m", "now"]
        assert seen["5m"] == ["-5m", "-4m", "-3m", "-2m", "-1m", "now"]
        assert seen["1h"] and all(re.fullmatch(r"\d\d:(00|15|30|45)", x) for x in seen["1h"]), seen
        assert seen["24h"] and all(re.fullmatch(r"\d\d:00", x) for x in seen["24h"]), seen
        assert seen["1h"] != seen["24h"]


async def test_two_graphs_do_not_share_plotext_state(no_color_unset: None) -> None:
    # something on plotext's module-level figure: a graph must neither draw it nor wipe it
    plotext.figure.clear()
    plotext.figure.title("GLOBAL FIGURE")
    plotext.figure.draw(plotext.figure.signal([1.0, 2.0, 3.0], [3.0, 1.0, 2.0]))
    try:
        app = TwoGraphsApp()
        async with app.run_test(size=(60, 30)) as pilot:
            a = app.query_one("#a", MetricGraph)
            b = app.query_one("#b", MetricGraph)
            x = [Series("x", [NOW - 600 + i for i in range(600)], [i / 6 for i in range(600)])]
            y = [
                Series("in", [NOW - 300 + i for i in range(300)], [5e6] * 300),
                Series("out", [NOW - 300 + i for i in range(300)], [1e6] * 300),
            ]
            a.update_series(x, window="15m", now=NOW)
            await pilot.pause()
            before = plain(a)
            b.update_series(y, window="5m", now=NOW)
            await pilot.pause()
            other = plain(b)
            a.update_series(x, window="15m", now=NOW)  # same data: built again, not served from cache
            await pilot.pause()
            after = plain(a)
            assert a.builds >= 2
            assert after == before
            assert "Beta" not in after and "in" not in after.splitlines()[0] and "M" not in after
            assert "Alpha" not in other and "-15m" not in other
        assert "GLOBAL FIGURE" in plotext.figure.build().string(colorless=True)
    finally:
        plotext.figure.clear()


async def test_a_one_sample_spike_survives_the_thinning(no_color_unset: None) -> None:
    """900 samples go into ~50 columns: the columns keep their highest sample, so a spike still shows."""
    app = TwoGraphsApp()
    async with app.run_test(size=(60, 30)) as pilot:
        a = app.query_one("#a", MetricGraph)
        values = [0.0] * 900
        values[700] = 100.0
        a.update_series([Series("x", [NOW - 899 + i for i in range(900)], values)], window="15m", now=NOW)
        await pilot.pause()
        rows = canvas_rows(plain(a))
        assert rows[0].strip(), "\n".join(rows)  # the 100 % row
        assert rows[-1].strip()  # and the zeros


async def test_colour_follows_the_theme(no_color_unset: None) -> None:
    app = PanelApp()
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.query_one(GraphPanel)
        panel.show("vm-1", "vm", ramp_history(), now=NOW)
        await pilot.pause()
        dark = {s.color for s in colored_spans(panel.graph("disk").render())}
        assert len(dark) >= 3  # title, read, write
        app.theme = "textual-light"
        await pilot.pause()
        light = {s.color for s in colored_spans(panel.graph("disk").render())}
        assert light and light != dark


async def test_no_color_draws_without_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = PanelApp()
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.query_one(GraphPanel)
        panel.show("vm-1", "vm", ramp_history(), now=NOW)
        await pilot.pause()
        for graph_id in ("cpu", "disk"):
            text = panel.graph(graph_id).render()
            assert "┌" in text.plain
            assert colored_spans(text) == []


async def test_a_monochrome_theme_draws_without_colour(no_color_unset: None) -> None:
    app = PanelApp()
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.query_one(GraphPanel)
        panel.show("vm-1", "vm", ramp_history(), now=NOW)
        await pilot.pause()
        assert colored_spans(panel.graph("disk").render())  # the default theme has colours
        app.register_theme(
            Theme(
                name="mono",
                primary="#c0c0c0",
                secondary="#909090",
                accent="#a0a0a0",
                foreground="#e0e0e0",
                background="#101010",
            )
        )
        app.theme = "mono"
        await pilot.pause()
        text = panel.graph("disk").render()
        assert "┌" in text.plain
        assert colored_spans(text) == []


async def test_wide_is_two_columns_narrow_is_one(no_color_unset: None) -> None:
    app = PanelApp()
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.query_one(GraphPanel)
        panel.show("vm-1", "vm", ramp_history(), now=NOW)
        await pilot.pause()
        assert panel.shown == ("cpu", "mem", "disk", "net")
        cpu, mem = panel.graph("cpu").region, panel.graph("mem").region
        assert cpu.y == mem.y and cpu.x < mem.x

        await pilot.resize_terminal(60, 40)
        await pilot.pause()
        assert panel.has_class("-one-column")
        regions = [panel.graph(g).region for g in panel.shown]
        assert len(regions) >= 2
        assert len({r.x for r in regions}) == 1
        assert [r.y for r in regions] == sorted({r.y for r in regions})
        graph = panel.graph("cpu")
        lines = plain(graph).splitlines()
        assert len(lines) == graph.size.height
        assert max(len(line) for line in lines) == graph.size.width  # rebuilt at the new size


async def test_a_small_panel_keeps_the_cpu_chart(no_color_unset: None) -> None:
    app = PanelApp()
    async with app.run_test(size=(40, 10)) as pilot:
        panel = app.query_one(GraphPanel)
        panel.show("vm-1", "vm", ramp_history(), now=NOW)
        await pilot.pause()
        assert panel.shown == ("cpu",)
        assert not panel.graph("net").display
        text = plain(panel.graph("cpu"))
        assert text.startswith("CPU %") and "┌" in text and "100%" in text
        assert "CPU&#160;%" in app.export_screenshot()


async def test_metric_sets_cycle_and_enlarge(no_color_unset: None) -> None:
    app = PanelApp()
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.query_one(GraphPanel)
        panel.show("vm-1", "vm", ramp_history(), now=NOW)
        await pilot.pause()
        small = panel.graph("disk").region
        order = [panel.cycle_metrics() for _ in range(5)]
        assert order == ["cpu", "mem", "disk", "net", "all"]
        panel.metric_set = "disk"
        await pilot.pause()
        assert panel.shown == ("disk",)
        big = panel.graph("disk").region
        assert big.width > small.width and big.height > small.height
        assert "read 2.0M" in plain(panel.graph("disk"))


async def test_a_host_shows_cpu_and_memory(no_color_unset: None) -> None:
    history = History(metrics.history_names("host"))
    for s in range(0, 900, 2):
        history.record("host-a", NOW - s, {"cpu": 12.5, "mem": 60.0})
    app = PanelApp()
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.query_one(GraphPanel)
        panel.show("host-a", "host", history, now=NOW)
        await pilot.pause()
        assert panel.shown == ("cpu", "mem")
        assert not panel.graph("disk").display and not panel.graph("net").display
        assert plain(panel.graph("cpu")).startswith("CPU %  ━ 12.5%")
        assert plain(panel.graph("mem")).startswith("Memory %  ━ 60.0%")
        assert [panel.cycle_metrics() for _ in range(3)] == ["cpu", "mem", "all"]


async def test_no_target_shows_empty_charts(no_color_unset: None) -> None:
    app = PanelApp()
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.query_one(GraphPanel)
        panel.show("vm-1", "vm", ramp_history(), now=NOW)
        await pilot.pause()
        panel.show(None, "vm", ramp_history(), now=NOW + 1)
        await pilot.pause()
        graph = panel.graph("cpu")
        assert graph.series == ()
        rows = canvas_rows(plain(graph))
        assert rows and not any(row.strip() for row in rows)


async def test_draws_only_when_the_data_moved_and_on_screen(no_color_unset: None) -> None:
    history = ramp_history()
    app = PanelApp()
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.query_one(GraphPanel)
        panel.show("vm-1", "vm", history, now=NOW, version=1)
        await pilot.pause()
        assert panel.draw_count == 1
        panel.show("vm-1", "vm", history, now=NOW + 1, version=1)
        await pilot.pause()
        assert panel.draw_count == 1  # same version: nothing read, nothing redrawn

        history.record("vm-1", NOW + 1, {"cpu": 7.0})
        panel.show("vm-1", "vm", history, now=NOW + 1, version=2)
        await pilot.pause()
        assert panel.draw_count == 2
        assert panel.graph("cpu").series[0].values[-1] == 7.0

        panel.display = False
        await pilot.pause()
        history.record("vm-1", NOW + 2, {"cpu": 8.0})
        panel.show("vm-1", "vm", history, now=NOW + 2, version=3)
        await pilot.pause()
        assert panel.draw_count == 2  # hidden: skipped
        assert panel.graph("cpu").series[0].values[-1] == 7.0

        panel.display = True
        await pilot.pause()
        assert panel.draw_count == 3  # shown again: the pending draw happens
        assert panel.graph("cpu").series[0].values[-1] == 8.0

        panel.show("vm-1", "vm", history, now=NOW + 3)  # no version: `now` is the token
        panel.show("vm-1", "vm", history, now=NOW + 3)
        await pilot.pause()
        assert panel.draw_count == 4
