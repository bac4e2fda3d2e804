"""An evacuation's plan: every VM of a host, how it leaves (live, live with its disks copied, or cold) and
to where, with why that host; or why it cannot leave. A pure function of the published FleetState and of
what the source says of each VM's storage (`storage_of`, asked on its lane), so the plan shown before
(`--dry-run`, the screen's confirmation) and the one run are made the same way.

Destinations come from placement (core/fleet/placement.py), each move counted on its destination before
the next is placed, so one evacuation spreads its VMs rather than piling them on the emptiest host. Running
VMs are placed first, the largest first (the hardest to fit), then the shut-off ones.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import libvirt

from vimtui.core.fleet.placement import Demand, place
from vimtui.core.model import FleetState, VmState

LIVE_STATES = frozenset({"running", "paused"})
COLD_STATES = frozenset({"shutoff", "crashed"})
SHARED_POOLS = frozenset({"netfs", "rbd", "gluster", "iscsi", "iscsi-direct", "sheepdog", "vstorage"})
"""Pool types whose volumes more than one host sees: a running VM's disk there is not copied."""


@dataclass(frozen=True)
class VmStorage:
    """What the source says of one VM's storage."""

    local_bytes: int = 0
    """Bytes allocated to its writable disks on storage only this host sees (a live move copies them)."""
    pool: str = ""
    """The pool most of those bytes are in (the destination must have one of that name)."""
    shared: int = 0
    """Writable disks on shared storage (network disks, netfs/rbd/... pools): not copied."""
    snapshots: int = 0
    problem: str = ""
    """Why it cannot be read (a disk in no pool): the move's own checks say more."""


def storage_of(conn: Any, uuids: Sequence[str]) -> dict[str, VmStorage]:
    """Each VM's storage as its host sees it (run on the host's lane)."""
    out: dict[str, VmStorage] = {}
    pool_types: dict[str, str] = {}
    for uuid in uuids:
        try:
            dom = conn.lookupByUUIDString(uuid)
            out[uuid] = _storage(conn, dom, pool_types)
        except libvirt.libvirtError as exc:
            out[uuid] = VmStorage(problem=(exc.get_error_message() or str(exc)).strip())
    return out


def _storage(conn: Any, dom: Any, pool_types: dict[str, str]) -> VmStorage:
    local, shared = 0, 0
    by_pool: dict[str, int] = {}
    for disk in ET.fromstring(dom.XMLDesc(0)).iterfind("devices/disk"):
        if disk.get("device", "disk") not in ("disk", "lun") or disk.find("readonly") is not None:
            continue
        if disk.find("shareable") is not None or disk.get("type") == "network":
            shared += 1
            continue
        src = disk.find("source")
        if src is None:
            continue
        try:
            if disk.get("type") == "volume":
                vol = conn.storagePoolLookupByName(src.get("pool", "")).storageVolLookupByName(
                    src.get("volume", "")
                )
            else:
                vol = conn.storageVolLookupByPath(src.get("file") or src.get("dev") or "")
            pool = vol.storagePoolLookupByVolume()
        except libvirt.libvirtError:
            return VmStorage(snapshots=dom.snapshotNum(0), problem="a disk is in no storage pool")
        name = pool.name()
        if name not in pool_types:
            pool_types[name] = ET.fromstring(pool.XMLDesc(0)).get("type", "")
        if pool_types[name] in SHARED_POOLS:
            shared += 1
            continue
        size = int(vol.info()[2])
        local += size
        by_pool[name] = by_pool.get(name, 0) + size
    main = max(by_pool, key=lambda k: by_pool[k]) if by_pool else ""
    return VmStorage(local_bytes=local, pool=main, shared=shared, snapshots=dom.snapshotNum(0))


@dataclass(frozen=True)
class Move:
    """One VM of the evacuated host: how it leaves and to where, or why it cannot."""

    vm: str
    uuid: str
    state: str
    how: str
    """live, live+disks or cold ('' when it cannot leave)."""
    dest: str | None
    why: str
    """Why that host (placement's figures), or why none."""
    refusal: str | None = None

    @property
    def copy_storage(self) -> bool:
        return self.how == "live+disks"

    @property
    def args(self) -> dict[str, Any]:
        """The migrate action's arguments."""
        out: dict[str, Any] = {"dest": self.dest}
        if self.copy_storage:
            out["copy_storage"] = True
        return out

    def line(self) -> str:
        if self.refusal is not None:
            return f"✗ {self.vm} ({self.state}): stays: {self.refusal}"
        how = {"live": "live", "live+disks": "live, disks copied", "cold": "cold"}[self.how]
        return f"• {self.vm} ({self.state}): {how} to {self.dest}: {self.why}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "vm": self.vm,
            "uuid": self.uuid,
            "state": self.state,
            "how": self.how or None,
            "dest": self.dest,
            "why": self.why,
            "refused": self.refusal,
        }


@dataclass(frozen=True)
class Plan:
    host: str
    moves: tuple[Move, ...]

    @property
    def runnable(self) -> list[Move]:
        return [m for m in self.moves if m.refusal is None]

    def lines(self) -> list[str]:
        if not self.moves:
            return [f"{self.host} has no VM: nothing to move"]
        n, ok = len(self.moves), len(self.runnable)
        head = f"evacuate {self.host}: {ok} of {n} VM{'s' if n != 1 else ''} to move"
        return [head, *(f"  {m.line()}" for m in self.moves)]

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "moves": [m.as_dict() for m in self.moves]}


def _order(vm: VmState) -> tuple[int, int, str]:
    live = vm.state in LIVE_STATES
    return (0 if live else 1, -(vm.memory_kib or 0), vm.name)


def plan_evacuation(state: FleetState, host: str, storage: Mapping[str, VmStorage]) -> Plan:
    """Where each VM of `host` goes (see the module's head). Touches nothing."""
    planned: list[tuple[str, Demand]] = []
    moves: list[Move] = []
    pools_known = all(h.pools is not None for h in state.hosts if h.name != host and h.status.healthy)
    for vm in sorted(state.vms_on(host), key=_order):
        st = storage.get(vm.uuid, VmStorage())
        refusal = _refusal(vm, st)
        if refusal is not None:
            moves.append(Move(vm.name, vm.uuid, vm.state, "", None, "", refusal))
            continue
        live = vm.state in LIVE_STATES
        how = ("live+disks" if st.local_bytes else "live") if live else "cold"
        disks = st.local_bytes if pools_known else 0  # else the move itself checks the room
        demand = Demand(
            vcpus=vm.vcpu_count or 1,
            memory_kib=(vm.memory_kib or 0) if live else 0,
            disk_bytes=disks,
            pool=st.pool if disks else "",
            leave_out=frozenset({host}),
        )
        placement = place(state, demand, planned)
        for other in state.find_vm(vm.name):  # a VM of that name already there: libvirt refuses the move
            if other.host != host and other.host in placement.hosts:
                placement = place(state, _leaving(demand, other.host), planned)
        best = placement.best
        if best is None:
            moves.append(Move(vm.name, vm.uuid, vm.state, how, None, "", placement.why_none()))
            continue
        planned.append((best, demand))
        top = placement.ranked[0]
        others = len(placement.ranked) - 1
        why = f"best of {others + 1}" if others else "the only host that can take it"
        moves.append(Move(vm.name, vm.uuid, vm.state, how, best, f"{why}: {top.figures()}"))
    return Plan(host, tuple(moves))


def _leaving(d: Demand, host: str) -> Demand:
    return Demand(d.vcpus, d.memory_kib, d.disk_bytes, d.pool, d.group, d.leave_out | {host})


def _refusal(vm: VmState, st: VmStorage) -> str | None:
    if vm.stale:
        return "its host's last poll failed: its state is not known"
    if vm.state not in LIVE_STATES | COLD_STATES:
        return f"it is {vm.state}: it moves once running, paused or shut off"
    if st.snapshots:
        return f"it has {st.snapshots} snapshot(s): libvirt does not move them; delete them first"
    if st.problem:
        return st.problem
    return None


def summary(host: str, outcomes: Sequence[tuple[Move, str, str]]) -> str:
    """One line for the evacuation's end: how many moved and where, which stayed and why."""
    moved = [m for m, state, _ in outcomes if state == "done"]
    stayed = [(m, why) for m, state, why in outcomes if state != "done"]
    out = f"{len(moved)} of {len(outcomes)} moved off {host}"
    if moved:
        out += ": " + ", ".join(
            f"{m.vm} to {m.dest} ({'cold' if m.how == 'cold' else 'live'})" for m in moved
        )
    if stayed:
        out += f"; stayed on {host}: " + "; ".join(f"{m.vm}: {why}" for m, why in stayed)
    return out
