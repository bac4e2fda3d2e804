"""Snapshots: create (internal with memory, or disk-only external), revert, delete (one, or with children).

The known data-loss traps are refused before anything is touched, with the reason: internal snapshots of a
VM whose disks cannot hold them (raw, none) or that boots UEFI from pflash (QEMU cannot save its NVRAM
internally); reverting to an external snapshot where the host's libvirt cannot (before 9.9); deleting an
external snapshot that has children (libvirt would have to merge overlays under them).
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape

import libvirt

from vimtui.core.actions.base import VmAction, job_progress
from vimtui.core.actions.params import Choice, Param
from vimtui.core.fleet.tasks import ActionError, TaskContext
from vimtui.core.model import FleetState, VmState
from vimtui.core.poll.host_queries import SnapshotInfo, snapshots

EXTERNAL_REVERT_SINCE = 9_009_000
"""libvirt reverts to external snapshots from 9.9.0 on."""


def _writable_disks(root: ET.Element) -> list[ET.Element]:
    return [
        d
        for d in root.iterfind("./devices/disk")
        if d.get("device", "disk") == "disk" and d.find("readonly") is None and d.find("source") is not None
    ]


_APOS = {"'": "&apos;"}


def _volume_overlays(dom: Any, root: ET.Element, snapshot: str) -> str:
    """Where each pool volume's overlay goes: libvirt names an external snapshot's file itself only for disks
    given by file path, and refuses a disk given as pool/volume ("cannot generate external snapshot name");
    so the overlay is named as libvirt would, beside the volume's file (NAME.qcow2 -> NAME.SNAPSHOT)."""
    out = []
    for d in _writable_disks(root):
        src, target = d.find("source"), d.find("target")
        if d.get("type") != "volume" or src is None or target is None:
            continue
        pool = dom.connect().storagePoolLookupByName(src.get("pool", ""))
        path = pool.storageVolLookupByName(src.get("volume", "")).path()
        stem = path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path
        out.append(
            f"<disk name='{escape(target.get('dev', ''), _APOS)}' snapshot='external'>"
            f"<source file='{escape(f'{stem}.{snapshot}', _APOS)}'/></disk>"
        )
    return f"<disks>{''.join(out)}</disks>" if out else ""


def _uefi_pflash(root: ET.Element) -> bool:
    loader = root.find("./os/loader")
    return (loader is not None and loader.get("type") == "pflash") or root.find("./os").get(  # type: ignore[union-attr]
        "firmware"
    ) == "efi"


def internal_refusal(name: str, xml: str) -> str | None:
    """Why an internal snapshot of this domain would fail or lose data (None: it can have one)."""
    root = ET.fromstring(xml)
    disks = _writable_disks(root)
    if not disks:
        return f"{name} has no writable disk: there is nothing to snapshot"
    if _uefi_pflash(root):
        return (
            f"{name} boots UEFI from pflash: QEMU cannot keep its NVRAM in an internal snapshot "
            "(use disk-only)"
        )
    raw = [
        (d.find("target").get("dev", "?") if d.find("target") is not None else "?")  # type: ignore[union-attr]
        for d in disks
        if (d.find("driver").get("type") if d.find("driver") is not None else "raw") != "qcow2"  # type: ignore[union-attr]
    ]
    if raw:
        return f"{name}: {', '.join(raw)} not qcow2: internal snapshots need qcow2 disks (use disk-only)"
    return None


def create(
    ctx: TaskContext,
    dom: Any,
    name: str,
    description: str = "",
    disk_only: bool = False,
    quiesce: bool = False,
) -> str:
    xml = dom.XMLDesc(0)
    if name_problem(name):
        raise ActionError(f"bad snapshot name {name!r}")
    if name in dom.snapshotListNames(0):
        raise ActionError(f"{dom.name()} already has a snapshot named {name!r}")
    flags = 0
    if disk_only:
        if not _writable_disks(ET.fromstring(xml)):
            raise ActionError(f"{dom.name()} has no writable disk: there is nothing to snapshot")
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
        if quiesce:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE
    else:
        why = internal_refusal(dom.name(), xml)
        if why:
            raise ActionError(why)
    body = f"<domainsnapshot><name>{escape(name)}</name>"
    if description:
        body += f"<description>{escape(description)}</description>"
    if disk_only:
        body += _volume_overlays(dom, ET.fromstring(xml), name)
    body += "</domainsnapshot>"
    running = bool(dom.isActive())
    with job_progress(ctx, dom, "saving memory" if running and not disk_only else "snapshot"):
        dom.snapshotCreateXML(body, flags)
    kind = "disk-only (external)" if disk_only else ("with memory" if running else "of the disks")
    return f"snapshot {name!r} taken, {kind}"


def _lookup(dom: Any, name: str) -> Any:
    try:
        return dom.snapshotLookupByName(name, 0)
    except libvirt.libvirtError as exc:
        names = ", ".join(dom.snapshotListNames(0)) or "none"
        raise ActionError(f"{dom.name()} has no snapshot {name!r} (it has: {names})") from exc


def _info(conn: Any, dom: Any, name: str) -> tuple[SnapshotInfo, list[SnapshotInfo]]:
    tree = snapshots(conn, dom.UUIDString())
    info = next(s for s in tree if s.name == name)
    return info, [s for s in tree if s.parent == name]


def revert(ctx: TaskContext, dom: Any, name: str, start: bool | None = None) -> str:
    snap = _lookup(dom, name)
    info, _children = _info(ctx.conn, dom, name)
    if info.external and int(ctx.conn.getLibVersion()) < EXTERNAL_REVERT_SINCE:
        raise ActionError(
            f"{name!r} is an external snapshot: libvirt on {ctx.host} cannot revert to it "
            "(it needs libvirt 9.9 or later)"
        )
    flags = 0
    if start is True:
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING
    elif start is False:
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED
    with job_progress(ctx, dom, "reverting"):
        dom.revertToSnapshot(snap, flags)
    return f"reverted to {name!r} (taken {info.state})"


def delete(ctx: TaskContext, dom: Any, name: str, children: bool = False) -> str:
    snap = _lookup(dom, name)
    info, kids = _info(ctx.conn, dom, name)
    if info.external and kids:
        raise ActionError(
            f"{name!r} is external and has children ({', '.join(k.name for k in kids)}): deleting it means "
            "merging overlays under them, which libvirt cannot do safely; delete the children first"
        )
    if children:
        external = [s.name for s in snapshots(ctx.conn, dom.UUIDString()) if s.external and s.parent]
        if external:
            raise ActionError(
                f"external snapshots below {name!r} ({', '.join(external)}): delete them one by one"
            )
    flags = libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN if children else 0
    snap.delete(flags)
    return f"deleted {name!r}" + (f" and its {len(kids)} child snapshot(s)" if children and kids else "")


def _check_create(vm: VmState, args: dict[str, Any], _state: FleetState) -> str | None:
    d = vm.details
    if d is None:
        return None  # not known yet: the task checks against the XML
    disks = [x for x in d.disks if x.device == "disk" and x.source]
    if not disks:
        return f"{vm.name} has no disk: there is nothing to snapshot"
    if not args.get("disk_only"):
        raw = [x.target for x in disks if x.driver_type != "qcow2"]
        if raw:
            return (
                f"{vm.name}: {', '.join(raw)} not qcow2: internal snapshots need qcow2 disks (use disk-only)"
            )
        if d.firmware == "efi":
            return f"{vm.name} boots UEFI: QEMU cannot keep its NVRAM in an internal snapshot (use disk-only)"
    return None


def _needs_name(vm: VmState, args: dict[str, Any], _state: FleetState) -> str | None:
    return None if args.get("name") else "which snapshot? (a name is needed)"


def name_problem(name: str | None) -> bool:
    """A name a snapshot cannot have (checked before a dry run says it would take it, and by the task)."""
    return not name or "/" in name or name != name.strip()


def _check_name(vm: VmState, args: dict[str, Any], state: FleetState) -> str | None:
    name = args.get("name")
    return f"bad snapshot name {name!r}" if name and name_problem(name) else None


def snapshot_choices(conn: Any, uuid: str) -> list[Choice]:
    """The VM's snapshots to choose from, the current one first (what a form proposes)."""
    snaps = snapshots(conn, uuid)
    snaps.sort(key=lambda s: not s.current)
    return [(_label(s), s.name) for s in snaps]


def _label(s: SnapshotInfo) -> str:
    mark = " (current)" if s.current else ""
    return f"{s.name}{mark}  {s.state}{'  external' if s.external else ''}"


def _stamped(_vm: Any, _state: FleetState, now: float) -> str:
    return "snap-" + time.strftime("%Y%m%d-%H%M%S", time.localtime(now))


WHICH = Param(
    "name",
    "choice",
    "the snapshot",
    required=True,
    from_host=snapshot_choices,
    label="snapshot",
    metavar="SNAP",
)

ACTIONS: tuple[VmAction, ...] = (
    VmAction(
        "snapshot",
        "Snapshot",
        "Take a snapshot (internal, with memory when running; or disk-only external)",
        create,
        needs="operator",
        params=(
            Param("name", "text", "the new snapshot's name", required=True, suggest=_stamped, metavar="SNAP"),
            Param("description", "text", "what it is for", metavar="TEXT"),
            Param(
                "disk_only",
                "bool",
                "external, disks only (no memory)",
                label="disk-only (external, no memory)",
            ),
        ),
        check=lambda vm, args, st: (
            _needs_name(vm, args, st) or _check_name(vm, args, st) or _check_create(vm, args, st)
        ),
        timeout=3600.0,
        key="n",
        bar=True,
        ok="Take",
    ),
    VmAction(
        "revert",
        "Revert to snapshot",
        "Go back to a snapshot: what happened since is lost",
        revert,
        needs="operator",
        params=(WHICH,),
        check=_needs_name,
        destructive=True,
        timeout=3600.0,
        bulk=False,
    ),
    VmAction(
        "snapshot-delete",
        "Delete snapshot",
        "Delete a snapshot (with children: its whole subtree)",
        delete,
        needs="operator",
        params=(WHICH, Param("children", "bool", "and every snapshot under it", label="with its children")),
        check=_needs_name,
        destructive=True,
        timeout=3600.0,
        bulk=False,
    ),
)
