"""Lifecycle, delete and snapshots as tasks on real lab guests; every effect checked through libvirt
directly (lab.connect), never through vimtui's own state. Each test works on scratch guests of its own."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import libvirt
import pytest

from tests.lab.lab import Lab
from tests.lab.support import (
    acpi_ready,
    act,
    booted_times,
    dom_state,
    eventually,
    seen,
    serial_log,
    started,
    until,
)
from vimtui.core.fleet.audit import AuditLog
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import TaskState

pytestmark = pytest.mark.lab

TOLERANT = {
    "call_timeout": 15.0,
    "connect_timeout": 15.0,
    "keepalive_interval": 3.0,
    "keepalive_count_max": 3,
}


@pytest.fixture
async def fleet(lab: Lab, tmp_path: Path) -> AsyncIterator[Fleet]:
    # the default deadlines, not the fault tests' short ones: a busy machine must not fail an action
    f = await started(lab, tmp_path / "run", audit=AuditLog(tmp_path / "audit.log"), **TOLERANT)
    yield f
    await f.stop()


@pytest.fixture
def scratch(lab: Lab) -> Iterator[list[tuple[str, str]]]:
    """(host, name) of guests a test made: removed afterwards whatever happened."""
    made: list[tuple[str, str]] = []
    yield made
    for host, name in made:
        lab.remove_guest(host, name)


def new_guest(
    lab: Lab, scratch: list[tuple[str, str]], host: str, *, disk: bool = False, start: bool = True
) -> str:
    name = f"t-{uuid.uuid4().hex[:6]}"
    scratch.append((host, name))
    lab.add_guest(host, name, disk=disk, start=start)
    return name


def audit(fleet: Fleet) -> list[dict[str, object]]:
    """The outcome records (each task that ran has a "started" record before its outcome)."""
    assert fleet.tasks.audit is not None
    records = [json.loads(line) for line in fleet.tasks.audit.path.read_text().splitlines()]
    started = {r["task"] for r in records if r["outcome"] == "started"}
    assert all(r["task"] in started for r in records if r["outcome"] not in ("started", "refused"))
    return [r for r in records if r["outcome"] != "started"]


def one_ok(tasks: list) -> None:  # type: ignore[type-arg]
    assert len(tasks) == 1
    t = tasks[0]
    assert t.state == TaskState.DONE, t.as_dict()


async def test_power_cycle_through_tasks(lab: Lab, fleet: Fleet, scratch: list[tuple[str, str]]) -> None:
    name = new_guest(lab, scratch, "kvm02", start=False)
    await seen(fleet, "kvm02", name)

    one_ok(await act(fleet, "start", [name], host="kvm02"))
    assert dom_state(lab, "kvm02", name) == "running"

    one_ok(await act(fleet, "suspend", [name]))
    assert dom_state(lab, "kvm02", name) == "paused"
    one_ok(await act(fleet, "resume", [name]))
    assert dom_state(lab, "kvm02", name) == "running"

    # ACPI shutdown ends in shut off once the guest has its power-button watcher running
    await eventually(f"{name} to watch its power button", lambda: acpi_ready(lab, "kvm02", name), 120)
    (t,) = await act(fleet, "shutdown", [name], timeout=60.0)
    assert t.state == TaskState.DONE, t.as_dict()
    assert "ACPI" in t.result
    with lab.connect("kvm02") as conn:
        state, reason = conn.lookupByName(name).state()
        assert (state, reason) == (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN)

    one_ok(await act(fleet, "start", [name]))
    await eventually(f"{name} to boot again", lambda: booted_times(lab, "kvm02", name) >= 2, 120)
    one_ok(await act(fleet, "reset", [name]))  # a hardware reset: the guest boots once more, unasked
    await eventually(f"{name} to boot after the reset", lambda: booted_times(lab, "kvm02", name) >= 3, 120)
    assert dom_state(lab, "kvm02", name) == "running"
    one_ok(await act(fleet, "destroy", [name]))
    with lab.connect("kvm02") as conn:
        state, reason = conn.lookupByName(name).state()
        assert (state, reason) == (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED)

    one_ok(await act(fleet, "autostart", [name], enable=True))
    with lab.connect("kvm02") as conn:
        assert conn.lookupByName(name).autostart() == 1
    one_ok(await act(fleet, "autostart", [name], enable=False))
    with lab.connect("kvm02") as conn:
        assert conn.lookupByName(name).autostart() == 0

    records = [r for r in audit(fleet) if r["vm"] == name]
    assert [r["action"] for r in records] == [
        "start",
        "suspend",
        "resume",
        "shutdown",
        "start",
        "reset",
        "destroy",
        "autostart",
        "autostart",
    ]
    assert {r["outcome"] for r in records} == {"done"}
    assert all(r["host"] == "kvm02" and r["user"] for r in records)


async def test_reboot_and_managed_save(lab: Lab, fleet: Fleet, scratch: list[tuple[str, str]]) -> None:
    name = new_guest(lab, scratch, "kvm03")
    await seen(fleet, "kvm03", name)
    await eventually(f"{name} to watch its power button", lambda: acpi_ready(lab, "kvm03", name), 120)
    one_ok(await act(fleet, "reboot", [name]))
    await eventually(f"{name} to boot a second time", lambda: booted_times(lab, "kvm03", name) >= 2, 120)
    assert dom_state(lab, "kvm03", name) == "running"

    one_ok(await act(fleet, "save", [name]))
    with lab.connect("kvm03") as conn:
        dom = conn.lookupByName(name)
        assert not dom.isActive() and dom.hasManagedSaveImage(0)
    (t,) = await act(fleet, "start", [name])
    assert t.state == TaskState.DONE and "managed save" in t.result
    with lab.connect("kvm03") as conn:
        dom = conn.lookupByName(name)
        assert dom.isActive() and not dom.hasManagedSaveImage(0)
    # restored, not rebooted: the guest did not go through its start-up a third time
    assert booted_times(lab, "kvm03", name) == 2


async def test_bad_input_is_refused_and_changes_nothing(
    lab: Lab, fleet: Fleet, scratch: list[tuple[str, str]]
) -> None:
    name = new_guest(lab, scratch, "kvm02")
    # running, as the fleet shows it: the define's event can show it shut off first, and a start sent then
    # is libvirt's refusal ("already running"), not vimtui's
    running = ["running"]
    await until(fleet, f"{name} running", lambda s: [v.state for v in s.find_vm(name, "kvm02")] == running)
    (t,) = await act(fleet, "start", ["no-such-vm"])
    assert t.state == TaskState.FAILED and "no VM named 'no-such-vm'" in t.error
    (t,) = await act(fleet, "start", [name], host="kvm03")
    assert t.state == TaskState.FAILED and "on kvm03" in t.error
    (t,) = await act(fleet, "start", [name], host="kvm99")
    assert t.state == TaskState.FAILED and "no host 'kvm99'" in t.error
    (t,) = await act(fleet, "start", [name])
    assert t.state == TaskState.FAILED and "is running" in t.error
    (t,) = await act(fleet, "resume", [name])
    assert t.state == TaskState.FAILED and "only a paused VM resumes" in t.error
    assert dom_state(lab, "kvm02", name) == "running"
    refused = [r for r in audit(fleet) if r["outcome"] == "refused"]
    assert len(refused) == 5 and all(r["error"] for r in refused)


def volumes(lab: Lab, host: str) -> set[str]:
    with lab.connect(host) as conn:
        pool = conn.storagePoolLookupByName("default")
        pool.refresh(0)
        return {v.name() for v in pool.listAllVolumes()}


def defined(lab: Lab, host: str) -> set[str]:
    with lab.connect(host) as conn:
        return {d.name() for d in conn.listAllDomains()}


async def test_delete_keeps_storage_unless_told(
    lab: Lab, fleet: Fleet, scratch: list[tuple[str, str]]
) -> None:
    keep = new_guest(lab, scratch, "kvm03", disk=True, start=False)
    drop = new_guest(lab, scratch, "kvm03", disk=True, start=False)
    running = new_guest(lab, scratch, "kvm03")
    for n in (keep, drop, running):
        await seen(fleet, "kvm03", n)

    one_ok(await act(fleet, "delete", [keep]))
    assert keep not in defined(lab, "kvm03")
    assert f"{keep}.qcow2" in volumes(lab, "kvm03")

    (t,) = await act(fleet, "delete", [drop], remove_storage=["vdz"])
    assert t.state == TaskState.FAILED and "not a disk of" in t.error and "vda" in t.error
    assert drop in defined(lab, "kvm03")
    (t,) = await act(fleet, "delete", [drop], remove_storage=["vda"])
    assert t.state == TaskState.DONE and "removed vda" in t.result
    assert drop not in defined(lab, "kvm03") and f"{drop}.qcow2" not in volumes(lab, "kvm03")

    (t,) = await act(fleet, "delete", [running])
    assert t.state == TaskState.FAILED and "is running" in t.error
    assert dom_state(lab, "kvm03", running) == "running"
    one_ok(await act(fleet, "delete", [running], force=True))
    assert running not in defined(lab, "kvm03")
    await fleet.wait_for(lambda s: not s.find_vm(running), 30)


def qemu_io(lab: Lab, host: str, volume: str, command: str) -> str:
    path = f"/var/lib/libvirt/images/{volume}"
    # a read whose pattern does not match exits 1: the output says which, so it is not an error here
    return lab.exec(
        host, ["qemu-io", "-f", "qcow2", "-c", command, path], check=not command.startswith("read")
    )


async def test_snapshot_revert_restores_disk_content(
    lab: Lab, fleet: Fleet, scratch: list[tuple[str, str]]
) -> None:
    name = new_guest(lab, scratch, "kvm01", disk=True, start=False)
    vol = f"{name}.qcow2"
    await seen(fleet, "kvm01", name)
    await fleet.wait_for(lambda s: all(v.details for v in s.find_vm(name, "kvm01")), 30)
    qemu_io(lab, "kvm01", vol, "write -P 0x41 0 4k")  # the marker: 4 KiB of "A"

    one_ok(await act(fleet, "snapshot", [name], name="before", description="marker A"))
    qemu_io(lab, "kvm01", vol, "write -P 0x42 0 4k")  # changed to "B" after the snapshot
    assert "Pattern verification failed" in qemu_io(lab, "kvm01", vol, "read -P 0x41 0 4k")

    one_ok(await act(fleet, "snapshot", [name], name="after"))
    with lab.connect("kvm01") as conn:
        dom = conn.lookupByName(name)
        assert dom.snapshotCurrent(0).getName() == "after"
        assert dom.snapshotLookupByName("after", 0).getParent(0).getName() == "before"

    (t,) = await act(fleet, "snapshot", [name], name="before")
    assert t.state == TaskState.FAILED and "already has a snapshot" in t.error

    one_ok(await act(fleet, "revert", [name], name="before"))
    out = qemu_io(lab, "kvm01", vol, "read -P 0x41 0 4k")
    assert "Pattern verification failed" not in out and "read 4096/4096" in out
    with lab.connect("kvm01") as conn:
        assert conn.lookupByName(name).snapshotCurrent(0).getName() == "before"

    (t,) = await act(fleet, "revert", [name], name="nope")
    assert t.state == TaskState.FAILED and "no snapshot 'nope'" in t.error and "before" in t.error

    one_ok(await act(fleet, "snapshot-delete", [name], name="before", children=True))
    with lab.connect("kvm01") as conn:
        assert conn.lookupByName(name).snapshotNum(0) == 0


async def test_a_running_snapshot_keeps_memory_and_a_diskless_vm_is_refused(
    lab: Lab, fleet: Fleet, scratch: list[tuple[str, str]]
) -> None:
    with_disk = new_guest(lab, scratch, "kvm01", disk=True)
    diskless = new_guest(lab, scratch, "kvm01")
    for n in (with_disk, diskless):
        await seen(fleet, "kvm01", n)
    await fleet.wait_for(
        lambda s: all(v.details for n in (with_disk, diskless) for v in s.find_vm(n, "kvm01")), 30
    )
    (t,) = await act(fleet, "snapshot", [diskless], name="s")
    assert t.state == TaskState.FAILED and "no disk" in t.error
    with lab.connect("kvm01") as conn:
        assert conn.lookupByName(diskless).snapshotNum(0) == 0

    one_ok(await act(fleet, "snapshot", [with_disk], name="live", within=300))
    with lab.connect("kvm01") as conn:
        snap = conn.lookupByName(with_disk).snapshotLookupByName("live", 0)
        assert "<state>running</state>" in snap.getXMLDesc(0)
    assert dom_state(lab, "kvm01", with_disk) == "running"


async def test_clone_boots_with_its_own_disk_uuid_and_mac(
    lab: Lab, fleet: Fleet, scratch: list[tuple[str, str]]
) -> None:
    src = new_guest(lab, scratch, "kvm01", disk=True, start=False)
    new = f"{src}-c"
    scratch.append(("kvm01", new))
    await seen(fleet, "kvm01", src)
    (t,) = await act(fleet, "clone", [src], name=new, start=True, within=300)
    assert t.state == TaskState.DONE, t.as_dict()
    with lab.connect("kvm01") as conn:
        a, b = conn.lookupByName(src), conn.lookupByName(new)
        assert a.UUIDString() != b.UUIDString() and b.isActive() and not a.isActive()
        xa, xb = a.XMLDesc(0), b.XMLDesc(0)
    mac = re.compile(r"<mac address='([^']+)'")
    src_file = re.compile(r"<source (?:file|pool)=[^>]*>")
    assert mac.findall(xa) and mac.findall(xa) != mac.findall(xb)
    assert src_file.findall(xa) != src_file.findall(xb)
    await eventually(f"{new} to boot", lambda: "up" in serial_log(lab, "kvm01", new), 120)
    assert any(v.startswith(new) for v in await asyncio.to_thread(volumes, lab, "kvm01"))

    (t,) = await act(fleet, "clone", [src], name=new)
    assert t.state == TaskState.FAILED and "already exists" in t.error
