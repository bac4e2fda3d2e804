"""Templates and installs from an ISO, on libvirt's test driver (a node file: a shut-off VM, a running one,
a pool holding an ISO, a network): the template mark as libvirt holds it, start and delete refused for a
template (from the fleet state and again on the host), the templates first in the create form's source,
a VM made from an ISO (its XML read back from libvirt: blank disk, CD-ROM, boot CD then disk), and
"Detach install media" leaving it booting from its disk. The lab test boots all this for real."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from vimtui.cli.listing import _vms
from vimtui.core.actions import REGISTRY, operations
from vimtui.core.actions.create_iso import iso_refusal, without_media
from vimtui.core.actions.templates import template_choices
from vimtui.core.fleet.filter import parse_query
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.fleet.tasks import Task
from vimtui.core.model import FleetState, VmState
from vimtui.core.poll.domxml import VIMTUI_NS
from vimtui.core.poll.session import SessionSettings


def _node(path: Path) -> str:
    def dom(name: str, n: int, runstate: int) -> str:
        return (
            "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
            f"<name>{name}</name><uuid>00000000-0000-4000-8000-0000000d000{n}</uuid>"
            "<memory unit='MiB'>512</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>"
            f"<test:runstate>{runstate}</test:runstate></domain>"
        )

    path.write_text(
        "<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads>"
        "<active>4</active><mhz>2400</mhz><model>x86_64</model></cpu><memory>8388608</memory>"
        + dom("base", 1, 5)
        + dom("web", 2, 1)
        + "<network><name>default</name><bridge name='virbr0'/><forward/>"
        "<ip address='192.168.122.1' netmask='255.255.255.0'/></network>"
        "<pool type='dir'><name>default</name><uuid>00000000-0000-4000-8000-0000000e0001</uuid>"
        "<capacity unit='GiB'>100</capacity><allocation>0</allocation><available unit='GiB'>100</available>"
        "<target><path>/pool</path></target>"
        "<volume type='file'><name>install.iso</name><capacity unit='MiB'>12</capacity>"
        "<target><path>/pool/install.iso</path><format type='iso'/></target></volume>"
        "</pool></node>"
    )
    return f"test://{path}"


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    spec = HostSpec(name="t1", transport="direct", uri=_node(tmp_path / "node.xml"))
    fleet = Fleet([spec], SessionSettings(interval=0.5), tmp_path / "run")
    await fleet.start(tick=False)
    await fleet.connected(within=10)
    await fleet.wait_for(lambda s: len(s.vms) == 2 and all(v.details for v in s.vms.values()), 20)
    yield fleet
    await fleet.stop()


def _vm(state: FleetState, name: str) -> VmState:
    return next(v for v in state.vms.values() if v.name == name)


def _xml(conn: Any, name: str) -> str:
    return str(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def _state_of(conn: Any, name: str) -> int:
    return int(conn.lookupByName(name).state()[0])


async def _run(fleet: Fleet, name: str, vm: str, args: dict[str, Any] | None = None) -> Task:
    steps = operations.plan(fleet.state, name, [_vm(fleet.state, vm)], args or {})
    (task,) = operations.submit(fleet, steps)
    await fleet.tasks.wait([task])
    return task


async def test_a_template_is_marked_in_the_xml_listed_apart_and_refuses_start_and_delete(
    fleet: Fleet,
) -> None:
    """Breaks if the mark is not written to the definition's metadata, if start or delete accept a
    template (the screen's grey, or the host's own check when the state is stale), or if the listing
    mixes templates with VMs."""
    assert (await _run(fleet, "template", "web")).error.startswith("web is running: shut it down")
    task = await _run(fleet, "template", "base")
    assert task.ok, task.error
    xml = await fleet.ask("t1", _xml, "base")
    meta = ET.fromstring(xml).find(f"metadata/{{{VIMTUI_NS}}}vm/{{{VIMTUI_NS}}}template")
    assert meta is not None, xml  # virsh dumpxml shows <vimtui:template/>
    state = await fleet.wait_for(lambda s: _vm(s, "base").details.template, 20)  # type: ignore[union-attr]
    base = _vm(state, "base")
    for name in ("start", "delete"):
        why = REGISTRY[f"vm.{name}"].state_refusal(base, state)
        assert why is not None and "base is a template" in why and "unmark it first" in why, why
    (step,) = operations.plan(state, "start", [base])
    assert step.refusal is not None
    # the host checks again: a start planned from a state older than the mark is refused there
    stale = operations.Step(step.action, step.host, step.vm, step.uuid, {}, None)
    (forced,) = operations.submit(fleet, [stale])
    await fleet.tasks.wait([forced])
    assert not forced.ok and "base is a template: start refused" in forced.error
    assert await fleet.ask("t1", _state_of, "base") == libvirt.VIR_DOMAIN_SHUTOFF
    # listed apart; the create form offers it first; the filter finds it
    text = _vms(state, as_json=False)
    vms_part, _, templates_part = text.partition("TEMPLATES")
    assert "base" not in vms_part and "web" in vms_part and "base" in templates_part
    assert template_choices("t1", state)[0] == ("base (template)", "base")
    assert [v.name for v in parse_query("is:template").filter_fleet(state)] == ["base"]
    # a VM made from it is a VM: the mark stays with the template
    (h,) = state.hosts
    (made,) = operations.submit(
        fleet, operations.plan_hosts(state, "create", [h], {"template": "base", "name": "b2"})
    )
    await fleet.tasks.wait([made])
    assert made.ok, made.error
    copy = ET.fromstring(await fleet.ask("t1", _xml, "b2"))
    assert copy.find(f".//{{{VIMTUI_NS}}}template") is None and copy.findtext("uuid") != base.uuid
    # unmarked: an ordinary VM that starts again
    assert (await _run(fleet, "untemplate", "web")).error == "web is not a template"
    assert (await _run(fleet, "untemplate", "base")).ok
    assert ET.fromstring(await fleet.ask("t1", _xml, "base")).find(f".//{{{VIMTUI_NS}}}template") is None
    await fleet.wait_for(lambda s: not _vm(s, "base").details.template, 20)  # type: ignore[union-attr]
    assert (await _run(fleet, "start", "base")).ok
    assert await fleet.ask("t1", _state_of, "base") == libvirt.VIR_DOMAIN_RUNNING


async def test_a_vm_from_an_iso_boots_cd_then_disk_and_detaching_the_media_leaves_the_disk(
    fleet: Fleet,
) -> None:
    """A shut-off one here. Breaks if the new VM lacks its blank disk or its CD-ROM, boots in another
    order, or if detaching leaves the CD in the definition or the boot order on it."""
    state = fleet.state
    (h,) = state.hosts
    refused = operations.plan_hosts(state, "create-iso", [h], {"name": "web", "iso": "default/install.iso"})
    assert refused[0].refusal == "a VM named 'web' already exists on t1"
    args = {"name": "inst1", "iso": "default/install.iso", "disk_gib": 8, "memory_mib": 256, "start": False}
    (task,) = operations.submit(fleet, operations.plan_hosts(state, "create-iso", [h], args))
    await fleet.tasks.wait([task])
    assert task.ok, task.error
    assert task.vm == "inst1"  # the task log and the audit name the VM it made
    root = ET.fromstring(await fleet.ask("t1", _xml, "inst1"))
    assert [b.get("dev") for b in root.iterfind("os/boot")] == ["cdrom", "hd"]
    disks = {d.get("device"): d for d in root.iterfind("devices/disk")}
    assert disks["disk"].find("source").attrib == {"pool": "default", "volume": "inst1.qcow2"}  # type: ignore[union-attr]
    assert disks["cdrom"].find("source").attrib == {"pool": "default", "volume": "install.iso"}  # type: ignore[union-attr]
    assert root.find("devices/graphics").get("listen") == "127.0.0.1"  # type: ignore[union-attr]

    def capacity(conn: Any) -> int:
        return int(conn.storagePoolLookupByName("default").storageVolLookupByName("inst1.qcow2").info()[1])

    assert await fleet.ask("t1", capacity) == 8 * 2**30
    assert await fleet.ask("t1", _state_of, "inst1") == libvirt.VIR_DOMAIN_SHUTOFF  # (the test driver cannot
    # eject live: the lab test detaches from a running guest)
    await fleet.wait_for(lambda s: any(v.name == "inst1" and v.details for v in s.vms.values()), 20)
    task = await _run(fleet, "detach-media", "inst1")
    assert task.ok, task.error
    assert "removed hda (default/install.iso) from the definition" in task.result
    root = ET.fromstring(await fleet.ask("t1", _xml, "inst1"))
    assert [d.get("device") for d in root.iterfind("devices/disk")] == ["disk"]
    assert [b.get("dev") for b in root.iterfind("os/boot")] == ["hd"]
    await fleet.wait_for(lambda s: all(d.device != "cdrom" for d in _vm(s, "inst1").details.disks), 20)  # type: ignore[union-attr]
    why = REGISTRY["vm.detach-media"].refusal(_vm(fleet.state, "inst1"), {}, fleet.state)
    assert why == "inst1 has no CD-ROM with media to detach"


def test_without_media_keeps_per_device_boot_orders_in_sequence() -> None:
    xml = (
        "<domain><os><type>hvm</type></os><devices>"
        "<disk device='cdrom'><source file='/i.iso'/><target dev='sda'/><boot order='1'/></disk>"
        "<disk device='disk'><source file='/d.qcow2'/><target dev='vda'/><boot order='2'/></disk>"
        "<disk device='cdrom'><target dev='sdb'/></disk>"
        "</devices></domain>"
    )
    new, gone = without_media(xml)
    root = ET.fromstring(new)
    assert gone == ["sda (/i.iso)"]
    assert [d.find("target").get("dev") for d in root.iterfind("devices/disk")] == ["vda", "sdb"]  # type: ignore[union-attr]
    assert root.find("devices/disk/boot").get("order") == "1"  # type: ignore[union-attr]
    assert root.find("os/boot") is None  # per-device orders: no <boot dev> beside them


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ({}, "give the ISO: a volume (POOL/VOLUME), or a local file to upload first (not both)"),
        ({"iso": "default/a.iso", "local_iso": "/tmp/a.iso"}, "not both"),
        ({"iso": "/tmp/a.iso"}, "iso '/tmp/a.iso': give a volume of the pool, or POOL/VOLUME"),
        ({"iso": "a/b/c.iso"}, "give a volume of the pool"),
    ],
)
def test_the_iso_is_a_volume_or_a_local_file(given: dict[str, Any], why: str) -> None:
    assert why in (iso_refusal({"name": "n", **given}) or "")
    assert iso_refusal({"name": "n", "iso": "default/a.iso"}) is None
    assert iso_refusal({"name": "n", "local_iso": "~/Downloads/debian.iso"}) is None
