"""Installing a VM from an ISO on a lab host, as an operator would, through the real task path (a fleet over
SSH): the lab's bootable ISO (tests/lab/iso.py) uploaded from this machine first, a blank disk, the guest
booting from the CD (its disk is blank: nothing else could boot), "installed" by copying the CD onto its disk,
the install media detached while it runs, and the guest booting again from its disk with no CD-ROM left.
Then the installed VM made a template: the mark in `virsh dumpxml`, and starting it refused, nothing
started. Every outcome is read from libvirt (lab.connect, virsh on the host), not from vimtui's state.

One scratch guest (128 MiB, TCG), about a minute on a quiet machine."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import libvirt
import pytest

from tests.lab.iso import GUEST_NAME, build_iso
from tests.lab.lab import Lab, hardware_virt
from tests.lab.support import act, dom_state, seen, started
from vimtui.core.actions import operations
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.poll.domxml import VIMTUI_NS

pytestmark = pytest.mark.lab

HOST = "kvm02"
off = asyncio.to_thread


@pytest.fixture(scope="module")
async def fleet(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    f = await started(
        lab,
        tmp_path_factory.mktemp("install") / "run",
        call_timeout=20.0,
        connect_timeout=20.0,
        keepalive_interval=3.0,
        keepalive_count_max=5,
    )
    try:
        yield f
    finally:
        await f.stop()


def _xml(lab: Lab, name: str, flags: int = libvirt.VIR_DOMAIN_XML_INACTIVE) -> ET.Element:
    with lab.connect(HOST) as conn:
        return ET.fromstring(conn.lookupByName(name).XMLDesc(flags))


def _volume(lab: Lab, name: str) -> tuple[int, str]:
    """A volume of the default pool: its capacity and the sha256 of its content (read on the host)."""
    with lab.connect(HOST) as conn:
        pool = conn.storagePoolLookupByName("default")
        pool.refresh(0)
        vol = pool.storageVolLookupByName(name)
        capacity, path = int(vol.info()[1]), vol.path()
    return capacity, lab.exec(HOST, ["sha256sum", path]).split()[0]


async def _on_console(lab: Lab, name: str, command: str, within: float) -> bool:
    """`command` in the guest's shell; True only once it succeeded (a failure sleeps, so the marker that
    on_console waits for never comes)."""
    return await off(lab.on_console, HOST, name, f"{{ {command}; }} || sleep 9999", within)


async def test_install_from_an_uploaded_iso_then_boot_from_the_disk_then_make_it_a_template(
    lab: Lab, fleet: Fleet, tmp_path: Path
) -> None:
    """Breaks if the ISO is not uploaded whole, if the VM does not boot from its CD first, if detaching
    leaves the CD (live or defined) or the boot order on it, if the guest cannot then boot from its disk,
    or if the template mark is not in the XML or a template starts."""
    name = f"inst-{uuid.uuid4().hex[:6]}"
    iso = tmp_path / f"{name}-install.iso"  # named after the VM: remove_guest takes it too
    shutil.copyfile(await off(build_iso), iso)
    try:
        state = fleet.state
        host = state.host(HOST)
        assert host is not None
        args = {"name": name, "local_iso": str(iso), "disk_gib": 1, "memory_mib": 128, "start": True}
        args["domain_type"] = "kvm" if hardware_virt() else "qemu"  # /dev/kvm without vmx/svm here
        (step,) = operations.plan_hosts(state, "create-iso", [host], args)
        assert step.refusal is None, step.refusal
        (task,) = operations.submit(fleet, [step])
        assert await fleet.tasks.wait([task], within=300)
        assert task.ok, task.error

        # the ISO uploaded whole, a blank disk, the CD first
        size, digest = await off(_volume, lab, iso.name)
        assert (size, digest) == (iso.stat().st_size, hashlib.sha256(iso.read_bytes()).hexdigest())
        assert (await off(_volume, lab, f"{name}.qcow2"))[0] == 2**30
        root = await off(_xml, lab, name)
        assert [b.get("dev") for b in root.iterfind("os/boot")] == ["cdrom", "hd"]
        cd = root.find("devices/disk[@device='cdrom']/source")
        assert cd is not None and cd.attrib == {"pool": "default", "volume": iso.name}
        assert await off(dom_state, lab, HOST, name) == "running"

        # booted from the CD (the disk is blank): install by copying the CD onto the disk. conv=fsync flushes
        # the disk's cache (a guest's sync writes its pages but asks no flush, and a qcow2's metadata waits
        # for one), and the copy is done once: on_console types the line again until the shell answers, and
        # a copy queued behind the first must not still run when the CD goes
        install = (
            "test -e /tmp/installed || "
            "{ dd if=/dev/sr0 of=/dev/vda bs=1M conv=fsync 2>/dev/null && sync && touch /tmp/installed; }"
        )
        booted_cd = await _on_console(lab, name, install, within=240)
        assert booted_cd, f"the guest did not boot from its CD; its console said:\n{lab.console_seen}"

        await seen(fleet, HOST, name)
        (detached,) = await act(fleet, "detach-media", [name], host=HOST)
        assert detached.ok, detached.error
        assert detached.result.startswith(f"ejected hda (default/{iso.name}); removed hda")
        live = await off(_xml, lab, name, 0)
        sources = [d.find("source") for d in live.iterfind("devices/disk[@device='cdrom']")]
        assert not [s.attrib for s in sources if s is not None and (s.get("volume") or s.get("file"))]
        root = await off(_xml, lab, name)
        assert root.find("devices/disk[@device='cdrom']") is None
        assert [b.get("dev") for b in root.iterfind("os/boot")] == ["hd"]

        # off and on again: the definition has no CD-ROM, the guest boots from its disk
        def power_cycle() -> None:
            with lab.connect(HOST) as conn:
                dom = conn.lookupByName(name)
                dom.destroy()
                dom.create()

        await off(power_cycle)
        booted = f"grep -q vimtui.name={GUEST_NAME} /proc/cmdline && ! test -e /dev/sr0"
        booted_hd = await _on_console(lab, name, booted, within=240)
        assert booted_hd, f"the guest did not boot from its disk; its console said:\n{lab.console_seen}"

        # made a template: the mark in virsh dumpxml, and a start refused
        def power_off() -> None:
            with lab.connect(HOST) as conn:
                conn.lookupByName(name).destroy()

        await off(power_off)
        await fleet.wait_for(lambda s: any(v.state == "shutoff" for v in s.find_vm(name, HOST)), 30)
        (marked,) = await act(fleet, "template", [name], host=HOST)
        assert marked.ok, marked.error
        dumped = await off(lab.exec, HOST, ["virsh", "-c", "qemu:///system", "dumpxml", name])
        meta = ET.fromstring(dumped).find(f"metadata/{{{VIMTUI_NS}}}vm/{{{VIMTUI_NS}}}template")
        assert meta is not None, dumped
        await fleet.wait_for(
            lambda s: any(v.details and v.details.template for v in s.find_vm(name, HOST)), 30
        )
        (start,) = await act(fleet, "start", [name], host=HOST)
        assert not start.ok and f"{name} is a template" in start.error
        assert await off(dom_state, lab, HOST, name) == "shutoff"
    finally:
        await off(lab.remove_guest, HOST, name)
