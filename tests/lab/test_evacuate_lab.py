"""Host evacuation against the lab: a host with running and shut-off guests (diskless and with a volume in
its own pool) emptied through the same path as the screen and the CLI, and every outcome checked over
direct connections to the hosts (virsh's view): where each guest is defined, in which state, its volume's
bytes; and a move made to fail (a volume of that name already on every other host) leaving its guest on
the source as it was while the others go."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path

import libvirt
import pytest

from tests.lab.lab import Lab
from tests.lab.support import FAST, act, seen, started, until
from vimtui.core.actions import operations
from vimtui.core.actions.evacuate import plan_for
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import Task, TaskState
from vimtui.core.model import state_name

pytestmark = pytest.mark.lab

SRC = "kvm03"
RESIDENT = "cache01"
"""The lab's own guest on SRC: it leaves with the others and is put back afterwards."""
STEADY = replace(FAST, interval=3.0, call_timeout=20.0, keepalive_interval=5.0, keepalive_count_max=4)


@pytest.fixture
async def fleet(lab: Lab, tmp_path: Path) -> AsyncIterator[Fleet]:
    f = await started(lab, tmp_path / "run", **asdict(STEADY))
    yield f
    # the lab's own guest back where every other test expects it
    if where(lab, RESIDENT) != {SRC: "running"}:
        [back] = await act(f, "migrate", [RESIDENT], dest=SRC, within=300)
        assert back.ok, back.error
    await f.stop()


@pytest.fixture
def scratch(lab: Lab) -> Iterator[Callable[..., str]]:
    made: list[str] = []

    def make(prefix: str, *, disk: bool, start: bool) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        made.append(name)
        lab.add_guest(SRC, name, disk=disk, start=start)
        return name

    try:
        yield make
    finally:
        for name in made:
            for h in lab.hosts:
                lab.remove_guest(h.name, name)


def where(lab: Lab, name: str) -> dict[str, str]:
    out = {}
    for h in lab.hosts:
        with lab.connect(h.name) as conn:
            try:
                out[h.name] = state_name(conn.lookupByName(name).state()[0])
            except libvirt.libvirtError:
                continue
    return out


def defined_on(lab: Lab, host: str) -> set[str]:
    with lab.connect(host) as conn:
        return {d.name() for d in conn.listAllDomains(0)}


def digest(lab: Lab, host: str, volume: str) -> str:
    with lab.connect(host) as conn:
        vol = conn.storagePoolLookupByName("default").storageVolLookupByName(volume)
        stream = conn.newStream(0)
        vol.download(stream, 0, 0, 0)
        h = hashlib.sha256()
        stream.recvAll(lambda _s, data, _o: h.update(data), None)
        stream.finish()
        return h.hexdigest()


async def evacuate(fleet: Fleet, host: str, within: float = 900) -> tuple[Task, list[Task]]:
    """host.evacuate through operations, as the screen and `vimtui host evacuate` run it; the evacuation's
    task and the moves it started."""
    before = set(fleet.tasks.tasks)
    [h] = [x for x in fleet.state.hosts if x.name == host]
    [task] = operations.submit(fleet, operations.plan_hosts(fleet.state, "evacuate", [h], {}))
    assert await fleet.tasks.wait([task], within=within), task.as_dict()
    moves = [t for i, t in fleet.tasks.tasks.items() if i not in before and t.action == "migrate"]
    return task, moves


@pytest.mark.timeout(1200)
async def test_evacuation_empties_the_host_running_guests_still_running(
    lab: Lab, fleet: Fleet, scratch: Callable[..., str]
) -> None:
    live_disk = scratch("evl", disk=True, start=True)
    cold_disk = scratch("evc", disk=True, start=False)
    cold_bare = scratch("evb", disk=False, start=False)
    guests = {RESIDENT: "running", live_disk: "running", cold_disk: "shutoff", cold_bare: "shutoff"}
    cold_bytes = digest(lab, SRC, f"{cold_disk}.qcow2")
    for g in guests:
        await seen(fleet, SRC, g)
    await until(fleet, "guests running", lambda s: all(v.state == "running" for v in s.find_vm(live_disk)))
    # the plan first: every guest, how and where, and nothing touched
    plan = await plan_for(fleet, SRC)
    lines = "\n".join(plan.lines())
    assert {m.vm for m in plan.moves} == set(guests), lines
    assert all(m.refusal is None and m.dest not in (None, SRC) for m in plan.moves), lines
    how = {m.vm: m.how for m in plan.moves}
    assert how == {RESIDENT: "live", live_disk: "live+disks", cold_disk: "cold", cold_bare: "cold"}, lines
    # the CLI's dry run shows the same plan, and touches nothing
    dry = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "vimtui"), "--config", str(lab.config_file)]
        + ["host", "evacuate", SRC, "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"evacuate {SRC}: 4 of 4 VMs to move" in dry.stdout, dry.stdout
    assert f"• {cold_disk} (shutoff): cold to kvm0" in dry.stdout, dry.stdout
    assert f"• {live_disk} (running): live, disks copied to kvm0" in dry.stdout, dry.stdout
    assert defined_on(lab, SRC) >= set(guests)
    assert where(lab, live_disk) == {SRC: "running"}
    # then the moves
    task, moves = await evacuate(fleet, SRC)
    assert task.state == TaskState.DONE, (task.error, [(t.vm, t.state, t.error) for t in moves])
    assert task.result.startswith(f"4 of 4 moved off {SRC}"), task.result
    assert sorted(t.vm for t in moves) == sorted(guests)
    # never more at once than the limit (2): at each move's start, count those started and not returned
    spans = [(t.started or 0.0, t.returned or 0.0) for t in moves]
    assert all(a and b for a, b in spans), spans
    at_once = max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans)
    assert at_once <= fleet.evacuate_parallel == 2, spans
    # libvirt's word: the source is empty, each guest defined on one other host only, in the same state
    assert defined_on(lab, SRC) == set()
    for g, state in guests.items():
        on = where(lab, g)
        assert len(on) == 1 and SRC not in on and list(on.values()) == [state], (g, on)
    [dest] = where(lab, cold_disk)
    assert digest(lab, dest, f"{cold_disk}.qcow2") == cold_bytes
    with lab.connect(SRC) as conn:
        pool = conn.storagePoolLookupByName("default")
        pool.refresh(0)
        assert not [v.name() for v in pool.listAllVolumes() if v.name().startswith(("evl-", "evc-"))]
    print(f"\n{task.result}\n{lines}")


@pytest.mark.timeout(1200)
async def test_a_move_made_to_fail_leaves_its_guest_on_the_source_and_the_rest_go(
    lab: Lab, fleet: Fleet, scratch: Callable[..., str]
) -> None:
    doomed = scratch("evf", disk=True, start=False)
    volume = f"{doomed}.qcow2"
    before = digest(lab, SRC, volume)
    with lab.connect(SRC) as conn:
        xml_before = conn.lookupByName(doomed).XMLDesc(0)
    others = [h.name for h in lab.hosts if h.name != SRC]
    for h in others:  # a volume of that name on every destination: the cold copy cannot be made
        with lab.connect(h) as conn:
            conn.storagePoolLookupByName("default").createXML(
                f"<volume><name>{volume}</name><capacity unit='MiB'>1</capacity></volume>", 0
            )
    try:
        await seen(fleet, SRC, doomed)
        task, moves = await evacuate(fleet, SRC)
    finally:
        for h in others:
            with lab.connect(h) as conn:
                conn.storagePoolLookupByName("default").storageVolLookupByName(volume).delete(0)
    assert task.state == TaskState.FAILED, task.result
    assert f"1 of 2 moved off {SRC}" in task.error and doomed in task.error, task.error
    [failed] = [t for t in moves if t.vm == doomed]
    assert failed.state == TaskState.FAILED and "already exists" in failed.error, failed.error
    # the doomed guest: on the source only, as it was, its volume's bytes the same
    assert where(lab, doomed) == {SRC: "shutoff"}
    with lab.connect(SRC) as conn:
        assert conn.lookupByName(doomed).XMLDesc(0) == xml_before
    assert digest(lab, SRC, volume) == before
    # the other moved and still runs
    on = where(lab, RESIDENT)
    assert SRC not in on and list(on.values()) == ["running"], on
