"""Each audit record, once on the operator's own disk, also appended to the audit file of the host it
concerns (core/poll/host_audit.py), so that what several operators did to one host is in one place.

Never in the action's way: the local record is what an action waits for; the host's copy is queued and
sent after it, one host at a time in order, over the host's SSH connection on the event loop (asyncssh:
nothing blocks) or, for a host on this machine, on a thread of its own. A copy that cannot be appended
(host down, no permission, the host too slow) is not lost silently: a local record says which record did
not reach which host and why (action HOST_APPEND), and the task log shows it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from vimtui.core.fleet.audit import AuditError, AuditLog, AuditRecord
from vimtui.core.poll.host_audit import HOST_AUDIT_FILE, HostAuditError, append_local, append_over_ssh
from vimtui.core.poll.session import is_local_uri

if TYPE_CHECKING:
    from vimtui.core.fleet.fleet import Fleet

HOST_APPEND = "audit.host-append"
"""The action of a local record saying a record did not reach its host's file."""
APPEND_WAIT = 15.0
"""Seconds one exchange with a host may take (a lock held by another operator included)."""
BATCH = 100
"""Records at most sent to a host in one exchange."""
CLOSE_WAIT = 2 * APPEND_WAIT
"""Seconds vimtui waits, when it ends, for the copies still queued (a loaded host takes seconds)."""


def host_file_kind(transport: str, uri: str) -> str:
    """Where a host's audit file is reached: "ssh", "local" (this machine), or "" (nowhere: the test
    driver, or a remote libvirt URI without vimtui's SSH connection)."""
    if transport == "ssh":
        return "ssh"
    return "local" if is_local_uri(uri) else ""


class HostAudit:
    """Sends records to their hosts' files; the TaskManager owns one when there is an audit log."""

    def __init__(self, fleet: Fleet, log: AuditLog, path: str = HOST_AUDIT_FILE) -> None:
        self.fleet = fleet
        self.log = log
        self.path = path
        self.problems: list[str] = []
        """Copies that did not reach their host, as said to the user (the CLI prints them)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[str, deque[AuditRecord]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="host-audit")
        log.written = self.submit

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the sending runs on (the fleet's)."""
        self._loop = loop

    def submit(self, rec: AuditRecord) -> None:
        """A record now on the local disk (any thread): queued for its host's file."""
        if rec.action == HOST_APPEND or not rec.host:
            return
        session = self.fleet.sessions.get(rec.host)
        if session is None or not host_file_kind(session.spec.transport, session.spec.uri):
            return
        loop = self._loop
        try:
            if loop is None or loop.is_closed():
                raise RuntimeError("vimtui is not running its event loop")
            loop.call_soon_threadsafe(self._enqueue, rec)
        except RuntimeError as exc:
            self._failed_now(rec, f"not sent: {exc}")

    def _enqueue(self, rec: AuditRecord) -> None:
        queue = self._queues.setdefault(rec.host, deque())
        queue.append(rec)
        worker = self._workers.get(rec.host)
        if worker is None or worker.done():
            self._workers[rec.host] = asyncio.get_running_loop().create_task(
                self._drain(rec.host, queue), name=f"host-audit-{rec.host}"
            )

    async def _drain(self, host: str, queue: deque[AuditRecord]) -> None:
        """Send what is queued, up to BATCH records in one exchange (a slow host catches up at once)."""
        while queue:
            batch = [queue[i] for i in range(min(BATCH, len(queue)))]
            try:
                async with asyncio.timeout(APPEND_WAIT):
                    await self._append(host, batch)
            except TimeoutError:
                await self._failed_all(batch, f"{host} did not take it in {APPEND_WAIT:g} s")
            except (HostAuditError, OSError) as exc:
                await self._failed_all(batch, str(exc))
            for _ in batch:
                queue.popleft()

    async def _failed_all(self, batch: list[AuditRecord], why: str) -> None:
        for rec in batch:
            await self._failed(rec, why)

    async def _append(self, host: str, batch: list[AuditRecord]) -> None:
        session = self.fleet.sessions.get(host)
        if session is None:
            raise HostAuditError(f"{host} is no longer in the inventory")
        bodies = [asdict(rec) for rec in batch]
        if host_file_kind(session.spec.transport, session.spec.uri) == "local":
            loop = asyncio.get_running_loop()
            try:
                for body in bodies:
                    await loop.run_in_executor(self._pool, append_local, Path(self.path), body)
            except OSError as exc:
                raise HostAuditError(f"{self.path}: {exc.strerror or exc}") from exc
            return
        conn = session.ssh
        if conn is None:
            raise HostAuditError(f"{host} is not connected ({session.status})")
        await append_over_ssh(conn, self.path, bodies)

    def _note(self, rec: AuditRecord, why: str) -> tuple[str, dict[str, object]]:
        text = f"{rec.action} {rec.outcome} not appended to {rec.host}:{self.path}: {why}"
        self.problems.append(text)
        return text, {"action": rec.action, "outcome": rec.outcome, "seq": rec.seq, "task": rec.task}

    async def _failed(self, rec: AuditRecord, why: str) -> None:
        text, args = self._note(rec, why)
        self.fleet.activity.add(rec.host, rec.vm, "audit on host", "failed", message=text, error=text)
        self.fleet.notify()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(RuntimeError):
            await loop.run_in_executor(self._pool, self._record_failure, rec, why, args)

    def _failed_now(self, rec: AuditRecord, why: str) -> None:
        _text, args = self._note(rec, why)
        self._record_failure(rec, why, args)

    def _record_failure(self, rec: AuditRecord, why: str, args: dict[str, object]) -> None:
        with contextlib.suppress(AuditError):  # the local log is failing too: actions are refused anyway
            self.log.record(
                time=self.fleet.clock(),
                host=rec.host,
                vm=rec.vm,
                action=HOST_APPEND,
                args=args,
                outcome="failed",
                error=f"not appended to {self.path} on {rec.host}: {why}",
                task=rec.task,
            )

    async def close(self, within: float) -> None:
        """Wait up to `within` seconds for the copies still queued; those left are recorded as not sent."""
        workers = [w for w in self._workers.values() if not w.done()]
        if workers:
            await asyncio.wait(workers, timeout=within)
        for worker in workers:
            worker.cancel()
        for queue in self._queues.values():
            while queue:
                await self._failed(queue.popleft(), "vimtui ended before it was appended")
        self._pool.shutdown(wait=False)
        stop_sending(self.log, self.submit)


def stop_sending(log: AuditLog, submit: Callable[[AuditRecord], None]) -> None:
    """Unhook `submit` from `log` (when its HostAudit closes)."""
    if log.written == submit:
        log.written = None
