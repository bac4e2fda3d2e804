"""What a screen with a task log does when its operator opens or cancels the task under the cursor (`enter`,
`x`): the main screen's and `:tasks`' logs of every task, and the host detail's log of that host's tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vimtui.ui.widgets.task_log import TaskLog

if TYPE_CHECKING:
    from textual.screen import Screen

    from vimtui.ui.app import VimApp

    _Base = Screen[None]
else:
    _Base = object


class TaskLogActions(_Base):
    """Mixed into a screen that shows a TaskLog."""

    def on_task_log_open_requested(self, message: TaskLog.OpenRequested) -> None:
        from vimtui.ui.screens.task_detail import TaskDetailScreen

        self.app.push_screen(TaskDetailScreen(message.entry_id))

    def on_task_log_cancel_requested(self, message: TaskLog.CancelRequested) -> None:
        app: VimApp = self.app  # type: ignore[assignment]
        why = app.fleet.tasks.cancel(message.task_id)
        self.notify(
            why or f"task #{message.task_id}: cancelling", severity="warning" if why else "information"
        )
