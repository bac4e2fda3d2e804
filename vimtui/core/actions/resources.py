"""Changing a VM's size: vCPUs and memory (current and maximum; live, config or both), and a disk's size
(grown live with blockResize, or its volume when the VM is off).

Each task reads what libvirt says the VM and its host have, refuses with the numbers before it sends
anything (sizing.refusal), then makes the change as undoable steps (side_changes), config first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

import libvirt

from vimtui.core.actions.base import ACTIVE, Action
from vimtui.core.actions.params import Param
from vimtui.core.actions.side_changes import FLAG, Change, apply_all
from vimtui.core.actions.sizing import (
    HostRoom,
    Request,
    Side,
    Sizing,
    changes,
    refusal,
    sides_for,
    size_text,
    target,
)
from vimtui.core.fleet import quotas
from vimtui.core.fleet.tasks import ActionError, TaskContext
from vimtui.core.model import FleetState, VmState

VCPU_MAX = libvirt.VIR_DOMAIN_VCPU_MAXIMUM
MEM_MAX = libvirt.VIR_DOMAIN_MEM_MAXIMUM


# -- what libvirt says now ----------------------------------------------------------------------------


def _kib(el: ET.Element | None) -> int | None:
    if el is None or not el.text:
        return None
    unit = el.get("unit", "KiB").lower()
    scale = {"b": 1 / 1024, "bytes": 1 / 1024, "k": 1, "kib": 1, "kb": 1000 / 1024, "m": 1024, "mib": 1024}
    scale |= {"g": 1024**2, "gib": 1024**2, "t": 1024**3, "tib": 1024**3}
    return int(int(el.text) * scale.get(unit, 1))


def side_sizing(dom: Any, side: Side) -> Sizing:
    """What one side of the domain has now, as libvirt says it."""
    flag = FLAG[side]
    vcpus = int(dom.vcpusFlags(flag))
    max_vcpus = int(dom.vcpusFlags(flag | VCPU_MAX))
    if side == "live":
        info = dom.info()
        return Sizing(vcpus, max_vcpus, int(info[2]), int(info[1]))
    root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    return Sizing(vcpus, max_vcpus, _kib(root.find("currentMemory")), _kib(root.find("memory")))


def host_room(conn: Any, name: str) -> HostRoom:
    """The host's CPUs and memory from getInfo, free memory as free + buffers + cached (what the kernel
    gives back on demand)."""
    info = conn.getInfo()
    try:
        mem = conn.getMemoryStats(-1, 0)
        free: int | None = sum(int(mem.get(k, 0)) for k in ("free", "buffers", "cached"))
    except libvirt.libvirtError:
        free = None
    return HostRoom(name, int(info[2]), int(info[1]) * 1024, free)


# -- vm set ---------------------------------------------------------------------------------------------


def _steps(dom: Any, side: Side, now: Sizing, after: Sizing) -> list[Change]:
    """The calls that take one side from `now` to `after`, ordered so the current value never passes the
    maximum on the way (a maximum raised before the count, lowered after it)."""
    flag = FLAG[side]
    out: list[Change] = []

    def vcpus(n: int, extra: int = 0) -> Any:
        return lambda: dom.setVcpusFlags(n, flag | extra)

    def memory(kib: int, extra: int = 0) -> Any:
        return lambda: dom.setMemoryFlags(kib, flag | extra)

    for what, cur_now, cur_after, max_now, max_after, call, maximum, mem in (
        ("vCPUs", now.vcpus, after.vcpus, now.max_vcpus, after.max_vcpus, vcpus, VCPU_MAX, False),
        (
            "memory",
            now.memory_kib,
            after.memory_kib,
            now.max_memory_kib,
            after.max_memory_kib,
            memory,
            MEM_MAX,
            True,
        ),
    ):
        shown = size_text if mem else str
        pair: list[Change] = []
        if max_after is not None and max_after != max_now and max_now is not None:
            pair.append(
                Change(
                    side,
                    f"max {what} {shown(max_now)} -> {shown(max_after)}",
                    call(max_after, maximum),
                    call(max_now, maximum),
                )
            )
        if cur_after is not None and cur_after != cur_now and cur_now is not None:
            count = Change(
                side, f"{what} {shown(cur_now)} -> {shown(cur_after)}", call(cur_after), call(cur_now)
            )
            lowered = max_after is not None and max_now is not None and max_after < max_now
            pair.insert(0 if lowered else len(pair), count)
        out += pair
    return out


def vm_set(
    ctx: TaskContext,
    dom: Any,
    vcpus: int | None = None,
    memory: int | None = None,
    max_vcpus: int | None = None,
    max_memory: int | None = None,
    live: bool = False,
    config: bool = False,
) -> str:
    name = dom.name()
    req = Request(vcpus, memory, max_vcpus, max_memory)
    running = bool(dom.isActive())
    sides, why = sides_for(running, bool(dom.isPersistent()), live, config)
    if why is not None:
        raise ActionError(f"{name}: {why}")
    now = {side: side_sizing(dom, side) for side in sides}
    why = refusal(name, req, now, host_room(ctx.conn, ctx.host), running=running)
    if why is not None:
        raise ActionError(why)
    steps = [step for side in sides for step in _steps(dom, side, now[side], target(now[side], req))]
    if not steps:
        return f"{name} already has that: nothing to change"
    ctx.progress(None, "; ".join(s.what for s in steps))
    done = apply_all(steps)
    later = " (the config takes effect at the next boot)" if running and "config" in sides else ""
    return "; ".join(done) + later


def _state_sizing(vm: VmState) -> dict[Side, Sizing]:
    """What the fleet state knows of the VM's sides (a poll old; the task reads libvirt again)."""
    s = vm.sample
    live = Sizing(
        vm.vcpus,
        s.vcpus_max if s is not None else None,
        vm.mem_current_kib,
        vm.mem_max_kib,
    )
    d = vm.details
    config = Sizing() if vm.state in ACTIVE or d is None else Sizing(d.vcpus, None, None, d.memory_kib)
    return {"live": live, "config": config}


def host_room_of(state: FleetState, host: str) -> HostRoom:
    h = state.host(host)
    if h is None:
        return HostRoom(host)
    cpus = h.info.cpus if h.info is not None else None
    total = h.info.memory_kib if h.info is not None else None
    n = h.node
    free = None
    if n is not None and n.mem_free_kib is not None:
        free = n.mem_free_kib + (n.mem_buffers_kib or 0) + (n.mem_cached_kib or 0)
    return HostRoom(host, cpus or None, total or None, free)


def check_set(vm: VmState, args: dict[str, Any], state: FleetState) -> str | None:
    req = Request(args.get("vcpus"), args.get("memory"), args.get("max_vcpus"), args.get("max_memory"))
    running = vm.state in ACTIVE
    persistent = vm.details.persistent if vm.details is not None else True
    sides, why = sides_for(running, persistent, bool(args.get("live")), bool(args.get("config")))
    if why is not None:
        return f"{vm.name}: {why}"
    known = _state_sizing(vm)
    return refusal(vm.name, req, {s: known[s] for s in sides}, host_room_of(state, vm.host), running=running)


def set_adds(vm: VmState, args: Mapping[str, Any], _state: FleetState) -> quotas.Use:
    """What `vm set` adds to the VM's tenant (its quota counts vCPUs and maximum memory): the new minus
    what it has now."""
    have = quotas.vm_use(vm)
    vcpus = args.get("vcpus")
    memory = args.get("max_memory") or max(have.memory_mib, args.get("memory") or 0)
    return quotas.Use(vcpus=vcpus - have.vcpus if vcpus else 0, memory_mib=memory - have.memory_mib)


def resize_adds(vm: VmState, args: Mapping[str, Any], _state: FleetState) -> quotas.Use:
    """What `vm resize-disk` adds to the VM's tenant: the disk's growth, in GiB."""
    try:
        grow, value = parse_disk_size(str(args.get("size") or ""))
    except ValueError:
        return quotas.Use()  # the check says why
    sample = vm.sample
    now = next((d.capacity or 0 for d in sample.disks if d.name == args.get("disk")), 0) if sample else 0
    return quotas.Use(disk_gib=(value if grow else value - now) / quotas.GIB)


def set_preview(conn: Any, uuid: str, args: dict[str, Any]) -> list[str]:
    """What `vm set` would change, side by side, from what libvirt says now (the dry run's lines)."""

    dom = conn.lookupByUUIDString(uuid)
    req = Request(args.get("vcpus"), args.get("memory"), args.get("max_vcpus"), args.get("max_memory"))
    sides, why = sides_for(
        bool(dom.isActive()), bool(dom.isPersistent()), bool(args.get("live")), bool(args.get("config"))
    )
    if why is not None:
        raise ActionError(why)
    out = []
    for side in sides:
        now = side_sizing(dom, side)
        what = changes(now, target(now, req))
        out.append(f"{'config' if side == 'config' else 'live'}: {', '.join(what) or 'unchanged'}")
    return out


# -- resize-disk ------------------------------------------------------------------------------------------

_SIZE = re.compile(r"(\+)?\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_UNIT = {"": 2**20, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_disk_size(text: str) -> tuple[bool, int]:
    """'+10G' (grow by) or '20G' (grow to), in bytes; a bare number is MiB. ValueError says why."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"size: +10G (grow by) or 20G (grow to), not {text!r}")
    value = int(float(m.group(2)) * _UNIT[m.group(3).lower()])
    if value <= 0:
        raise ValueError(f"size: more than 0, not {text!r}")
    return bool(m.group(1)), value


def _disk_source(dom: Any, disk: str) -> tuple[str | None, str | None]:
    """(file path or None, the disk's device kind) of the disk named `disk` (vda) in the live XML."""
    root = ET.fromstring(dom.XMLDesc(0))
    for d in root.iterfind("./devices/disk"):
        t = d.find("target")
        if t is not None and t.get("dev") == disk:
            src = d.find("source")
            path = None
            if src is not None:
                path = src.get("file") or src.get("dev")
                if src.get("pool") and src.get("volume"):
                    pool = dom.connect().storagePoolLookupByName(src.get("pool"))
                    path = pool.storageVolLookupByName(src.get("volume")).path()
            return path, d.get("device", "disk")
    disks = [t.get("dev", "?") for t in root.iterfind("./devices/disk/target")]
    raise ActionError(f"{dom.name()} has no disk {disk!r} (it has: {', '.join(disks) or 'none'})")


def resize_disk(ctx: TaskContext, dom: Any, disk: str, size: str) -> str:
    name = dom.name()
    try:
        grow, value = parse_disk_size(size)
    except ValueError as exc:
        raise ActionError(str(exc)) from exc
    path, device = _disk_source(dom, disk)
    if device != "disk":
        raise ActionError(f"{name}: {disk} is a {device}, not a disk")
    running = bool(dom.isActive())
    vol = None
    if running:
        capacity = int(dom.blockInfo(disk)[0])
    else:
        try:
            vol = ctx.conn.storageVolLookupByPath(path or "")
        except libvirt.libvirtError as exc:
            raise ActionError(
                f"{name}: {disk} ({path}) is not a volume of a storage pool on {ctx.host}: "
                "libvirt can resize it only while the VM runs"
            ) from exc
        capacity = int(vol.info()[1])
    new = capacity + value if grow else value
    if new < capacity:
        raise ActionError(_shrink(name, disk, capacity, new))
    if new == capacity:
        return f"{disk} is already {_bytes(new)}: nothing to change"
    if running:
        dom.blockResize(disk, new, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
        how = "live (blockResize)"
    else:
        assert vol is not None
        vol.resize(new, 0)
        how = "its volume (the VM is off)"
    return f"{disk} grown {_bytes(capacity)} -> {_bytes(new)}, {how}"


def _shrink(vm: str, disk: str, capacity: int, asked: int) -> str:
    return (
        f"{vm}: {disk} is {_bytes(capacity)}, {_bytes(asked)} asked: "
        "a disk is never shrunk (the guest's filesystems would be cut)"
    )


def _bytes(n: int) -> str:
    return size_text(n / 1024)


def check_resize(vm: VmState, args: dict[str, Any], _state: FleetState) -> str | None:
    size = args.get("size")
    if not args.get("disk"):
        return "which disk? (a disk is needed)"
    if not size:
        return "what size? (+10G grows by, 20G grows to)"
    try:
        grow, value = parse_disk_size(str(size))
    except ValueError as exc:
        return str(exc)
    if grow or vm.sample is None:
        return None
    sample = next((d for d in vm.sample.disks if d.name == args["disk"]), None)
    if sample is not None and sample.capacity and value < sample.capacity:
        return _shrink(vm.name, args["disk"], sample.capacity, value)
    return None


def disk_choices(vm: VmState, _state: FleetState) -> list[tuple[str, str]]:
    d = vm.details
    if d is None:
        return []
    return [(f"{x.target}  {x.source or ''}", x.target) for x in d.disks if x.device == "disk"]


# -- declarations ---------------------------------------------------------------------------------------

SIDE_PARAMS = (
    Param(
        "live",
        "bool",
        "change the running VM (with --config: both; neither: the running VM when it runs, else its config)",
    ),
    Param("config", "bool", "change the config, from the next boot (with --live: both)"),
)

ACTIONS: tuple[Action, ...] = (
    Action(
        "set",
        "Set vCPUs and memory",
        "Change vCPUs and memory (current and maximum): live, in the config, or both",
        vm_set,
        params=(
            Param("vcpus", "int", "vCPUs the VM has", low=1, high=4096, metavar="N"),
            Param(
                "memory",
                "size",
                "memory the VM has (the balloon when live): 2048, 512M, 2G",
                low=1,
                metavar="SIZE",
            ),
            Param("max_vcpus", "int", "most vCPUs it may have (config only)", low=1, high=4096, metavar="N"),
            Param("max_memory", "size", "most memory it may have (config only)", low=1, metavar="SIZE"),
            *SIDE_PARAMS,
        ),
        check=check_set,
        adds=set_adds,
        preview=set_preview,
        needs="admin",
        note="Empty fields stay as they are. Live: the running VM; config: from the next boot.",
        ok="Set",
    ),
    Action(
        "resize-disk",
        "Resize disk",
        "Grow a disk: +10G grows by, 20G grows to (live when running, its volume when off); never shrinks",
        resize_disk,
        params=(
            Param(
                "disk",
                "choice",
                "the disk (vda)",
                required=True,
                from_state=disk_choices,
                strict=False,
                metavar="DISK",
                positional=True,
            ),
            Param(
                "size", "text", "+10G grows by, 20G grows to", required=True, metavar="SIZE", positional=True
            ),
        ),
        check=check_resize,
        adds=resize_adds,
        needs="admin",
        bulk=False,
        ok="Resize",
    ),
)
