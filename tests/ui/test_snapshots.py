"""Snapshots of the screen on the test driver, at fixed sizes and with a fixed clock, after 15 minutes of
scripted polls (tests/ui/scripted.py: CPU %, uptime, sparklines and graphs have data).

Regenerate after an intended change with `.venv/bin/pytest tests/ui/test_snapshots.py --snapshot-update`
and look at the diffs (snapshot_report.html) before committing them.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, TabbedContent

from tests.ui.conftest import DATA, fleet_app, loaded, stable_data_dir, typed
from tests.ui.scripted import replay
from vimtui.core.config.settings import parse_config
from vimtui.core.fleet import activity
from vimtui.ui.app import VimApp
from vimtui.ui.screens.prompt import PromptScreen
from vimtui.ui.widgets.graphs import GraphPanel
from vimtui.ui.widgets.host_tree import HostTree, Scope
from vimtui.ui.widgets.metric_graph import MetricGraph

SnapCompare = Callable[..., bool]


Step = Callable[[Pilot[None]], Awaitable[None]]


@pytest.fixture(autouse=True)
def ids_from_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Task and event ids (shown as #N) count from 1 in each snapshot, whichever tests ran before."""
    monkeypatch.setattr(activity, "_ids", itertools.count(1))


def ready(*keys: str, before: Step | None = None, after: Step | None = None, workers: bool = True) -> Any:
    """Load the fleet, replay 15 minutes of polls, run `before`, type `keys`, let workers end (not
    while a form or confirmation is open: the action's worker waits on it), run `after`."""

    async def run_before(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await replay(pilot.app)  # type: ignore[arg-type]
        await pilot.pause()
        if before is not None:
            await before(pilot)
        # the cursor follows its VM while hosts connect one by one: start from the top, as a person would
        await typed(pilot, "g", *keys)
        await pilot.pause()
        if workers:
            await pilot.app.workers.wait_for_complete()  # detail screens load the XML, pools ... on the lane
        await pilot.pause()
        if after is not None:
            await after(pilot)
            await pilot.pause()

    return run_before


def test_main_screen(snap_compare: SnapCompare) -> None:
    # the cursor on db01 (running, busy for a while): the graphs are its
    assert snap_compare(fleet_app(), terminal_size=(120, 40), run_before=ready("j"))


def test_main_screen_80x24(snap_compare: SnapCompare) -> None:
    assert snap_compare(fleet_app(), terminal_size=(80, 24), run_before=ready())


def test_light_theme_with_filter_and_marks(snap_compare: SnapCompare) -> None:
    app = fleet_app(defaults='theme = "light"\n')
    assert snap_compare(
        app, terminal_size=(120, 40), run_before=ready("slash", *"tag:prod", "enter", "space")
    )


def test_vm_detail(snap_compare: SnapCompare) -> None:
    assert snap_compare(
        fleet_app(),
        terminal_size=(120, 40),
        run_before=ready("colon", *"sort name", "enter", "g", "j", "j", "enter"),
    )


async def _host_kvm_a(pilot: Pilot[None]) -> None:
    tree = pilot.app.screen.query_one(HostTree)
    tree.focus()
    tree.select_scope(Scope("host", "kvm-a"))
    await pilot.pause()


async def _storage_listed(pilot: Pilot[None]) -> None:
    """Wait (on a condition, with a deadline) until the storage lists are filled and the pool list has the
    focus (its keys in the key bar): they are asked of the host by workers that start after the screen
    mounts."""
    from vimtui.ui.widgets.host_networks import NetworkTable
    from vimtui.ui.widgets.storage_panel import PoolTable, VolumeTable

    for _ in range(600):
        screen = pilot.app.screen
        pools, volumes, nets = screen.query(PoolTable), screen.query(VolumeTable), screen.query(NetworkTable)
        tables = [t.first() for t in (pools, volumes, nets) if t]
        if len(tables) == 3 and all(t.row_count for t in tables) and screen.focused is tables[0]:
            break
        await pilot.pause(0.05)
    else:
        pytest.fail("the pools, volumes and networks of the host were not listed")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_host_detail(snap_compare: SnapCompare) -> None:
    run = ready("d", before=_host_kvm_a, after=_storage_listed)
    assert snap_compare(fleet_app(), terminal_size=(120, 40), run_before=run)


async def graphs_laid_out(pilot: Pilot[None]) -> None:
    """Wait (on a condition, with a deadline) until every graph panel's layout is on the screen: the
    graphs it picked for its size are the ones drawn, each as wide as its column. Fails on a panel still
    painting its default layout (two columns, four empty graphs)."""

    def settled(panel: GraphPanel) -> bool:
        width = panel.size.width
        column = width if panel.has_class("-one-column") else (width - 1) // 2
        drawn = [g for g in panel.query(MetricGraph) if g.display and g.region.width]
        return (
            bool(panel.shown)
            and width > 0
            and [g.id for g in drawn] == [f"graph-{i}" for i in panel.shown]
            and all(g.region.width in (column, column + 1) for g in drawn)
        )

    for _ in range(500):
        if all(settled(p) for p in pilot.app.screen.query(GraphPanel)):
            return
        await pilot.pause(0.02)
    pytest.fail("the graph panels did not lay out")


def test_wall_mode(snap_compare: SnapCompare) -> None:
    """The host panel (about 57 columns at 120x40) shows its two graphs one above the other."""
    app = fleet_app(wall=True, defaults="wall_cycle = 3600.0\n")  # a slow run does not turn the page
    assert snap_compare(app, terminal_size=(120, 40), run_before=ready(after=graphs_laid_out))


@pytest.mark.parametrize("tab", ["devices", "snapshots", "graphs-tab", "xml"])
def test_vm_detail_tab(snap_compare: SnapCompare, tab: str) -> None:
    """The VM detail's other tabs."""

    async def show(pilot: Pilot[None]) -> None:
        pilot.app.screen.query_one(TabbedContent).active = tab
        await pilot.pause()

    keys = ("colon", *"sort name", "enter", "g", "j", "j", "enter")
    assert snap_compare(fleet_app(), terminal_size=(120, 40), run_before=ready(*keys, after=show))


BUSY_RULE = """
[[alerts.rules]]
name = "busy"
metric = "vm.cpu_pct"
threshold = 40
for = "30s"
severity = "warning"
"""


def test_alert_banner(snap_compare: SnapCompare) -> None:
    assert snap_compare(fleet_app(extra=BUSY_RULE), terminal_size=(120, 40), run_before=ready("j"))


def test_alerts_view(snap_compare: SnapCompare) -> None:
    app = fleet_app(extra=BUSY_RULE)
    assert snap_compare(app, terminal_size=(120, 40), run_before=ready("colon", *"alerts", "enter"))


def test_tasks_view_with_a_failed_task(snap_compare: SnapCompare) -> None:
    async def fail(pilot: Pilot[None]) -> None:
        # resume a shut-off VM, bypassing the screen's check: libvirt refuses, the task fails saying why
        app: VimApp = pilot.app  # type: ignore[assignment]
        task = app.fleet.tasks.submit(
            "kvm-a", "resume", lambda ctx: ctx.conn.lookupByName("old-app").resume(), vm="old-app"
        )
        assert await app.fleet.tasks.wait([task], within=60) and task.state == "failed", task
        await pilot.pause()

    keys = ("colon", *"tasks", "enter")
    assert snap_compare(fleet_app(), terminal_size=(120, 40), run_before=ready(*keys, before=fail))


def test_help(snap_compare: SnapCompare) -> None:
    assert snap_compare(fleet_app(), terminal_size=(120, 40), run_before=ready("question_mark"))


def test_command_line_error(snap_compare: SnapCompare) -> None:
    async def steady_cursor(pilot: Pilot[None]) -> None:
        for bar in pilot.app.screen.query(Input):
            bar.cursor_blink = False  # a blinking cursor is drawn or not by the time of the picture
        await pilot.pause()

    keys = ("colon", *"nosuch", "enter")
    assert snap_compare(fleet_app(), terminal_size=(120, 40), run_before=ready(*keys, after=steady_cursor))


async def _form(pilot: Pilot[None]) -> None:
    """Until the delete form shows old-app's disks (its preview is asked of the host first)."""
    for _ in range(500):
        if isinstance(pilot.app.screen, PromptScreen) and pilot.app.screen.query("#f-remove_storage-vdb"):
            await pilot.pause()
            return
        await pilot.pause(0.02)
    raise AssertionError("the delete form did not open")


OLD_APP = ("colon", *"sort name", "enter", "g", "j", "j", "j", "j", "ctrl+d")  # old-app, shut off


def test_delete_form(snap_compare: SnapCompare) -> None:
    assert snap_compare(
        fleet_app(), terminal_size=(120, 40), run_before=ready(*OLD_APP, after=_form, workers=False)
    )


def test_delete_confirmation(snap_compare: SnapCompare) -> None:
    async def confirm(pilot: Pilot[None]) -> None:
        await _form(pilot)
        await pilot.click("#f-remove_storage-vdb")
        await pilot.click("#ok")
        for _ in range(500):
            if pilot.app.screen.query("#detail"):
                break
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(
        fleet_app(), terminal_size=(120, 40), run_before=ready(*OLD_APP, after=confirm, workers=False)
    )


def test_quit_with_a_task_running(snap_compare: SnapCompare) -> None:
    async def task_then_quit(pilot: Pilot[None]) -> None:
        app: VimApp = pilot.app  # type: ignore[assignment]
        # a task that runs until the app closes (closing cancels it): a lane call the test holds
        app.fleet.tasks.submit("kvm-a", "hold", lambda ctx: str(ctx.wait(lambda: False, timeout=120)))
        for _ in range(500):
            if any(e.state == "running" for e in app.fleet.activity.entries()):
                break
            await pilot.pause(0.02)
        await typed(pilot, "q")

    assert snap_compare(fleet_app(), terminal_size=(120, 40), run_before=ready(before=task_then_quit))


GONE = Path("/tmp/vimtui-test-gone")
"""kvm-b's file for the unreachable-host snapshot: a fixed path (the message names it)."""


def test_an_unreachable_host_keeps_its_stale_rows(snap_compare: SnapCompare) -> None:
    GONE.mkdir(exist_ok=True)
    shutil.copyfile(stable_data_dir() / "fleet-b.xml", GONE / "fleet-b.xml")
    text = (DATA / "fleet.toml").read_text().replace("@DATA@/fleet-b.xml", str(GONE / "fleet-b.xml"))
    config = parse_config(text.replace("@DATA@", str(stable_data_dir())), file=str(DATA / "fleet.toml"))

    async def cut(pilot: Pilot[None]) -> None:
        app: VimApp = pilot.app  # type: ignore[assignment]
        (GONE / "fleet-b.xml").unlink()  # it cannot be opened again
        app.fleet.sessions["kvm-b"]._drop("connection closed")  # as libvirt's close callback does
        for _ in range(1000):
            host = app.fleet.state.host("kvm-b")
            if host is not None and "failed to parse" in host.message and app.screen.state is app.fleet.state:
                break
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(fleet_app(config=config), terminal_size=(120, 40), run_before=ready(before=cut))
