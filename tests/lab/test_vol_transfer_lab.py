"""Volume upload and download against the lab, through vimtui's SSH tunnel: the bytes read back with virsh
over a direct connection (`vol-download`, `vol-info`), a poll of the host completing while a transfer
runs (the transfer goes chunk by chunk on the host's lane, never holding it), a cancelled upload leaving
no volume, and a refused upload leaving the volume as it was."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.lab import Lab
from tests.lab.support import started, until
from vimtui.core.actions import operations, targets, vol_transfer
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import Task, TaskState
from vimtui.core.model import FleetState, HostState

pytestmark = pytest.mark.lab

HOST = "kvm01"
POOL = "default"
MIB = 1024 * 1024


@pytest.fixture
async def fleet(lab: Lab, tmp_path: Path) -> AsyncIterator[Fleet]:
    f = await started(
        lab,
        tmp_path / "run",
        call_timeout=20.0,
        connect_timeout=20.0,
        keepalive_interval=5.0,
        keepalive_count_max=4,
    )
    # settled: up, and polled a few times since (a fresh lab's first connection can drop under load)
    polls: set[float] = set()

    def settled(s: Any) -> bool:
        h = s.host(HOST)
        if h is None or h.status != "up":
            polls.clear()
            return False
        polls.add(h.last_poll)
        return len(polls) >= 4

    await until(f, f"{HOST} up and polled", settled, 120)
    yield f
    await f.stop()


@pytest.fixture
def names(lab: Lab) -> Iterator[Callable[[str], str]]:
    """Fresh volume names; each volume deleted from the lab host afterwards."""
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(f"{prefix}-{uuid.uuid4().hex[:6]}")
        return made[-1]

    yield make
    for name in made:
        virsh(lab, "vol-delete", "--pool", POOL, name, check=False)


def hs(state: FleetState) -> HostState:
    h = state.host(HOST)
    assert h is not None
    return h


def virsh(lab: Lab, *argv: str, check: bool = True) -> str:
    """virsh over a direct connection to the lab host (not through vimtui)."""
    proc = subprocess.run(
        ["virsh", "-c", lab.host(HOST).direct_uri, *argv], capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"virsh {' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 * MIB):
            h.update(block)
    return h.hexdigest()


def vol_info(lab: Lab, name: str) -> dict[str, str]:
    out = virsh(lab, "vol-info", "--bytes", "--pool", POOL, name)
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def sparse_file(path: Path, data_mib: int, hole_mib: int) -> Path:
    """Random data, a hole, random data again, and a hole at the end."""
    with path.open("wb") as f:
        f.write(os.urandom(data_mib // 2 * MIB))
        f.seek(hole_mib * MIB, os.SEEK_CUR)
        f.write(os.urandom(data_mib // 2 * MIB + 12345))
        f.truncate(f.tell() + hole_mib * MIB)
    return path


def submit(fleet: Fleet, verb: str, volume: str, **args: Any) -> Task:
    """`vol VERB HOST/POOL/VOLUME` through the same path as the screen and the CLI."""
    act = operations.target_action("volume", verb)
    ref = targets.parse("volume", f"{HOST}/{POOL}/{volume}", fleet.state)
    [task] = operations.submit(fleet, operations.plan_targets(fleet.state, act, [ref], args))
    return task


async def test_upload_then_download_carries_every_byte_and_polls_go_on(
    lab: Lab, fleet: Fleet, names: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = sparse_file(tmp_path / "disk.img", data_mib=96, hole_mib=64)
    name = names("up")
    # chunks of at most 2 MiB: the upload is then at least 48 calls on the host's lane whatever the
    # machine's speed, and what the test asks of the lane meanwhile has turns between them (the lane takes
    # calls in the order they come: a question asked again as soon as it is answered waits at most for one
    # chunk). A fast machine once finished the whole upload between two looks of a test that asked only
    # every 0.3 s
    monkeypatch.setattr(vol_transfer, "MAX_CHUNK", 2 * MIB)
    idle = []
    for _ in range(5):
        t = time.monotonic()
        await fleet.ask(HOST, lambda conn: conn.getLibVersion())
        idle.append(time.monotonic() - t)
    task = submit(fleet, "upload", name, file=str(source), create=True)
    polls: list[float] = []  # seconds of each poll of the host that ended while the upload ran
    asked: list[float] = []  # seconds of each question answered while it ran

    async def ask_on() -> None:
        # the screen's door to the host answers too, while the upload runs
        while not task.done.is_set():
            t = time.monotonic()
            await fleet.ask(HOST, lambda conn: conn.getLibVersion())
            if not task.done.is_set():
                asked.append(time.monotonic() - t)

    async def poll_on() -> None:
        # a poll of the host asked for as soon as the last one ended (one already under way is waited for)
        while not task.done.is_set():
            h = hs(fleet.state)
            before = h.last_poll
            await fleet.tick(deadline=60)
            await fleet.wait_for(lambda s, b=before: hs(s).last_poll != b or task.done.is_set(), 60)
            h = hs(fleet.state)
            if not task.done.is_set() and h.last_poll != before:
                polls.append(h.poll_seconds)

    await asyncio.gather(ask_on(), poll_on(), fleet.tasks.wait([task], within=300))
    assert task.state == TaskState.DONE, task.error
    print(
        f"\nupload: {task.result}\n  polls during it (s): {[round(p, 2) for p in polls]}"
        f"\n  asks during it (s): {[round(a, 3) for a in asked]}\n  idle asks: {[round(a, 3) for a in idle]}"
    )
    assert polls, "no poll of the host completed while the upload ran"
    assert len(asked) >= 3, f"{len(asked)} questions to the host answered while the upload ran"
    # libvirt's word: the volume's size and its bytes, read back with virsh
    info = vol_info(lab, name)
    assert info["Capacity"].split()[0] == str(source.stat().st_size)
    back = tmp_path / "back.img"
    virsh(lab, "vol-download", "--pool", POOL, name, str(back))
    assert sha256(back) == sha256(source)
    assert "holes sent as holes" in task.result, task.result
    # and down again through vimtui: the same bytes, the holes kept as holes
    dest = tmp_path / "down"
    dest.mkdir()
    task = submit(fleet, "download", name, file=str(dest))
    await fleet.tasks.wait([task], within=300)
    assert task.state == TaskState.DONE, task.error
    print(f"download: {task.result}")
    got = dest / name
    assert sha256(got) == sha256(source)
    assert got.stat().st_blocks * 512 < got.stat().st_size - 64 * MIB
    assert [p.name for p in dest.iterdir()] == [name]  # no temporary file left


async def test_a_cancelled_upload_leaves_no_volume_and_a_refused_one_changes_nothing(
    lab: Lab, fleet: Fleet, names: Callable[[str], str], tmp_path: Path
) -> None:
    source = tmp_path / "big.img"
    source.write_bytes(os.urandom(192 * MIB))
    name = names("cancel")
    task = submit(fleet, "upload", name, file=str(source), create=True)
    seen: list[str] = []
    unsubscribe = fleet.tasks.subscribe(lambda t: t is task and seen.append(f"{t.state} {t.message}"))
    try:
        await fleet.wait_for(lambda _s: task.state.finished or (task.progress or 0) > 10, 180)
    except TimeoutError:
        pytest.fail(f"not 10 % uploaded after 180 s: {seen[-5:]}")
    unsubscribe()
    assert fleet.tasks.cancel(task.id) is None, task.error
    await fleet.tasks.wait([task], within=60)
    assert task.state == TaskState.CANCELLED, (task.state, task.error, task.result)
    assert f"the volume {POOL}/{name} it made was deleted" in task.error, task.error
    assert name not in virsh(lab, "vol-list", "--pool", POOL)
    # an existing volume too small for the file: refused, nothing written
    small = names("small")
    virsh(lab, "vol-create-as", POOL, small, "4M", "--format", "raw")
    before = tmp_path / "before.img"
    virsh(lab, "vol-download", "--pool", POOL, small, str(before))
    task = submit(fleet, "upload", small, file=str(source))
    await fleet.tasks.wait([task], within=60)
    assert task.state == TaskState.FAILED
    assert "holds 4.0M, the file is 192M" in task.error, task.error
    after = tmp_path / "after.img"
    virsh(lab, "vol-download", "--pool", POOL, small, str(after))
    assert sha256(after) == sha256(before)
    # the CLI: into the existing volume (asked, so --yes), then down again, each read back
    part = tmp_path / "part.img"
    part.write_bytes(os.urandom(3 * MIB))
    cli(lab, tmp_path, "vol", "upload", f"{HOST}/{POOL}/{small}", str(part), "--yes")
    virsh(lab, "vol-download", "--pool", POOL, small, str(after))
    data = after.read_bytes()
    assert data[: 3 * MIB] == part.read_bytes()
    assert data[3 * MIB :] == before.read_bytes()[3 * MIB :]  # the rest as it was
    out = cli(lab, tmp_path, "vol", "download", f"{HOST}/{POOL}/{small}", str(tmp_path / "got.img"))
    assert "downloaded 4.0M" in out, out
    assert sha256(tmp_path / "got.img") == sha256(after)
    # a raw file into a qcow2 volume: refused (its bytes would no longer be a qcow2 disk), nothing written
    disk = names("qdisk")
    virsh(lab, "vol-create-as", POOL, disk, "8M", "--format", "qcow2")
    virsh(lab, "vol-download", "--pool", POOL, disk, str(before))
    task = submit(fleet, "upload", disk, file=str(part))
    await fleet.tasks.wait([task], within=60)
    assert task.state == TaskState.FAILED
    assert "is qcow2, the file is raw" in task.error, task.error
    virsh(lab, "vol-download", "--pool", POOL, disk, str(after))
    assert sha256(after) == sha256(before)
    assert "<format type='qcow2'/>" in virsh(lab, "vol-dumpxml", "--pool", POOL, disk)


def cli(lab: Lab, tmp_path: Path, *argv: str) -> str:
    """vimtui's CLI on the lab (deadlines for a loaded 2-core machine); fails the test unless it exits 0."""
    config = tmp_path / "vimtui.toml"
    if not config.exists():
        text = lab.config_file.read_text()
        config.write_text(
            text.replace("[defaults]\n", "[defaults]\nconnect_timeout = 30.0\ncall_timeout = 30.0\n")
        )
    proc = subprocess.run(
        [sys.executable, "-m", "vimtui", "--config", str(config), *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
    return proc.stdout
