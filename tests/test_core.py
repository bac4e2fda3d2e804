"""Core pieces without the lab: lanes, backoff, the event loop bridge, domain XML, ticks, the CLI's errors.

libvirt's test:/// driver stands in for a host where a real one is not the point (it is still libvirt)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import libvirt
import pytest

from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import parse_connect
from vimtui.core.model import HostStatus, VmState
from vimtui.core.poll.domxml import parse_domain_xml
from vimtui.core.poll.eventloop import ensure_event_impl
from vimtui.core.poll.host_calls import PollResult
from vimtui.core.poll.lane import CallTimeout, Lane, LaneClosed
from vimtui.core.poll.session import SessionSettings, backoff, is_local_uri

VIMTUI = str(Path(sys.executable).parent / "vimtui")


# ----------------------------------------------------------------------------------------------- lanes


async def test_a_stuck_call_misses_its_deadline_without_holding_up_other_lanes_or_the_loop() -> None:
    release = threading.Event()
    slow, fast = Lane("slow"), Lane("fast")
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    beat = asyncio.create_task(heartbeat())
    try:
        stuck = asyncio.create_task(slow.call(0.5, release.wait, 30))
        # the other lane answers at once, many times, while the slow one is stuck
        for _ in range(20):
            assert (await fast.call(5, lambda: threading.current_thread().name)).startswith("lane-fast")
        with pytest.raises(CallTimeout, match="slow: wait took longer than 0.5 s"):
            await stuck
        assert ticks > 10  # the loop kept running throughout
    finally:
        release.set()
        beat.cancel()
        slow.close()
        fast.close()


async def test_calls_on_one_lane_run_one_at_a_time_in_order() -> None:
    lane = Lane("serial")
    running, seen, overlap = 0, [], False

    def work(i: int) -> int:
        nonlocal running, overlap
        running += 1
        overlap |= running > 1
        time.sleep(0.01)
        seen.append(i)
        running -= 1
        return i

    results = await asyncio.gather(*(lane.call(5, work, i) for i in range(10)))
    lane.close()
    assert results == list(range(10)) and seen == list(range(10)) and not overlap


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        base = min(30.0, 2.0 ** (attempt - 1))
        for _ in range(50):
            assert 0.8 * base <= backoff(attempt, 30.0, rng) <= 1.2 * base
    values = {round(backoff(3, 30.0, rng), 6) for _ in range(20)}
    assert len(values) > 10  # jitter: hosts that failed together do not retry together


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("qemu:///system", True),
        ("qemu+unix:///system?socket=/x", True),
        ("qemu+ssh://h/system", False),
        ("qemu+tcp://h/system", False),
        ("test:///default", False),
    ],
)
def test_local_uri(uri: str, local: bool) -> None:
    assert is_local_uri(uri) is local


# ------------------------------------------------------------------------------------------ event bridge


async def test_libvirt_timers_added_from_another_thread_fire_on_the_loop() -> None:
    ensure_event_impl()
    loop_thread = threading.get_ident()
    fired: list[int] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def cb(timer: int, _opaque: object) -> None:
        fired.append(threading.get_ident())
        libvirt.virEventRemoveTimeout(timer)
        loop.call_soon(done.set)

    def from_thread() -> int:
        return int(libvirt.virEventAddTimeout(10, cb, None))

    timer = await asyncio.to_thread(from_thread)
    assert timer >= 0
    await asyncio.wait_for(done.wait(), 30)
    assert fired and fired[0] == loop_thread


# ------------------------------------------------------------------------------------------- domain XML

DOMAIN_XML = """<domain type='kvm'>
  <name>web01</name><uuid>0e2b3e7e-7f1e-4c25-8a7e-0b3ad3f1c111</uuid><title>front end</title>
  <metadata><vimtui:vm xmlns:vimtui="https://vimtui.dev/xmlns/vm/1">
    <vimtui:tags>web, prod</vimtui:tags><vimtui:tenant>acme</vimtui:tenant></vimtui:vm></metadata>
  <memory unit='GiB'>2</memory><vcpu placement='static'>2</vcpu>
  <os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type></os>
  <cpu mode='host-model'/>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/web01.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><target dev='sda' bus='sata'/></disk>
    <interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='default'/>
      <model type='virtio'/><target dev='vnet3'/></interface>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
  </devices>
</domain>"""


def test_domain_xml_gives_disks_nics_metadata_and_the_agent() -> None:
    d = parse_domain_xml(DOMAIN_XML, persistent=True, autostart=True)
    assert (d.name, d.title, d.memory_kib, d.vcpus, d.machine, d.firmware) == (
        "web01",
        "front end",
        2 * 1024 * 1024,
        2,
        "q35",
        "efi",
    )
    assert [(x.target, x.device, x.source, x.driver_type) for x in d.disks] == [
        ("vda", "disk", "/var/lib/libvirt/images/web01.qcow2", "qcow2"),
        ("sda", "cdrom", None, None),
    ]
    assert [(n.mac, n.source, n.model, n.target) for n in d.nics] == [
        ("52:54:00:aa:bb:cc", "default", "virtio", "vnet3")
    ]
    assert (d.tags, d.tenant, d.has_agent, d.cpu_model, d.autostart) == (
        ("web", "prod"),
        "acme",
        True,
        "host-model",
        True,
    )


# ------------------------------------------------------------------------------------- fleet on test:///


@pytest.fixture
async def test_fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    fleet = Fleet([parse_connect("test:///default")], SessionSettings(interval=0.5), tmp_path / "run")
    await fleet.start(tick=False)
    await fleet.connected(within=10)
    # a host is polled once as soon as it connects: let that first poll and its details fetch end
    await fleet.wait_for(lambda s: s.vms and all(v.details for v in s.vms.values()), 10)
    session = next(iter(fleet.sessions.values()))
    for _ in range(1000):
        if not session.polling:
            break
        await asyncio.sleep(0.005)
    for _ in range(5):  # and let the publish it scheduled run
        await asyncio.sleep(0)
    yield fleet
    await fleet.stop()


async def test_a_tick_publishes_one_new_versioned_snapshot(test_fleet: Fleet) -> None:
    seen = []
    test_fleet.subscribe(seen.append)
    before = test_fleet.state
    before_vms = dict(before.vms)
    state = await test_fleet.tick(deadline=5)
    # the tick published its snapshot (address look-ups its poll started may publish too: fewer than 3)
    assert state in seen and len(seen) <= 2 and state.version > before.version
    assert [s.version for s in seen] == sorted({s.version for s in seen})
    (host,) = state.hosts
    assert host.status == HostStatus.UP and host.info is not None and host.info.hypervisor == "TEST"
    assert [v.name for v in state.vms.values()] == ["test"]
    assert dict(before.vms) == before_vms and before.vms[next(iter(before_vms))] is not state.vms.get(
        next(iter(before_vms))
    )  # a new snapshot holds new VM states; the published one is never changed afterwards


async def test_vm_keys_carry_libvirts_own_uuid_text(test_fleet: Fleet) -> None:
    state = await test_fleet.tick(deadline=5)
    conn = libvirt.open("test:///default")
    try:
        uuids = {dom.UUIDString() for dom in conn.listAllDomains()}
    finally:
        conn.close()
    assert uuids and {vm.uuid for vm in state.vms.values()} == uuids
    assert all(key == f"{vm.host}/{vm.uuid}" for key, vm in state.vms.items())


async def test_a_polled_vm_state_is_an_ordinary_frozen_vm_state(test_fleet: Fleet) -> None:
    """A poll builds its VmStates without their __init__ (see host._VmStateBuilder): the same objects."""
    await test_fleet.tick(deadline=5)
    state = await test_fleet.tick(deadline=5)
    ((key, vm),) = state.vms.items()
    assert type(vm) is VmState and key == vm.key
    assert vm == VmState(**{f.name: getattr(vm, f.name) for f in dataclasses.fields(VmState)})
    assert vm.rates is not None and vm.sample is not None and vm.details is not None and not vm.stale
    with pytest.raises(dataclasses.FrozenInstanceError):
        vm.name = "other"  # type: ignore[misc]
    assert dataclasses.replace(vm, stale=True).stale and not vm.stale
    # each poll is in the history under the VM's key
    assert key in test_fleet.vm_history and test_fleet.vm_history.latest(key, "cpu") == (
        pytest.approx(vm.rates.cpu_pct, abs=0.005) if vm.rates.cpu_pct is not None else None
    )


async def test_an_event_changes_the_picture_without_a_tick(test_fleet: Fleet) -> None:
    await test_fleet.tick(deadline=30)
    session = test_fleet.sessions["test-default"]
    await session.lane.call(30, lambda: session._conn.lookupByName("test").suspend())
    state = await test_fleet.wait_for(lambda s: s.vms and next(iter(s.vms.values())).state == "paused", 30)
    assert test_fleet.ticks == 1 and state.version >= 3
    assert [e.kind for e in test_fleet.events][-1] == "suspended"


async def test_ticks_never_overlap_and_a_late_host_is_degraded(test_fleet: Fleet) -> None:
    session = test_fleet.sessions["test-default"]
    gate = threading.Event()
    real = session._poll_blocking
    calls = 0

    def slow_poll(active: int | None = None) -> PollResult:  # fault injection in our own code: a late host
        nonlocal calls
        calls += 1
        gate.wait(10)
        return real(active)

    session._poll_blocking = slow_poll  # type: ignore[method-assign]
    try:
        await test_fleet.tick(deadline=0.2)
        await test_fleet.tick(deadline=0.2)  # the first poll is still running: no second one
        assert calls == 1
        assert test_fleet.state.hosts[0].status == HostStatus.DEGRADED
        assert test_fleet.state.hosts[0].late_ticks == 2
    finally:
        gate.set()
    state = await test_fleet.wait_for(lambda s: s.hosts[0].status == HostStatus.UP, 30)
    assert state.hosts[0].last_poll > 0


# --------------------------------------------------------------------------------------------- the CLI


def run_cli(*args: str, config: str = "", tmp: Path) -> subprocess.CompletedProcess[str]:
    path = tmp / "config.toml"
    path.write_text(config)
    return subprocess.run(
        [VIMTUI, "--config", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ('[[hosts]]\nname = "a"\naddress = "x"\nport = \n', ":4: invalid TOML"),
        ("[defaults]\ninterval = 2\nintervall = 3\n", ":3: defaults.intervall: unknown key"),
        ('[[hosts]]\nname = "a"\naddress = "x"\nport = "22"\n', ":4: hosts[0].port: expected an integer"),
        ('# fleet\n[[hosts]]\nname = "a"\n', ":2: hosts[0].address: required"),
    ],
)
def test_bad_config_exits_2_naming_file_line_and_key(tmp_path: Path, config: str, expected: str) -> None:
    out = run_cli("hosts", config=config, tmp=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith(f"vimtui: error: {tmp_path / 'config.toml'}{expected}")
    assert out.stdout == ""


def test_bad_connect_and_usage_exit_2(tmp_path: Path) -> None:
    assert run_cli("hosts", "--connect", "kvm01", tmp=tmp_path).returncode == 2
    assert run_cli("stats", "--count", "0", tmp=tmp_path).returncode == 2
    out = run_cli("vms", tmp=tmp_path)
    assert out.returncode == 2 and "no hosts" in out.stderr


def test_cli_vms_json_on_the_test_driver(tmp_path: Path) -> None:
    out = run_cli("vms", "--json", "--connect", "test:///default", tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    (vm,) = json.loads(out.stdout)
    assert (vm["name"], vm["host"], vm["state"]) == ("test", "test-default", "running")


async def test_a_closed_lane_answers_its_queued_calls_without_running_them() -> None:
    """close() with a call running and others queued: the running one ends on its own, the queued ones
    are answered LaneClosed (a CallTimeout: the session's drop path) and never run; later calls too."""
    lane = Lane("closing")
    release = threading.Event()
    ran: list[int] = []

    def work(i: int) -> int:
        ran.append(i)
        if i == 0:
            release.wait(30)
        return i

    calls = [asyncio.create_task(lane.call(30, work, i)) for i in range(3)]
    deadline = asyncio.get_running_loop().time() + 10
    while not ran:  # the first one is running
        assert asyncio.get_running_loop().time() < deadline, "the lane never ran the first call"
        await asyncio.sleep(0.01)
    lane.close()
    release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[0] == 0
    assert all(isinstance(r, LaneClosed) for r in results[1:]) and ran == [0]
    with pytest.raises(LaneClosed, match="closing: not connected"):
        await lane.call(5, work, 9)


async def test_an_error_in_a_call_reaches_its_caller_and_the_lane_goes_on() -> None:
    lane = Lane("errors")
    try:
        with pytest.raises(ValueError, match="bad"):
            await lane.call(5, int, "bad")
        assert await lane.call(5, int, "7") == 7
    finally:
        lane.close()
