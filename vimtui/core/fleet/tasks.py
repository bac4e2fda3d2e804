"""Tasks: every action on a host runs as one, with a state, progress, an entry in the task log and records
in the audit log ("started" on disk before it runs, refused when that cannot be written; its outcome after).

Each host has a task lane of its own (a thread beside the lane its polls use): tasks for one host run one
after the other in the order asked, tasks for different hosts in parallel, and a migration that takes a
minute never delays that host's polls. An action is a plain blocking function of a TaskContext (the
host's connection, progress reporting, cancellation); it runs on the task lane, never on the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import libvirt

from vimtui.core.fleet.activity import Entry, next_id
from vimtui.core.fleet.audit import ABANDONED, AuditError, AuditLog, redact
from vimtui.core.fleet.audit_hosts import CLOSE_WAIT, HostAudit
from vimtui.core.fleet.task_audit import AUDIT_WAIT, TaskAudit
from vimtui.core.poll.lane import CallTimeout, Lane, LaneClosed

if TYPE_CHECKING:
    from vimtui.core.fleet.fleet import Fleet

T = TypeVar("T")


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED)


class TaskCancelled(Exception):
    """Raised inside an action when the operator cancelled it: the task ends cancelled, not failed."""


class ActionError(Exception):
    """An action refused or failed for a reason the operator can act on; the message says it all."""


class TaskContext:
    """What an action function gets: the host's connection and a way to report progress. Thread-safe:
    the action runs on the host's task lane, the loop reads the progress."""

    def __init__(self, task: Task, conn: Any, manager: TaskManager, loop: asyncio.AbstractEventLoop) -> None:
        self.task = task
        self.conn = conn
        self.host = task.host
        self._manager = manager
        self._loop = loop
        self.cancel_event = task.cancel_event

    def progress(self, percent: float | None, message: str = "") -> None:
        self._loop.call_soon_threadsafe(self._manager._progress, self.task, percent, message)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise TaskCancelled("cancelled")

    def wait(self, predicate: Callable[[], object], timeout: float, interval: float = 0.25) -> bool:
        """Ask `predicate` until it holds (True) or `timeout` passes (False); cancellation interrupts."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            if self.cancel_event.wait(min(interval, max(0.0, deadline - time.monotonic()))):
                raise TaskCancelled("cancelled")

    def poll_soon(self, host: str) -> None:
        """Another host this task changed (a migration's destination): it is polled before the task ends,
        like the task's own host, so that a finished task's effect is in the fleet state."""
        self.task.touched.add(host)

    def peer(self, host: str) -> Any:
        """The connection of another host of the inventory (a migration's destination)."""
        return self._manager.connection(host)

    @property
    def fleet(self) -> Fleet:
        """The fleet the task runs in: its published state (immutable, safe to read here) and its own
        records (maintenance marks), for actions that reach beyond one connection."""
        return self._manager.fleet

    def on_loop(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine on the event loop and wait here for its result: an action that runs other
        tasks (an evacuation's moves) submits and awaits them there, where the task manager lives."""
        return asyncio.run_coroutine_threadsafe(make(), self._loop).result()

    def on_lane(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(conn, *args)` as one short call on the host's own lane (the one its polls use, with its call
        deadline), waited for here. A long job made of many such calls (a volume transfer, chunk by chunk)
        never holds that lane or the host's task lane for its whole length: polls and other actions on the
        host go on between its calls."""
        return self.on_loop(lambda: self._manager.lane_call(self.host, fn, *args))


Runner = Callable[[TaskContext], str | None]
Aborter = Callable[[Any], None]


@dataclass(slots=True)
class Task:
    id: int
    host: str
    vm: str
    """The VM's name ('' for a host-wide task)."""
    uuid: str
    action: str
    args: Mapping[str, Any]
    run: Runner = field(repr=False)
    abort: Aborter | None = field(default=None, repr=False)
    """Stops the running job from another thread (abortJob): makes the task cancellable while it runs."""
    timeout: float = 300.0
    state: TaskState = TaskState.QUEUED
    progress: float | None = None
    message: str = ""
    created: float = 0.0
    started: float | None = None
    ended: float | None = None
    returned: float | None = None
    """When the action function returned and the lane was free for the next task (the task ends after
    the polls that show its effect)."""
    result: str = ""
    error: str = ""
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    touched: set[str] = field(default_factory=set, repr=False)
    """Other hosts the task changed."""
    overdue: bool = False
    """Its deadline passed while its call still ran (it keeps the host's task lane until the call ends)."""
    abandoned: bool = False
    """vimtui was closed while it ran or waited: recorded as abandoned then (see TaskManager.close)."""
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    connect: bool = True
    """Runs on the host's connection (False: the action touches only vimtui's records; ctx.conn is None)."""
    lane: str = ""
    """The task lane it runs on ('': its host's, one task after another; an evacuation runs its moves
    from one host on lanes of their own, several at a time)."""

    @property
    def cancellable(self) -> bool:
        return self.state == TaskState.QUEUED or (self.state == TaskState.RUNNING and self.abort is not None)

    @property
    def ok(self) -> bool:
        return self.state == TaskState.DONE

    def entry(self) -> Entry:
        return Entry(
            id=self.id,
            time=self.created,
            host=self.host,
            vm=self.vm,
            action=self.action,
            state=str(self.state),
            progress=self.progress,
            message=self.result or self.message,
            ended=self.ended,
            error=self.error,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "vm": self.vm,
            "uuid": self.uuid,
            "action": self.action,
            "args": redact(self.args),
            "state": str(self.state),
            "progress": self.progress,
            "message": self.message,
            "created": self.created,
            "started": self.started,
            "ended": self.ended,
            "returned": self.returned,
            "result": self.result,
            "error": self.error,
        }


TASK_LANE_CALL_LIMIT = 24 * 3600.0


class TaskManager:
    """Queues, runs and records tasks; the Fleet owns one (`fleet.tasks`)."""

    def __init__(self, fleet: Fleet, audit: AuditLog | None = None) -> None:
        self.fleet = fleet
        self.audit = audit
        self.tasks: dict[int, Task] = {}
        self._lanes: dict[str, Lane] = {}
        self._runners: set[asyncio.Task[None]] = set()
        self._subscribers: list[Callable[[Task], None]] = []
        self._audit = TaskAudit(audit, fleet.clock) if audit is not None else None
        self.host_audit = HostAudit(fleet, audit) if audit is not None else None
        """Each record also appended to its host's audit file (after the local one, never in the way)."""
        self._closed = False

    # -- asking -----------------------------------------------------------------------------------

    def submit(
        self,
        host: str,
        action: str,
        run: Runner,
        *,
        vm: str = "",
        uuid: str = "",
        args: Mapping[str, Any] | None = None,
        abort: Aborter | None = None,
        timeout: float = 300.0,
        connect: bool = True,
        lane: str = "",
    ) -> Task:
        now = self.fleet.clock()
        task = Task(next_id(), host, vm, uuid, action, dict(args or {}), run, abort, timeout, created=now)
        task.connect = connect
        task.lane = lane
        self.tasks[task.id] = task
        self._changed(task)
        runner = asyncio.get_running_loop().create_task(self._run(task))
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)
        return task

    def refuse(
        self, host: str, action: str, reason: str, *, vm: str = "", args: Mapping[str, Any] | None = None
    ) -> Task:
        """An action that will not run (unknown VM, wrong state, read-only host): a failed task saying why,
        in the task log and the audit log, and nothing touched."""
        now = self.fleet.clock()
        task = Task(
            next_id(), host, vm, "", action, dict(args or {}), _never, None, 0.0, created=now, started=now
        )
        self.tasks[task.id] = task
        self._finish(task, TaskState.FAILED, error=reason, outcome="refused")
        return task

    def cancel(self, task_id: int) -> str | None:
        """Cancel a queued task, or abort a running one that can be; None if done, else why not."""
        task = self.tasks.get(task_id)
        if task is None:
            return f"no task {task_id}"
        if task.state.finished:
            return f"task {task_id} has already ended ({task.state})"
        if not task.cancellable:
            return f"{task.action} cannot be cancelled once it runs"
        task.cancel_event.set()
        if task.state == TaskState.RUNNING and task.abort is not None:
            self._abort_running(task)
        return None

    def _abort_running(self, task: Task) -> None:
        session = self.fleet.sessions.get(task.host)
        abort = task.abort
        if session is not None and abort is not None:
            self._spawn(self._abort(session, abort, task))

    def _spawn(self, coro: Any) -> None:
        runner = asyncio.get_running_loop().create_task(coro)
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)

    async def _abort(self, session: Any, abort: Aborter, task: Task) -> None:
        try:
            await session.call(lambda conn: abort(conn))
        except Exception as exc:  # the job may have ended meanwhile: say so, the task ends on its own
            self._progress(task, task.progress, f"abort: {exc}")

    async def wait(self, tasks: Sequence[Task], within: float | None = None) -> bool:
        """Until every task has ended (True), or `within` seconds passed (False)."""
        try:
            async with asyncio.timeout(within):
                for t in tasks:
                    await t.done.wait()
        except TimeoutError:
            return False
        return True

    def subscribe(self, fn: Callable[[Task], None]) -> Callable[[], None]:
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn)

    def active(self) -> list[Task]:
        return [t for t in self.tasks.values() if not t.state.finished]

    def connection(self, host: str) -> Any:
        session = self.fleet.sessions.get(host)
        if session is None:
            raise ActionError(f"no host {host!r} in the inventory")
        return session.connection()

    async def lane_call(self, host: str, fn: Callable[..., T], *args: Any) -> T:
        """`fn(conn, *args)` on `host`'s own lane (see TaskContext.on_lane)."""
        session = self.fleet.sessions.get(host)
        if session is None:
            raise ActionError(f"no host {host!r} in the inventory")
        try:
            return await session.call(fn, *args)
        except LaneClosed:
            # the lane was closed with the call queued on it (its connection dropped and is being made
            # again): an error for the task, which says so, not a silent end of its runner
            raise ActionError(f"the connection to {host} was lost during the call") from None

    async def close(self) -> None:
        """Stop: tasks still queued or running are recorded as abandoned with what is known of them (a
        running call is left to end on its own thread, which then records how it ended)."""
        self._closed = True
        active = self.active()
        for t in active:
            t.cancel_event.set()
            t.abandoned = True
        for lane in self._lanes.values():
            lane.close()
        self._lanes.clear()
        for t in active:
            if t.state == TaskState.RUNNING:
                known = f" at {t.progress:.0f} %" if t.progress is not None else ""
                known += f" ({t.message})" if t.message else ""
                why = (
                    f"vimtui was closed while this ran{known}: its call was left to end on its own; "
                    "what it did on the host is recorded when it ends, if vimtui still runs then"
                )
                await self._write(t, ABANDONED, why)
            else:
                await self._write(t, "cancelled", "vimtui was closed before this ran: nothing was done")
        pending = [r for r in self._runners if not r.done()]
        if pending:
            await asyncio.wait(pending, timeout=AUDIT_WAIT)
        if self.host_audit is not None:
            await asyncio.sleep(0)  # copies of the last records, queued from the audit thread
            await self.host_audit.close(CLOSE_WAIT)
        if self._audit is not None:
            self._audit.close()

    # -- running ----------------------------------------------------------------------------------

    def _lane(self, host: str) -> Lane:
        lane = self._lanes.get(host)
        if lane is None:
            lane = self._lanes[host] = Lane(f"{host}-tasks")
        return lane

    async def _run(self, task: Task) -> None:
        loop = asyncio.get_running_loop()

        def body() -> str | None:
            if task.cancel_event.is_set():
                raise TaskCancelled("cancelled before it started")
            conn = self.connection(task.host) if task.connect else None
            self._record_started(task)
            loop.call_soon_threadsafe(self._started, task)
            try:
                result = task.run(TaskContext(task, conn, self, loop))
            except BaseException as exc:
                self._record_late(task, "failed", str(exc) or type(exc).__name__)
                raise
            finally:
                task.returned = self.fleet.clock()
            self._record_late(task, "done", "")
            return result

        try:
            try:
                lane = self._lane(task.lane or task.host)
                call = asyncio.ensure_future(lane.call(TASK_LANE_CALL_LIMIT, body))
                done, _ = await asyncio.wait({call}, timeout=task.timeout or None)
                if not done:
                    self._overdue(task)
                result = await call
            finally:
                await self._refresh(task)
        except AuditError as exc:
            self._finish(task, TaskState.FAILED, error=f"not run: {exc}", outcome="refused")
        except TaskCancelled as exc:
            self._finish(task, TaskState.CANCELLED, error=str(exc))
        except CallTimeout as exc:
            # its thread may stay stuck in the call: a fresh lane
            self._lanes.pop(task.lane or task.host, None)
            self._finish(task, TaskState.FAILED, error=str(exc))
        except libvirt.libvirtError as exc:
            if task.cancel_event.is_set():
                self._finish(task, TaskState.CANCELLED, error=f"cancelled: {_libvirt_message(exc)}")
            else:
                self._finish(task, TaskState.FAILED, error=_libvirt_message(exc))
        except Exception as exc:  # an action's own error, NotConnected, ...: the message is the point
            self._finish(task, TaskState.FAILED, error=str(exc) or type(exc).__name__)
        else:
            self._finish(task, TaskState.DONE, result=result or "")

    def _overdue(self, task: Task) -> None:
        """The deadline passed and the call still runs: say so, and abort it where that can be done. The
        task keeps the host's task lane until the call returns (a next task on the host must not run
        beside it), and ends with what the call really did."""
        task.overdue = True
        self._progress(
            task,
            task.progress,
            f"past its {task.timeout:g} s deadline: still running, holding {task.host}'s task lane",
        )
        if task.abort is not None and task.state == TaskState.RUNNING:
            task.cancel_event.set()
            self._abort_running(task)

    # -- audit ------------------------------------------------------------------------------------

    def _record_started(self, task: Task) -> None:
        if self._audit is not None:
            self._audit.started(task)

    def _record_late(self, task: Task, outcome: str, error: str) -> None:
        if task.abandoned and self._audit is not None:
            self._audit.late(task, outcome, error)

    async def _write(self, task: Task, outcome: str, error: str) -> str:
        return "" if self._audit is None else await self._audit.write(task, outcome, error)

    async def _record_end(self, task: Task, outcome: str, note: str) -> None:
        try:
            problem = await self._write(task, outcome, note)
            assert self.audit is not None
            if problem and str(self.audit.path) not in task.error:  # (said once is enough)
                task.error = f"{task.error}; {problem}" if task.error else problem
                self._changed(task)
        finally:
            task.done.set()

    async def _refresh(self, task: Task) -> None:
        """Poll the hosts the task changed before it ends: whoever waits on a task then finds its effect
        in the fleet state (and the next action is checked against it, not against the state before)."""
        sessions = [self.fleet.sessions.get(h) for h in {task.host, *task.touched}]
        refreshed = [
            s.refresh(self.fleet.settings.poll_timeout) for s in sessions if s is not None and task.started
        ]
        if refreshed:
            await asyncio.gather(*refreshed)
            self.fleet.publish()  # now, not after the gap between publishes (Fleet._changed)

    def _started(self, task: Task) -> None:
        if task.state == TaskState.QUEUED:
            task.state = TaskState.RUNNING
            task.started = self.fleet.clock()
            self._changed(task)

    def _progress(self, task: Task, percent: float | None, message: str) -> None:
        if task.state.finished:
            return
        task.progress = percent
        task.message = message
        self._changed(task)

    def _finish(
        self, task: Task, state: TaskState, *, result: str = "", error: str = "", outcome: str = ""
    ) -> None:
        """The task's end; whoever waits on it (`done`) is woken once its record is written, or found
        impossible to write (the task's error then says so)."""
        task.state = state
        task.ended = self.fleet.clock()
        if task.overdue and task.started is not None:
            took = f"took {task.ended - task.started:.1f} s, past its {task.timeout:g} s deadline"
            if state == TaskState.DONE:
                result = f"{result} ({took})" if result else took
            else:
                error = f"{error} ({took})"
        note = error or (result if task.overdue else "")  # what the record says besides the outcome
        task.result = result
        task.error = error
        if state == TaskState.DONE:
            task.progress = 100.0 if task.progress is not None else None
        self._changed(task)
        if self.audit is None or task.abandoned:  # an abandoned task's end is recorded by its thread
            task.done.set()
            return
        self._spawn(self._record_end(task, outcome or str(state), note))

    def _changed(self, task: Task) -> None:
        self.fleet.activity.put(task.entry())
        for fn in list(self._subscribers):
            fn(task)
        self.fleet.notify()


def _never(_ctx: TaskContext) -> str:
    raise AssertionError("a refused task never runs")


def _libvirt_message(exc: libvirt.libvirtError) -> str:
    msg = exc.get_error_message() or str(exc)
    return msg.strip()
