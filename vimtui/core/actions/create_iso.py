"""Install a VM from an ISO, as virt-manager's "local install media" does: a new blank disk in a chosen
pool plus the ISO (a volume of a pool of that host) as a CD-ROM, boot order CD then disk, a serial console
and a VNC display on the host's loopback for the installer's screen. Once the guest is installed,
"Detach install media" ejects the CD from the running VM, removes it from the definition and leaves the
disk as the boot device, in one action. Refused before anything is made when the arguments cannot work;
a failure part way removes what was made.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import libvirt

from vimtui.core.actions.base import Action, ActionError, VmAction
from vimtui.core.actions.disk_copy import find_pool, find_volume, volume_exists, volume_format, volume_xml
from vimtui.core.actions.params import Choice, Param
from vimtui.core.actions.rollback import Rollback, no_abort, undo_domain, undo_volume, undone, with_fresh_uuid
from vimtui.core.actions.vm_spec import (
    CREATE_TIMEOUT,
    GIB,
    MAX_DISK_GIB,
    HostLimits,
    check_limits,
    domain_skeleton,
    host_limits,
    name_refusal,
    refuse_clash,
    size_refusal,
)
from vimtui.core.actions.vol_transfer import inspect_file, upload_file
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.model import FleetState, HostState, VmState

DISK_BUSES = ("virtio", "sata", "scsi", "ide")
CD_BUSES = ("ide", "sata", "scsi")
"""In the order a CD-ROM is put on them: IDE where the machine has it (every installer reads it; q35 has
none), else SATA."""
ISO_FORMATS = ("iso", "raw", "")


def split_iso(iso: str, pool: str) -> tuple[str, str]:
    """`POOL/VOLUME`, or a volume of `pool`."""
    if "/" in iso:
        p, _, v = iso.partition("/")
        return p, v
    return pool, iso


def iso_domain_xml(
    *,
    name: str,
    limits: HostLimits,
    vcpus: int,
    memory_mib: int,
    pool: str,
    disk_volume: str,
    disk_bus: str,
    iso_pool: str,
    iso_volume: str,
    network: str,
    tenant: str | None = None,
) -> str:
    """A VM to install from a CD: the blank disk, the ISO as a read-only CD-ROM, boot from CD then disk, a
    NIC on `network` (or 'bridge:NAME'), a serial console, a VGA display over VNC on the host's loopback."""
    dom, dev = domain_skeleton(
        name,
        limits,
        vcpus,
        memory_mib,
        tenant,
        ("cdrom", "hd"),
        pool,
        disk_volume,
        _dev_name(disk_bus, 0),
        disk_bus,
    )
    buses = limits.disk_buses or frozenset(CD_BUSES)
    cd_bus = next((b for b in CD_BUSES if b in buses), "sata")
    index = 1 if cd_bus == disk_bus else 0
    cdrom = ET.SubElement(dev, "disk", type="volume", device="cdrom")
    ET.SubElement(cdrom, "driver", name="qemu", type="raw")
    ET.SubElement(cdrom, "source", pool=iso_pool, volume=iso_volume)
    ET.SubElement(cdrom, "target", dev=_dev_name(cd_bus, index), bus=cd_bus)
    ET.SubElement(cdrom, "readonly")
    if network.startswith("bridge:"):
        iface = ET.SubElement(dev, "interface", type="bridge")
        ET.SubElement(iface, "source", bridge=network.removeprefix("bridge:"))
    else:
        iface = ET.SubElement(dev, "interface", type="network")
        ET.SubElement(iface, "source", network=network)
    ET.SubElement(iface, "model", type="virtio")
    serial = ET.SubElement(dev, "serial", type="pty")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(dev, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    graphics = ET.SubElement(dev, "graphics", type="vnc", port="-1", autoport="yes", listen="127.0.0.1")
    ET.SubElement(graphics, "listen", type="address", address="127.0.0.1")
    video = ET.SubElement(dev, "video")
    ET.SubElement(video, "model", type="vga")
    balloon = ET.SubElement(dev, "memballoon", model="virtio")
    ET.SubElement(balloon, "stats", period="5")
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")


def _dev_name(bus: str, index: int) -> str:
    prefix = {"virtio": "vd", "ide": "hd"}.get(bus, "sd")
    return prefix + "abcdefgh"[index]


def disk_volume_name(name: str) -> str:
    return f"{name}.qcow2"


def iso_refusal(args: Mapping[str, Any]) -> str | None:
    """Why these arguments cannot make a VM, read without the host (None: they may)."""
    why = name_refusal(args.get("name")) or size_refusal(args.get("vcpus"), args.get("memory_mib"))
    if why is not None:
        return why
    iso, local = args.get("iso"), args.get("local_iso")
    if bool(iso) == bool(local):
        return "give the ISO: a volume (POOL/VOLUME), or a local file to upload first (not both)"
    if iso and (not isinstance(iso, str) or not iso.strip("/") or iso.count("/") > 1 or iso.startswith("/")):
        return f"iso {iso!r}: give a volume of the pool, or POOL/VOLUME (a local file: local_iso)"
    if local and (not isinstance(local, str) or not Path(local).expanduser().name):
        return f"local ISO {local!r}: give a file"
    disk = args.get("disk_gib", 20)
    if isinstance(disk, bool) or not isinstance(disk, int) or not 1 <= disk <= MAX_DISK_GIB:
        return f"disk {disk!r} GiB: between 1 and {MAX_DISK_GIB}"
    if args.get("disk_bus", "virtio") not in DISK_BUSES:
        return f"disk bus {args.get('disk_bus')!r}: one of {', '.join(DISK_BUSES)}"
    network = args.get("network", "default")
    if not isinstance(network, str) or not network or network == "bridge:":
        return "a network is needed (a libvirt network name, or bridge:NAME)"
    return None


def create_from_iso(
    ctx: TaskContext,
    host: str,
    *,
    name: str,
    iso: str | None = None,
    local_iso: str | None = None,
    pool: str = "default",
    disk_gib: int = 20,
    disk_bus: str = "virtio",
    vcpus: int = 1,
    memory_mib: int = 1024,
    network: str = "default",
    start: bool = True,
    domain_type: str | None = None,
    tenant: str | None = None,
) -> str:
    """A new VM to install from `iso` (a volume of a pool of the host) or from `local_iso` (a file where
    vimtui runs, uploaded into `pool` first, named after the file): a blank qcow2 `<name>.qcow2` of
    `disk_gib` in `pool`, the ISO as a CD-ROM, boot from CD then disk; started when asked (the installer's
    screen on its VNC display)."""
    conn = ctx.conn
    tenant = tenant or ctx.fleet.state.tenant  # made for the tenant in scope, or it would not be seen
    args = {"name": name, "iso": iso, "local_iso": local_iso, "vcpus": vcpus, "memory_mib": memory_mib}
    why = iso_refusal(args | {"disk_gib": disk_gib, "disk_bus": disk_bus, "network": network})
    if why is not None:
        raise ActionError(why)
    refuse_clash(conn, name, host)
    target_pool = find_pool(conn, pool, host)
    disk_name = disk_volume_name(name)
    if volume_exists(target_pool, disk_name):
        raise ActionError(f"volume {disk_name!r} already exists in storage pool {pool!r} on {host}")
    if local_iso:
        iso_pool_name, iso_name = pool, Path(local_iso).expanduser().name
        inspect_file(local_iso)  # there and readable, before anything is made
        if volume_exists(target_pool, iso_name):
            raise ActionError(
                f"volume {iso_name!r} already exists in storage pool {pool!r} on {host}: "
                f"choose it as the ISO ({pool}/{iso_name}) instead of uploading it again"
            )
    else:
        iso_pool_name, iso_name = split_iso(str(iso), pool)
        iso_pool = target_pool if iso_pool_name == pool else find_pool(conn, iso_pool_name, host)
        fmt = volume_format(find_volume(iso_pool, iso_name, host))
        if fmt not in ISO_FORMATS:
            raise ActionError(
                f"{iso_pool_name}/{iso_name} is a {fmt} image, not an ISO: create from a cloud image instead"
            )
    if not network.startswith("bridge:"):
        try:
            net = conn.networkLookupByName(network)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                raise ActionError(f"no network {network!r} on {host}") from exc
            raise
        if start and not net.isActive():
            raise ActionError(f"network {network!r} on {host} is not active: the VM could not start")
    limits = host_limits(conn, domain_type)
    check_limits(limits, host, vcpus, memory_mib)
    if disk_bus != "virtio" and limits.disk_buses and disk_bus not in limits.disk_buses:
        raise ActionError(
            f"{host} offers no {disk_bus} disks (it offers {', '.join(sorted(limits.disk_buses))})"
        )
    rollback = Rollback(ctx)
    try:
        if local_iso:  # chunk by chunk on the host's lane: its polls go on meanwhile
            rollback.add(f"volume {pool}/{iso_name}", undo_volume(pool, iso_name))
            upload_file(ctx, local_iso, pool, iso_name, create=True, fmt="raw", span=(0.0, 80.0))
            ctx.check_cancelled()
        ctx.progress(None, f"making the {disk_gib} GiB disk {pool}/{disk_name}")
        rollback.add(f"volume {pool}/{disk_name}", undo_volume(pool, disk_name))
        target_pool.createXML(volume_xml(disk_name, disk_gib * GIB, "qcow2"), 0)
        xml, new_uuid = with_fresh_uuid(
            iso_domain_xml(
                name=name,
                limits=limits,
                vcpus=vcpus,
                memory_mib=memory_mib,
                pool=pool,
                disk_volume=disk_name,
                disk_bus=disk_bus,
                iso_pool=iso_pool_name,
                iso_volume=iso_name,
                network=network,
                tenant=tenant,
            )
        )
        ctx.check_cancelled()
        ctx.progress(None, f"defining {name} ({limits.virt_type})")
        rollback.add(f"VM {name}", undo_domain(new_uuid))
        dom = conn.defineXML(xml)
        if start:
            ctx.check_cancelled()
            ctx.progress(None, f"starting {name} from {iso_pool_name}/{iso_name}")
            dom.create()
    except BaseException as exc:
        undone(exc, rollback)
        raise
    return (
        f"created {name}: {vcpus} vCPU, {memory_mib} MiB, {disk_gib} GiB disk {pool}/{disk_name}, "
        f"CD-ROM {iso_pool_name}/{iso_name}, boots from the CD then the disk"
        + ("; started: install it, then detach the install media" if start else "")
    )


# -- detach the install media --------------------------------------------------------------------------


def _media(root: ET.Element) -> list[ET.Element]:
    return [
        d
        for d in root.iterfind("devices/disk")
        if d.get("device") == "cdrom" and d.find("source") is not None
    ]


def _describe(disk: ET.Element) -> str:
    src = disk.find("source")
    target = disk.find("target")
    where = target.get("dev", "?") if target is not None else "?"
    if src is None:
        return where
    what = (
        src.get("file")
        or src.get("dev")
        or (f"{src.get('pool')}/{src.get('volume')}" if src.get("pool") else "")
    )
    return f"{where} ({what})" if what else where


def without_media(xml: str) -> tuple[str, list[str]]:
    """The definition without its CD-ROMs that hold media and booting from the disk: `<boot dev='cdrom'>`
    gone (the disk first), per-device boot orders renumbered. Returns the XML and what was removed."""
    root = ET.fromstring(xml)
    devices = root.find("devices")
    gone = _media(root)
    for disk in gone:
        if devices is not None:
            devices.remove(disk)
    os_el = root.find("os")
    per_device = [b for b in root.iterfind("devices/*/boot") if b.get("order")]
    if os_el is not None:
        boots = os_el.findall("boot")
        for b in boots:
            if b.get("dev") == "cdrom":
                os_el.remove(b)
        if not per_device and not os_el.findall("boot"):
            type_el = os_el.find("type")
            at = list(os_el).index(type_el) + 1 if type_el is not None else 0
            os_el.insert(at, ET.Element("boot", dev="hd"))
    for n, b in enumerate(sorted(per_device, key=lambda b: int(b.get("order", "0"))), start=1):
        b.set("order", str(n))
    return ET.tostring(root, encoding="unicode"), [_describe(d) for d in gone]


def detach_media(ctx: TaskContext, dom: Any) -> str:
    """Eject the install CD from the running VM, remove the CD-ROM from its definition and boot from the
    disk: the VM installed from an ISO made an ordinary one."""
    said: list[str] = []
    if dom.isActive():
        live = ET.fromstring(dom.XMLDesc(0))
        for disk in _media(live):
            what = _describe(disk)
            src = disk.find("source")
            if src is not None:
                disk.remove(src)
            flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_DEVICE_MODIFY_FORCE
            try:
                dom.updateDeviceFlags(ET.tostring(disk, encoding="unicode"), flags)
            except libvirt.libvirtError as exc:
                raise ActionError(f"could not eject {what}: {exc.get_error_message()}") from exc
            said.append(f"ejected {what}")
    if dom.isPersistent():
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
        new, gone = without_media(xml)
        if new != ET.tostring(ET.fromstring(xml), encoding="unicode"):
            ctx.conn.defineXML(new)
            said.append(f"removed {', '.join(gone)} from the definition" if gone else "boot order fixed")
        said.append("boots from its disk")
    if not said:
        return "no install media to detach"
    return "; ".join(said)


def _media_check(vm: VmState, _args: dict[str, Any], _state: FleetState) -> str | None:
    d = vm.details
    if d is not None and not any(x.device == "cdrom" and x.source for x in d.disks):
        return f"{vm.name} has no CD-ROM with media to detach"
    return None


# -- the declarations ------------------------------------------------------------------------------------


def pool_choices(host: HostState, _state: FleetState) -> list[Choice]:
    """The host's active pools as last read (the host judges when none were read yet)."""
    return [(p.name, p.name) for p in host.pools or () if p.active]


def iso_volumes(conn: Any, _host: str) -> list[Choice]:
    """The ISO volumes of the host's active pools (format iso, or a name ending .iso), as POOL/VOLUME."""
    out: list[Choice] = []
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        for vol in pool.listAllVolumes(0):
            name = vol.name()
            if (
                name.lower().endswith(".iso")
                and not name.endswith("-seed.iso")
                or volume_format(vol) == "iso"
            ):
                size = vol.info()[1]
                out.append((f"{pool.name()}/{name} ({size / 2**20:,.0f} MiB)", f"{pool.name()}/{name}"))
    return sorted(out, key=lambda c: c[1])


def _check_iso(host: HostState, args: dict[str, Any], state: FleetState) -> str | None:
    why = iso_refusal(args)
    if why is None and state.find_vm(str(args.get("name")), host.name):
        why = f"a VM named {args.get('name')!r} already exists on {host.name}"
    known = pool_choices(host, state)
    pool = args.get("pool") or "default"
    if why is None and known and pool not in {v for _, v in known}:
        names = ", ".join(v for _, v in known)
        why = f"no active storage pool {pool!r} on {host.name} (pools: {names})"
    return why


CREATE_ISO = Action(
    "create-iso",
    "New VM from ISO",
    "A new VM to install from an ISO: a blank disk in a pool, the ISO as a CD-ROM, boot from CD then disk, "
    "a VNC display for the installer; afterwards detach the install media",
    create_from_iso,
    params=(
        Param("name", "text", "the new VM's name", required=True, metavar="NAME"),
        Param(
            "iso",
            "choice",
            "the install ISO on the host: POOL/VOLUME, or a volume of the pool",
            from_host=iso_volumes,
            strict=False,
            metavar="POOL/VOLUME",
        ),
        Param(
            "local_iso",
            "path",
            "or a local ISO file, uploaded into the pool first",
            label="or upload a local ISO",
            metavar="FILE",
        ),
        Param(
            "pool",
            "choice",
            "the pool for the new disk",
            default="default",
            from_state=pool_choices,
            strict=False,
        ),
        Param(
            "disk_gib",
            "int",
            "the new disk's size (GiB)",
            default=20,
            low=1,
            high=MAX_DISK_GIB,
            flag="disk",
            label="disk (GiB)",
            metavar="GIB",
        ),
        Param(
            "disk_bus",
            "choice",
            "the new disk's bus",
            default="virtio",
            choices=tuple((b, b) for b in DISK_BUSES),
        ),
        Param("vcpus", "int", "virtual CPUs", default=1, low=1, high=4096),
        Param(
            "memory_mib",
            "size",
            "memory",
            default=1024,
            low=32,
            high=16 * 2**20,
            flag="memory",
            label="memory",
            metavar="MIB",
        ),
        Param("network", "text", "a libvirt network, or bridge:NAME", default="default"),
        Param("start", "bool", "start it at once (the installer runs)", default=True),
        Param(
            "domain_type",
            "choice",
            "kvm or qemu (emulated); default: kvm when the host offers it",
            choices=(("kvm", "kvm"), ("qemu", "qemu")),
            asked=False,
            metavar="kvm|qemu",
        ),
    ),
    target="host",
    new_vm="name",
    check=_check_iso,
    needs="admin",
    abort=no_abort,
    timeout=CREATE_TIMEOUT,
    key="I",
    ok="Create",
)

ACTIONS: tuple[Action, ...] = (
    CREATE_ISO,
    VmAction(
        "detach-media",
        "Detach install media",
        "After an install from an ISO: eject the CD (live), remove it from the definition, boot from disk",
        detach_media,
        needs="admin",
        check=_media_check,
    ),
)
