"""Storage pool actions (target "pool", named `HOST/POOL`): define, start, stop, autostart, refresh, delete.

Each is a plain function `fn(ctx, ref, **args) -> str` run on the host's task lane. A pool whose volumes a
domain uses is not deleted (the domains are named); stopping one asks first and lists the running domains
whose disks are in it. The pool's XML for `define` is built and checked in pool_xml.py.
"""

from __future__ import annotations

from typing import Any

import libvirt

from vimtui.core.actions import pool_xml
from vimtui.core.actions.base import Action, ActionError
from vimtui.core.actions.params import Param
from vimtui.core.actions.storage_view import in_use_text, lookup_pool, usage, volume_rows
from vimtui.core.actions.targets import Ref
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.model import FleetState
from vimtui.core.units import format_bytes


def _users(conn: Any, pool: str, running_only: bool = False) -> list[str]:
    """The domains whose disks are volumes of `pool` (running ones only, when asked)."""
    use = usage(conn) if running_only else None
    names: set[str] = set()
    for row in volume_rows(conn, [pool]):
        names.update(row.used_by)
    if use is not None:
        names &= use.running
    return sorted(names)


def refresh(ctx: TaskContext, ref: Ref) -> str:
    pool = lookup_pool(ctx.conn, ref.pool)
    if not pool.isActive():
        raise ActionError(f"pool {ref.pool} is not active: start it first")
    pool.refresh(0)
    _state, cap, alloc, avail = pool.info()
    return (
        f"refreshed: {pool.numOfVolumes()} volumes, {format_bytes(alloc)} of {format_bytes(cap)} "
        f"allocated, {format_bytes(avail)} free"
    )


def start(ctx: TaskContext, ref: Ref, build: bool = False) -> str:
    pool = lookup_pool(ctx.conn, ref.pool)
    if pool.isActive():
        return "was already active"
    if build:
        _build(pool)
    pool.create(0)
    _state, cap, _alloc, avail = pool.info()
    return f"active: {format_bytes(avail)} free of {format_bytes(cap)}"


def stop(ctx: TaskContext, ref: Ref) -> str:
    pool = lookup_pool(ctx.conn, ref.pool)
    if not pool.isActive():
        return "was already inactive"
    pool.destroy()
    return "inactive" if pool.isPersistent() else "stopped; it was transient, so it is gone"


def stop_preview(conn: Any, name: str, _args: dict[str, Any]) -> list[str]:
    pool = lookup_pool(conn, name.split("/")[0])
    if not pool.isActive():
        return ["already inactive: nothing to do"]
    lines = ["its volumes can no longer be listed, created or attached until it is started again"]
    running = _users(conn, pool.name(), running_only=True)
    if running:
        lines.append(f"running VMs with disks in it (they keep their open disks): {', '.join(running)}")
    if not pool.isPersistent():
        lines.append("it is transient: stopping it removes its definition")
    return lines


def autostart(ctx: TaskContext, ref: Ref, enable: bool = True) -> str:
    pool = lookup_pool(ctx.conn, ref.pool)
    if not pool.isPersistent():
        raise ActionError(f"pool {ref.pool} is transient: only a defined pool starts with its host")
    if bool(pool.autostart()) == enable:
        return "already starts with its host" if enable else "already does not start with its host"
    pool.setAutostart(1 if enable else 0)
    return "starts with its host" if enable else "no longer starts with its host"


def define(
    ctx: TaskContext,
    ref: Ref,
    type: str = "dir",
    path: str = "",
    source_host: str = "",
    source_path: str = "",
    source_name: str = "",
    source_format: str = "",
    xml_file: str = "",
    build: bool = True,
    start: bool = True,
    autostart: bool = True,
) -> str:
    conn = ctx.conn
    if ref.pool in {p.name() for p in conn.listAllStoragePools(0)}:
        raise ActionError(f"a pool named {ref.pool} is already defined on {ctx.host}")
    if xml_file:
        xml = pool_xml.read_xml(xml_file, ref.pool)
    else:
        spec = pool_xml.PoolSpec(ref.pool, type, path, source_host, source_path, source_name, source_format)
        xml = pool_xml.build(spec)
    try:
        pool = conn.storagePoolDefineXML(xml, pool_xml.define_flags())
    except libvirt.libvirtError as exc:
        raise ActionError(f"libvirt refused the pool: {pool_xml.libvirt_says(exc)}") from exc
    done = [f"defined ({pool_xml.kind_of(xml)})"]
    try:
        if build and pool_xml.kind_of(xml) in pool_xml.BUILDS:
            _build(pool)
            done.append("built")
        if start:
            pool.create(0)
            done.append("started")
        if autostart:
            pool.setAutostart(1)
            done.append("autostart on")
    except libvirt.libvirtError as exc:  # nothing half made: the definition goes again
        why = pool_xml.libvirt_says(exc)
        try:
            if pool.isActive():
                pool.destroy()
            pool.undefine()
        except libvirt.libvirtError as again:
            raise ActionError(f"{', '.join(done)}; then: {why}; and undefining it: {again}") from exc
        raise ActionError(f"{why} (the pool was undefined again: nothing left on {ctx.host})") from exc
    return ", ".join(done)


def _build(pool: Any) -> None:
    """Build: a directory pool's makes its directory; a pool that formats something (fs, logical, disk)
    never overwrites what is there (libvirt refuses that flag for the others)."""
    kind = pool_xml.kind_of(pool.XMLDesc(0))
    flags = libvirt.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE if kind in pool_xml.FORMATS else 0
    pool.build(flags)


def _spec(name: str, args: dict[str, Any]) -> pool_xml.PoolSpec:
    return pool_xml.PoolSpec(
        name,
        args.get("type") or "dir",
        args.get("path") or "",
        args.get("source_host") or "",
        args.get("source_path") or "",
        args.get("source_name") or "",
        args.get("source_format") or "",
    )


def define_preview(_conn: Any, name: str, args: dict[str, Any]) -> list[str]:
    if args.get("xml_file"):
        return [f"pool {name} from {args['xml_file']}"]
    spec = _spec(name, args)
    return pool_xml.build(spec).splitlines()


def delete(ctx: TaskContext, ref: Ref, storage: bool = False) -> str:
    conn = ctx.conn
    pool = lookup_pool(conn, ref.pool)
    active, persistent = bool(pool.isActive()), bool(pool.isPersistent())
    if storage and not active:
        raise ActionError(f"pool {ref.pool} is not active: start it to delete its volumes, or keep them")
    if storage and not persistent:
        raise ActionError(f"pool {ref.pool} is transient: delete its volumes first, then stop it")
    if active and (users := _users(conn, ref.pool)):
        raise ActionError(f"pool {ref.pool} holds disks of {', '.join(users)}: remove those first")
    done = []
    if storage:
        for vol in pool.listAllVolumes(0):
            vol.delete(0)
        done.append("its volumes deleted")
    if active:
        pool.destroy()
        done.append("stopped")
    if storage:
        pool.delete(0)
        done.append("its storage removed")
    if persistent:
        pool.undefine()
        done.append("undefined")
    if not storage:
        done.append("its volumes stay where they were")
    return ", ".join(done)


def delete_preview(conn: Any, name: str, args: dict[str, Any]) -> list[str]:
    pool = lookup_pool(conn, name)
    if not pool.isActive():
        lines = [f"pool {name} (inactive) undefined"]
        if args.get("storage"):
            lines.append("cannot: start it to delete its volumes, or keep them")
        return lines
    rows = volume_rows(conn, [name])
    users = sorted({d for r in rows for d in r.used_by})
    if users:
        return [f"cannot: it holds disks of {', '.join(users)}"]
    total = sum(r.allocation for r in rows)
    if not args.get("storage"):
        return [f"pool {name} stopped and undefined; its {len(rows)} volumes ({format_bytes(total)}) stay"]
    lines = [f"pool {name} stopped, undefined, and its storage removed; its volumes deleted:"]
    lines += [f"  {r.name}  {format_bytes(r.allocation)}  {r.path}" for r in rows]
    busy = [f"{r.name}: {in_use_text(r)}" for r in rows if r.backs]
    return lines + [f"  ({b})" for b in busy]


def _check_define(ref: Any, args: dict[str, Any], _state: FleetState) -> str | None:
    """The name, and the fields the type needs (the form focuses the first one missing)."""
    if (why := pool_xml.name_problem(ref.pool)) is not None or args.get("xml_file"):
        return why
    spec = _spec(ref.pool, args)
    if lacking := pool_xml.missing(spec):
        names = ", ".join("--" + f.replace("_", "-") for f in lacking)
        return f"{lacking[0]}: a {spec.type} pool needs {names}"
    return None


def _enable_suggest(target: Any, _state: FleetState, _now: float) -> bool:
    """The key toggles it: on for a pool (a listed row) that does not autostart, else off."""
    return not getattr(target, "autostart", False)


ACTIONS: tuple[Action, ...] = (
    Action(
        "define",
        "Define pool",
        "Define a storage pool: a directory (--path), or any type libvirt takes (--type, --source-*), or "
        "its XML from a file (--xml-file); built, started and set to autostart unless told not to",
        define,
        params=(
            Param(
                "type",
                "choice",
                "the pool type",
                default="dir",
                choices=tuple((t, t) for t in pool_xml.TYPES),
            ),
            Param("path", "path", "the target: a directory (dir, fs, netfs), /dev/VG (logical), /dev (disk)"),
            Param("source_host", "text", "the server (netfs, iscsi, rbd, gluster)", label="source host"),
            Param(
                "source_path",
                "text",
                "the export (netfs), the device (fs, disk, logical PV) or the IQN (iscsi)",
                label="source path",
            ),
            Param("source_name", "text", "the VG (logical), the RBD or gluster volume", label="source name"),
            Param(
                "source_format",
                "text",
                "the source's format (netfs: auto, nfs, cifs; fs: auto, ext4 ...; disk: dos, gpt ...)",
                label="source format",
            ),
            Param("xml_file", "path", "a pool's XML in a file, in place of the fields", label="XML file"),
            Param("build", "bool", "build it first (a dir pool: make the directory)", default=True),
            Param("start", "bool", "start it", default=True),
            Param("autostart", "bool", "start it with its host", default=True),
        ),
        creates=True,
        target="pool",
        check=_check_define,
        note="A directory pool needs its path; other types say which source fields they need.",
        needs="admin",
        preview=define_preview,
        timeout=600.0,
        key="N",
        bar=True,
    ),
    Action(
        "start",
        "Start pool",
        "Start (activate) a pool (--build: build it first)",
        start,
        params=(Param("build", "bool", "build it first (makes a dir pool's directory)", asked=False),),
        target="pool",
        needs="admin",
        timeout=600.0,
        key="s",
        bar=True,
    ),
    Action(
        "stop",
        "Stop pool",
        "Stop (deactivate) a pool: its volumes stay, but cannot be used until it starts again",
        stop,
        target="pool",
        needs="admin",
        destructive=True,
        preview=stop_preview,
        timeout=120.0,
        key="S",
        bar=True,
    ),
    Action(
        "autostart",
        "Pool autostart",
        "Start the pool with its host (--no-enable: no longer)",
        autostart,
        params=(
            Param(
                "enable",
                "bool",
                "start with the host (--no-enable: no longer)",
                default=True,
                suggest=_enable_suggest,
            ),
        ),
        target="pool",
        needs="admin",
        timeout=60.0,
        key="a",
    ),
    Action(
        "refresh",
        "Refresh pool",
        "Rescan the pool's volumes (after files were added or removed outside libvirt)",
        refresh,
        target="pool",
        needs="admin",
        timeout=600.0,
        key="R",
        bar=True,
    ),
    Action(
        "delete",
        "Delete pool",
        "Stop and undefine a pool (--storage: delete its volumes and its directory too); refused while a "
        "domain uses a volume in it",
        delete,
        params=(Param("storage", "bool", "also delete its volumes and remove its storage (the directory)"),),
        target="pool",
        needs="admin",
        destructive=True,
        preview=delete_preview,
        timeout=3600.0,
        key="D",
        bar=True,
    ),
)
