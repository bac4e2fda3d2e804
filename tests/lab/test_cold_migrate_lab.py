"""Cold migration against the lab: a shut-off guest's definition and volume copied from one host's pool to
another's over vimtui's SSH tunnels, and every outcome checked over direct connections to the hosts: the
bytes of the volume, where the guest is defined, that it starts there, and that a move made to fail leaves
the source as it was and nothing on the destination."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path

import libvirt
import pytest

from tests.lab.lab import Lab
from tests.lab.support import FAST, act, seen, started
from vimtui.core.actions import operations
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import Task, TaskState
from vimtui.core.model import state_name

pytestmark = pytest.mark.lab

SRC, DEST = "kvm02", "kvm03"
STEADY = replace(FAST, interval=3.0, call_timeout=20.0, keepalive_interval=5.0, keepalive_count_max=4)
POOL_DIR = "/var/lib/libvirt/images"


@pytest.fixture
async def fleet(lab: Lab, tmp_path: Path) -> AsyncIterator[Fleet]:
    f = await started(lab, tmp_path / "run", **asdict(STEADY))
    yield f
    await f.stop()


@pytest.fixture
def scratch(lab: Lab) -> Iterator[Callable[..., str]]:
    """Makes scratch guests; removes each from every host afterwards (a move may leave it on either)."""
    made: list[str] = []

    def make(host: str, prefix: str, *, disk: bool = True, start: bool = False, mib: int = 112) -> str:
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
    out = {}
    for h in lab.hosts:
        with lab.connect(h.name) as conn:
            try:
                out[h.name] = state_name(conn.lookupByName(name).state()[0])
            except libvirt.libvirtError:
                continue
    return out


def volumes(lab: Lab, host: str) -> set[str]:
    with lab.connect(host) as conn:
        pool = conn.storagePoolLookupByName("default")
        pool.refresh(0)
        return {v.name() for v in pool.listAllVolumes()}


def volume_digest(lab: Lab, host: str, volume: str) -> tuple[int, str]:
    """Capacity and SHA-256 of a volume's bytes as libvirt streams them out of the host (holes as zeros)."""
    with lab.connect(host) as conn:
        vol = conn.storagePoolLookupByName("default").storageVolLookupByName(volume)
        stream = conn.newStream(0)
        vol.download(stream, 0, 0, 0)
        h = hashlib.sha256()
        stream.recvAll(lambda _s, data, _o: h.update(data), None)
        stream.finish()
        return int(vol.info()[1]), h.hexdigest()


def fill_volume(lab: Lab, host: str, volume: str, mib: int) -> None:
    """Write `mib` MiB of patterns into a qcow2 volume (qemu-io on the host, so it stays a valid image):
    clusters with data the copy must carry byte for byte, and a hole after them."""
    path = f"{POOL_DIR}/{volume}"
    half = mib // 2
    lab.exec(host, ["qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a 0 {half}M", path], timeout=120)
    lab.exec(host, ["qemu-io", "-f", "qcow2", "-c", f"write -P 0xa5 {half + 1}M {half}M", path], timeout=120)
    with lab.connect(host) as conn:
        conn.storagePoolLookupByName("default").refresh(0)


async def test_a_shut_off_guest_moves_cold_with_its_volume_verified(
    lab: Lab, fleet: Fleet, scratch: Callable[..., str]
) -> None:
    name = scratch(SRC, "cold")
    volume = f"{name}.qcow2"
    before = volume_digest(lab, SRC, volume)
    assert volume not in volumes(lab, DEST)
    await seen(fleet, SRC, name)
    [task] = await act(fleet, "migrate", [name], host=SRC, dest=DEST, within=300)
    assert task.state == TaskState.DONE, task.error
    assert task.result.startswith(f"moved cold to {DEST} in "), task.result
    assert "verified" in task.result, task.result
    # libvirt's word: defined on the destination only, shut off; the volume moved with the same bytes
    assert where(lab, name) == {DEST: "shutoff"}
    assert volume in volumes(lab, DEST)
    assert volume not in volumes(lab, SRC)
    assert volume_digest(lab, DEST, volume) == before
    # and it runs there
    with lab.connect(DEST) as conn:
        dom = conn.lookupByName(name)
        assert f"volume='{volume}'" in dom.XMLDesc(0)
        dom.create()
    assert where(lab, name) == {DEST: "running"}


async def test_a_cold_move_that_fails_leaves_the_source_intact_and_nothing_behind(
    lab: Lab, fleet: Fleet, scratch: Callable[..., str]
) -> None:
    name = scratch(SRC, "coldf")
    volume = f"{name}.qcow2"
    before = volume_digest(lab, SRC, volume)
    with lab.connect(SRC) as conn:
        xml_before = conn.lookupByName(name).XMLDesc(0)
    await seen(fleet, SRC, name)
    lab.exec(DEST, ["chattr", "+i", POOL_DIR])  # root cannot create a file in it either
    try:
        [task] = await act(fleet, "migrate", [name], host=SRC, dest=DEST, within=300)
    finally:
        lab.exec(DEST, ["chattr", "-i", POOL_DIR])
    assert task.state == TaskState.FAILED, task.result
    assert f"{name} is still on {SRC}, unchanged" in task.error, task.error
    assert where(lab, name) == {SRC: "shutoff"}
    with lab.connect(SRC) as conn:
        assert conn.lookupByName(name).XMLDesc(0) == xml_before
    assert volume_digest(lab, SRC, volume) == before
    assert volume not in volumes(lab, DEST)


@pytest.mark.timeout(600)
async def test_a_cancelled_cold_move_removes_the_partial_copy(
    lab: Lab, fleet: Fleet, scratch: Callable[..., str]
) -> None:
    name = scratch(SRC, "coldc")
    volume = f"{name}.qcow2"
    await asyncio.to_thread(fill_volume, lab, SRC, volume, 48)
    before = volume_digest(lab, SRC, volume)
    await seen(fleet, SRC, name)
    found, errors = operations.resolve(fleet.state, [name], SRC)
    assert not errors
    copying = asyncio.Event()

    def note(t: Task) -> None:
        if t.action == "migrate" and t.state == TaskState.RUNNING and t.message.startswith("copying"):
            copying.set()

    fleet.tasks.subscribe(note)
    [task] = operations.submit(fleet, operations.plan(fleet.state, "migrate", found, {"dest": DEST}))
    await asyncio.wait_for(copying.wait(), 120)
    assert volume in volumes(lab, DEST)  # the partial copy is there while it runs
    assert fleet.tasks.cancel(task.id) is None
    assert await fleet.tasks.wait([task], within=120)
    assert task.state == TaskState.CANCELLED, (task.state, task.error, task.result)
    assert where(lab, name) == {SRC: "shutoff"}
    assert volume_digest(lab, SRC, volume) == before
    assert volume not in volumes(lab, DEST)
