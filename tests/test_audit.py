"""The audit log loses nothing: "started" on disk before an action runs (refused when it cannot be written),
the outcome after, abandoned when vimtui ends first (closed, or killed), no task hanging on the audit, and a
task past its deadline holding its host's lane until its call returns.

libvirt's test:/// driver is the host; the actions are gated functions run on the real task lane."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from vimtui.core.actions import operations
from vimtui.core.fleet.audit import AuditLog
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import parse_connect
from vimtui.core.fleet.tasks import TaskContext, TaskState
from vimtui.core.poll.session import SessionSettings

HOST = "test-default"
VIMTUI = str(Path(sys.executable).parent / "vimtui")


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def fleet_with(audit: Path, tmp: Path) -> Fleet:
    fleet = Fleet(
        [parse_connect("test:///default")], SessionSettings(interval=0.5), tmp / "run", audit=AuditLog(audit)
    )
    await fleet.start(tick=False)
    await fleet.connected(within=10)
    await fleet.wait_for(lambda s: s.find_vm("test"), 10)
    return fleet


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    f = await fleet_with(tmp_path / "data" / "audit.log", tmp_path)
    yield f
    await f.stop()


class Gate:
    """An action that blocks on the task lane until released, and says whether it ever ran."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, ctx: TaskContext) -> str:
        self.entered.set()
        ctx.progress(40.0, "copying")
        if not self.release.wait(30):
            raise RuntimeError("never released")
        return "did it"


def unwritable(path: Path) -> None:
    """The audit file as a disk that is full: every write fails with ENOSPC."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to("/dev/full")


def domain_state(fleet: Fleet) -> int:
    """The test VM's state straight from libvirt (the host's own connection, not vimtui's picture)."""
    conn = fleet.tasks.connection(HOST)
    return int(conn.lookupByName("test").state()[0])


async def test_an_action_is_recorded_started_then_done(fleet: Fleet) -> None:
    gate = Gate()
    task = fleet.tasks.submit(HOST, "gated", gate, vm="test", args={"x": float("nan")})
    await asyncio.to_thread(gate.entered.wait, 10)
    audit = fleet.tasks.audit
    assert audit is not None
    # on disk before the action ran, flushed: another reader sees it now
    [started] = records(audit.path)
    assert (started["outcome"], started["task"], started["vm"]) == ("started", task.id, "test")
    assert started["args"] == {"x": "nan"}  # JSON has no NaN: it is kept as text
    gate.release.set()
    assert await fleet.tasks.wait([task], within=10)
    assert [r["outcome"] for r in records(audit.path)] == ["started", "done"]


async def test_an_unwritable_audit_refuses_the_action_and_touches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "data" / "audit.log"
    unwritable(path)
    fleet = await fleet_with(path, tmp_path)
    try:
        before = domain_state(fleet)
        gate = Gate()
        gate.release.set()
        task = fleet.tasks.submit(HOST, "gated", gate, vm="test")
        # a real action through the same path as the screen and the CLI
        steps = operations.plan(fleet.state, "suspend", fleet.state.find_vm("test"), {})
        [suspend] = operations.submit(fleet, steps)
        assert await fleet.tasks.wait([task, suspend], within=20), "a task hung on the audit"
        for t in (task, suspend):
            assert t.state == TaskState.FAILED
            assert t.error.startswith(f"not run: the audit log {path} cannot be written: No space left"), (
                t.error
            )
            assert t.started is None  # never ran
        assert not gate.entered.is_set()
        assert domain_state(fleet) == before  # the VM was not suspended
        # a refused action (no such VM): no traceback, the task says its refusal was not recorded either
        [refused] = operations.refuse_unresolved(fleet, "start", [("nope", "no VM named 'nope'")], HOST)
        assert await fleet.tasks.wait([refused], within=20)
        assert refused.error.startswith("no VM named 'nope'; not recorded: the audit log"), refused.error
    finally:
        await fleet.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
async def test_a_full_file_system_refuses_the_action(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    await asyncio.to_thread(
        subprocess.run, ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(data)], check=True
    )
    try:
        fd = os.open(data / "filler", os.O_WRONLY | os.O_CREAT)
        try:  # fill it up
            while os.write(fd, b"x" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        fleet = await fleet_with(data / "audit.log", tmp_path)
        try:
            gate = Gate()
            gate.release.set()
            task = fleet.tasks.submit(HOST, "gated", gate, vm="test")
            assert await fleet.tasks.wait([task], within=20)
            assert task.state == TaskState.FAILED and "No space left on device" in task.error, task.error
            assert not gate.entered.is_set()
        finally:
            await fleet.stop()
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", str(data)], check=True)


def test_cli_with_an_unwritable_audit_exits_1_without_a_traceback(tmp_path: Path) -> None:
    unwritable(tmp_path / "share" / "vimtui" / "audit.log")
    (tmp_path / "config.toml").write_text("")
    out = subprocess.run(
        [
            VIMTUI,
            "--config",
            str(tmp_path / "config.toml"),
            "vm",
            "suspend",
            "test",
            "--connect",
            "test:///default",
        ],
        capture_output=True,
        text=True,
        timeout=60,  # it used to hang here for good
        stdin=subprocess.DEVNULL,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "share")},
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "not run: the audit log" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


async def test_closing_during_an_action_records_it_abandoned_then_what_it_did(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    fleet = await fleet_with(path, tmp_path)
    gate = Gate()
    running = fleet.tasks.submit(HOST, "gated", gate, vm="test")
    queued = fleet.tasks.submit(HOST, "never", lambda ctx: "ran", vm="test")
    await asyncio.to_thread(gate.entered.wait, 10)
    wait_until("the progress to reach the task", lambda: running.progress == 40.0, 10)
    await fleet.stop()  # as quitting the app does
    by_task = [(r["task"], r["outcome"]) for r in records(path)]
    assert by_task == [
        (running.id, "started"),
        (running.id, "abandoned"),
        (queued.id, "cancelled"),
    ]
    abandoned = records(path)[1]
    assert "at 40 % (copying)" in abandoned["error"]
    assert "nothing was done" in records(path)[2]["error"]
    gate.release.set()  # the call ends on its own thread after all: that is recorded too
    wait_until("the late outcome", lambda: len(records(path)) == 4, 10)
    late = records(path)[3]
    assert (late["task"], late["outcome"]) == (running.id, "done")
    assert late["error"] == "ended after vimtui was closed"


CHILD = r"""
import asyncio, sys, threading
from pathlib import Path
from vimtui.core.fleet.audit import AuditLog
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import parse_connect
from vimtui.core.poll.session import SessionSettings

async def main():
    fleet = Fleet([parse_connect("test:///default")], SessionSettings(), Path(sys.argv[2]),
                  audit=AuditLog(Path(sys.argv[1])))
    await fleet.start(tick=False)
    await fleet.connected(within=10)
    fleet.tasks.submit("test-default", "gated", lambda ctx: threading.Event().wait(), vm="test")
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_a_killed_vimtuis_action_is_recorded_abandoned_by_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(tmp_path / "run")])
    try:
        wait_until("the child's started record", lambda: records(path), 30)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    [started] = records(path)
    assert started["run"].split(":")[1] == str(child.pid)
    ours = AuditLog(path)
    written = ours.settle()
    assert [(r.task, r.outcome) for r in written] == [(started["task"], "abandoned")]
    assert f"vimtui (pid {child.pid}) ended while this ran" in written[0].error
    assert ours.settle() == []  # once only


def test_settle_leaves_a_running_vimtuis_actions_alone(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    log.record(time=1.0, host="h", vm="v", action="start", args={}, outcome="started", task=7)
    assert AuditLog(tmp_path / "audit.log").settle() == []  # this process still runs
    assert len(records(tmp_path / "audit.log")) == 1


async def test_a_task_past_its_deadline_keeps_the_lane_until_its_call_returns(fleet: Fleet) -> None:
    gate = Gate()
    ran: list[str] = []
    overdue = asyncio.Event()
    fleet.tasks.subscribe(lambda t: overdue.set() if t.overdue else None)
    slow = fleet.tasks.submit(HOST, "slow", gate, vm="test", timeout=0.2)
    after = fleet.tasks.submit(HOST, "after", lambda ctx: ran.append("after") or "ok", vm="test")
    await asyncio.wait_for(overdue.wait(), 10)
    assert slow.state == TaskState.RUNNING and "past its 0.2 s deadline" in slow.message
    assert after.state == TaskState.QUEUED and not ran  # the lane is still the slow call's
    gate.release.set()
    assert await fleet.tasks.wait([slow, after], within=10)
    assert slow.state == TaskState.DONE and "past its 0.2 s deadline" in slow.result, slow.result
    assert after.ok and ran == ["after"]
    assert after.started is not None and slow.returned is not None and after.started >= slow.returned
    audit = fleet.tasks.audit
    assert audit is not None
    done = [r for r in records(audit.path) if r["task"] == slow.id and r["outcome"] == "done"]
    assert len(done) == 1 and "past its 0.2 s deadline" in done[0]["error"], done
