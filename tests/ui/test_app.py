"""The screen with Pilot: keys, filter, commands, marks, sorting, panes, detail screens, keymap, wall mode."""

from __future__ import annotations

import time
from collections.abc import Iterator

import libvirt
import pytest
from textual.widgets import Static

from tests.ui.conftest import CLOCK, fleet_app, fleet_config, loaded, plain, typed
from vimtui.core.config.settings import ConfigError
from vimtui.core.fleet.inventory import build_inventory
from vimtui.ui.app import make_app
from vimtui.ui.format import size
from vimtui.ui.screens.help import HelpScreen
from vimtui.ui.screens.host_detail import HostDetailScreen
from vimtui.ui.screens.main import MainScreen
from vimtui.ui.screens.tasks import TasksScreen
from vimtui.ui.screens.vm_detail import VmDetailScreen
from vimtui.ui.screens.wall import WallScreen
from vimtui.ui.widgets.graphs import GraphPanel
from vimtui.ui.widgets.host_networks import NetworkTable
from vimtui.ui.widgets.host_tree import HostTree, Scope
from vimtui.ui.widgets.storage_panel import PoolTable
from vimtui.ui.widgets.task_log import TaskLog
from vimtui.ui.widgets.vm_table import VmTable

SIZE = (120, 40)


def names(table: VmTable) -> list[str]:
    vms = table.app.fleet.state.vms  # type: ignore[attr-defined]
    return [vms[k].name for k in table.rows]


async def test_the_main_screen_shows_every_host_and_vm() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(VmTable)
        assert sorted(names(table)) == sorted(
            ["web01", "web02", "db01", "batch01", "old-app", "ci-runner1", "ci-runner2", "win10"]
        )
        text = "\n".join(table.render_line(y).text for y in range(table.size.height))
        assert "paused" in text and "shutoff" in text and "running" in text
        tree = app.screen.query_one(HostTree)
        labels = [str(n.label) for n in tree.root.children[0].children]  # dc1 -> rack1
        assert any("rack1" in label for label in labels)
        assert "hosts 2/2 up" in str(app.screen.query_one("#title").render())


async def test_filter_narrows_the_table_and_escape_clears_it() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(VmTable)
        await typed(pilot, "slash", *"tag:web", "enter")
        assert sorted(names(table)) == ["web01", "web02"]
        await typed(pilot, "slash", *" !state:running")  # live while typing
        await pilot.pause()
        assert names(table) == []
        await typed(pilot, "escape")  # closes the bar and clears the filter
        assert len(table.rows) == 8


async def test_a_bad_filter_is_refused_and_the_last_good_one_stays() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(VmTable)
        await typed(pilot, "slash", *"state:paused", "enter")
        assert names(table) == ["batch01"]
        await typed(pilot, "slash", "ctrl+u", *"cpu>>x", "enter")
        bar = app.screen.query_one("#bar")
        assert bar.display and bar.has_class("-error")  # refused: the bar stays open, marked
        # while typing, each text that parsed was applied: the last good one is "cpu" (plain text)
        assert app.screen.filter_query.text == "cpu" and names(table) == []


async def test_commands_scope_sort_theme_and_errors() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(VmTable)
        await typed(pilot, "colon", *"host kvm-b", "enter")
        await pilot.pause()
        assert sorted(names(table)) == ["ci-runner1", "ci-runner2", "win10"]
        await typed(pilot, "colon", *"sort name", "enter")
        assert names(table) == ["ci-runner1", "ci-runner2", "win10"]
        await typed(pilot, "colon", *"sort name", "enter")  # again: reversed
        assert names(table) == ["win10", "ci-runner2", "ci-runner1"]
        await typed(pilot, "colon", *"theme light", "enter")
        assert app.theme == "light"
        await typed(pilot, "colon", *"nosuch", "enter")
        assert app.screen.query_one("#bar").has_class("-error")
        await typed(pilot, "escape", "colon", *"vms", "enter")
        await pilot.pause()
        assert len(table.rows) == 8


async def test_marks_survive_ticks_and_ctrl_a_marks_what_is_visible() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(VmTable)
        await typed(pilot, "g", "space", "space")
        assert len(table.marked) == 2 and table.cursor == 2
        marked = set(table.marked)
        await app.fleet.tick(deadline=5)  # a new snapshot: every VmState object is new
        await pilot.pause()
        assert set(table.marked) == marked and table.cursor == 2
        await typed(pilot, "slash", *"host:kvm-b", "enter", "ctrl+a")
        assert len(table.marked) == 2 + 3
        assert "marked 5" in str(app.screen.query_one("#title").render())


async def test_tab_moves_between_panes() -> None:
    """Tab walks the focusable panes in screen order (tree, table, task log; the graphs take no focus)
    and shift+tab walks them back."""
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert isinstance(app.focused, VmTable)
        forward = []
        for _ in range(3):
            await typed(pilot, "tab")
            forward.append(type(app.focused).__name__)
        assert forward == ["TaskLog", "HostTree", "VmTable"]
        backward = []
        for _ in range(3):
            await typed(pilot, "shift+tab")
            backward.append(type(app.focused).__name__)
        assert backward == ["HostTree", "TaskLog", "VmTable"]


async def test_choosing_a_host_in_the_tree_scopes_the_table() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        tree = app.screen.query_one(HostTree)
        tree.focus()
        assert tree.select_scope(Scope("host", "kvm-a"))
        await pilot.pause()
        assert sorted(names(app.screen.query_one(VmTable))) == [
            "batch01",
            "db01",
            "old-app",
            "web01",
            "web02",
        ]


async def test_vm_detail_shows_overview_devices_and_xml() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await typed(pilot, "colon", *"sort name", "enter", "g", "enter")  # first row: batch01
        await pilot.pause()
        assert isinstance(app.screen, VmDetailScreen)
        body = plain(app.screen.query_one("#overview-body"))
        assert "batch01" in body and "paused" in body and "batch" in body  # name, state, tag
        conn = libvirt.open(app.fleet.state.host("kvm-a").uri)  # type: ignore[union-attr]
        try:
            _state, _max_kib, mem_kib, vcpus, _cpu = conn.lookupByName("batch01").info()
        finally:
            conn.close()
        fields = dict(line.split(None, 1) for line in body.splitlines() if line.strip())
        assert fields["vCPUs"].split()[0] == str(vcpus)  # from the XML where the poll has none
        assert fields["Memory"].startswith(f"{size(mem_kib * 1024)} allocated")
        devices = plain(app.screen.query_one("#devices-body"))
        assert "vda" in devices and "/var/lib/libvirt/images/batch01.qcow2" in devices
        for _ in range(100):
            xml = plain(app.screen.query_one("#xml-body"))
            if "loading" not in xml:
                break
            await pilot.pause(0.02)
        assert "<name>batch01</name>" in xml
        await typed(pilot, "escape")
        assert isinstance(app.screen, MainScreen)


async def test_colon_in_a_detail_view_opens_the_command_line_and_the_command_runs() -> None:
    """`:` is the command line everywhere, as in k9s: from the VM detail and the host detail it leaves the
    view for the main screen's line, and what is typed there runs (before, it did nothing)."""
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(VmTable)
        await typed(pilot, "colon", *"sort name", "enter", "g", "enter")
        assert isinstance(app.screen, VmDetailScreen)
        await typed(pilot, "colon")
        assert isinstance(app.screen, MainScreen)
        bar = app.screen.query_one("#bar")
        assert bar.display and bar.has_focus
        await typed(pilot, *"host kvm-b", "enter")
        assert sorted(names(table)) == ["ci-runner1", "ci-runner2", "win10"]
        tree = app.screen.query_one(HostTree)
        tree.focus()
        tree.select_scope(Scope("host", "kvm-a"))
        await typed(pilot, "d")
        assert isinstance(app.screen, HostDetailScreen)
        await typed(pilot, "colon", *"theme light", "enter")
        assert isinstance(app.screen, MainScreen) and app.theme == "light"


async def test_host_detail_shows_capacity_pools_and_networks() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        tree = app.screen.query_one(HostTree)
        tree.focus()
        tree.select_scope(Scope("host", "kvm-a"))
        await typed(pilot, "d")
        assert isinstance(app.screen, HostDetailScreen)
        capacity = plain(app.screen.query_one("#capacity"))
        # the figures as libvirt gives them for the host's file (a connection of the test's own)
        conn = libvirt.open(app.fleet.state.host("kvm-a").uri)  # type: ignore[union-attr]
        try:
            cpus = conn.getInfo()[2]
            holding = (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_PAUSED)  # a paused VM keeps its share
            running = [d.info() for d in conn.listAllDomains() if d.state()[0] in holding]
        finally:
            conn.close()
        vcpus, mem_kib = sum(i[3] for i in running), sum(i[2] for i in running)
        assert len(running) == 4 and vcpus > 0 and mem_kib > 0
        assert f"{cpus} x " in capacity
        assert f"{vcpus} vCPUs on {cpus} CPUs: overcommit {vcpus / cpus:.2f}x" in capacity
        assert f"{size(mem_kib * 1024)} to running VMs" in capacity
        assert f"{len(running)} running or paused of 5" in capacity
        table = app.screen.query_one(PoolTable)
        for _ in range(100):
            if table.row_count:
                break
            await pilot.pause(0.02)
        pools = " ".join(str(c) for c in table.get_row_at(0))
        assert "default" in pools and "/var/lib/libvirt/images" in pools
        nets = app.screen.query_one(NetworkTable)
        for _ in range(100):
            if nets.views:
                break
            await pilot.pause(0.02)
        assert [(n.name, n.bridge, n.mode) for n in nets.views] == [("default", "virbr0", "nat")]
        assert "default" in plain(app.screen.query_one("#net-leases"))


async def test_help_lists_binding_ids_and_tasks_view_opens() -> None:
    from vimtui.core.actions import REGISTRY
    from vimtui.core.actions.targets import GROUP
    from vimtui.ui.command_line import COMMANDS
    from vimtui.ui.keys import known_bindings

    app = fleet_app('\n[keys]\n"vm_table.cursor_down" = "n"\n')
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await typed(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys, actions, commands, *_ = [plain(s, width=240) for s in app.screen.query(Static)]
        rows = {line.split()[-1]: line for line in keys.splitlines() if line.strip()}
        assert set(known_bindings(type(app))) <= set(rows)  # every binding id has its row
        assert rows["vm_table.cursor_down"].split()[0] == "n"  # the remapped key, not the default
        assert rows["main.filter"].split()[0] == "/"
        shown = {line.split()[0] for line in commands.splitlines()[2:] if line.strip()}
        assert {f":{c.name}" for c in COMMANDS} <= shown
        listed = {line.split()[0] for line in actions.splitlines()[2:] if line.strip().startswith(":")}
        assert {f":{GROUP.get(act.target, act.name)}" for act in REGISTRY.values()} <= listed
        assert any(line.strip().startswith(":net delete HOST/NET force=yes") for line in actions.splitlines())
        await typed(pilot, "escape", "colon", *"tasks", "enter")
        assert isinstance(app.screen, TasksScreen)
        log = app.screen.query_one(TaskLog)
        assert any(e.action == "host up" for e in log.entries)


async def test_keys_are_remapped_by_binding_id_from_the_config() -> None:
    app = fleet_app('\n[keys]\n"vm_table.cursor_down" = "n"\n')
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(VmTable)
        table.focus()
        start = table.current_key
        await typed(pilot, "n", "n")
        assert table.rows.index(table.current_key) == table.rows.index(start) + 2  # type: ignore[arg-type]


def test_an_unknown_binding_id_is_a_config_error_with_its_line() -> None:
    config = fleet_config('\n[keys]\n"vm_table.cursor_dwn" = "n"\n')
    with pytest.raises(ConfigError) as info:
        make_app(config, build_inventory(config))
    assert info.value.key == "keys.vm_table.cursor_dwn" and info.value.line is not None
    assert "did you mean 'vm_table.cursor_down'" in info.value.message


async def test_80x24_keeps_the_table_usable() -> None:
    app = fleet_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(VmTable)
        assert not app.screen.query_one(GraphPanel).display
        header = table.render_line(0).text
        assert "NAME" in header and "STATE" in header
        assert table.size.width >= 40 and table.size.height >= 8


async def test_wall_mode_shows_counters_and_takes_no_commands() -> None:
    app = fleet_app(defaults="wall_cycle = 3600.0\n", wall=True)  # no page turns by the clock
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert isinstance(app.screen, WallScreen)
        assert "all clear" in str(app.screen.query_one("#banner").render())
        group = str(app.screen.query_one("#group").render())
        await typed(pilot, "colon", "question_mark")
        assert isinstance(app.screen, WallScreen) and not app.screen.query("#bar")
        await typed(pilot, "right")
        assert str(app.screen.query_one("#group").render()) != group


async def test_q_quits() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await typed(pilot, "q")
        await pilot.pause()
        assert app.return_code == 0 or not app.is_running


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_the_task_log_shows_local_time(new_york: None) -> None:
    """The suite pins TZ to UTC (tests/conftest.py); the screen still shows the user's local time."""
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        log = app.screen.query_one(TaskLog)
        line = log.render_line(1).text
        local = time.strftime("%H:%M:%S", time.localtime(CLOCK))
        assert local != time.strftime("%H:%M:%S", time.gmtime(CLOCK))  # the zone makes a difference
        assert line.startswith(local) and "host up" in line
