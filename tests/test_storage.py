"""Pool and volume targets on libvirt's test:/// driver: naming (`HOST/POOL`, `HOST/POOL/VOL`), refusal from
the fleet state, tasks recorded as `pool.refresh` on `POOL`, pool define/start/stop/delete read back
through libvirt, the define form's checks, and the CLI verbs made from the registry.

What breaks each: a target parsed to the wrong host or pool, a pool action run on a host that is down, a
task recorded without its pool, a pool defined half (left behind when its build fails), a delete of a pool
whose volumes a domain uses, a verb missing from `vimtui pool`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from vimtui.core.actions import operations, pool_xml, targets
from vimtui.core.actions import storage_view as view
from vimtui.core.fleet.audit import AuditLog
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import parse_connect
from vimtui.core.fleet.tasks import ActionError, Task
from vimtui.core.model import FleetState, HostState, HostStatus
from vimtui.core.poll.session import SessionSettings

HOST = "test-storage"
NODE = """<node>
  <cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads><active>4</active>
    <mhz>2400</mhz><model>x86_64</model></cpu>
  <memory>16777216</memory>
  <pool type='dir'><name>default-pool</name><uuid>00000000-0000-4000-8000-00000000b001</uuid>
    <capacity unit='GiB'>100</capacity><allocation unit='GiB'>0</allocation>
    <available unit='GiB'>100</available><target><path>/default-pool</path></target></pool>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>test</name><uuid>00000000-0000-4000-8000-00000000b002</uuid>
    <memory unit='MiB'>512</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>
    <devices/><test:runstate>1</test:runstate>
  </domain>
</node>
"""
"""A host of its own per test (test:///default is one driver shared by the whole process)."""


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    node = tmp_path / "storage.xml"
    node.write_text(NODE)
    broken = tmp_path / "missing.xml"  # the test driver cannot open it: the host ends in error
    specs = [parse_connect(f"test://{node}"), parse_connect(f"test://{broken}")]
    f = Fleet(specs, SessionSettings(interval=0.5), tmp_path / "run", audit=AuditLog(tmp_path / "audit.log"))
    await f.start(tick=False)
    await f.connected(within=10)
    yield f
    await f.stop()


async def _run(fleet: Fleet, kind: str, verb: str, target: str, **args: Any) -> Task:
    state = fleet.publish()
    act = operations.target_action(kind, verb)
    [step] = operations.plan_targets(state, act, [targets.parse(kind, target, state)], args)
    tasks = operations.submit(fleet, [step])
    assert await fleet.tasks.wait(tasks, within=20)
    return tasks[0]


async def _libvirt(fleet: Fleet, fn: Any, *args: Any) -> Any:
    """A question asked of the host's own connection: the effect read through libvirt, not vimtui."""
    return await fleet.ask(HOST, fn, *args)


def _state(*names: str) -> FleetState:
    hosts = tuple(
        HostState(n, "", "", f"qemu+ssh://{n}/system", "ssh", HostStatus.UP, "", 0.0) for n in names
    )
    return FleetState(1, 0.0, hosts)


def test_targets_are_named_within_their_host() -> None:
    state = _state("kvm01", "kvm02")
    ref = targets.parse("volume", "kvm02/default/web.qcow2", state)
    assert (ref.host, ref.pool, ref.volume, ref.where) == ("kvm02", "default", "web.qcow2", ref.where)
    assert targets.parse("pool", "kvm01/images", state).pool == "images"
    with pytest.raises(targets.BadTarget, match="HOST/POOL/VOL"):
        targets.parse("volume", "kvm01/default", state)
    with pytest.raises(targets.BadTarget, match="no host 'kvm09'.*kvm01, kvm02"):
        targets.parse("pool", "kvm09/images", state)
    with pytest.raises(targets.BadTarget, match="empty name"):
        targets.parse("pool", "kvm01/", state)
    assert targets.parse("pool", "images", state, host="kvm02").host == "kvm02"
    with pytest.raises(targets.BadTarget):  # two hosts: a bare name is ambiguous
        targets.parse("pool", "images", state)


def test_pool_xml_is_checked_before_the_host_is_asked() -> None:
    with pytest.raises(ActionError, match="--source-host, --source-path"):
        pool_xml.build(pool_xml.PoolSpec("nfs", "netfs", path="/mnt/nfs"))
    with pytest.raises(ActionError, match="absolute"):
        pool_xml.build(pool_xml.PoolSpec("d", "dir", path="relative/dir"))
    xml = pool_xml.build(pool_xml.PoolSpec("vg", "logical", source_name="vg0"))
    assert "<name>vg0</name>" in xml and "<path>/dev/vg0</path>" in xml
    assert pool_xml.name_problem("a/b") and pool_xml.name_problem("-x") and not pool_xml.name_problem("ok_1")


async def test_pool_lifecycle_read_back_through_libvirt(fleet: Fleet, tmp_path: Path) -> None:
    task = await _run(fleet, "pool", "define", f"{HOST}/scratch", path="/srv/scratch")
    assert task.ok, task.error
    assert (task.action, task.vm, task.host) == ("pool.define", "scratch", HOST)

    def info(conn: Any, name: str) -> tuple[int, bool, bool]:
        p = conn.storagePoolLookupByName(name)
        return int(p.info()[0]), bool(p.autostart()), bool(p.isPersistent())

    assert await _libvirt(fleet, info, "scratch") == (libvirt.VIR_STORAGE_POOL_RUNNING, True, True)
    assert (await _run(fleet, "pool", "autostart", f"{HOST}/scratch", enable=False)).ok
    assert (await _run(fleet, "pool", "stop", f"{HOST}/scratch")).ok
    assert await _libvirt(fleet, info, "scratch") == (libvirt.VIR_STORAGE_POOL_INACTIVE, False, True)
    assert (await _run(fleet, "pool", "start", f"{HOST}/scratch")).ok
    refreshed = await _run(fleet, "pool", "refresh", f"{HOST}/scratch")
    assert refreshed.ok and "0 volumes" in refreshed.result
    assert (await _run(fleet, "pool", "delete", f"{HOST}/scratch")).ok
    names = await _libvirt(fleet, lambda c: [p.name() for p in c.listAllStoragePools(0)])
    assert "scratch" not in names


async def test_a_failed_define_leaves_nothing(fleet: Fleet) -> None:
    task = await _run(fleet, "pool", "define", f"{HOST}/bad", type="netfs", path="/mnt/x")
    assert not task.ok and "--source-host" in task.error
    # libvirt's schema refuses what the form does not check: a gluster pool without a source name
    xml = "<pool type='gluster'><name>g</name><source><host name='h'/></source></pool>"
    bad = Path(os.environ.get("TMPDIR", "/tmp")) / f"pool-{os.getpid()}.xml"
    bad.write_text(xml)
    try:
        task = await _run(fleet, "pool", "define", f"{HOST}/g", xml_file=str(bad))
    finally:
        bad.unlink()
    assert not task.ok and "libvirt refused" in task.error
    names = await _libvirt(fleet, lambda c: [p.name() for p in c.listAllStoragePools(0)])
    assert "bad" not in names and "g" not in names


async def test_pool_refused_on_a_host_down_and_in_use(fleet: Fleet) -> None:
    down = next(h.name for h in fleet.state.hosts if not h.status.healthy)
    task = await _run(fleet, "pool", "refresh", f"{down}/default")
    assert not task.ok and down in task.error and task.action == "pool.refresh" and task.vm == "default"

    def use_pool(conn: Any) -> str:
        pool = conn.storagePoolLookupByName("default-pool")
        vol = pool.createXML("<volume><name>used.img</name><capacity unit='M'>8</capacity></volume>", 0)
        dom = conn.lookupByName("test")
        xml = dom.XMLDesc(0).replace(
            "</devices>",
            f"<disk type='file' device='disk'><source file='{vol.path()}'/>"
            "<target dev='vdz'/></disk></devices>",
        )
        conn.defineXML(xml)
        return str(vol.path())

    path = await _libvirt(fleet, use_pool)
    rows = await _libvirt(fleet, view.volume_rows, ["default-pool"])
    assert [r.used_by for r in rows if r.path == path] == [("test",)]
    task = await _run(fleet, "pool", "delete", f"{HOST}/default-pool")
    assert not task.ok and "test" in task.error
    names = await _libvirt(fleet, lambda c: [p.name() for p in c.listAllStoragePools(0)])
    assert "default-pool" in names


def test_cli_pool_verbs_from_the_registry(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path)}

    def vimtui(*words: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "vimtui", "--connect", "test:///default", *words]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    out = vimtui("pool", "list", "--json")
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)
    assert (row["name"], row["type"], row["active"]) == ("default-pool", "dir", True)
    out = vimtui("pool", "refresh", "test-default/default-pool", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["action"] == "pool.refresh"
    out = vimtui("pool", "refresh", "nohost/default-pool")
    assert out.returncode == 2 and "no host 'nohost'" in out.stderr
    out = vimtui("--profile", "viewer", "pool", "refresh", "test-default/default-pool")
    assert out.returncode == 2 and "admin" in out.stderr
    out = vimtui("pool", "define", "test-default/n", "--type", "netfs", "--dry-run")
    assert out.returncode == 1 and "needs --source-host" in out.stdout
    help_text = vimtui("pool", "--help").stdout
    for verb in ("define", "start", "stop", "autostart", "refresh", "delete", "list"):
        assert verb in help_text


def _vol_info(conn: Any, pool: str, name: str) -> tuple[int, str]:
    """(capacity, backing path) as libvirt says."""
    vol = conn.storagePoolLookupByName(pool).storageVolLookupByName(name)
    root = ET.fromstring(vol.XMLDesc(0))
    return int(vol.info()[1]), (root.findtext("backingStore/path") or "")


def _vol_names(conn: Any, pool: str) -> list[str]:
    return sorted(v.name() for v in conn.storagePoolLookupByName(pool).listAllVolumes(0))


async def test_volumes_create_clone_and_refused_deletes(fleet: Fleet) -> None:
    pool = f"{HOST}/default-pool"
    task = await _run(fleet, "volume", "create", f"{pool}/base.qcow2", size=1024)
    assert task.ok and (task.action, task.vm) == ("volume.create", "default-pool/base.qcow2"), task.error
    assert (await _libvirt(fleet, _vol_info, "default-pool", "base.qcow2")) == (2**30, "")
    assert (await _run(fleet, "volume", "create", f"{pool}/disk.img", size=64, format="raw")).ok
    again = await _run(fleet, "volume", "create", f"{pool}/disk.img", size=64)
    assert not again.ok and "already has a volume 'disk.img'" in again.error
    linked = await _run(fleet, "volume", "clone", f"{pool}/base.qcow2", name="linked.qcow2", linked=True)
    assert linked.ok, linked.error
    base_path = "/default-pool/base.qcow2"
    assert (await _libvirt(fleet, _vol_info, "default-pool", "linked.qcow2")) == (2**30, base_path)
    full = await _run(fleet, "volume", "clone", f"{pool}/disk.img", name="copy.img")
    assert full.ok, full.error
    # a linked clone's base is refused, naming the clone; nothing changed
    before = await _libvirt(fleet, _vol_names, "default-pool")
    refused = await _run(fleet, "volume", "delete", f"{pool}/base.qcow2")
    assert not refused.ok and "the backing of /default-pool/linked.qcow2" in refused.error
    wiped = await _run(fleet, "volume", "wipe", f"{pool}/base.qcow2")
    assert not wiped.ok and "backing of" in wiped.error
    assert await _libvirt(fleet, _vol_names, "default-pool") == before
    # the overlay goes, then its base may
    assert (await _run(fleet, "volume", "delete", f"{pool}/linked.qcow2")).ok
    assert (await _run(fleet, "volume", "delete", f"{pool}/base.qcow2")).ok
    assert await _libvirt(fleet, _vol_names, "default-pool") == ["copy.img", "disk.img"]
    orphans = await _libvirt(fleet, view.orphans)
    assert sorted(r.name for r in orphans) == ["copy.img", "disk.img"]


async def test_volume_in_use_is_not_deleted_resized_or_cloned_linked(fleet: Fleet) -> None:
    def attach(conn: Any) -> None:
        pool = conn.storagePoolLookupByName("default-pool")
        vol = pool.createXML("<volume><name>root.img</name><capacity unit='M'>8</capacity></volume>", 0)
        dom = conn.lookupByName("test")  # running on the test driver
        disk = f"<disk type='file' device='disk'><source file='{vol.path()}'/><target dev='vdz'/></disk>"
        conn.defineXML(dom.XMLDesc(0).replace("</devices>", disk + "</devices>"))

    await _libvirt(fleet, attach)
    target = f"{HOST}/default-pool/root.img"
    task = await _run(fleet, "volume", "delete", target)
    assert not task.ok and "used by test" in task.error
    task = await _run(fleet, "volume", "clone", target, name="l.qcow2", linked=True)
    assert not task.ok and "used by test" in task.error
    assert await _libvirt(fleet, _vol_names, "default-pool") == ["root.img"]
    assert [r.name for r in await _libvirt(fleet, view.orphans)] == []


async def test_storage_tasks_are_audited_with_their_target(fleet: Fleet, tmp_path: Path) -> None:
    made = await _run(fleet, "volume", "create", f"{HOST}/default-pool/a.img", size=8, format="raw")
    refused = await _run(fleet, "pool", "delete", f"{HOST}/nopool")
    assert made.ok and not refused.ok and "no storage pool 'nopool'" in refused.error
    log = AuditLog(tmp_path / "audit.log")
    records = [(r.host, r.vm, r.action, r.outcome) for r in log.records()]
    assert (HOST, "default-pool/a.img", "volume.create", "started") in records
    assert (HOST, "default-pool/a.img", "volume.create", "done") in records
    assert (HOST, "nopool", "pool.delete", "failed") in records
    assert next(r for r in log.records() if r.action == "volume.create").args["format"] == "raw"
