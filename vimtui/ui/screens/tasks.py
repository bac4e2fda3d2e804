"""`:tasks`: the task and event log, full screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from vimtui.ui.messages import FleetUpdated
from vimtui.ui.task_log_actions import TaskLogActions
from vimtui.ui.widgets.key_bar import KeyBar
from vimtui.ui.widgets.task_log import TaskLog

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp


class TasksScreen(TaskLogActions, Screen[None]):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back", id="tasks.back")]
    DEFAULT_CSS = """
    TasksScreen #head { height: 1; padding: 0 1; background: $panel; }
    TasksScreen TaskLog { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static("[b]tasks and events[/b]  (newest first)", id="head")
        yield TaskLog()
        yield KeyBar()

    def on_mount(self) -> None:
        app: VimApp = self.app  # type: ignore[assignment]
        log = self.query_one(TaskLog)
        log.now = app.clock
        log.update(app.fleet.activity.entries())
        log.focus()

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        app: VimApp = self.app  # type: ignore[assignment]
        self.query_one(TaskLog).update(app.fleet.activity.entries())
