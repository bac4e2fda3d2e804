"""The hostile fleet (tests/hostile.py) through every screen, dialog and notification: nothing crashes,
every name, path and message appears as written (its control characters made visible by
vimtui.core.text.shown), and no markup in them takes effect (no link, no click action, no colour that
leaks into the text after it).

What breaks each: a host's text reaching markup (MarkupError, or a style or link that is obeyed), a
control character reaching the terminal, a screen that drops or mangles the text."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console
from textual.content import Content
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Checkbox, Static

from tests import hostile
from tests.ui.conftest import CLOCK, plain, typed
from vimtui.core.config.settings import load_config
from vimtui.core.fleet.inventory import build_inventory
from vimtui.core.text import shown
from vimtui.ui.app import VimApp, make_app
from vimtui.ui.screens.alerts import AlertsScreen
from vimtui.ui.screens.help import HelpScreen
from vimtui.ui.screens.host_detail import HostDetailScreen
from vimtui.ui.screens.prompt import PromptScreen
from vimtui.ui.screens.task_detail import TaskDetailScreen
from vimtui.ui.screens.tasks import TasksScreen
from vimtui.ui.screens.vm_detail import VmDetailScreen
from vimtui.ui.screens.wall import WallScreen
from vimtui.ui.widgets.host_networks import NetworkTable
from vimtui.ui.widgets.storage_panel import PoolTable
from vimtui.ui.widgets.task_log import TaskLog
from vimtui.ui.widgets.vm_table import VmTable

SIZE = (160, 48)
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""What must never reach the terminal from a host's text."""


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


def hostile_app(tmp_path: Path, *, wall: bool = False, extra: str = "") -> VimApp:
    path = hostile.write_fleet(tmp_path)
    if extra:
        path.write_text(path.read_text() + extra)
    config = load_config(path)
    return make_app(config, build_inventory(config), wall=wall, clock=lambda: CLOCK)


async def until(pilot: Pilot[None], what: str, pred: Callable[[], object], within: float = 20) -> None:
    for _ in range(int(within / 0.02)):
        if pred():
            await pilot.pause()
            return
        await pilot.pause(0.02)
    pytest.fail(f"timed out waiting for {what}")


async def hostile_loaded(pilot: Pilot[None]) -> None:
    app: VimApp = pilot.app  # type: ignore[assignment]

    def ready() -> bool:
        state = app.fleet.state
        down = state.host(hostile.DOWN_HOST)
        return (
            len(state.vms) == len(hostile.VM_NAMES)
            and all(v.details is not None for v in state.vms.values())
            and down is not None
            and bool(down.message)
            and getattr(app.screen, "state", state) is state
        )

    await until(pilot, "the hostile fleet", ready)
    await pilot.pause()


def screen_lines(app: VimApp) -> list[str]:
    """What the terminal shows, line by line (from Textual's own screenshot of the screen)."""
    svg = app.export_screenshot()
    lines: dict[int, list[str]] = {}
    for line, body in re.findall(r'<text [^>]*clip-path="url\(#[\w-]*-line-(\d+)\)"[^>]*>(.*?)</text>', svg):
        lines.setdefault(int(line), []).append(html.unescape(body).replace("\xa0", " "))
    return ["".join(parts) for _, parts in sorted(lines.items())]


def visible(app: VimApp) -> str:
    lines = screen_lines(app)
    for line in lines:
        assert not UNSAFE.search(line), f"a control character reached the screen: {line!r}"
    return "\n".join(lines)


def styles(w: Static) -> list[str]:
    """The styles a Static draws its text with: Content spans, or a Rich renderable's segments."""
    visual = w.visual
    if isinstance(visual, Content):
        return [str(span.style) for span in visual.spans]
    console = Console(width=400, file=StringIO(), color_system="truecolor")
    return [str(seg.style) for seg in console.render(w.content) if seg.style]  # type: ignore[arg-type]


def assert_no_markup_obeyed(root: Widget) -> None:
    """No style, link or action from a host's text: every style of every Static is one of ours."""
    for w in root.query(Static):
        for style in styles(w):
            assert not re.search(r"\bblack\b", style), (w, style)  # (bright_black: the XML's line numbers)
            assert "link" not in style and "@click" not in style, (w, style)
            assert "reverse" not in style and "red" not in style, (w, style)


def shows(w: Widget) -> str:
    """The text a Static shows, unwrapped."""
    return plain(w, width=1000)


def neutral(text: str) -> str:
    return shown(text)


async def test_main_screen_tree_table_title_and_task_log(tmp_path: Path) -> None:
    app = hostile_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await hostile_loaded(pilot)
        text = visible(app)
        for name in (hostile.BLACK, hostile.LINK, hostile.CLICK, hostile.C1, hostile.BIDI):
            assert neutral(name)[:12] in text, name  # the NAME column is narrow: its start at least
        assert hostile.WIDE in text
        assert hostile.HOSTILE_HOST in text and hostile.DOWN_HOST in text
        assert "dc[" in text and "x]" in text  # the two groups in the tree
        assert "host unreachable" in text and "Unable to parse URI test:///" in text  # the task log
        assert_no_markup_obeyed(app.screen)
        table = app.screen.query_one(VmTable)
        rows = [table.render_line(y).text for y in range(1, len(hostile.VM_NAMES) + 1)]
        assert all(not UNSAFE.search(r) for r in rows)
        assert any(r.lstrip().startswith("c1��31mred") for r in rows)
        assert any(r.lstrip().startswith("evil�gpj.exe") for r in rows)


async def test_vm_detail_every_tab(tmp_path: Path) -> None:
    app = hostile_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await hostile_loaded(pilot)
        (vm,) = app.fleet.state.find_vm(hostile.BLACK)
        app.push_screen(VmDetailScreen(vm.key))
        await until(pilot, "the detail screen", lambda: isinstance(app.screen, VmDetailScreen))
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        overview = shows(screen.query_one("#overview-body"))
        for text in (hostile.BLACK, hostile.DESCRIPTION, hostile.TITLE):
            assert neutral(text) in overview, text
        assert hostile.BLACK + " on " + hostile.HOSTILE_HOST in shows(screen.query_one("#head"))
        devices = shows(screen.query_one("#devices-body"))
        assert hostile.DISK.replace("\x85", "�") in devices and hostile.NETWORK in devices
        snapshots = shows(screen.query_one("#snapshots-body"))
        assert neutral(hostile.SNAPSHOT) in snapshots and neutral(hostile.SNAPSHOT_DESCRIPTION) in snapshots
        xml = shows(screen.query_one("#xml-body"))
        assert "[link=https://evil.example]here[/link]" in xml and "\x9b" not in xml
        assert_no_markup_obeyed(screen)
        assert visible(app).startswith(f"{hostile.BLACK} on {hostile.HOSTILE_HOST}")  # the head, on screen
        for tab in ("overview", "devices", "snapshots", "graphs-tab", "xml"):
            screen.query_one("#tabs").active = tab  # type: ignore[attr-defined]
            await pilot.pause()
            visible(app)


async def test_host_detail_pools_networks_and_a_host_down(tmp_path: Path) -> None:
    app = hostile_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await hostile_loaded(pilot)
        app.push_screen(HostDetailScreen(hostile.HOSTILE_HOST))
        await until(pilot, "the host screen", lambda: isinstance(app.screen, HostDetailScreen))
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(PoolTable)
        await until(pilot, "the pools", lambda: table.row_count > 0)
        pools = " ".join(str(c) for key in table.rows for c in table.get_row(key))
        assert neutral(hostile.POOL) in pools and neutral(hostile.POOL_PATH) in pools
        nets = app.screen.query_one(NetworkTable)
        await until(pilot, "the networks", lambda: bool(nets.views))
        await pilot.pause()
        assert nets.get_row_at(0)[0].plain == hostile.NETWORK  # a Text cell: its brackets not markup
        assert shows(app.screen.query_one("#net-leases")).startswith(hostile.NETWORK)
        assert neutral(hostile.LONG)[:40] in shows(app.screen.query_one("#vms"))
        assert_no_markup_obeyed(app.screen)
        visible(app)
        app.pop_screen()
        app.push_screen(HostDetailScreen(hostile.DOWN_HOST))
        await until(pilot, "the down host's screen", lambda: isinstance(app.screen, HostDetailScreen))
        await app.workers.wait_for_complete()
        await pilot.pause()
        capacity = shows(app.screen.query_one("#capacity"))
        assert "␛]0;owned␇␛[2J[/x][reverse]" in capacity
        assert_no_markup_obeyed(app.screen)
        visible(app)


async def test_delete_dialog_lists_hostile_disks_without_obeying_them(tmp_path: Path) -> None:
    app = hostile_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await hostile_loaded(pilot)
        table = app.screen.query_one(VmTable)
        await typed(pilot, "g")
        for _ in range(len(table.rows)):
            if table.current_vm is not None and table.current_vm.name == hostile.BLACK:
                break
            await typed(pilot, "j")
        await typed(pilot, "ctrl+d")
        await until(pilot, "the delete form", lambda: isinstance(app.screen, PromptScreen))
        form = app.screen
        assert str(form.query_one("#title").visual) == f"Delete: {hostile.BLACK}"
        boxes = [str(box.label) for box in form.query(Checkbox)]
        assert any(neutral(hostile.DISK) in label for label in boxes), boxes
        visible(app)
        await typed(pilot, "space", "tab", "space")  # force off first (it runs), and remove the disk too
        await pilot.click("#ok")
        await until(
            pilot,
            "the confirmation",
            lambda: isinstance(app.screen, PromptScreen) and app.screen.query("#detail"),
        )
        detail = app.screen.query_one("#detail").visual
        assert isinstance(detail, Content)
        assert hostile.BLACK in str(detail) and neutral(hostile.DISK) in str(detail)
        # the lines after the name (what goes) are styled as the rest of the dialog: no span from the name
        assert not detail.spans
        assert_no_markup_obeyed(app.screen)
        text = visible(app)
        assert "disk" in text
        await typed(pilot, "escape")


async def test_notifications_and_the_palette_show_names_as_text(tmp_path: Path) -> None:
    app = hostile_app(tmp_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await hostile_loaded(pilot)
        app.notify(f"{hostile.BLACK} {hostile.ESCAPES} [/x]", title=hostile.LINK)
        await until(pilot, "the notification", lambda: app.screen.query("Toast"))
        text = visible(app)
        assert "aaa[on black][black] ␛]0;owned␇␛[2J[/x][reverse] [/x]" in text
        app.clear_notifications()
        await typed(pilot, "colon", *"host nosuch[/x]", "enter")  # the error echoes what was typed
        await until(pilot, "the notification", lambda: app.screen.query("Toast"))
        assert "no such host: nosuch[/x]" in visible(app)
        await typed(pilot, "escape", "slash", *"cpu>>[/x]", "enter")  # a bad filter: its error quotes it
        await until(pilot, "the filter's error", lambda: "cpu>>[/x]" in visible(app))
        await typed(pilot, "escape", "ctrl+p", *"Host")
        await pilot.pause(0.3)
        assert hostile.HOSTILE_HOST in visible(app)


async def test_tasks_alerts_help_and_a_failed_task_opened_whole(tmp_path: Path) -> None:
    app = hostile_app(tmp_path)
    message = f"libvirt refuses: {hostile.ESCAPES} " + "x" * 200 + " THE END"
    async with app.run_test(size=(120, 40)) as pilot:
        await hostile_loaded(pilot)
        app.fleet.activity.add(
            hostile.HOSTILE_HOST, hostile.BLACK, "start", "failed", error=message, time=CLOCK + 60
        )
        await typed(pilot, "colon", *"tasks", "enter")
        await until(pilot, "the task screen", lambda: isinstance(app.screen, TasksScreen))
        await until(pilot, "the failed task", lambda: "libvirt refuse" in "".join(screen_lines(app)))
        assert app.screen.query_one(TaskLog).current.error == message  # type: ignore[union-attr]
        line = visible(app)
        assert "libvirt refuse" in line and "THE END" not in line  # cut at 120 columns
        await typed(pilot, "enter")
        await until(pilot, "the task, whole", lambda: isinstance(app.screen, TaskDetailScreen))
        whole = " ".join(visible(app).split())
        assert "THE END" in whole and hostile.BLACK in whole
        assert_no_markup_obeyed(app.screen)
        await typed(pilot, "escape", "escape")
        await typed(pilot, "colon", *"alerts", "enter")
        await until(pilot, "the alerts screen", lambda: isinstance(app.screen, AlertsScreen))
        visible(app)
        await typed(pilot, "escape", "question_mark")
        await until(pilot, "help", lambda: isinstance(app.screen, HelpScreen))
        visible(app)


async def test_wall_shows_a_hostile_host_message_and_the_alert_rules(tmp_path: Path) -> None:
    rule = (
        '\n[[alerts.rules]]\nname = "gone[/x]"\nmetric = "host.unreachable"\nfor = 0\nseverity = "critical"\n'
    )
    app = hostile_app(tmp_path, wall=True, extra=rule)
    async with app.run_test(size=(120, 40)) as pilot:
        await hostile_loaded(pilot)
        await until(pilot, "the wall", lambda: isinstance(app.screen, WallScreen))
        await until(pilot, "the rule to fire", lambda: app.fleet.state.alerts)
        await pilot.pause()
        (alert,) = [a for a in app.fleet.state.alerts if a.rule == "gone[/x]"]
        banner = str(app.screen.query_one("#banner").visual)
        assert "␛]0;owned␇␛[2J[/x][reverse]" in banner  # the host's message, in the rule's alert
        assert f"critical: {shown(alert.message)}" in banner  # and the rule's alert
        assert_no_markup_obeyed(app.screen)
        text = visible(app)
        assert hostile.DOWN_HOST in text


async def test_a_real_failed_task_opens_with_its_arguments_times_and_whole_error(tmp_path: Path) -> None:
    """A snapshot libvirt refuses (a "/" in its name): the task's record, whole, from enter in the task
    log of the main screen."""
    from vimtui.core.actions import operations

    app = hostile_app(tmp_path)
    name = "s/" + hostile.ESCAPES
    async with app.run_test(size=(120, 40)) as pilot:
        await hostile_loaded(pilot)
        (vm,) = app.fleet.state.find_vm(hostile.C1)
        steps = operations.plan(
            app.fleet.state, "snapshot", [vm], {"name": name, "description": hostile.LINK}
        )
        (task,) = operations.submit(app.fleet, steps)
        await until(pilot, "the snapshot task to fail", lambda: task.done.is_set())
        assert task.state == "failed" and "/" in task.error  # libvirt's own refusal
        log = app.screen.query_one(TaskLog)
        await until(pilot, "the task in the log", lambda: any(e.id == task.id for e in log.entries))
        log.focus()
        await typed(pilot, "g")
        for _ in range(len(log.entries)):
            if log.current is not None and log.current.id == task.id:
                break
            await typed(pilot, "j")
        await typed(pilot, "enter")
        await until(pilot, "the task, whole", lambda: isinstance(app.screen, TaskDetailScreen))
        body = shows(app.screen.query_one("#task"))
        for label in ("Arguments", "Queued", "Started", "Ended", "Took", "Error", "State"):
            assert label in body, label
        assert f"#{task.id}  snapshot" in body and "failed" in body
        assert shown(task.error)[:40] in body
        assert "name='s/\\x1b]0;owned\\x07" in body  # the argument as typed, its escapes spelled out
        assert f"description='{hostile.LINK}'" in body
        assert_no_markup_obeyed(app.screen)
        visible(app)
