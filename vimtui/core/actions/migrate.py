"""Live migration between two hosts of the inventory, driven from here (client-managed, not peer-to-peer):
vimtui holds a libvirt connection to both hosts already, so the source's libvirtd needs no way of reaching
the destination's; only the two QEMUs talk to each other, directly, for the memory (and disks) themselves.

With shared storage only the memory moves; with disks on each host's local storage, copy_storage moves
them too (copy-storage-all: libvirt precreates the volumes on the destination when the same pool exists
there). A cancelled migration (abortJob) leaves the VM running on its source, as if nothing happened.
"""

from __future__ import annotations

import time
from typing import Any

import libvirt

from vimtui.core.actions.base import ActionError, VmAction, job_progress
from vimtui.core.actions.lifecycle import abort_job
from vimtui.core.actions.params import Choice, Param
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.model import FleetState, VmState

FLAGS = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
"""Live; defined on the destination afterwards and no longer on the source (it moves, it is not copied)."""
MIGRATE_TIMEOUT = 24 * 3600.0
"""A migration runs until it converges, fails or is cancelled: the task lane's deadline is no judge."""


def migrate(ctx: TaskContext, dom: Any, dest: str, copy_storage: bool = False, bandwidth_mib: int = 0) -> str:
    """Move a running (or paused) VM live to `dest`, another host of the inventory; with its disks when
    `copy_storage` (disks on storage the two hosts do not share). `bandwidth_mib` caps the transfer in MiB/s
    (0: no cap)."""
    if dest == ctx.host:
        raise ActionError(f"{dom.name()} is already on {dest}")
    dconn = ctx.peer(dest)
    name = dom.name()
    params: dict[str, Any] = {}
    address = _migration_address(ctx, dest)
    if address:
        params[libvirt.VIR_MIGRATE_PARAM_URI] = migration_uri(address)
    if bandwidth_mib:
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = int(bandwidth_mib)
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
    return f"migrated live to {dest} in {took:.1f} s" + (", its disks copied" if copy_storage else "")


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
    if host.read_only:
        return f"destination {dest} is connected read-only"
    if any(v.name == vm.name or v.uuid == vm.uuid for v in state.vms_on(dest)):
        return f"{dest} already has a VM named {vm.name} (or with its UUID)"
    bandwidth = args.get("bandwidth_mib", 0)
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, int) or bandwidth < 0:
        return f"bandwidth_mib must be a whole number of MiB/s (0: no cap), not {bandwidth!r}"
    return None


def _abort(conn: Any, uuid: str) -> None:
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
    """The hosts a VM can go to: the other healthy ones of the inventory."""
    return [(h.name, h.name) for h in state.hosts if h.name != vm.host and h.status.healthy]


ACTIONS: tuple[VmAction, ...] = (
    VmAction(
        "migrate",
        "Migrate",
        "Move live to another host (dest); copy_storage copies disks that are not on shared storage",
        migrate,
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
        states=frozenset({"running", "paused"}),
        not_applicable="only a running or paused VM migrates live",
        check=check,
        abort=_abort,
        timeout=MIGRATE_TIMEOUT,
        key="M",
        bar=True,
    ),
)
