"""Create a VM from a template: a shut-off VM whose disks are copied (or overlaid when linked) under a new
name, UUID and MACs, with vCPUs and memory as given; nothing left behind on failure or cancel. Shared with
the clone action: `clone_xml` (new name, no UUID/MACs/NVRAM path, renamed log files, disks pointed at the
copies, vCPUs/memory). The disk copies are disk_copy.py's, the undo rollback.py's, the checks vm_spec.py's;
creating from a cloud image is create_image.py."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

import libvirt

from vimtui.core.actions.base import ActionError, VmAction, dom_state
from vimtui.core.actions.disk_copy import DiskCopy, copy_disks, plan_disks
from vimtui.core.actions.params import Param
from vimtui.core.actions.rollback import Rollback, no_abort, undo_domain, undone, with_fresh_uuid
from vimtui.core.actions.vm_spec import (
    CREATE_TIMEOUT,
    check_limits,
    host_limits,
    name_refusal,
    refuse_clash,
    size_refusal,
)
from vimtui.core.fleet import quotas
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.model import FleetState, VmState, state_name
from vimtui.core.poll.domxml import VIMTUI_NS

SHUTOFF = libvirt.VIR_DOMAIN_SHUTOFF
# keep the usual prefixes when a domain's XML is rewritten (libvirt reads them by URI, people by prefix)
ET.register_namespace("qemu", "http://libvirt.org/schemas/domain/qemu/1.0")
ET.register_namespace("vimtui", VIMTUI_NS)

# -- domain XML ------------------------------------------------------------------------------------------


def _set_vcpus(root: ET.Element, vcpus: int) -> None:
    vcpu = root.find("vcpu")
    if vcpu is None:
        vcpu = ET.SubElement(root, "vcpu")
    vcpu.text = str(vcpus)
    vcpu.attrib.pop("current", None)
    vcpus_el = root.find("vcpus")
    if vcpus_el is not None:
        root.remove(vcpus_el)
    topology = root.find("cpu/topology")
    if topology is not None:
        dies = int(topology.get("dies", "1") or 1)
        cores, threads = int(topology.get("cores", "1")), int(topology.get("threads", "1"))
        per_socket = dies * cores * threads
        if vcpus % per_socket == 0:
            topology.set("sockets", str(vcpus // per_socket))
        else:
            topology.attrib.update({"sockets": str(vcpus), "dies": "1", "cores": "1", "threads": "1"})
            topology.attrib.pop("clusters", None)
    cputune = root.find("cputune")
    if cputune is not None:
        for el in list(cputune):
            if el.tag in ("vcpupin", "vcpusched") and el.get("vcpu", "0").isdigit():
                if int(el.get("vcpu", "0")) >= vcpus:
                    cputune.remove(el)


def _set_memory(root: ET.Element, memory_mib: int) -> None:
    for tag in ("memory", "currentMemory"):
        el = root.find(tag)
        if el is None:
            el = ET.SubElement(root, tag)
        el.set("unit", "KiB")
        el.text = str(memory_mib * 1024)


def clone_xml(
    xml: str,
    new_name: str,
    disks: Sequence[DiskCopy] = (),
    *,
    vcpus: int | None = None,
    memory_mib: int | None = None,
) -> str:
    """A domain's inactive XML made into a new VM's: the new name, no UUID and no MACs (libvirt makes new
    ones), no NVRAM path (a fresh one from the template), serial/console log files and file chardevs named
    after the old VM renamed, the disks in `disks` pointed at their new volumes; vCPUs and memory as given."""
    root = ET.fromstring(xml)
    old_name = root.findtext("name") or ""
    old_uuid = (root.findtext("uuid") or "").strip()
    name_el = root.find("name")
    if name_el is None:
        name_el = ET.SubElement(root, "name")
    name_el.text = new_name
    for el in root.findall("uuid"):
        root.remove(el)
    # made from a template, it is a VM: the mark stays with the template (tenant and tags go with it)
    for meta in root.iterfind(f"metadata/{{{VIMTUI_NS}}}vm"):
        for el in meta.findall(f"{{{VIMTUI_NS}}}template"):
            meta.remove(el)
    # SMBIOS may repeat the UUID: libvirt refuses a mismatch
    for system in root.iterfind("sysinfo/system"):
        for entry in list(system):
            if entry.get("name") == "uuid" and (entry.text or "").strip().lower() == old_uuid.lower():
                system.remove(entry)
    os_el = root.find("os")
    if os_el is not None:
        nvram = os_el.find("nvram")
        if nvram is not None:
            if nvram.get("template") or nvram.get("templateFormat"):
                nvram.text = None
                for child in list(nvram):
                    nvram.remove(child)
                nvram.attrib.pop("format", None)
            else:
                os_el.remove(nvram)
    devices = root.find("devices")
    if devices is not None:
        for iface in devices.iterfind("interface"):
            for el in iface.findall("mac"):
                iface.remove(el)
            for el in iface.findall("target"):
                iface.remove(el)
        if old_name:
            for chardev in devices:
                if chardev.tag not in ("serial", "console", "channel", "parallel"):
                    continue
                log = chardev.find("log")
                if log is not None and old_name in log.get("file", ""):
                    log.set("file", log.get("file", "").replace(old_name, new_name))
                src = chardev.find("source")
                if chardev.get("type") == "file" and src is not None and old_name in src.get("path", ""):
                    src.set("path", src.get("path", "").replace(old_name, new_name))
        by_target = {d.target: d for d in disks}
        for disk in devices.iterfind("disk"):
            target = disk.find("target")
            copy = by_target.get(target.get("dev", "") if target is not None else "")
            if copy is None:
                continue
            _point_disk(disk, copy)
    if vcpus is not None:
        _set_vcpus(root, vcpus)
    if memory_mib is not None:
        _set_memory(root, memory_mib)
    return ET.tostring(root, encoding="unicode")


def _point_disk(disk: ET.Element, copy: DiskCopy) -> None:
    src = disk.find("source")
    if src is None:
        src = ET.SubElement(disk, "source")
    kind = disk.get("type", "file")
    path = str(copy.volume.path()) if copy.volume is not None else copy.source_path
    for attr in ("file", "dev", "pool", "volume"):
        src.attrib.pop(attr, None)
    if kind == "volume":
        src.set("pool", copy.pool_name)
        src.set("volume", copy.name)
    elif kind == "block":
        src.set("dev", path)
    else:
        disk.set("type", "file")
        src.set("file", path)
    for el in disk.findall("backingStore"):
        disk.remove(el)
    driver = disk.find("driver")
    if driver is None:
        driver = ET.Element("driver", name="qemu")
        disk.insert(0, driver)
    if copy.format:
        driver.set("type", copy.format)


def create_from_template(
    ctx: TaskContext,
    dom: Any,
    name: str,
    vcpus: int | None = None,
    memory_mib: int | None = None,
    start: bool = False,
    linked: bool = False,
) -> str:
    """A new VM like `dom` (shut off): its disks copied (or overlaid on the template's when linked), a new
    name, UUID and MACs, vCPUs and memory as given. Started when asked. On failure nothing is left."""
    conn = ctx.conn
    tpl = dom.name()
    why = name_refusal(name) or size_refusal(vcpus, memory_mib)
    if why is not None:
        raise ActionError(why)
    state = dom_state(dom)
    if state != SHUTOFF:
        raise ActionError(f"{tpl} is {state_name(state)}: a template must be shut off (its disks are copied)")
    if dom.hasManagedSaveImage(0):
        raise ActionError(
            f"{tpl} has a managed save (its disks are mid-run): start it and shut it down, "
            "or remove the saved state, first"
        )
    refuse_clash(conn, name, ctx.host)
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    if vcpus is not None or memory_mib is not None:
        root = ET.fromstring(xml)
        type_el = root.find("os/type")
        arch = type_el.get("arch") if type_el is not None else None
        check_limits(host_limits(conn, root.get("type"), arch), ctx.host, vcpus, memory_mib)
    disks = plan_disks(conn, xml, name, host=ctx.host, linked=linked)
    ctx.progress(0.0, f"{'overlaying' if linked else 'copying'} {len(disks)} disk(s) of {tpl}")
    rollback = Rollback(ctx)
    try:
        copy_disks(ctx, disks, (0.0, 90.0), rollback)
        new_xml, new_uuid = with_fresh_uuid(clone_xml(xml, name, disks, vcpus=vcpus, memory_mib=memory_mib))
        ctx.check_cancelled()
        ctx.progress(92.0, f"defining {name}")
        rollback.add(f"VM {name}", undo_domain(new_uuid))
        new = conn.defineXML(new_xml)
        if start:
            ctx.check_cancelled()
            ctx.progress(95.0, f"starting {name}")
            new.create()
    except BaseException as exc:
        undone(exc, rollback)
        raise
    how = "linked to" if linked else "copied from"
    vols = ", ".join(f"{d.pool_name}/{d.name}" for d in disks) or "no disks"
    return f"created {name} from {tpl} ({vols} {how} its disks){'; started' if start else ''}"


def template_adds(vm: VmState, args: Mapping[str, Any], _state: FleetState) -> quotas.Use:
    """A new VM like the template (the clone keeps its metadata: its tenant's quota), with the vCPUs and
    memory asked for instead of the template's."""
    like = quotas.vm_use(vm)
    vcpus, memory = args.get("vcpus"), args.get("memory_mib")
    return quotas.Use(vcpus or like.vcpus, memory or like.memory_mib, 1, like.disk_gib)


def template_check(vm: VmState, args: dict[str, Any], state: FleetState) -> str | None:
    name = args.get("name")
    why = name_refusal(name) or size_refusal(args.get("vcpus"), args.get("memory_mib"))
    if why is not None:
        return why
    if state.find_vm(str(name), vm.host):
        return f"a VM named {name!r} already exists on {vm.host}"
    return None


CREATE = VmAction(
    "create",
    "Create from template",
    "A new VM from this shut-off one: its disks copied (--linked: qcow2 overlays on them), "
    "new name, UUID and MACs; --vcpus, --memory-mib, --start",
    create_from_template,
    needs="admin",
    params=(
        Param("name", "text", "the new VM's name", required=True, metavar="NEW"),
        Param("vcpus", "int", "virtual CPUs (default: the template's)", low=1, high=4096),
        Param(
            "memory_mib",
            "size",
            "memory (default: the template's)",
            low=16,
            high=16 * 2**20,
            flag="memory",
            metavar="MIB",
        ),
        Param("linked", "bool", "qcow2 overlays on the template's disks, not full copies"),
        Param("start", "bool", "start it once made"),
    ),
    states=frozenset({"shutoff"}),
    not_applicable="only a shut off VM is a template (its disks are copied)",
    check=template_check,
    adds=template_adds,
    abort=no_abort,
    timeout=CREATE_TIMEOUT,
    bulk=False,
)
"""A new VM from a shut-off one (creating from a cloud image: create_image.py, with the same profile)."""

ACTIONS: tuple[VmAction, ...] = (CREATE,)
