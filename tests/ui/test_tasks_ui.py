"""Tasks from the screen: quitting while one runs asks first, and the task log's cancel key (x) cancels a
queued task and says why a running one cannot be. The tasks are gated functions on the real task lane of a
test:/// host, held until the test releases them."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from tests.ui.conftest import fleet_app, loaded, plain, typed
from vimtui.core.fleet.tasks import Task, TaskContext, TaskState
from vimtui.ui.app import VimApp
from vimtui.ui.screens.confirm import ConfirmScreen
from vimtui.ui.widgets.task_log import TaskLog

SIZE = (120, 40)


def held(gate: threading.Event) -> Callable[[TaskContext], str]:
    """An action that runs until `gate` is set (or the app closes: closing cancels it)."""
    return lambda ctx: str(ctx.wait(gate.is_set, timeout=120))


async def until(pilot: Pilot[None], what: str, pred: Callable[[], object], within: float = 20) -> None:
    for _ in range(int(within / 0.02)):
        if pred():
            await pilot.pause()
            return
        await pilot.pause(0.02)
    pytest.fail(f"timed out waiting for {what}")


def notices(app: VimApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_quit_with_a_task_running_asks_first() -> None:
    app = fleet_app()
    gate = threading.Event()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        task = app.fleet.tasks.submit("kvm-a", "hold", held(gate), vm="web01")
        await until(pilot, "the task running", lambda: task.state == TaskState.RUNNING)
        await typed(pilot, "q")
        assert isinstance(app.screen, ConfirmScreen)
        assert "1 task(s) still running. Quit anyway?" in plain(app.screen.query_one("#question"))
        await typed(pilot, "escape")  # no: the app and the task go on
        assert not isinstance(app.screen, ConfirmScreen) and app.is_running
        assert task.state == TaskState.RUNNING
        gate.set()
        await until(pilot, "the task done", lambda: task.state == TaskState.DONE)
        await typed(pilot, "q")  # nothing running: quits at once
        await until(pilot, "the app closed", lambda: not app.is_running)


async def test_quit_anyway_cancels_the_running_task() -> None:
    app = fleet_app()
    gate = threading.Event()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        task = app.fleet.tasks.submit("kvm-a", "hold", held(gate), vm="web01")
        await until(pilot, "the task running", lambda: task.state == TaskState.RUNNING)
        await typed(pilot, "q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.click("#yes")
        await until(pilot, "the app closed", lambda: not app.is_running)
    assert task.cancel_event.is_set()  # closing the fleet cancelled what ran (its wait returned)


async def test_x_in_the_task_log_cancels_a_queued_task_and_refuses_a_running_one() -> None:
    app = fleet_app()
    gate = threading.Event()
    ran: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        running = app.fleet.tasks.submit("kvm-a", "hold", held(gate), vm="web01")
        queued: Task = app.fleet.tasks.submit(
            "kvm-a", "second", lambda ctx: ran.append("second") or "ran", vm="web02"
        )
        await until(pilot, "the first running", lambda: running.state == TaskState.RUNNING)
        log = app.screen.query_one(TaskLog)
        log.focus()
        await until(pilot, "both in the log", lambda: {e.id for e in log.entries} >= {running.id, queued.id})
        await typed(pilot, "g")
        assert log.current is not None and log.current.id == queued.id  # newest first
        await typed(pilot, "x")
        await until(pilot, "the notice", lambda: f"task #{queued.id}: cancelling" in notices(app))
        assert queued.cancel_event.is_set()  # it ends when its turn on the lane comes, without running
        while log.current is not None and log.current.id != running.id:
            await typed(pilot, "j")
        await typed(pilot, "x")
        await until(pilot, "the refusal", lambda: any("cannot be cancelled" in m for m in notices(app)))
        assert running.state == TaskState.RUNNING and not running.cancel_event.is_set()
        gate.set()
        await until(pilot, "the first done", lambda: running.state == TaskState.DONE)
        await until(pilot, "the second cancelled", lambda: queued.state == TaskState.CANCELLED)
    assert not ran
