"""The task manager on the real task lane (libvirt's test:/// driver as the host, gated functions as the
actions): a queued task is cancelled before it runs, a running one that cannot be aborted is not, a
running one that can be is aborted; and the audit log's own promises: long arguments redacted, the file
private, a torn line after a crash skipped without losing the records around it."""

from __future__ import annotations

import asyncio
import json
import stat
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_audit import HOST, Gate, fleet_with, records
from vimtui.core.fleet.audit import LONG_ARG, AuditLog
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import TaskState


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    f = await fleet_with(tmp_path / "data" / "audit.log", tmp_path)
    yield f
    await f.stop()


async def test_a_queued_task_is_cancelled_and_never_runs(fleet: Fleet) -> None:
    gate = Gate()
    ran: list[str] = []
    first = fleet.tasks.submit(HOST, "first", gate, vm="test")
    queued = fleet.tasks.submit(HOST, "second", lambda ctx: ran.append("second") or "ran", vm="test")
    assert await asyncio.to_thread(
        gate.entered.wait, 10
    )  # the lane is busy with the first: the second waits behind it
    assert queued.state == TaskState.QUEUED and queued.cancellable
    assert fleet.tasks.cancel(queued.id) is None
    gate.release.set()
    assert await fleet.tasks.wait([first, queued], within=10)
    assert first.ok and queued.state == TaskState.CANCELLED and not ran
    audit = fleet.tasks.audit
    assert audit is not None
    assert [r["outcome"] for r in records(audit.path) if r["task"] == queued.id] == ["cancelled"]


async def test_a_running_task_without_an_abort_is_not_cancelled(fleet: Fleet) -> None:
    gate = Gate()
    task = fleet.tasks.submit(HOST, "copy", gate, vm="test")
    assert await asyncio.to_thread(gate.entered.wait, 10)
    await fleet.wait_for(lambda _s: task.state == TaskState.RUNNING, 10)
    assert not task.cancellable
    assert fleet.tasks.cancel(task.id) == "copy cannot be cancelled once it runs"
    assert not task.cancel_event.is_set()
    gate.release.set()
    assert await fleet.tasks.wait([task], within=10)
    assert task.ok and task.result == "did it"  # it ran to its end
    assert fleet.tasks.cancel(task.id) == f"task {task.id} has already ended (done)"
    assert fleet.tasks.cancel(10**9) == f"no task {10**9}"


async def test_a_running_task_with_an_abort_is_aborted(fleet: Fleet) -> None:
    gate = Gate()
    aborted: list[Any] = []

    def abort(conn: Any) -> None:  # as abortJob would: the blocked call returns, with an error
        aborted.append(conn)
        gate.release.set()

    def job(ctx: Any) -> str:
        gate(ctx)
        ctx.check_cancelled()
        return "finished"

    task = fleet.tasks.submit(HOST, "migrate", job, vm="test", abort=abort)
    assert await asyncio.to_thread(gate.entered.wait, 10)
    await fleet.wait_for(lambda _s: task.state == TaskState.RUNNING, 10)
    assert task.cancellable and fleet.tasks.cancel(task.id) is None
    assert await fleet.tasks.wait([task], within=10)
    assert task.state == TaskState.CANCELLED and len(aborted) == 1  # abort ran on the host's connection


def test_long_arguments_are_redacted_and_the_file_is_private(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "data" / "audit.log")
    xml = "<domain><secret>hunter2</secret>" + "x" * LONG_ARG + "</domain>"
    log.record(
        time=1.0,
        host="h",
        vm="v",
        action="edit",
        args={"xml": xml, "n": 3, "f": float("nan")},
        outcome="done",
    )
    text = log.path.read_text()
    assert "hunter2" not in text  # the content is not kept ...
    (rec,) = records(log.path)
    assert rec["args"]["xml"].startswith(f"<{len(xml)} characters, sha256 ")  # ... its size and digest are
    assert rec["args"]["n"] == 3 and rec["args"]["f"] == "nan"
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.path.parent.stat().st_mode) == 0o700


def test_a_torn_line_is_skipped_and_the_records_around_it_are_kept(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    log.record(time=1.0, host="h", vm="v", action="start", args={}, outcome="started", task=1)
    with log.path.open("ab") as f:
        f.write(b'{"time": 2.0, "user": "ro')  # a write cut short by a crash: no end, no newline
    log.record(time=3.0, host="h", vm="v", action="start", args={}, outcome="done", task=1)
    assert [(r.time, r.outcome) for r in log.records()] == [(1.0, "started"), (3.0, "done")]
    lines = log.path.read_bytes().splitlines()
    assert json.loads(lines[0])["time"] == 1.0 and json.loads(lines[-1])["time"] == 3.0


async def test_a_lane_call_cut_by_a_dropped_connection_fails_the_task_saying_so(fleet: Fleet) -> None:
    """A task's call on the host's lane (TaskContext.on_lane, as a volume transfer's chunks) whose lane is
    closed under it (the connection dropped) fails the task with the reason; it does not end its runner
    silently and leave the task running for ever. Breaks if on_lane lets LaneClosed through unsaid."""
    session = fleet.sessions[HOST]
    hold, entered = threading.Event(), threading.Event()

    def block(_conn: Any) -> None:
        entered.set()
        hold.wait(10)

    asking = asyncio.ensure_future(fleet.ask(HOST, block))  # the host's lane busy
    assert await asyncio.to_thread(entered.wait, 10)
    task = fleet.tasks.submit(HOST, "chunked", lambda ctx: ctx.on_lane(lambda _conn: None) or "ran", lane="x")
    for _ in range(500):  # until the task's call waits on the lane behind the question
        if session.lane.pending >= 2:
            break
        await asyncio.sleep(0.01)
    assert session.lane.pending >= 2
    session.lane.close()  # as a dropped connection does: the queued call is dropped
    hold.set()
    await asyncio.wait([asking], timeout=10)
    assert await fleet.tasks.wait([task], within=10)
    assert task.state == TaskState.FAILED, (task.state, task.error)
    assert task.error == f"the connection to {HOST} was lost during the call"
