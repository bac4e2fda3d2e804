"""Cold migration: a shut-off VM moved to another host of the inventory by copying what defines it, its
definition and the volumes of its writable disks, over the two hosts' libvirt connections (a storage
stream out of the source's pool into a volume of the same name in the destination's pool of the same name,
holes kept), then verified, defined there, and only then removed from the source.

Verified means: each new volume's capacity equals the source's, and a BLAKE2b digest of the whole volume
read back from the destination equals the digest of what was read from the source (holes counted as the
zeros they read as). Nothing on the source changes until that holds; a failure or a cancel at any step
before removes what was made on the destination and leaves the source as it was.

Disks on a pool both hosts share (netfs, rbd, gluster, iscsi: the same volume at the same path on both)
are not copied. Read-only and shareable disks (CD-ROMs) stay pointing where they did.
"""

from __future__ import annotations

import hashlib
import time
import xml.etree.ElementTree as ET
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import libvirt

from vimtui.core.actions.base import ActionError
from vimtui.core.actions.disk_copy import (
    copied,
    disk_volume,
    find_pool,
    volume_exists,
    volume_format,
    volume_xml,
)
from vimtui.core.actions.rollback import Rollback, undo_domain, undo_volume, undone
from vimtui.core.fleet.tasks import TaskCancelled, TaskContext
from vimtui.core.units import format_bytes

CHUNK = 1 << 20
"""Bytes asked of the source's stream at a time (libvirt sends at most 256 KiB a message)."""
SHARED_POOLS = frozenset({"netfs", "rbd", "gluster", "iscsi", "iscsi-direct", "sheepdog", "vstorage"})
"""Pool types whose volumes more than one host can see: a disk there is not copied when the destination
has the same volume at the same path."""
COPY_SPAN, VERIFY_SPAN = (2.0, 62.0), (62.0, 92.0)
_ZEROS = bytes(CHUNK)


@dataclass
class VolumeMove:
    """One writable disk of the VM and where it goes."""

    target: str
    source: Any
    pool: str
    name: str
    capacity: int
    length: int
    """Bytes the stream carries: the file's physical size (a qcow2's, not its virtual capacity)."""
    format: str
    shared: bool
    dest_pool: Any
    dest: Any = None
    digest: str = ""

    @property
    def label(self) -> str:
        return f"{self.target} ({self.pool}/{self.name})"


def cold_migrate(ctx: TaskContext, dom: Any, dest: str) -> str:
    """Move shut-off `dom` to `dest`: definition and volumes copied, verified, defined there, then removed
    from the source (undefined, its copied volumes deleted)."""
    if dest == ctx.host:
        raise ActionError(f"{dom.name()} is already on {dest}")
    name, uuid = dom.name(), dom.UUIDString()
    if dom.isActive():
        raise ActionError(f"{name} runs on {ctx.host}: only a shut-off VM moves cold (it migrates live)")
    dconn = ctx.peer(dest)
    _refuse_what_cannot_move(dom, dconn, name, uuid, ctx.host, dest)
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    moves = plan_moves(ctx.conn, dconn, xml, host=ctx.host, dest=dest)
    autostart = bool(dom.autostart())
    started = time.monotonic()
    ctx.poll_soon(dest)
    rollback = Rollback(ctx, host=dest)
    try:
        _copy(ctx, ctx.conn, dconn, moves, rollback)
        _verify(ctx, dconn, moves)
        ctx.check_cancelled()
        ctx.progress(VERIFY_SPAN[1], f"defining {name} on {dest}")
        rollback.add(f"the definition of {name} on {dest}", undo_domain(uuid))
        new = dconn.defineXML(_with_dest_paths(xml, moves))
        if autostart:
            new.setAutostart(1)
        ctx.check_cancelled()
        if dom.isActive():  # started on the source while it was copied: the copy is already stale
            raise ActionError(f"{name} was started on {ctx.host} during the copy")
        ctx.progress(96.0, f"removing {name} from {ctx.host}")
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM)
    except libvirt.libvirtError as exc:
        if ctx.cancelled:
            _undo(TaskCancelled("cancelled"), rollback, name, ctx.host)
        _undo(ActionError(_message(exc)), rollback, name, ctx.host)
    except BaseException as exc:
        _undo(exc, rollback, name, ctx.host)
    left = _delete_sources(moves)
    took = time.monotonic() - started
    copies = [m for m in moves if not m.shared]
    size = format_bytes(sum(m.length for m in copies))
    what = (
        f"{len(copies)} volume{'s' if len(copies) != 1 else ''} ({size}) copied and verified "
        "(capacity and BLAKE2b of the whole volume read back)"
        if copies
        else "no volume to copy"
    )
    out = f"moved cold to {dest} in {took:.1f} s: {what}"
    if _has_nvram(xml):
        out += f"; its UEFI variables start afresh on {dest} (the old ones stay on {ctx.host})"
    if left:
        out += f"; could not delete on {ctx.host}: {', '.join(left)}"
    return out


def _undo(exc: BaseException, rollback: Rollback, name: str, host: str) -> None:
    """Remove what was made on the destination, then raise `exc` saying the source holds."""
    if isinstance(exc, ActionError):
        exc = ActionError(f"{exc}; {name} is still on {host}, unchanged")
    try:
        undone(exc, rollback)
    except ActionError as worse:
        raise worse from exc
    raise exc


def _message(exc: libvirt.libvirtError) -> str:
    return (exc.get_error_message() or str(exc)).strip()


def _refuse_what_cannot_move(dom: Any, dconn: Any, name: str, uuid: str, host: str, dest: str) -> None:
    n = dom.snapshotNum(0)
    if n:
        raise ActionError(
            f"{name} has {n} snapshot{'s' if n != 1 else ''}: libvirt cannot move them; delete them first"
        )
    if dom.hasManagedSaveImage(0):
        raise ActionError(f"{name} has a managed save on {host}: start it (or discard the save) first")
    for lookup, what in ((dconn.lookupByName, name), (dconn.lookupByUUIDString, uuid)):
        try:
            lookup(what)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
        else:
            raise ActionError(f"{dest} already has a VM named {name} (or with its UUID)")


def plan_moves(sconn: Any, dconn: Any, xml: str, *, host: str, dest: str) -> list[VolumeMove]:
    """Each writable disk's volume and the pool it goes to on `dest` (the one of the same name), checked:
    the pool is there and active, the name free, the room enough, no backing file. Touches nothing."""
    moves: list[VolumeMove] = []
    needed: dict[str, int] = {}
    for disk in ET.fromstring(xml).iterfind("devices/disk"):
        if not copied(disk):
            continue
        target_el = disk.find("target")
        target = target_el.get("dev", "?") if target_el is not None else "?"
        vol = disk_volume(sconn, disk, host)
        spool = vol.storagePoolLookupByVolume()
        pool_name, vol_name = spool.name(), vol.name()
        vxml = ET.fromstring(vol.XMLDesc(0))
        backing = vxml.findtext("backingStore/path")
        if backing:
            raise ActionError(
                f"disk {target} is an overlay on {backing}: cold migration copies single volumes, "
                "not a backing chain"
            )
        try:
            dpool = find_pool(dconn, pool_name, dest)
        except ActionError as exc:
            raise ActionError(f"{exc}: disk {target} goes to the pool of the same name") from exc
        _kind, capacity, _allocation = vol.info()
        length = int(vol.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)[2])
        ptype = ET.fromstring(spool.XMLDesc(0)).get("type", "")
        shared = ptype in SHARED_POOLS and volume_exists(dpool, vol_name)
        if shared and dpool.storageVolLookupByName(vol_name).path() != vol.path():
            shared = False
        if not shared:
            if volume_exists(dpool, vol_name):
                raise ActionError(
                    f"volume {vol_name!r} already exists in storage pool {pool_name!r} on {dest}"
                )
            needed[pool_name] = needed.get(pool_name, 0) + length
            free = int(dpool.info()[3])
            if needed[pool_name] > free:
                raise ActionError(
                    f"storage pool {pool_name!r} on {dest} has {format_bytes(free)} free, "
                    f"{format_bytes(needed[pool_name])} needed"
                )
        moves.append(
            VolumeMove(
                target=target,
                source=vol,
                pool=pool_name,
                name=vol_name,
                capacity=int(capacity),
                length=length,
                format=volume_format(vol),
                shared=shared,
                dest_pool=dpool,
            )
        )
    return moves


def _copy(ctx: TaskContext, sconn: Any, dconn: Any, moves: list[VolumeMove], rollback: Rollback) -> None:
    copies = [m for m in moves if not m.shared]
    total = sum(m.length for m in copies) or 1
    done = 0
    for m in copies:
        ctx.check_cancelled()
        rollback.add(f"volume {m.pool}/{m.name} on the destination", undo_volume(m.pool, m.name))
        m.dest = m.dest_pool.createXML(volume_xml(m.name, m.capacity, m.format, allocation=0), 0)
        down, up = sconn.newStream(0), dconn.newStream(0)
        sparse = libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM
        m.source.download(down, 0, 0, sparse)
        m.dest.upload(up, 0, 0, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
        label = f"copying {m.label}"

        def sent(n: int, base: int = done, label: str = label) -> None:
            _report(ctx, COPY_SPAN, (base + n) / total, label, base + n, total)

        m.digest = _pump(ctx, down, up, sent)
        done += m.length


def _verify(ctx: TaskContext, dconn: Any, moves: list[VolumeMove]) -> None:
    copies = [m for m in moves if not m.shared]
    total = sum(m.length for m in copies) or 1
    done = 0
    for m in copies:
        ctx.check_cancelled()
        _kind, capacity, _alloc = m.dest.info()
        if int(capacity) != m.capacity:
            raise ActionError(f"{m.label}: {capacity} bytes on the destination, {m.capacity} on the source")
        back = dconn.newStream(0)
        m.dest.download(back, 0, m.length, libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
        label = f"verifying {m.label}"

        def read(n: int, base: int = done, label: str = label) -> None:
            _report(ctx, VERIFY_SPAN, (base + n) / total, label, base + n, total)

        digest = _pump(ctx, back, None, read)
        if digest != m.digest:
            raise ActionError(f"{m.label}: the copy read back from the destination differs from the source")
        done += m.length


def _pump(ctx: TaskContext, down: Any, up: Any | None, progress: Any) -> str:
    """Everything `down` carries, into `up` (None: only read), holes kept; the BLAKE2b of it with holes as
    zeros. Cancellation between chunks aborts both streams."""
    digest = hashlib.blake2b()
    seen = 0
    last = 0.0
    try:
        while True:
            ctx.check_cancelled()
            got = down.recvFlags(CHUNK, libvirt.VIR_STREAM_RECV_STOP_AT_HOLE)
            if got == -3:
                hole = int(down.recvHole(0))
                if up is not None:
                    up.sendHole(hole, 0)
                left = hole
                while left > 0:
                    n = min(left, CHUNK)
                    digest.update(_ZEROS if n == CHUNK else bytes(n))
                    left -= n
                seen += hole
            elif isinstance(got, bytes):
                if not got:
                    break
                if up is not None:
                    up.send(got)
                digest.update(got)
                seen += len(got)
            else:
                raise ActionError(f"the storage stream answered {got!r}")
            now = time.monotonic()
            if now - last >= 0.5:
                last = now
                progress(seen)
        down.finish()
        if up is not None:
            up.finish()
    except BaseException:
        for s in (down, up):
            if s is not None:
                with suppress(libvirt.libvirtError):
                    s.abort()
        raise
    return digest.hexdigest()


def _report(
    ctx: TaskContext, span: tuple[float, float], frac: float, label: str, done: int, total: int
) -> None:
    low, high = span
    ctx.progress(
        low + (high - low) * min(frac, 1.0), f"{label}: {format_bytes(done)} of {format_bytes(total)}"
    )


def _with_dest_paths(xml: str, moves: list[VolumeMove]) -> str:
    """The definition with each copied file or block disk pointing at its new volume's path there (a
    `volume` disk names pool and volume, the same on both hosts)."""
    root = ET.fromstring(xml)
    by_target = {m.target: m for m in moves if m.dest is not None}
    for disk in root.iterfind("devices/disk"):
        target_el, src = disk.find("target"), disk.find("source")
        m = by_target.get(target_el.get("dev", "") if target_el is not None else "")
        if m is None or src is None:
            continue
        kind = disk.get("type", "file")
        if kind in ("file", "block"):
            src.set("file" if kind == "file" else "dev", m.dest.path())
    return ET.tostring(root, encoding="unicode")


def _has_nvram(xml: str) -> bool:
    return ET.fromstring(xml).find("os/nvram") is not None


def _delete_sources(moves: list[VolumeMove]) -> list[str]:
    """The source's copied volumes, deleted now the VM is defined on the destination alone; the ones that
    could not be, as pool/name (the VM has moved whatever these say)."""
    left = []
    for m in moves:
        if m.shared:
            continue
        try:
            m.source.delete(0)
        except libvirt.libvirtError as exc:
            left.append(f"{m.pool}/{m.name} ({_message(exc)})")
    return left
