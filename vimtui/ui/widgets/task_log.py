"""TaskLog: every task and event, newest first (time, host, VM, action, state, progress, duration, error).

A Line-API view over a snapshot of the activity log: only the visible lines are drawn.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from vimtui.core.activity import Entry

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
    seconds = (entry.ended if entry.ended is not None else now) - entry.time
    if entry.state == "event":
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


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
        Binding("j,down", "scroll_down", "Down", show=False, id="task_log.down"),
        Binding("k,up", "scroll_up", "Up", show=False, id="task_log.up"),
        Binding("g,home", "scroll_home", "Top", show=False, id="task_log.top"),
        Binding("G,end", "scroll_end", "Bottom", show=False, id="task_log.bottom"),
    ]

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._entries: Sequence[Entry] = ()
        self.now = time.time

    def update(self, entries: Sequence[Entry]) -> None:
        self._entries = entries
        self.virtual_size = Size(self.size.width, len(entries) + 1)
        self.refresh()

    @property
    def entries(self) -> Sequence[Entry]:
        return self._entries

    def _line_text(self, e: Entry, now: float) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(e.time))
        text = e.error or e.message
        return (
            f"{stamp}  {e.host[:12]:12}  {e.vm[:16]:16}  {e.action[:20]:20}  {e.state:9}  "
            f"{progress_bar(e.progress)}  {duration(e, now):>7}  {text}"
        )

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            header = (
                f"{'TIME':8}  {'HOST':12}  {'VM':16}  {'ACTION':20}  {'STATE':9}  {'PROGRESS':15}  "
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
        text = self._line_text(entry, self.now())
        return Strip([Segment(text[:width].ljust(width), style)], width)
