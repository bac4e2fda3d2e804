"""Disks of a new VM copied through their storage pools (full copies, or qcow2 overlays when linked):
which disks and which new volume names (`plan_disks`), the copies with progress (`copy_disks`), and their
removal (`delete_volumes`). Shared by creating from a template and cloning."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import libvirt

from vimtui.core.actions.base import ActionError
from vimtui.core.actions.rollback import Rollback, undo_volume
from vimtui.core.actions.vm_spec import MIB
from vimtui.core.fleet.tasks import TaskContext

# -- volumes ---------------------------------------------------------------------------------------------


def find_pool(conn: Any, name: str, host: str) -> Any:
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise ActionError(f"no storage pool {name!r} on {host}") from exc
        raise
    if not pool.isActive():
        raise ActionError(f"storage pool {name!r} on {host} is not active")
    return pool


def find_volume(pool: Any, name: str, host: str) -> Any:
    for attempt in (0, 1):
        try:
            return pool.storageVolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                raise
            if attempt == 0:  # made outside libvirt since the pool's last refresh?
                with suppress(libvirt.libvirtError):
                    pool.refresh(0)
    raise ActionError(f"no volume {name!r} in storage pool {pool.name()!r} on {host}")


def volume_exists(pool: Any, name: str) -> bool:
    try:
        pool.storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return False
        raise
    return True


def volume_format(vol: Any) -> str:
    fmt = ET.fromstring(vol.XMLDesc(0)).find("target/format")
    return fmt.get("type", "") if fmt is not None else ""


def volume_xml(
    name: str, capacity: int, fmt: str, backing: tuple[str, str] | None = None, allocation: int | None = None
) -> str:
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="bytes").text = str(capacity)
    if allocation is not None:
        ET.SubElement(vol, "allocation", unit="bytes").text = str(allocation)
    if fmt:
        ET.SubElement(ET.SubElement(vol, "target"), "format", type=fmt)
    if backing is not None:
        store = ET.SubElement(vol, "backingStore")
        ET.SubElement(store, "path").text = backing[0]
        if backing[1]:
            ET.SubElement(store, "format", type=backing[1])
    return ET.tostring(vol, encoding="unicode")


@dataclass
class DiskCopy:
    """One disk of a new VM: the volume it comes from and the one it becomes (`volume`, once made)."""

    target: str
    """Its device in the guest (vda)."""
    pool: Any
    """The pool the new volume goes in (the source's own, for a template)."""
    source: Any
    source_path: str
    source_format: str
    capacity: int
    allocation: int
    name: str
    """The new volume's name."""
    format: str
    """The new volume's format (qcow2 for an overlay)."""
    linked: bool = False
    """An overlay on the source (qcow2 with the source as backing file) rather than a full copy."""
    volume: Any = None

    @property
    def pool_name(self) -> str:
        return str(self.pool.name())


def _new_volume_name(old: str, old_vm: str, new_vm: str, target: str) -> str:
    if old.startswith(old_vm):
        return new_vm + old[len(old_vm) :]
    ext = ""
    for suffix in (".qcow2", ".img", ".raw", ".qed", ".vmdk"):
        if old.endswith(suffix):
            ext = suffix
    return f"{new_vm}-{target}{ext}"


def disk_volume(conn: Any, disk: ET.Element, host: str) -> Any:
    kind = disk.get("type", "file")
    src = disk.find("source")
    target = disk.find("target")
    dev = target.get("dev", "?") if target is not None else "?"
    if src is None:
        raise ActionError(f"disk {dev} has no source: nothing to copy")
    if kind == "volume":
        pool = find_pool(conn, src.get("pool", ""), host)
        return find_volume(pool, src.get("volume", ""), host)
    if kind in ("file", "block"):
        path = src.get("file" if kind == "file" else "dev", "")
        for attempt in (0, 1):
            try:
                return conn.storageVolLookupByPath(path)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise
                if attempt == 0:
                    for p in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
                        with suppress(libvirt.libvirtError):
                            p.refresh(0)
        raise ActionError(
            f"disk {dev} ({path}) is in no storage pool of {host}: libvirt cannot copy it "
            "(define a pool for its directory)"
        )
    raise ActionError(f"disk {dev} is a {kind} disk: only disks in storage pools can be copied")


def copied(disk: ET.Element) -> bool:
    """The disks a new VM gets its own copy of: writable hard disks (a CD-ROM, a read-only or a shareable
    disk stays shared)."""
    return (
        disk.get("device", "disk") in ("disk", "lun")
        and disk.find("readonly") is None
        and disk.find("shareable") is None
    )


def plan_disks(conn: Any, xml: str, new_name: str, *, host: str, linked: bool = False) -> list[DiskCopy]:
    """The disks of domain `xml` to copy for a VM named `new_name`, each with its new volume's name in the
    source's pool. Refuses (ActionError) a disk that is not a pool volume or a new name that is taken.
    Touches nothing."""
    root = ET.fromstring(xml)
    old_name = root.findtext("name") or ""
    plan: list[DiskCopy] = []
    taken: set[tuple[str, str]] = set()
    for disk in root.iterfind("devices/disk"):
        if not copied(disk):
            continue
        target_el = disk.find("target")
        target = target_el.get("dev", "") if target_el is not None else ""
        vol = disk_volume(conn, disk, host)
        pool = vol.storagePoolLookupByVolume()
        _kind, capacity, allocation = vol.info()
        fmt = volume_format(vol)
        name = _new_volume_name(vol.name(), old_name, new_name, target)
        key = (pool.name(), name)
        if key in taken or volume_exists(pool, name):
            raise ActionError(f"volume {name!r} already exists in storage pool {pool.name()!r} on {host}")
        taken.add(key)
        if linked and fmt not in ("qcow2", "raw", ""):
            raise ActionError(f"disk {target} is {fmt}: a linked copy needs a qcow2 or raw template disk")
        plan.append(
            DiskCopy(
                target=target,
                pool=pool,
                source=vol,
                source_path=vol.path(),
                source_format=fmt,
                capacity=int(capacity),
                allocation=int(allocation),
                name=name,
                format="qcow2" if linked else fmt,
                linked=linked,
            )
        )
    return plan


@contextmanager
def _watch_volume(
    ctx: TaskContext, disk: DiskCopy, span: tuple[float, float], label: str, interval: float = 0.5
) -> Iterator[None]:
    """While a volume is copied, report its growth (its allocation against the source's) from a thread of
    its own (a libvirt connection takes calls from several threads)."""
    stop = threading.Event()
    total = max(disk.allocation, 1)
    low, high = span

    def watch() -> None:
        while not stop.wait(interval):
            try:
                done = int(disk.pool.storageVolLookupByName(disk.name).info()[2])
            except libvirt.libvirtError:
                continue
            frac = min(done / total, 0.99)
            ctx.progress(low + (high - low) * frac, f"{label}: {done / MIB:,.0f} of {total / MIB:,.0f} MiB")

    thread = threading.Thread(target=watch, name=f"copy-{ctx.host}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def copy_disks(
    ctx: TaskContext,
    disks: Sequence[DiskCopy],
    span: tuple[float, float] = (0.0, 90.0),
    rollback: Rollback | None = None,
) -> None:
    """Make each disk's new volume: a full copy through its pool (createXMLFrom), or a qcow2 overlay when
    linked. Progress over `span`; cancellation between disks.

    With a `rollback`, each new volume is put on it (by name, before it is made: a volume whose creation
    lost its reply still goes) and the caller runs it on failure; without one, the volumes made so far are
    deleted here on failure. Either way the error goes on."""
    low, high = span
    total = sum(max(d.allocation, 1) for d in disks if not d.linked) or 1
    done = 0
    try:
        for d in disks:
            ctx.check_cancelled()
            if rollback is not None:
                rollback.add(f"volume {d.pool_name}/{d.name}", undo_volume(d.pool_name, d.name))
            start = low + (high - low) * done / total
            if d.linked:
                ctx.progress(start, f"{d.target}: overlay {d.name} on {d.source_path}")
                xml = volume_xml(d.name, d.capacity, "qcow2", backing=(d.source_path, d.source_format))
                d.volume = d.pool.createXML(xml, 0)
                continue
            end = low + (high - low) * (done + max(d.allocation, 1)) / total
            label = f"{d.target}: copying to {d.pool_name}/{d.name}"
            ctx.progress(start, label)
            with _watch_volume(ctx, d, (start, end), label):
                d.volume = d.pool.createXMLFrom(volume_xml(d.name, d.capacity, d.format), d.source, 0)
            done += max(d.allocation, 1)
        ctx.check_cancelled()
    except BaseException:
        if rollback is None:
            delete_volumes(disks)
        raise


def delete_volumes(disks: Sequence[DiskCopy]) -> list[str]:
    """Delete the volumes made for `disks`; the ones that could not be deleted, as pool/name."""
    left = []
    for d in disks:
        if d.volume is None:
            continue
        try:
            d.volume.delete(0)
        except libvirt.libvirtError:
            left.append(f"{d.pool_name}/{d.name}")
        else:
            d.volume = None
    return left
