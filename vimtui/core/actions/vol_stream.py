"""The host's side of a volume transfer: blocking libvirt calls, each one short and run on the host's lane
(TaskContext.on_lane). Opening checks the volume (and makes it, for an upload that asks); then each chunk
of the transfer is one call with a stream of its own on a stretch of the volume (`upload`/`download` with
an offset and a length, holes as holes), finished before the call returns. So nothing is in flight
between chunks: the host's polls and other calls go on between them without waiting behind megabytes
queued in the SSH channel, cancelling leaves no stream open, and a transfer carries on over a connection
made again meanwhile. vol_transfer.py drives the chunks and holds the local file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt

from vimtui.core.actions.base import ActionError
from vimtui.core.actions.disk_copy import find_volume, volume_exists, volume_format, volume_xml
from vimtui.core.units import format_bytes

PIECE = 256 * 1024
"""The most a libvirt stream message carries: larger sends are cut into pieces of it."""
HOLES_PER_CHUNK = 256
"""A chunk of a very fragmented file ends after this many holes, whatever its data."""

Piece = bytes | int
"""Bytes of data, or a hole of that many bytes (zeros the stream carries as a length)."""


@dataclass
class Volume:
    """The volume a transfer reads or writes, by name (each chunk looks it up on the connection it runs on,
    once per connection: a transfer goes on over a connection made again meanwhile)."""

    host: str
    pool: str
    name: str
    sparse: bool
    """Holes go as holes (a download's, where the host can say; an upload's into a volume it made)."""
    _conn: Any = None
    _vol: Any = None

    def on(self, conn: Any) -> Any:
        if conn is not self._conn:
            self._vol = find_volume(find_active_pool(conn, self.pool, self.host), self.name, self.host)
            self._conn = conn
        return self._vol


@dataclass(frozen=True)
class Opened:
    """A volume ready for a transfer, and what is known of it."""

    volume: Volume
    path: str
    """The volume's path on the host."""
    format: str
    capacity: int
    length: int
    """Bytes the transfer carries: the file's length for an upload, the volume's for a download."""
    allocation: int
    created: bool
    """The upload made the volume (a failed or cancelled one deletes it)."""


def find_active_pool(conn: Any, name: str, host: str) -> Any:
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise ActionError(f"no storage pool {name!r} on {host}") from exc
        raise
    if not pool.isActive():
        raise ActionError(f"storage pool {name!r} on {host} is not active: start it first")
    return pool


def running_users(conn: Any, path: str, pool: str, name: str) -> list[str]:
    """The running domains with the volume as a disk (by its path, or by pool and volume name)."""
    users = []
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        try:
            root = ET.fromstring(dom.XMLDesc(0))
        except (libvirt.libvirtError, ET.ParseError):
            continue
        for src in root.iterfind("devices/disk/source"):
            if path in (src.get("file"), src.get("dev")) or (
                src.get("pool") == pool and src.get("volume") == name
            ):
                users.append(dom.name())
                break
    return sorted(users)


@dataclass(frozen=True)
class UploadPlan:
    """What an upload would write into, found on the host before anything is touched."""

    pool: str
    name: str
    create: bool
    format: str
    capacity: int
    used: int
    """Bytes the volume takes in its pool now (0 for one to be made)."""

    def lines(self, source: Path, size: int) -> list[str]:
        """The preview of it, for a person."""
        what = f"{source} ({format_bytes(size)})"
        if self.create:
            return [
                f"makes volume {self.name} in pool {self.pool} ({self.format}, "
                f"{format_bytes(self.capacity)}) and writes {what} into it"
            ]
        out = [
            f"overwrites volume {self.pool}/{self.name} ({self.format or 'raw'}, "
            f"{format_bytes(self.capacity)}, {format_bytes(self.used)} used) with {what}"
        ]
        if size < self.capacity and self.format in ("raw", ""):
            out.append(f"its last {format_bytes(self.capacity - size)} keep the bytes they hold now")
        return out


def _on(host: str) -> str:
    return f" on {host}" if host else ""


def check_upload(
    conn: Any,
    host: str,
    pool_name: str,
    name: str,
    length: int,
    create: tuple[str, int] | None,
    file_format: str = "",
) -> UploadPlan:
    """Whether `length` bytes can go into volume `name` (made first when `create` gives its format and
    capacity), without touching anything: ActionError says why not. A volume to make must not exist and
    must fit in the pool; an existing one must hold the bytes (raw), not be a disk of a running domain, and
    be of the file's format (`file_format`, when known: a raw file into a qcow2 volume would leave a volume
    libvirt calls qcow2 that holds raw bytes, its disk unreadable to the VM that uses it)."""
    pool = find_active_pool(conn, pool_name, host)
    if create is not None:
        fmt, capacity = create
        if "/" in name or not name.strip():
            raise ActionError(f"{name!r} cannot name a volume (no '/', not empty)")
        if volume_exists(pool, name):
            raise ActionError(
                f"volume {name!r} already exists in storage pool {pool_name!r}{_on(host)}: "
                "upload into it (without create), or give the new volume another name"
            )
        free = int(pool.info()[3])
        if length > free:
            raise ActionError(
                f"storage pool {pool_name!r}{_on(host)} has {format_bytes(free)} free, "
                f"the file needs {format_bytes(length)}"
            )
        return UploadPlan(pool_name, name, True, fmt, capacity, 0)
    vol = find_volume(pool, name, host)
    fmt = volume_format(vol)
    _kind, capacity, allocation = (int(x) for x in vol.info())
    users = running_users(conn, vol.path(), pool_name, name)
    if users:
        one = len(users) == 1
        raise ActionError(
            f"volume {pool_name}/{name}{_on(host)} is a disk of running {'VM' if one else 'VMs'} "
            f"{', '.join(users)}: stop {'it' if one else 'them'} first"
        )
    if file_format and fmt in ("raw", "qcow2") and file_format != fmt:
        raise ActionError(
            f"volume {pool_name}/{name}{_on(host)} is {fmt}, the file is {file_format}: its bytes would "
            f"no longer be a {fmt} disk. Upload to a new volume (--create), or convert the file first "
            f"(qemu-img convert -O {fmt})"
        )
    if fmt in ("raw", "") and length > capacity:
        raise ActionError(
            f"volume {pool_name}/{name}{_on(host)} holds {format_bytes(capacity)}, the file is "
            f"{format_bytes(length)}: resize the volume first, or upload to a new one (--create)"
        )
    return UploadPlan(pool_name, name, False, fmt, capacity, allocation)


def open_upload(
    conn: Any,
    host: str,
    pool_name: str,
    name: str,
    length: int,
    create: tuple[str, int] | None,
    sparse: bool,
    file_format: str = "",
) -> Opened:
    """Volume `name` ready to take `length` bytes from its start, checked (check_upload) and made first
    when `create` says how. `sparse`: holes go as holes (only into a volume just made, all zeros: in an
    existing one a hole would keep its old bytes)."""
    plan = check_upload(conn, host, pool_name, name, length, create, file_format)
    pool = find_active_pool(conn, pool_name, host)
    if plan.create:
        vol = pool.createXML(volume_xml(name, plan.capacity, plan.format, allocation=0), 0)
    else:
        vol = find_volume(pool, name, host)
        sparse = False
    try:
        path = vol.path()
        fmt = volume_format(vol)
        _kind, capacity, allocation = (int(x) for x in vol.info())
    except BaseException:
        if plan.create:
            with suppress(libvirt.libvirtError):
                vol.delete(0)
        raise
    volume = Volume(host, pool_name, name, sparse, conn, vol)
    return Opened(volume, path, fmt, capacity, length, allocation, plan.create)


def open_download(conn: Any, host: str, pool_name: str, name: str) -> Opened:
    """Volume `name` ready to be read whole: its length, and whether the host sends its holes as holes."""
    pool = find_active_pool(conn, pool_name, host)
    vol = find_volume(pool, name, host)
    _kind, capacity, allocation = (int(x) for x in vol.info())
    try:
        length = int(vol.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)[2])
    except libvirt.libvirtError:
        length = capacity
    volume = Volume(host, pool_name, name, True, conn, vol)
    return Opened(volume, vol.path(), volume_format(vol), capacity, length, allocation, False)


def send_chunk(conn: Any, volume: Volume, offset: int, pieces: list[Piece]) -> None:
    """One chunk of an upload, written at `offset` through a stream of its own: data pieces sent, holes
    skipped. It returns once the host has written the chunk (the stream's finish), so the next chunk
    never queues behind it: nothing is in flight between chunks for a poll's request to wait behind."""
    vol = volume.on(conn)
    length = sum(p if isinstance(p, int) else len(p) for p in pieces)
    stream = conn.newStream(0)
    try:
        flags = libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM if volume.sparse else 0
        vol.upload(stream, offset, length, flags)
        for piece in pieces:
            if isinstance(piece, int):
                stream.sendHole(piece, 0)
                continue
            view = memoryview(piece)
            sent = 0
            while sent < len(view):
                n = stream.send(bytes(view[sent : sent + PIECE]))
                if n <= 0:
                    raise ActionError(f"the host took no more data ({n}) at byte {offset + sent}")
                sent += n
            offset += len(view)
        stream.finish()
    except BaseException:
        with suppress(libvirt.libvirtError):
            stream.abort()
        raise


def recv_chunk(conn: Any, volume: Volume, offset: int, span: int, want: int) -> list[Piece]:
    """One chunk of a download, through a stream of its own: the volume's bytes from `offset`, for at most
    `span` bytes and, when holes make the span long, until `want` bytes of data came (the stream is then
    stopped: what it has sent beyond is dropped). Pieces of data and holes, in order."""
    vol = volume.on(conn)
    stream = conn.newStream(0)
    pieces: list[Piece] = []
    got = holes = covered = 0
    try:
        try:
            flags = libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM if volume.sparse else 0
            vol.download(stream, offset, span, flags)
        except libvirt.libvirtError as exc:
            if not volume.sparse or exc.get_error_code() not in (
                libvirt.VIR_ERR_NO_SUPPORT,
                libvirt.VIR_ERR_INVALID_ARG,
            ):
                raise
            volume.sparse = False  # this host cannot say where the holes are: all as data
            vol.download(stream, offset, span, 0)
        while True:
            if volume.sparse:
                data = stream.recvFlags(PIECE, libvirt.VIR_STREAM_RECV_STOP_AT_HOLE)
            else:
                data = stream.recv(PIECE)
            if isinstance(data, bytes):
                if not data:
                    stream.finish()
                    return pieces
                pieces.append(data)
                got += len(data)
                covered += len(data)
            elif data == -3:  # at a hole
                hole = int(stream.recvHole(0))
                pieces.append(hole)
                holes += 1
                covered += hole
            else:
                raise ActionError(f"the volume's stream answered {data!r}")
            if covered < span and (got >= want or holes >= HOLES_PER_CHUNK):
                stream.abort()
                return pieces
    except BaseException:
        with suppress(libvirt.libvirtError):
            stream.abort()
        raise


def delete_volume(conn: Any, host: str, pool_name: str, name: str) -> None:
    """Delete a volume an upload made (gone already: nothing to do)."""
    pool = conn.storagePoolLookupByName(pool_name)
    try:
        vol = pool.storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return
        raise
    vol.delete(0)


def refreshed_volume(conn: Any, host: str, pool_name: str, name: str) -> tuple[str, int, int]:
    """The volume's format, capacity and allocation once its pool has read it again (an uploaded qcow2
    image's capacity is the one in its header)."""
    pool = find_active_pool(conn, pool_name, host)
    with suppress(libvirt.libvirtError):
        pool.refresh(0)
    vol = find_volume(pool, name, host)
    _kind, capacity, allocation = (int(x) for x in vol.info())
    return volume_format(vol), capacity, allocation
