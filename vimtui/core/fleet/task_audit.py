"""A task's audit records, written in order on one thread of their own (each is flushed to disk), so that
neither the event loop nor a task ever waits long on the audit log: past AUDIT_WAIT a record counts as not
written, and the task says so (a hung file system must not hang tasks)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TYPE_CHECKING

from vimtui.core.fleet.audit import STARTED, AuditError, AuditLog

if TYPE_CHECKING:
    from vimtui.core.fleet.tasks import Task

AUDIT_WAIT = 10.0
"""Seconds a task waits for its audit record to be on disk."""


class TaskAudit:
    def __init__(self, log: AuditLog, clock: Callable[[], float]) -> None:
        self.log = log
        self._clock = clock
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="audit")

    def _record(self, task: Task, outcome: str, error: str) -> None:
        self.log.record(
            time=self._clock(),
            host=task.host,
            vm=task.vm,
            action=task.action,
            args=task.args,
            outcome=outcome,
            error=error,
            task=task.id,
        )

    def started(self, task: Task) -> None:
        """On the task's lane, before the action runs: AuditError (the task is then refused) unless the
        "started" record is on disk within AUDIT_WAIT."""
        future = self._pool.submit(self._record, task, STARTED, "")
        try:
            future.result(AUDIT_WAIT)
        except concurrent.futures.TimeoutError as exc:
            raise AuditError(
                f"the audit log {self.log.path} did not take a record in {AUDIT_WAIT:.0f} s"
            ) from exc

    def late(self, task: Task, outcome: str, error: str) -> None:
        """On the task's lane, when an abandoned task's action ends after all (vimtui was closed): its real
        outcome, written from there since the event loop may be gone."""
        note = "ended after vimtui was closed" + (f": {error}" if error else "")
        try:
            self._record(task, outcome, note)
        except AuditError:
            pass  # nobody left to tell; the "abandoned" record stands

    async def write(self, task: Task, outcome: str, error: str) -> str:
        """A record, off the loop: '' once it is on disk, else why not (never raises, never hangs)."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self._pool, self._record, task, outcome, error), AUDIT_WAIT
            )
        except AuditError as exc:
            return f"not recorded: {exc}"
        except TimeoutError:
            return f"not recorded: the audit log did not take the record in {AUDIT_WAIT:.0f} s"
        except RuntimeError as exc:  # the writer was shut down (closing)
            return f"not recorded: {exc}"
        return ""

    def close(self) -> None:
        self._pool.shutdown(wait=False)
