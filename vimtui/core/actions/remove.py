"""Delete: undefine a VM (with its NVRAM, managed save and snapshot metadata). Its storage stays unless the
operator names the volumes to remove; a running VM is refused unless forced. `preview` lists what goes and
what stays, for the confirmation, before anything is touched."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import libvirt

from vimtui.core.actions.base import VmAction
from vimtui.core.actions.params import Choice, Param
from vimtui.core.actions.templates import refuse_if_template
from vimtui.core.fleet.tasks import ActionError, TaskContext
from vimtui.core.model import FleetState, VmState

UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
)


@dataclass(frozen=True, slots=True)
class DiskPlan:
    target: str
    source: str
    """Pool/volume or path, as the operator reads it."""
    remove: bool
    volume_key: str | None
    """The storage volume's key when libvirt manages it (only those can be removed)."""


@dataclass(frozen=True, slots=True)
class DeletePlan:
    vm: str
    running: bool
    snapshots: int
    managed_save: bool
    nvram: str | None
    disks: tuple[DiskPlan, ...]

    def lines(self) -> list[str]:
        out = [f"the definition of {self.vm}"]
        if self.running:
            out.append(f"{self.vm} is running: it is forced off first")
        if self.snapshots:
            out.append(
                f"{self.snapshots} snapshot(s): their metadata (internal data stays in the disks kept)"
            )
        if self.managed_save:
            out.append("its managed save image")
        if self.nvram:
            out.append(f"its NVRAM {self.nvram}")
        for d in self.disks:
            out.append(f"{'REMOVED' if d.remove else 'kept'}: {d.target} {d.source}")
        return out


def _disks(conn: Any, xml: str) -> list[tuple[str, str, Any | None]]:
    """(target, source as shown, volume or None) of every disk backed by a file or volume."""
    out = []
    root = ET.fromstring(xml)
    for disk in root.iterfind("./devices/disk"):
        target_el = disk.find("target")
        target = (target_el.get("dev", "") if target_el is not None else "") or "?"
        src = disk.find("source")
        if src is None:
            continue
        vol = None
        if disk.get("type") == "volume" and src.get("pool") and src.get("volume"):
            shown = f"{src.get('pool')}/{src.get('volume')}"
            try:
                vol = conn.storagePoolLookupByName(src.get("pool")).storageVolLookupByName(src.get("volume"))
            except libvirt.libvirtError:
                vol = None
        elif src.get("file") or src.get("dev"):
            shown = str(src.get("file") or src.get("dev"))
            try:
                vol = conn.storageVolLookupByPath(shown)
            except libvirt.libvirtError:
                vol = None
        else:
            continue
        out.append((target, shown, vol))
    return out


def preview(conn: Any, uuid: str, remove_storage: Sequence[str] = ()) -> DeletePlan:
    """What a delete would do; ActionError when a volume asked for is not a disk of this VM or not one
    libvirt can remove (so the confirmation never promises what the task cannot do)."""
    dom = conn.lookupByUUIDString(uuid)
    disks = _disks(conn, dom.XMLDesc(0))
    wanted = set(remove_storage)
    known = {t for t, _, _ in disks} | {s for _, s, _ in disks}
    unknown = wanted - known
    if unknown:
        listed = ", ".join(f"{t} ({s})" for t, s, _ in disks) or "none"
        raise ActionError(f"not a disk of {dom.name()}: {', '.join(sorted(unknown))} (its disks: {listed})")
    plans = []
    for target, shown, vol in disks:
        remove = target in wanted or shown in wanted
        if remove and vol is None:
            raise ActionError(
                f"{target} ({shown}) is not a volume in a storage pool: vimtui will not remove it"
            )
        if remove:
            users = volume_users(conn, vol, uuid)
            if users:
                raise ActionError(f"{target} ({shown}) is in use: {users}; vimtui will not remove it")
        plans.append(DiskPlan(target, shown, remove, vol.key() if vol is not None else None))
    try:
        snapshots = int(dom.snapshotNum(0))
    except libvirt.libvirtError:
        snapshots = 0
    root = ET.fromstring(dom.XMLDesc(0))
    nvram = root.find("./os/nvram")
    return DeletePlan(
        vm=dom.name(),
        running=bool(dom.isActive()),
        snapshots=snapshots,
        managed_save=bool(dom.hasManagedSaveImage(0)),
        nvram=(nvram.text or "").strip() or None if nvram is not None else None,
        disks=tuple(plans),
    )


def volume_users(conn: Any, vol: Any, own_uuid: str) -> str:
    """Who else needs a volume: other domains of the host with it as a disk (or in a disk's backing chain),
    and volumes it backs (linked clones made from it); '' when nobody. Removing it would break them."""
    path = vol.path()
    names = {path}
    with contextlib.suppress(libvirt.libvirtError):
        names.add(f"{vol.storagePoolLookupByVolume().name()}/{vol.name()}")
    vms = []
    for dom in conn.listAllDomains(0):
        if dom.UUIDString() == own_uuid:
            continue
        try:
            xmls = [dom.XMLDesc(0)]
            if dom.isActive() and dom.isPersistent():
                xmls.append(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        except libvirt.libvirtError:
            continue  # gone meanwhile
        if any(names & _sources(xml) for xml in xmls):
            vms.append(dom.name())
    clones = []
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        try:
            vols = pool.listAllVolumes(0)
        except libvirt.libvirtError:
            continue
        for other in vols:
            try:
                backing = ET.fromstring(other.XMLDesc(0)).findtext("backingStore/path")
            except (libvirt.libvirtError, ET.ParseError):
                continue
            if backing and backing == path and other.path() != path:
                clones.append(f"{pool.name()}/{other.name()}")
    parts = []
    if vms:
        parts.append(f"a disk of {', '.join(sorted(vms))}")
    if clones:
        parts.append(f"the base of {', '.join(sorted(clones))} (linked clones)")
    return "; ".join(parts)


def _sources(xml: str) -> set[str]:
    """Every file, device and pool/volume a domain's disks name, backing chains included."""
    out: set[str] = set()
    for src in ET.fromstring(xml).iterfind("./devices/disk//source"):
        for attr in ("file", "dev"):
            if src.get(attr):
                out.add(str(src.get(attr)))
        if src.get("pool") and src.get("volume"):
            out.add(f"{src.get('pool')}/{src.get('volume')}")
    return out


def delete(ctx: TaskContext, dom: Any, force: bool = False, remove_storage: Sequence[str] = ()) -> str:
    conn = ctx.conn
    refuse_if_template(dom, "delete")
    plan = preview(conn, dom.UUIDString(), remove_storage)
    if plan.running and not force:
        raise ActionError(f"{plan.vm} is running: shut it down first, or delete with force")
    volumes = [(d, conn.storageVolLookupByKey(d.volume_key)) for d in plan.disks if d.remove and d.volume_key]
    if plan.running:
        ctx.progress(None, "forcing off")
        dom.destroy()
    ctx.progress(None, "undefining")
    flags = UNDEFINE_FLAGS if plan.nvram else UNDEFINE_FLAGS & ~libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    try:
        dom.undefineFlags(flags)
    except libvirt.libvirtError as exc:  # a driver without checkpoints refuses the flag: none to remove
        if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise
        dom.undefineFlags(flags & ~libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
    removed = []
    for d, vol in volumes:
        ctx.progress(None, f"removing {d.source}")
        vol.delete(0)
        removed.append(d.target)
    kept = [d.target for d in plan.disks if not d.remove]
    parts = ["undefined"]
    if removed:
        parts.append(f"removed {', '.join(removed)}")
    if kept:
        parts.append(f"kept {', '.join(kept)}")
    return "; ".join(parts)


def _check(vm: VmState, args: dict[str, Any], _state: FleetState) -> str | None:
    if vm.state != "shutoff" and not args.get("force"):
        return f"{vm.name} is {vm.state}: shut it down first, or delete with force"
    return None


def _disk_choices(vm: VmState, _state: FleetState) -> list[Choice]:
    disks = vm.details.disks if vm.details is not None else ()
    return [
        (f"also REMOVE {d.target} ({d.source})", d.target) for d in disks if d.source and d.device == "disk"
    ]


def _preview(conn: Any, uuid: str, args: dict[str, Any]) -> list[str]:
    return preview(conn, uuid, args.get("remove_storage", ())).lines()


ACTIONS: tuple[VmAction, ...] = (
    VmAction(
        "delete",
        "Delete",
        "Undefine (NVRAM, managed save, snapshot metadata go too); disks are kept unless listed to remove",
        delete,
        needs="admin",
        params=(
            Param("force", "bool", "force off a running VM first", label="force off first if running"),
            Param(
                "remove_storage",
                "list",
                "also remove this disk's volume (target such as vda, or its source); repeatable",
                from_state=_disk_choices,
                strict=False,
                metavar="DISK",
            ),
        ),
        check=_check,
        preview=_preview,
        note="Disks are kept unless ticked below.",
        ok="Next",
        destructive=True,
        templates="not",
        timeout=600.0,
        key="ctrl+d",
    ),
)
