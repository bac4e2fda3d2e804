"""Waiting for tasks in the CLI as an operator expects of a long one (a volume transfer, a clone): its
progress on one line of the terminal (stderr, only when it is a terminal; the text neutralised here, the
line's own escapes written past the CLI's neutralised stderr), and ctrl+c cancelling the tasks
that can be and waiting for them to end, so that they clean up what they made (a half-uploaded volume)
before the command exits. A second ctrl+c quits at once."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Sequence
from typing import TextIO

from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import Task
from vimtui.core.text import shown

INTERRUPTED = 130
"""The exit status of a command stopped by ctrl+c (as main's for one stopped before its tasks)."""


async def wait_showing(fleet: Fleet, tasks: Sequence[Task], out: TextIO | None = None) -> bool:
    """Until every task has ended; True when ctrl+c cancelled them on the way."""
    raw = out if out is not None else (sys.__stderr__ or sys.stderr)  # the line's escapes are ours
    line = _Line(raw) if raw.isatty() else None
    ours = {t.id for t in tasks}

    def changed(task: Task) -> None:
        if line is not None and task.id in ours and not task.state.finished and task.message:
            line.show(f"{task.action} {task.host}/{task.vm}: {task.message}")

    unsubscribe = fleet.tasks.subscribe(changed)
    interrupted = False
    try:
        try:
            await fleet.tasks.wait(tasks)
        except asyncio.CancelledError:  # ctrl+c (asyncio.run cancels the main task on the first one)
            current = asyncio.current_task()
            if current is None or not current.cancelling():
                raise
            current.uncancel()
            interrupted = True
            if line is not None:
                line.clear()
            running = [t for t in tasks if not t.state.finished]
            refused = [why for t in running if (why := fleet.tasks.cancel(t.id)) is not None]
            print(
                "cancelling: waiting for the task to stop and clean up (ctrl+c again to quit now, "
                "leaving what it made)",
                file=sys.stderr,
            )
            for why in refused:
                print(f"  {why}", file=sys.stderr)
            await fleet.tasks.wait(tasks)
    finally:
        unsubscribe()
        if line is not None:
            line.clear()
    return interrupted


class _Line:
    """One line of the terminal, rewritten in place."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._shown = False

    def show(self, text: str) -> None:
        width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
        text = shown(text)
        if len(text) > width:
            text = text[: width - 1] + "…"
        self._out.write("\r\x1b[2K" + text)
        self._out.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self._out.write("\r\x1b[2K")
            self._out.flush()
            self._shown = False
