"""Live migration and the serial console against the lab: real libvirtd and QEMU on each host, vimtui's SSH
tunnels in between, and every outcome checked over a direct connection to the hosts, not vimtui's view."""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import libvirt
import pytest

from tests.lab.lab import Lab
from tests.lab.support import FAST, FILL_MIB, act, fill_memory, seen, spec, started, until
from vimtui.core.actions import operations
from vimtui.core.actions.console import ESCAPE, attach_terminal, console_refusal, open_console, relay
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import Task, TaskState
from vimtui.core.model import FleetState, state_name

pytestmark = pytest.mark.lab

SRC, DEST = "kvm02", "kvm03"
STEADY = replace(FAST, interval=3.0, call_timeout=20.0, keepalive_interval=5.0, keepalive_count_max=4)
"""Patient deadlines: a poll that misses its deadline drops the host's connection, and the migration or
console stream on it with it; on a 2-core machine shared with other labs (load 30-90 seen) FAST's 4-s poll
deadline can pass. What is tested here is migration and the console, not how fast a wedged host is noticed
(test_fleet_lab does that)."""


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
async def fleet(lab: Lab, runtime: Path) -> AsyncIterator[Fleet]:
    f = await started(lab, runtime, **asdict(STEADY))
    yield f
    await f.stop()


@pytest.fixture
def scratch(lab: Lab) -> Iterator[Callable[..., str]]:
    """Makes scratch guests (`make(host, prefix, disk=..., start=...)` -> name); removes each from every
    host afterwards, whatever happened (a migration may have left it on either side, its disk on both)."""
    made: list[str] = []

    def make(host: str, prefix: str, *, disk: bool = False, start: bool = True, mib: int = 112) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        made.append(name)
        lab.add_guest(host, name, disk=disk, start=start, mib=mib)
        return name

    try:
        yield make
    finally:
        for name in made:
            for h in lab.hosts:
                lab.remove_guest(h.name, name)


def where(lab: Lab, name: str) -> dict[str, str]:
    """Host -> state of the guest on every lab host that has it defined, asked of libvirt directly."""
    out = {}
    for h in lab.hosts:
        with lab.connect(h.name) as conn:
            try:
                dom = conn.lookupByName(name)
            except libvirt.libvirtError:
                continue
            out[h.name] = state_name(dom.state()[0])
    return out


def persistent(lab: Lab, host: str, name: str) -> bool:
    with lab.connect(host) as conn:
        return bool(conn.lookupByName(name).isPersistent())


def volumes(lab: Lab, host: str) -> set[str]:
    with lab.connect(host) as conn:
        pool = conn.storagePoolLookupByName("default")
        pool.refresh(0)
        return {v.name() for v in pool.listAllVolumes()}


def migration_left(lab: Lab, host: str, name: str) -> int:
    """Bytes the source's running migration job has left to send (libvirt's job stats), 0 without one."""
    with lab.connect(host) as conn:
        stats = conn.lookupByName(name).jobStats()
    if stats.get("type") != libvirt.VIR_DOMAIN_JOB_UNBOUNDED:
        return 0
    return int(stats.get("data_remaining") or stats.get("memory_remaining") or 0)


def shown_on(state: FleetState, name: str) -> list[tuple[str, str]]:
    return sorted((v.host, v.state) for v in state.vms.values() if v.name == name)


async def running_in_fleet(fleet: Fleet, host: str, name: str) -> FleetState:
    await seen(fleet, host, name)
    return await until(
        fleet, f"{name} running on {host}", lambda s: any(v.state == "running" for v in s.find_vm(name, host))
    )


def watch(fleet: Fleet, action: str) -> list[tuple[float | None, str]]:
    """Every (progress, message) the tasks of `action` report, as they report it."""
    seen_: list[tuple[float | None, str]] = []

    def note(task: Task) -> None:
        if task.action == action and task.state == TaskState.RUNNING:
            seen_.append((task.progress, task.message))

    fleet.tasks.subscribe(note)
    return seen_


def submit(fleet: Fleet, name: str, vms: list[str], host: str, **args: Any) -> list[Task]:
    """Like support.act, without waiting for the end."""
    found, errors = operations.resolve(fleet.state, vms, host)
    assert not errors, errors
    return operations.submit(fleet, operations.plan(fleet.state, name, found, args))


# ---------------------------------------------------------------------------------------------- migrate


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
async def test_live_migration_moves_a_running_guest_and_reports_progress(
    lab: Lab, fleet: Fleet, scratch: Callable[..., str]
) -> None:
    name = scratch(SRC, "mig", mib=FILL_MIB + 128)
    await running_in_fleet(fleet, SRC, name)
    # FILL_MIB of non-zero memory at 16 MiB/s: seconds of transfer on any machine (zero pages would not
    # count against the cap), so the job stats are read while it moves
    await asyncio.to_thread(fill_memory, lab, SRC, name)
    reports = watch(fleet, "migrate")
    t0 = time.monotonic()
    [task] = await act(fleet, "migrate", [name], host=SRC, dest=DEST, bandwidth_mib=16)
    took = time.monotonic() - t0
    assert task.state == TaskState.DONE, task.error
    assert task.result.startswith(f"migrated live to {DEST} in "), task.result
    # libvirt's word, not vimtui's: running on the destination, defined there for good, gone from the source
    assert where(lab, name) == {DEST: "running"}
    assert persistent(lab, DEST, name)
    # and the fleet shows it where it now is
    await until(fleet, f"{name} only on {DEST}", lambda s: shown_on(s, name) == [(DEST, "running")])
    # progress from the job stats, never backwards
    from_stats = [(p, m) for p, m in reports if p is not None and "MiB" in m]
    assert from_stats, f"no progress from the job stats in {took:.1f} s: {reports}"
    assert all(0.0 <= p <= 99.0 for p, _ in from_stats)
    assert [p for p, _ in from_stats] == sorted(p for p, _ in from_stats), from_stats
    assert task.progress == 100.0
    print(f"\nmigration {SRC} -> {DEST}: {took:.1f} s; {task.result}; progress seen: {from_stats}")


async def test_migration_of_local_disks_needs_copy_storage_and_copies_them(
    lab: Lab, fleet: Fleet, scratch: Callable[..., str]
) -> None:
    name = scratch(SRC, "migd", disk=True)
    volume = f"{name}.qcow2"
    assert volume not in volumes(lab, DEST)
    await running_in_fleet(fleet, SRC, name)
    # the disk is in kvm02's own pool: libvirt refuses a memory-only migration, and says why
    [refused] = await act(fleet, "migrate", [name], host=SRC, dest=DEST)
    assert refused.state == TaskState.FAILED
    assert "copy storage" in refused.error and "shared" in refused.error, refused.error
    assert f"still runs on {SRC}" in refused.error, refused.error
    assert where(lab, name) == {SRC: "running"}
    assert volume not in volumes(lab, DEST)
    # with copy storage: the volume is made on the destination, the disk copied, the guest moves
    reports = watch(fleet, "migrate")
    t0 = time.monotonic()
    [task] = await act(fleet, "migrate", [name], host=SRC, dest=DEST, copy_storage=True)
    took = time.monotonic() - t0
    assert task.state == TaskState.DONE, task.error
    assert task.result.endswith("its disks copied"), task.result
    assert where(lab, name) == {DEST: "running"}
    assert persistent(lab, DEST, name)
    assert volume in volumes(lab, DEST)
    with lab.connect(DEST) as conn:
        xml = conn.lookupByName(name).XMLDesc(0)
    assert f"volume='{volume}'" in xml
    await until(fleet, f"{name} only on {DEST}", lambda s: shown_on(s, name) == [(DEST, "running")])
    print(f"\ncopy-storage migration: {took:.1f} s; progress seen: {[p for p, m in reports if 'MiB' in m]}")


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
async def test_a_cancelled_migration_leaves_the_guest_running_on_its_source(
    lab: Lab, fleet: Fleet, scratch: Callable[..., str]
) -> None:
    name = scratch(SRC, "miga", mib=FILL_MIB + 128)
    await running_in_fleet(fleet, SRC, name)
    await asyncio.to_thread(fill_memory, lab, SRC, name)
    reports = watch(fleet, "migrate")
    # FILL_MIB of non-zero memory at 1 MiB/s: minutes of transfer, however fast the machine
    [task] = submit(fleet, "migrate", [name], SRC, dest=DEST, bandwidth_mib=1)
    assert task.cancellable
    await until(
        fleet, "the memory transfer under way", lambda s: any(p and "MiB" in m for p, m in reports), 120
    )
    assert task.state == TaskState.RUNNING
    # libvirt's word that the migration is mid-way: at 1 MiB/s, what is left takes far longer than a cancel
    left = await asyncio.to_thread(migration_left, lab, SRC, name)
    assert left > 32 * 2**20, f"only {left} bytes left to send: not mid-migration"
    assert fleet.tasks.cancel(task.id) is None
    assert await fleet.tasks.wait([task], within=60), task.as_dict()
    assert task.state == TaskState.CANCELLED, task.as_dict()
    assert where(lab, name) == {SRC: "running"}
    assert persistent(lab, SRC, name)
    with lab.connect(SRC) as conn:
        assert conn.lookupByName(name).jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_NONE
    await until(fleet, f"{name} still on {SRC}", lambda s: shown_on(s, name) == [(SRC, "running")])
    print(f"\ncancelled at {[p for p, m in reports if 'MiB' in m][-1]:.1f} %: {task.error}")


async def test_migration_refuses_bad_requests_and_touches_nothing(
    lab: Lab, fleet: Fleet, runtime: Path, scratch: Callable[..., str]
) -> None:
    running = scratch(SRC, "migb")
    stopped = scratch(SRC, "migo", start=False)
    await running_in_fleet(fleet, SRC, running)
    await seen(fleet, SRC, stopped)
    before = {running: where(lab, running), stopped: where(lab, stopped)}
    cases: list[tuple[str, dict[str, Any], str]] = [
        (running, {"dest": "nosuch"}, "no host 'nosuch' in the inventory"),
        (running, {"dest": SRC}, f"already on {SRC}"),
        (running, {}, "say where to"),
        (running, {"dest": DEST, "bandwidth_mib": -1}, "bandwidth_mib"),
    ]
    for vm, args, why in cases:
        [step] = operations.plan(fleet.state, "migrate", fleet.state.find_vm(vm, SRC), args)
        assert step.refusal is not None and why in step.refusal, (args, step.refusal)  # checked, not run
        [task] = await act(fleet, "migrate", [vm], host=SRC, **args)
        assert task.state == TaskState.FAILED, (args, task.as_dict())
        assert task.error == step.refusal
    # a VM of that name on the destination already (defined, not running)
    lab.add_guest(DEST, running, start=False)
    await seen(fleet, DEST, running)
    [task] = await act(fleet, "migrate", [running], host=SRC, dest=DEST)
    assert task.state == TaskState.FAILED and f"{DEST} already has a VM named {running}" in task.error
    lab.remove_guest(DEST, running)
    # a read-only destination: a fleet of its own, where kvm03 is connected read-only
    ro = Fleet([spec(lab, SRC), spec(lab, DEST, profile="viewer")], STEADY, runtime / "ro")
    await ro.start()
    try:
        await ro.connected(within=30)
        await running_in_fleet(ro, SRC, running)
        [task] = await act(ro, "migrate", [running], host=SRC, dest=DEST)
        assert task.state == TaskState.FAILED and "needs the operator profile" in task.error, task.error
    finally:
        await ro.stop()
    assert {running: where(lab, running), stopped: where(lab, stopped)} == before


async def test_a_configured_migration_address_is_where_the_memory_goes(
    lab: Lab, runtime: Path, scratch: Callable[..., str]
) -> None:
    """migration_address names where the destination's QEMU listens: one that is not the destination's
    own fails (and the guest stays), the destination's name works."""
    name = scratch(SRC, "migu")
    wrong = Fleet(
        [spec(lab, SRC), spec(lab, DEST, migration_address=lab.host("kvm01").address)], STEADY, runtime / "a"
    )
    await wrong.start()
    try:
        await wrong.connected(within=30)
        await running_in_fleet(wrong, SRC, name)
        [task] = await act(wrong, "migrate", [name], host=SRC, dest=DEST)
        assert task.state == TaskState.FAILED, task.as_dict()
        assert task.error.startswith(f"migration to {DEST} failed: "), task.error
        assert f"{name} still runs on {SRC}" in task.error
        assert where(lab, name) == {SRC: "running"}
    finally:
        await wrong.stop()
    right = Fleet([spec(lab, SRC), spec(lab, DEST, migration_address=DEST)], STEADY, runtime / "b")
    await right.start()
    try:
        await right.connected(within=30)
        await running_in_fleet(right, SRC, name)
        [task] = await act(right, "migrate", [name], host=SRC, dest=DEST)
        assert task.state == TaskState.DONE, task.error
        assert where(lab, name) == {DEST: "running"}
    finally:
        await right.stop()


# ---------------------------------------------------------------------------------------------- console


class Output:
    """What a file descriptor gives, gathered on the event loop as it comes."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = bytearray()
        self.changed = asyncio.Event()
        os.set_blocking(fd, False)
        asyncio.get_running_loop().add_reader(fd, self._read)

    def _read(self) -> None:
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # a pty's master once its slave is closed
            chunk = b""
        if chunk:
            self.data.extend(chunk)
        else:
            asyncio.get_running_loop().remove_reader(self.fd)
        self.changed.set()

    async def until(
        self,
        needle: bytes,
        within: float,
        nudge: Callable[[], None] | None = None,
        relaying: asyncio.Future[str] | None = None,
    ) -> None:
        """Until `needle` shows; `nudge` (say, type the command again) every few seconds meanwhile: a guest
        that is still booting has no shell on its serial port yet. Fails at once if `relaying` ends."""
        deadline = time.monotonic() + within
        next_nudge = 0.0
        while needle not in self.data:
            now = time.monotonic()
            if relaying is not None and relaying.done():
                pytest.fail(f"the relay ended ({relaying.result()}) before {needle!r} showed")
            if now >= deadline:
                pytest.fail(f"no {needle!r} after {within} s; got: {bytes(self.data[-400:])!r}")
            if nudge is not None and now >= next_nudge:
                nudge()
                next_nudge = now + 3.0
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(1.0, deadline - now))

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)


COMMAND = b"echo vimtui-$((6*7))\r"
ANSWER = b"vimtui-42"  # the shell's result; the typed line echoes back as 'vimtui-$((6*7))'


def typing(fd: int) -> Callable[[], None]:
    """Types the command on `fd` (after a return, for a fresh prompt)."""

    def type_it() -> None:
        os.write(fd, b"\r" + COMMAND)

    return type_it


def console_free(lab: Lab, host: str, name: str) -> bool:
    """True when nobody holds the guest's console (opening it without FORCE works)."""
    with lab.connect(host) as conn:
        stream = conn.newStream(0)
        try:
            conn.lookupByName(name).openConsole(None, stream, 0)
        except libvirt.libvirtError:
            return False
        stream.abort()
        return True


def states_over(conn: Any, uuid: str, n: int = 20) -> list[int]:
    """The guest's state from `n` back-to-back calls on `conn` (how long they take: bench/console.py)."""
    return [conn.lookupByUUIDString(uuid).info()[0] for _ in range(n)]


async def wait_true(what: str, pred: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(pred):
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
async def test_console_relay_over_the_fleets_connection_runs_a_command_and_detaches(
    lab: Lab, fleet: Fleet, scratch: Callable[..., str]
) -> None:
    host = "kvm01"
    name = scratch(host, "con")
    state = await running_in_fleet(fleet, host, name)
    [vm] = state.find_vm(name, host)
    assert console_refusal(vm) is None
    conn = fleet.sessions[host].connection()  # through vimtui's SSH tunnel
    stream, shown, _ = await asyncio.to_thread(open_console, conn, vm.uuid)
    assert shown == name
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    out = Output(out_r)
    t0 = time.monotonic()
    relaying = asyncio.ensure_future(asyncio.to_thread(relay, stream, in_r, out_w))
    try:
        await out.until(ANSWER, 120, nudge=typing(in_w), relaying=relaying)
        answered = time.monotonic() - t0
        assert not relaying.done()
        assert not console_free(lab, host, name)  # the relay holds it
        # the connection is the one the host's polls use: while the console waits for output, other calls
        # on it go through and answer (a blocking recv held its I/O and left them waiting, for good)
        states = await asyncio.wait_for(asyncio.to_thread(states_over, conn, vm.uuid), 300)
        assert states == [libvirt.VIR_DOMAIN_RUNNING] * 20, states
        os.write(in_w, b"echo not-sent" + ESCAPE + b"\r")  # what follows the escape is not sent
        reason = await asyncio.wait_for(relaying, 10)
    finally:
        if not relaying.done():
            os.write(in_w, ESCAPE)
            await asyncio.wait_for(relaying, 10)
        out.close()
        for fd in (in_r, in_w, out_r, out_w):
            os.close(fd)
    assert reason == "detached (^])"
    await wait_true("the console to be released", lambda: console_free(lab, host, name), 10)
    assert where(lab, name) == {host: "running"}
    assert fleet.state.host(host).status.healthy  # type: ignore[union-attr]
    print(f"\nconsole answered after {answered:.1f} s")


async def test_console_relay_ends_when_the_guest_goes_away(
    lab: Lab, fleet: Fleet, scratch: Callable[..., str]
) -> None:
    host = "kvm01"
    name = scratch(host, "cond")
    state = await running_in_fleet(fleet, host, name)
    [vm] = state.find_vm(name, host)
    stream, _, _ = await asyncio.to_thread(open_console, fleet.sessions[host].connection(), vm.uuid)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    out = Output(out_r)
    relaying = asyncio.ensure_future(asyncio.to_thread(relay, stream, in_r, out_w))
    try:
        await out.until(ANSWER, 120, nudge=typing(in_w), relaying=relaying)
        with lab.connect(host) as conn:
            conn.lookupByName(name).destroy()
        reason = await asyncio.wait_for(relaying, 20)
    finally:
        if not relaying.done():
            os.write(in_w, ESCAPE)
            await asyncio.wait_for(relaying, 10)
        out.close()
        for fd in (in_r, in_w, out_r, out_w):
            os.close(fd)
    assert reason.startswith("the console closed"), reason
    state = await until(fleet, f"{name} shut off", lambda s: s.find_vm(name, host)[0].state == "shutoff")
    refusal = console_refusal(state.find_vm(name, host)[0])
    assert refusal is not None and "only a running VM has a console" in refusal


async def test_attach_terminal_sets_raw_mode_and_restores_the_terminal(
    lab: Lab, fleet: Fleet, scratch: Callable[..., str]
) -> None:
    host = "kvm01"
    name = scratch(host, "cont")
    state = await running_in_fleet(fleet, host, name)
    [vm] = state.find_vm(name, host)
    master, slave = os.openpty()
    cooked = termios.tcgetattr(slave)
    out = Output(master)
    conn = fleet.sessions[host].connection()
    attached = asyncio.ensure_future(asyncio.to_thread(attach_terminal, conn, vm.uuid, ESCAPE, slave, slave))
    try:
        await out.until(f"Connected to {name} (escape: ^])".encode(), 30)
        raw = termios.tcgetattr(slave)
        assert not raw[3] & termios.ECHO and not raw[3] & termios.ICANON  # raw while attached
        await out.until(ANSWER, 120, nudge=typing(master), relaying=attached)
        os.write(master, ESCAPE)
        reason = await asyncio.wait_for(attached, 10)
        assert reason == f"{name}: detached (^])"
        assert termios.tcgetattr(slave) == cooked  # restored
    finally:
        if not attached.done():
            os.write(master, ESCAPE)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(attached, 10)
        out.close()
        os.close(master)
        os.close(slave)
    assert where(lab, name) == {host: "running"}
