"""One task or event whole (enter in the task log or `:tasks`): the line there is cut at the pane's edge, and
a failed task's message is often the one thing the operator needs to read.

A task shows what it was asked (action, target, arguments as the audit records them: a long text as its
size and digest), its times, progress and outcome, and its message or error in full; an event shows when,
where and what.
Everything is shown as text. It follows the task while it runs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from vimtui.core.fleet.activity import Entry
from vimtui.ui.format import duration, literal
from vimtui.ui.messages import FleetUpdated
from vimtui.ui.screens.vm_detail import kv_table
from vimtui.ui.widgets.task_log import progress_bar

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp


def when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def arguments(args: Any) -> str:
    """`name=value` per argument, one a line; "none" when the action takes none."""
    if not args:
        return "none"
    return "\n".join(f"{k}={v!r}" for k, v in dict(args).items())


def task_rows(task: dict[str, Any], now: float) -> list[tuple[str, str]]:
    """From a task's record (`Task.as_dict`, as the audit has it)."""
    state = task["state"]
    start, end = task["started"], task["ended"]
    took = duration((end if end is not None else now) - start) if start is not None else "-"
    rows = [
        ("Task", f"#{task['id']}  {task['action']}"),
        ("Host", task["host"] or "-"),
        ("VM", f"{task['vm']}  ({task['uuid']})" if task["uuid"] else task["vm"] or "-"),
        ("Arguments", arguments(task["args"])),
        ("State", state),
        ("Progress", progress_bar(task["progress"]).strip() or "-"),
        ("Queued", when(task["created"])),
        ("Started", when(start)),
        ("Returned", when(task["returned"])),
        ("Ended", when(end)),
        ("Took", took + ("" if end is not None or start is None else " so far")),
    ]
    if task["error"]:
        rows.append(("Error", task["error"]))
    if task["result"]:
        rows.append(("Result", task["result"]))
    if task["message"] and task["message"] not in (task["error"], task["result"]):
        rows.append(("Message", task["message"]))
    return rows


def entry_rows(e: Entry) -> list[tuple[str, str]]:
    """An event of the log (a host that went down, a VM that stopped, an alert)."""
    rows = [
        ("Event", f"#{e.id}  {e.action}"),
        ("Time", when(e.time)),
        ("Host", e.host or "-"),
        ("VM", e.vm or "-"),
        ("State", e.state),
    ]
    if e.error:
        rows.append(("Error", e.error))
    if e.message and e.message != e.error:
        rows.append(("Message", e.message))
    return rows


class TaskDetailScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close", id="task_detail.close")]
    DEFAULT_CSS = """
    TaskDetailScreen { align: center middle; }
    TaskDetailScreen > VerticalScroll { width: 100; max-width: 95%; height: auto; max-height: 90%;
        padding: 1 2; background: $panel; border: thick $primary; }
    TaskDetailScreen.-failed > VerticalScroll { border: thick $error; }
    """

    def __init__(self, entry_id: int) -> None:
        super().__init__()
        self.entry_id = entry_id

    @property
    def vimapp(self) -> VimApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="task")

    def on_mount(self) -> None:
        self._show()

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        self._show()

    def _show(self) -> None:
        fleet = self.vimapp.fleet
        task = fleet.tasks.tasks.get(self.entry_id)
        body = self.query_one("#task", Static)
        if task is not None:
            record = task.as_dict()
            self.set_class(record["state"] in ("failed", "cancelled"), "-failed")
            body.update(kv_table(task_rows(record, self.vimapp.clock())))
            return
        entry = next((e for e in fleet.activity.entries() if e.id == self.entry_id), None)
        if entry is None:
            body.update(literal(f"#{self.entry_id}: no longer in the log"))
            return
        self.set_class(entry.state == "failed", "-failed")
        body.update(kv_table(entry_rows(entry)))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
