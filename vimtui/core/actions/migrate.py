"""Migration between two hosts of the inventory: live for a running VM, cold for a shut-off one
(cold_migrate.py: definition and volumes copied, verified, then removed from the source).

Live migration is driven from here (client-managed, not peer-to-peer):
vimtui holds a libvirt connection to both hosts already, so the source's libvirtd needs no way of reaching
the destination's; only the two QEMUs talk to each other, directly, for the memory (and disks) themselves.

With shared storage only the memory moves; with disks on each host's local storage, copy_storage moves
them too (copy-storage-all: libvirt precreates the volumes on the destination when the same pool exists
there). A cancelled migration (abortJob) leaves the VM running on its source, as if nothing happened.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import Any

import libvirt

from vimtui.core.actions.base import INACTIVE, ActionError, VmAction, job_progress
from vimtui.core.actions.cold_migrate import cold_migrate
from vimtui.core.actions.disk_copy import copied, disk_volume, volume_exists
from vimtui.core.actions.lifecycle import abort_job
from vimtui.core.actions.params import Choice, Param
from vimtui.core.fleet.placement import Demand, place
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.model import FleetState, VmState
from vimtui.core.profiles import Profile, refusal

MIGRATE_NEEDS: Profile = "operator"
"""On the source and on the destination."""

FLAGS = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
"""Live; defined on the destination afterwards and no longer on the source (it moves, it is not copied)."""
MIGRATE_TIMEOUT = 24 * 3600.0
"""A migration runs until it converges, fails or is cancelled: the task lane's deadline is no judge."""


def migrate(ctx: TaskContext, dom: Any, dest: str, copy_storage: bool = False, bandwidth_mib: int = 0) -> str:
    """Move a running (or paused) VM live to `dest`, another host of the inventory; with its disks when
    `copy_storage` (disks on storage the two hosts do not share). `bandwidth_mib` caps the transfer in MiB/s
    (0: no cap). A shut-off VM moves cold (its disks are always copied; the cap does not apply)."""
    if dest == ctx.host:
        raise ActionError(f"{dom.name()} is already on {dest}")
    if not dom.isActive():
        return cold_migrate(ctx, dom, dest)
    dconn = ctx.peer(dest)
    name = dom.name()
    params: dict[str, Any] = {}
    address = _migration_address(ctx, dest)
    if address:
        params[libvirt.VIR_MIGRATE_PARAM_URI] = migration_uri(address)
    if bandwidth_mib:
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = int(bandwidth_mib)
    moved_volumes: list[Any] = []
    if copy_storage:
        targets, moved_volumes = _disks_to_copy(ctx.conn, dconn, dom, ctx.host)
        if targets:
            params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = targets
        copy_storage = bool(targets)
    flags = FLAGS | (libvirt.VIR_MIGRATE_NON_SHARED_DISK if copy_storage else 0)
    what = "memory and disks" if copy_storage else "memory"
    ctx.progress(0.0, f"migrating to {dest} ({what})")
    ctx.check_cancelled()
    started = time.monotonic()
    try:
        with job_progress(ctx, dom, f"to {dest}"):
            dom.migrate3(dconn, params, flags)
    except libvirt.libvirtError as exc:
        if ctx.cancelled:
            raise  # the task ends cancelled; libvirt resumed the VM on its source
        raise ActionError(_explain(exc, name, ctx.host, dest, copy_storage, _still_here(dom))) from exc
    finally:
        ctx.poll_soon(dest)
    took = time.monotonic() - started
    out = f"migrated live to {dest} in {took:.1f} s" + (", its disks copied" if copy_storage else "")
    left = []
    for vol in moved_volumes:  # the source's copies, now the VM runs on the destination's
        try:
            vol.delete(0)
        except libvirt.libvirtError as exc:
            left.append(f"{vol.name()} ({(exc.get_error_message() or str(exc)).strip()})")
    if left:
        out += f"; could not delete on {ctx.host}: {', '.join(left)}"
    return out


def _disks_to_copy(sconn: Any, dconn: Any, dom: Any, host: str) -> tuple[list[str], list[Any]]:
    """The writable disks a copy-storage migration copies, and the source volumes to delete once it has
    moved: only disks whose volume the destination's pool of the same name does not have. One it has is
    either the same file (shared storage: copying it onto itself would destroy it) or one made for it;
    either way it is not copied, and libvirt's own check refuses the move if that is unsafe."""
    targets: list[str] = []
    volumes: list[Any] = []
    for disk in ET.fromstring(dom.XMLDesc(0)).iterfind("devices/disk"):
        target_el = disk.find("target")
        if not copied(disk) or target_el is None:
            continue
        try:
            vol = disk_volume(sconn, disk, host)
            dpool = dconn.storagePoolLookupByName(vol.storagePoolLookupByVolume().name())
            dpool.refresh(0)
            there = volume_exists(dpool, vol.name())
        except (ActionError, libvirt.libvirtError):  # not in a pool here or there: libvirt says the rest
            targets.append(target_el.get("dev", ""))
            continue
        if not there:
            targets.append(target_el.get("dev", ""))
            volumes.append(vol)
    return targets, volumes


def migration_uri(address: str) -> str:
    """The URI the source's QEMU sends to: tcp://ADDRESS (an IPv6 address in brackets)."""
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    return f"tcp://{address}"


def check(vm: VmState, args: dict[str, Any], state: FleetState) -> str | None:
    """Why `vm` cannot migrate to args['dest'] (None: it can); touches nothing."""
    dest = args.get("dest")
    if not dest or not isinstance(dest, str):
        return "say where to: the destination host (another host of the inventory)"
    host = state.host(dest)
    if host is None:
        known = ", ".join(h.name for h in state.hosts if h.name != vm.host) or "none"
        return f"no host {dest!r} in the inventory (other hosts: {known})"
    if dest == vm.host:
        return f"{vm.name} is already on {dest}: migrate it to another host"
    if not host.status.healthy:
        return f"destination {dest} is {host.status}" + (f": {host.message}" if host.message else "")
    if host.maintenance is not None:
        return f"destination {dest} is in maintenance: take it out of maintenance first"
    if (why := refusal(host.profile, MIGRATE_NEEDS, dest, "a migration to it")) is not None:
        return f"destination {dest}: {why}"
    if any(v.name == vm.name or v.uuid == vm.uuid for v in state.vms_on(dest)):
        return f"{dest} already has a VM named {vm.name} (or with its UUID)"
    bandwidth = args.get("bandwidth_mib", 0)
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, int) or bandwidth < 0:
        return f"bandwidth_mib must be a whole number of MiB/s (0: no cap), not {bandwidth!r}"
    return None


def _abort(conn: Any, uuid: str) -> None:
    """A live migration's job is aborted; a cold one stops at its next chunk (the task's cancel flag)."""
    if conn.lookupByUUIDString(uuid).isActive():
        abort_job(conn, uuid)


def _migration_address(ctx: TaskContext, dest: str) -> str:
    session = ctx._manager.fleet.sessions.get(dest)
    return session.spec.migration_address if session is not None else ""


def _still_here(dom: Any) -> bool:
    try:
        return bool(dom.isActive())
    except libvirt.libvirtError:
        return False


def _explain(
    exc: libvirt.libvirtError, name: str, src: str, dest: str, copy_storage: bool, here: bool
) -> str:
    msg = (exc.get_error_message() or str(exc)).strip()
    where = f"; {name} still runs on {src}" if here else ""
    if exc.get_error_code() == libvirt.VIR_ERR_MIGRATE_UNSAFE and not copy_storage:
        return (
            f"libvirt refuses to migrate {name} to {dest} without copying its disks: they are not on "
            f"storage both hosts share ({msg}). Migrate with copy storage to copy them{where}"
        )
    return f"migration to {dest} failed: {msg}{where}"


def destinations(vm: VmState, state: FleetState) -> list[Choice]:
    """The hosts a VM can go to: the other healthy ones of the inventory not in maintenance, in placement
    order (the best first, with why), then those placement leaves out (with the reason: the operator may
    know better than its ratios)."""
    demand = Demand(vcpus=vm.vcpu_count or 1, memory_kib=vm.memory_kib or 0, leave_out=frozenset({vm.host}))
    p = place(state, demand)
    out = [(f"{r.host}  (#{r.rank}: {r.limit} {r.score * 100:.0f}% after)", r.host) for r in p.ranked]
    for x in p.left_out:
        h = state.host(x.host)
        if h is not None and x.host != vm.host and h.status.healthy and h.maintenance is None:
            out.append((f"{x.host}  ({x.reason})", x.host))
    return out


ACTIONS: tuple[VmAction, ...] = (
    VmAction(
        "migrate",
        "Migrate",
        "Move to another host (dest): live when it runs (copy_storage copies disks that are not on shared "
        "storage); cold when shut off (definition and disks copied, verified, then removed from the source)",
        migrate,
        needs=MIGRATE_NEEDS,
        params=(
            Param(
                "dest",
                "choice",
                "destination host (from the inventory)",
                required=True,
                from_state=destinations,
                label="destination host",
                flag="to",
                metavar="HOST",
            ),
            Param(
                "copy_storage",
                "bool",
                "copy the disks too (no shared storage)",
                label="copy the disks too (no shared storage)",
            ),
            Param(
                "bandwidth_mib",
                "int",
                "cap in MiB/s (0: no cap)",
                default=0,
                low=0,
                high=1_000_000,
                label="bandwidth cap, MiB/s (0: none)",
                flag="bandwidth",
                metavar="MIB",
            ),
        ),
        states=frozenset({"running", "paused"}) | INACTIVE,
        not_applicable="it migrates live when running or paused, cold when shut off",
        check=check,
        abort=_abort,
        timeout=MIGRATE_TIMEOUT,
        key="M",
        bar=True,
    ),
)
