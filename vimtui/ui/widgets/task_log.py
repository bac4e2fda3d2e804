"""TaskLog: every task and event, newest first (time, host, target, action, state, progress, duration, error).

A Line-API view over a snapshot of the activity log: only the visible lines are drawn. Hosts, VMs and
messages are a host's text: drawn as plain segments (never markup), their control characters made
visible, cut by terminal cells (a wide character takes two). A line is cut at the pane's edge: `enter`
asks for the entry whole (the screen opens it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from vimtui.core.fleet.activity import Entry
from vimtui.core.text import shown
from vimtui.core.units import format_duration
from vimtui.ui.format import fit

STATE_CLASS = {
    "failed": "task-log--failed",
    "cancelled": "task-log--failed",
    "running": "task-log--running",
    "queued": "task-log--running",
    "done": "task-log--done",
}


def progress_bar(progress: float | None, width: int = 10) -> str:
    if progress is None:
        return " " * (width + 5)
    filled = round(max(0.0, min(100.0, progress)) / 100 * width)
    return "█" * filled + "░" * (width - filled) + f" {progress:3.0f}%"


def duration(entry: Entry, now: float) -> str:
    if entry.state == "event":
        return ""
    return format_duration((entry.ended if entry.ended is not None else now) - entry.time, tenths=True)


class TaskLog(ScrollView, can_focus=True):
    """The bottom pane (and the `:tasks` view)."""

    COMPONENT_CLASSES = {
        "task-log--header",
        "task-log--failed",
        "task-log--running",
        "task-log--done",
        "task-log--cursor",
    }
    DEFAULT_CSS = """
    TaskLog { background: $surface; }
    TaskLog > .task-log--header { text-style: bold; color: $text-muted; background: $panel; }
    TaskLog > .task-log--failed { color: $error; }
    TaskLog > .task-log--running { color: $primary; }
    TaskLog > .task-log--done { color: $success; }
    TaskLog > .task-log--cursor { background: $boost; }
    """
    BINDINGS = [
        Binding("j,down", "cursor(1)", "Down", show=False, id="task_log.down"),
        Binding("k,up", "cursor(-1)", "Up", show=False, id="task_log.up"),
        Binding("g,home", "cursor_to(0)", "Top", show=False, id="task_log.top"),
        Binding("G,end", "cursor_to(-1)", "Bottom", show=False, id="task_log.bottom"),
        Binding("enter", "open", "Details", id="task_log.open"),
        Binding("x", "cancel_task", "Cancel task", id="task_log.cancel"),
    ]

    class OpenRequested(Message):
        """The operator asked to see the entry under the cursor whole."""

        def __init__(self, entry_id: int) -> None:
            super().__init__()
            self.entry_id = entry_id

    class CancelRequested(Message):
        """The operator asked to cancel the task under the cursor."""

        def __init__(self, task_id: int) -> None:
            super().__init__()
            self.task_id = task_id

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._entries: Sequence[Entry] = ()
        self.now = time.time
        self.cursor = 0
        self._cursor_id: int | None = None
        """The entry under the cursor, followed as newer entries push it down."""

    def update(self, entries: Sequence[Entry]) -> None:
        self._entries = entries
        if self._cursor_id is not None:
            index = next((i for i, e in enumerate(entries) if e.id == self._cursor_id), None)
            if index is not None:
                self.cursor = index
        self.cursor = max(0, min(self.cursor, len(entries) - 1))
        self.virtual_size = Size(self.size.width, len(entries) + 1)
        self.refresh()

    @property
    def current(self) -> Entry | None:
        return self._entries[self.cursor] if 0 <= self.cursor < len(self._entries) else None

    def action_cursor(self, step: int) -> None:
        self.action_cursor_to(self.cursor + step)

    def action_cursor_to(self, index: int) -> None:
        if not self._entries:
            return
        self.cursor = index % len(self._entries) if index < 0 else min(index, len(self._entries) - 1)
        entry = self.current
        self._cursor_id = entry.id if entry is not None and self.cursor else None  # row 0 follows the newest
        top, height = self.scroll_offset.y, max(1, self.size.height - 1)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False)
        self.refresh()

    def action_open(self) -> None:
        entry = self.current
        if entry is not None:
            self.post_message(self.OpenRequested(entry.id))

    def action_cancel_task(self) -> None:
        entry = self.current
        if entry is not None:
            self.post_message(self.CancelRequested(entry.id))

    @property
    def entries(self) -> Sequence[Entry]:
        return self._entries

    def _line_text(self, e: Entry, now: float) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(e.time))
        text = shown(e.error or e.message)
        if e.state != "event":
            text = f"#{e.id} {text}"
        return (
            f"{stamp}  {fit(shown(e.host), 12)}  {fit(shown(e.vm), 16)}  {fit(shown(e.action), 20)}  "
            f"{e.state:9}  {progress_bar(e.progress)}  {duration(e, now):>7}  {text}"
        )

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            header = (
                f"{'TIME':8}  {'HOST':12}  {'TARGET':16}  {'ACTION':20}  {'STATE':9}  {'PROGRESS':15}  "
                f"{'TOOK':>7}  MESSAGE"
            )
            style = self.get_component_rich_style("task-log--header")
            return Strip([Segment(header[:width].ljust(width), style)], width)
        index = self.scroll_offset.y + y - 1
        if index >= len(self._entries):
            return Strip.blank(width, self.rich_style)
        entry = self._entries[index]
        component = STATE_CLASS.get(entry.state)
        style = self.rich_style + (self.get_component_rich_style(component) if component else Style())
        if index == self.cursor and self.has_focus:
            style += self.get_component_rich_style("task-log--cursor")
        text = self._line_text(entry, self.now())
        return Strip([Segment(fit(text, width), style)], width)
