"""Pools and volumes on a lab host through vimtui's SSH tunnel, each effect read back with virsh over a
direct connection (`pool-info`, `vol-info`, `vol-dumpxml`): a directory pool defined, started, stopped,
started again and deleted with its storage; volumes created (qcow2 and raw), resized, cloned (a copy and a
linked clone), wiped and deleted; the deletes of a volume a domain uses and of a linked clone's base, and
of the pool holding them, refused with the domain or the clone named and nothing changed. The CLI's
`pool list --json` and its refusal exit are checked once on the same host.

No guest is booted: the domain that uses a volume is defined and left shut off (a defined domain's disk
counts as in use, as it does for virt-manager).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.lab import Lab
from tests.lab.support import started, until
from vimtui.core.actions import operations, targets
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import Task

pytestmark = pytest.mark.lab

HOST = "kvm01"
GIB = 1024**3


@pytest.fixture
async def fleet(lab: Lab, tmp_path: Path) -> AsyncIterator[Fleet]:
    f = await started(lab, tmp_path / "run", call_timeout=20.0, connect_timeout=20.0)
    await until(f, f"{HOST} up", lambda s: s.host(HOST) is not None and s.host(HOST).status == "up", 60)
    yield f
    await f.stop()


def virsh(lab: Lab, *argv: str, check: bool = True) -> str:
    """virsh over a direct connection to the lab host (not through vimtui)."""
    proc = subprocess.run(
        ["virsh", "-c", lab.host(HOST).direct_uri, *argv], capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"virsh {' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def info(text: str) -> dict[str, str]:
    return {
        k.strip(): v.strip() for k, v in (line.split(":", 1) for line in text.splitlines() if ":" in line)
    }


def cli(lab: Lab, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`vimtui ARGS` on the lab's config, in a process of its own (this checkout's code)."""
    env = {**os.environ, "XDG_DATA_HOME": str(tmp / "data"), "XDG_STATE_HOME": str(tmp / "state")}
    return subprocess.run(
        [sys.executable, "-m", "vimtui", "--config", str(lab.config_file), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def vols(lab: Lab, pool: str) -> list[str]:
    out = virsh(lab, "vol-list", "--pool", pool)
    return sorted(line.split()[0] for line in out.splitlines()[2:] if line.strip())


async def run(fleet: Fleet, kind: str, verb: str, target: str, **args: Any) -> Task:
    state = fleet.state
    act = operations.target_action(kind, verb)
    [step] = operations.plan_targets(state, act, [targets.parse(kind, target, state)], args)
    tasks = operations.submit(fleet, [step])
    assert await fleet.tasks.wait(tasks, within=300)
    return tasks[0]


async def test_pool_and_volume_lifecycle_read_back_with_virsh(lab: Lab, fleet: Fleet, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    pool, path, dom = f"stor{tag}", f"/var/lib/libvirt/stor{tag}", f"uses{tag}"
    at = f"{HOST}/{pool}"
    try:
        # define (built, started, autostart) and read it back
        task = await run(fleet, "pool", "define", at, path=path)
        assert task.ok, task.error
        pinfo = info(virsh(lab, "pool-info", pool))
        assert (pinfo["State"], pinfo["Autostart"], pinfo["Persistent"]) == ("running", "yes", "yes")
        assert path in virsh(lab, "pool-dumpxml", pool)
        # stop, start
        assert (await run(fleet, "pool", "stop", at)).ok
        assert info(virsh(lab, "pool-info", pool))["State"] == "inactive"
        assert (await run(fleet, "pool", "start", at)).ok
        assert info(virsh(lab, "pool-info", pool))["State"] == "running"

        # volumes: a qcow2 and a raw one, with their sizes as libvirt says
        assert (await run(fleet, "volume", "create", f"{at}/base.qcow2", size=1024)).ok
        assert (await run(fleet, "volume", "create", f"{at}/data.img", size=256, format="raw")).ok
        base = info(virsh(lab, "vol-info", "--bytes", "--pool", pool, "base.qcow2"))
        assert int(base["Capacity"].split()[0]) == GIB
        assert "<format type='qcow2'/>" in virsh(lab, "vol-dumpxml", "--pool", pool, "base.qcow2")
        assert "<format type='raw'/>" in virsh(lab, "vol-dumpxml", "--pool", pool, "data.img")
        # resize: grow by 1G; a shrink without --shrink is refused, the size unchanged
        assert (await run(fleet, "volume", "resize", f"{at}/base.qcow2", size="+1G")).ok
        assert int(
            info(virsh(lab, "vol-info", "--bytes", "--pool", pool, "base.qcow2"))["Capacity"].split()[0]
        ) == (2 * GIB)
        shrink = await run(fleet, "volume", "resize", f"{at}/data.img", size="128M")
        assert not shrink.ok and "--shrink" in shrink.error
        assert int(
            info(virsh(lab, "vol-info", "--bytes", "--pool", pool, "data.img"))["Capacity"].split()[0]
        ) == (256 * 1024**2)
        # clones: a full copy of the raw one, a linked clone (qcow2 overlay) of the qcow2 one
        copy = await run(fleet, "volume", "clone", f"{at}/data.img", name="copy.img")
        assert copy.ok, copy.error
        assert int(
            info(virsh(lab, "vol-info", "--bytes", "--pool", pool, "copy.img"))["Capacity"].split()[0]
        ) == (256 * 1024**2)
        linked = await run(fleet, "volume", "clone", f"{at}/base.qcow2", name="linked.qcow2", linked=True)
        assert linked.ok, linked.error
        assert f"{path}/base.qcow2" in virsh(lab, "vol-dumpxml", "--pool", pool, "linked.qcow2")
        # wipe a volume nobody uses
        wiped = await run(fleet, "volume", "wipe", f"{at}/copy.img")
        assert wiped.ok, wiped.error

        # a domain (defined, not started) whose disk is the raw volume, named by pool and volume
        xml = tmp_path / "dom.xml"
        xml.write_text(
            f"<domain type='qemu'><name>{dom}</name><memory unit='MiB'>64</memory>"
            "<os><type arch='x86_64'>hvm</type></os><devices>"
            f"<disk type='volume' device='disk'><driver name='qemu' type='raw'/>"
            f"<source pool='{pool}' volume='data.img'/><target dev='vda' bus='virtio'/></disk>"
            "</devices></domain>"
        )
        virsh(lab, "define", str(xml))
        before = vols(lab, pool)
        in_use = await run(fleet, "volume", "delete", f"{at}/data.img")
        assert not in_use.ok and f"used by {dom}" in in_use.error
        base_refused = await run(fleet, "volume", "delete", f"{at}/base.qcow2")
        assert not base_refused.ok and f"the backing of {path}/linked.qcow2" in base_refused.error
        pool_refused = await run(fleet, "pool", "delete", at, storage=True)
        assert not pool_refused.ok and dom in pool_refused.error
        assert vols(lab, pool) == before  # nothing changed
        assert info(virsh(lab, "pool-info", pool))["State"] == "running"

        # the CLI on the same host: the pool listed as JSON; its refusal exits 1 and changes nothing
        out = await asyncio.to_thread(cli, lab, tmp_path, "pool", "list", HOST, "--json")
        assert out.returncode == 0, out.stderr
        row = next(r for r in json.loads(out.stdout) if r["name"] == pool)
        assert (row["active"], row["autostart"], row["volumes"]) == (True, True, 4)
        out = await asyncio.to_thread(cli, lab, tmp_path, "vol", "delete", f"{at}/base.qcow2", "--yes")
        assert out.returncode == 1 and "the backing of" in out.stdout
        assert vols(lab, pool) == before

        # the domain goes: now the pool goes too, with its volumes and its directory
        virsh(lab, "undefine", dom)
        assert (await run(fleet, "volume", "delete", f"{at}/linked.qcow2")).ok
        assert (await run(fleet, "volume", "delete", f"{at}/base.qcow2")).ok
        assert vols(lab, pool) == ["copy.img", "data.img"]
        gone = await run(fleet, "pool", "delete", at, storage=True)
        assert gone.ok, gone.error
        assert pool not in virsh(lab, "pool-list", "--all")
    finally:
        virsh(lab, "undefine", dom, check=False)
        virsh(lab, "pool-destroy", pool, check=False)
        virsh(lab, "pool-delete", pool, check=False)
        virsh(lab, "pool-undefine", pool, check=False)
