"""Volume actions (target "volume", named `HOST/POOL/VOL`): create, delete, resize, clone, wipe.

Each is a plain function `fn(ctx, ref, **args) -> str` run on the host's task lane. What would break a
guest is refused before anything is touched, naming who is in the way: deleting or wiping a volume a
domain uses (directly, or as the backing of its disk) or that backs another volume; resizing one a
running domain has open (`vm resize-disk` does it live); cloning one a running domain writes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import libvirt

from vimtui.core.actions.base import Action, ActionError
from vimtui.core.actions.params import Param
from vimtui.core.actions.pool_xml import libvirt_says
from vimtui.core.actions.resources import parse_disk_size
from vimtui.core.actions.storage_view import (
    VolumeRow,
    in_use_text,
    lookup_pool,
    lookup_volume,
    usage,
    volume_row,
)
from vimtui.core.actions.targets import Ref
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.model import FleetState
from vimtui.core.units import format_bytes

FORMATS = (("qcow2", "qcow2"), ("raw", "raw"))
WIPES = ("zero", "nnsa", "dod", "bsi", "gutmann", "schneier", "pfitzner7", "pfitzner33", "random", "trim")


def _active_pool(conn: Any, name: str) -> Any:
    pool = lookup_pool(conn, name)
    if not pool.isActive():
        raise ActionError(f"pool {name} is not active: start it first")
    return pool


def _volume_xml(name: str, capacity: int, fmt: str, backing: tuple[str, str] | None = None) -> str:
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="bytes").text = str(capacity)
    if fmt == "raw" and backing is None:
        ET.SubElement(vol, "allocation", unit="bytes").text = "0"  # sparse, as virt-manager makes it
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", type=fmt)
    if backing is not None:
        store = ET.SubElement(vol, "backingStore")
        ET.SubElement(store, "path").text = backing[0]
        ET.SubElement(store, "format", type=backing[1])
    return ET.tostring(vol, encoding="unicode")


def _format(vol: Any) -> str:
    fmt = ET.fromstring(vol.XMLDesc(0)).find("target/format")
    return fmt.get("type", "raw") if fmt is not None else "raw"


def _exists(pool: Any, name: str) -> bool:
    try:
        pool.storageVolLookupByName(name)
    except libvirt.libvirtError:
        return False
    return True


def _free_name(pool: Any, name: str) -> None:
    if "/" in name or not name.strip():
        raise ActionError(f"{name!r} cannot name a volume (no '/', not empty)")
    if _exists(pool, name):
        raise ActionError(f"pool {pool.name()} already has a volume {name!r}")


def create(
    ctx: TaskContext, ref: Ref, size: int | None = None, format: str = "qcow2", backing: str = ""
) -> str:
    pool = _active_pool(ctx.conn, ref.pool)
    _free_name(pool, ref.volume)
    base = None
    if backing:
        if format != "qcow2":
            raise ActionError("a volume with a backing volume is a qcow2 overlay: say --format qcow2")
        src = _backing_volume(ctx.conn, pool, backing)
        base = (str(src.path()), _format(src))
        capacity = int(src.info()[1]) if size is None else size * 2**20
        if capacity < int(src.info()[1]):
            raise ActionError(
                f"an overlay cannot be smaller than its backing ({format_bytes(src.info()[1])})"
            )
    elif size is None:
        raise ActionError("say its size (20G, 512M), or a backing volume to take it from")
    else:
        capacity = size * 2**20
    try:
        vol = pool.createXML(_volume_xml(ref.volume, capacity, format, base), 0)
    except libvirt.libvirtError as exc:
        raise ActionError(f"libvirt refused the volume: {libvirt_says(exc)}") from exc
    over = f", over {base[0]}" if base else ""
    return f"created {vol.path()}: {format}, {format_bytes(capacity)}{over}"


def _backing_volume(conn: Any, pool: Any, backing: str) -> Any:
    """A backing given as a volume of the same pool, `POOL/VOL` of another, or a path on the host."""
    try:
        if backing.startswith("/"):
            return conn.storageVolLookupByPath(backing)
        other, sep, name = backing.rpartition("/")
        return lookup_volume(lookup_pool(conn, other) if sep else pool, name)
    except libvirt.libvirtError as exc:
        raise ActionError(f"backing {backing!r}: not a volume of a pool on this host") from exc


def _row(ctx_conn: Any, ref: Ref) -> VolumeRow:
    _active_pool(ctx_conn, ref.pool)
    return volume_row(ctx_conn, ref.pool, ref.volume)


def _refuse_in_use(row: VolumeRow, what: str, running: set[str]) -> None:
    if why := in_use_text(row, running):
        raise ActionError(f"{row.name} is {why}: not {what}")


def delete(ctx: TaskContext, ref: Ref) -> str:
    row = _row(ctx.conn, ref)
    _refuse_in_use(row, "deleted", usage(ctx.conn).running)
    lookup_volume(lookup_pool(ctx.conn, ref.pool), ref.volume).delete(0)
    return f"deleted {row.path} ({format_bytes(row.allocation)} freed)"


def delete_preview(conn: Any, name: str, _args: dict[str, Any]) -> list[str]:
    ref = Ref("volume", "", name)
    row = _row(conn, ref)
    if why := in_use_text(row, usage(conn).running):
        return [f"cannot: {row.name} is {why}"]
    fmt = f"{row.format}, " if row.format else ""
    return [f"{row.path} ({fmt}{format_bytes(row.capacity)}, {format_bytes(row.allocation)} allocated)"]


def resize(ctx: TaskContext, ref: Ref, size: str, shrink: bool = False) -> str:
    try:
        grow, value = parse_disk_size(size)
    except ValueError as exc:
        raise ActionError(str(exc)) from exc
    row = _row(ctx.conn, ref)
    running = sorted(set(row.used_by) & usage(ctx.conn).running)
    if running:
        raise ActionError(
            f"{row.name} is open in running {', '.join(running)}: resize it there, live "
            f"(vimtui vm resize-disk {running[0]} DISK {size})"
        )
    if row.backs:
        raise ActionError(f"{row.name} is the backing of {', '.join(row.backs)}: not resized under them")
    new = row.capacity + value if grow else value
    if new == row.capacity:
        return f"already {format_bytes(new)}: nothing to change"
    if new < row.capacity and not shrink:
        raise ActionError(
            f"{format_bytes(new)} is smaller than its {format_bytes(row.capacity)}: what lies past the new "
            "end is lost; say --shrink if that is what you want"
        )
    flags = libvirt.VIR_STORAGE_VOL_RESIZE_SHRINK if new < row.capacity else 0
    vol = lookup_volume(lookup_pool(ctx.conn, ref.pool), ref.volume)
    try:
        vol.resize(new, flags)
    except libvirt.libvirtError as exc:
        raise ActionError(f"libvirt could not resize it: {libvirt_says(exc)}") from exc
    return f"{format_bytes(row.capacity)} -> {format_bytes(new)}"


def clone(ctx: TaskContext, ref: Ref, name: str, linked: bool = False) -> str:
    conn = ctx.conn
    pool = _active_pool(conn, ref.pool)
    row = volume_row(conn, ref.pool, ref.volume)
    _free_name(pool, name)
    src = lookup_volume(pool, ref.volume)
    running = sorted(set(row.used_by) & usage(conn).running)
    if linked:
        if row.used_by:
            raise ActionError(
                f"{row.name} is used by {', '.join(row.used_by)}: a linked clone's base must not change "
                "under it; make a full copy, or a linked clone of a volume no VM writes"
            )
        vol = pool.createXML(_volume_xml(name, row.capacity, "qcow2", (row.path, row.format or "raw")), 0)
        return f"linked clone {vol.path()} over {row.path}"
    if running:
        raise ActionError(
            f"{row.name} is open in running {', '.join(running)}: a copy would be inconsistent; "
            "shut it down first"
        )
    xml = _volume_xml(name, row.capacity, row.format or "raw")
    ctx.progress(None, f"copying {format_bytes(row.allocation)} allocated of {format_bytes(row.capacity)}")
    # one call, no progress: on the lab (libvirt 9.0) a clone whose thread read the new volume's size
    # while it was being built lost the connection ("End of file while reading data")
    try:
        vol = pool.createXMLFrom(xml, src, 0)
    except libvirt.libvirtError as exc:
        raise ActionError(f"libvirt could not copy it: {libvirt_says(exc)}") from exc
    return f"copied to {vol.path()} ({format_bytes(row.capacity)})"


def wipe(ctx: TaskContext, ref: Ref, algorithm: str = "zero") -> str:
    row = _row(ctx.conn, ref)
    _refuse_in_use(row, "wiped", usage(ctx.conn).running)
    alg = getattr(libvirt, f"VIR_STORAGE_VOL_WIPE_ALG_{algorithm.upper()}")
    vol = lookup_volume(lookup_pool(ctx.conn, ref.pool), ref.volume)
    try:
        vol.wipePattern(alg, 0)
    except libvirt.libvirtError as exc:
        raise ActionError(f"libvirt could not wipe it: {libvirt_says(exc)}") from exc
    return f"wiped {row.path} ({algorithm}, {format_bytes(row.capacity)})"


def wipe_preview(conn: Any, name: str, args: dict[str, Any]) -> list[str]:
    row = _row(conn, Ref("volume", "", name))
    if why := in_use_text(row, usage(conn).running):
        return [f"cannot: {row.name} is {why}"]
    alg = args.get("algorithm") or "zero"
    return [f"every byte of {row.path} ({format_bytes(row.capacity)}) overwritten ({alg}): its data is lost"]


def _suggest_clone_name(target: Any, _state: FleetState, _now: float) -> str:
    """`web.qcow2` -> `web-clone.qcow2` (from a listed row)."""
    name = str(getattr(target, "name", "") or "")
    stem, dot, ext = name.rpartition(".")
    return f"{stem}-clone.{ext}" if dot and stem else (f"{name}-clone" if name else "")


def _check_name(ref: Any, args: dict[str, Any], _state: FleetState) -> str | None:
    for name in (ref.volume, args.get("name") or ""):
        if "/" in name:
            return f"{name!r} cannot name a volume: no '/'"
    return None


ACTIONS: tuple[Action, ...] = (
    Action(
        "create",
        "New volume",
        "Make a volume in a pool: qcow2 or raw, its size, or a qcow2 overlay of a backing volume",
        create,
        params=(
            Param(
                "size",
                "size",
                "its size: 20G, 512M (with a backing: default the backing's)",
                positional=True,
            ),
            Param("format", "choice", "qcow2 or raw", default="qcow2", choices=FORMATS),
            Param(
                "backing",
                "text",
                "a backing volume (VOL of the same pool, POOL/VOL, or a path): a qcow2 overlay of it",
            ),
        ),
        creates=True,
        target="volume",
        check=_check_name,
        needs="admin",
        timeout=3600.0,
        key="n",
        bar=True,
    ),
    Action(
        "delete",
        "Delete volume",
        "Delete a volume; refused while a domain uses it or it backs another volume (naming them)",
        delete,
        target="volume",
        needs="admin",
        destructive=True,
        preview=delete_preview,
        timeout=600.0,
        key="D",
        bar=True,
    ),
    Action(
        "resize",
        "Resize volume",
        "Grow a volume (+10G, or 30G); --shrink to make it smaller (what lies past the end is lost)",
        resize,
        params=(
            Param("size", "text", "+10G (grow by) or 30G (grow to)", required=True, positional=True),
            Param("shrink", "bool", "allow making it smaller (what lies past the new end is lost)"),
        ),
        target="volume",
        needs="admin",
        timeout=600.0,
        key="z",
        bar=True,
    ),
    Action(
        "clone",
        "Clone volume",
        "Copy a volume in its pool (--linked: a qcow2 overlay of it instead of a copy)",
        clone,
        params=(
            Param(
                "name",
                "text",
                "the new volume's name",
                required=True,
                positional=True,
                suggest=_suggest_clone_name,
            ),
            Param("linked", "bool", "a qcow2 overlay of it (fast, small) instead of a full copy"),
        ),
        target="volume",
        check=_check_name,
        needs="admin",
        timeout=6 * 3600.0,
        key="C",
        bar=True,
    ),
    Action(
        "wipe",
        "Wipe volume",
        "Overwrite a volume's data (zero, or a pattern); refused while in use",
        wipe,
        params=(Param("algorithm", "choice", "how", default="zero", choices=tuple((w, w) for w in WIPES)),),
        target="volume",
        needs="admin",
        destructive=True,
        preview=wipe_preview,
        timeout=6 * 3600.0,
        key="W",
    ),
)
