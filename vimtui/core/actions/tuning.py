"""Where a VM runs and how much it may take: vCPU and emulator pinning, CPU shares and quota (schedinfo),
block I/O limits per disk (blkdeviotune) and NIC bandwidth. Each on the live side, the config or both (as
`vm set`), checked before anything is sent, each call undone when a later one is refused (side_changes).
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from vimtui.core.actions.base import ACTIVE, Action
from vimtui.core.actions.params import Param
from vimtui.core.actions.resources import SIDE_PARAMS, disk_choices
from vimtui.core.actions.side_changes import FLAG, WHERE, Change, apply_all
from vimtui.core.actions.sizing import Side, sides_for
from vimtui.core.fleet.tasks import ActionError, TaskContext
from vimtui.core.model import FleetState, VmState

SCHED = {"shares": "cpu_shares", "quota": "vcpu_quota", "period": "vcpu_period"}
"""Our parameter -> libvirt's scheduler parameter."""
IOTUNE = (
    "total_bytes_sec",
    "read_bytes_sec",
    "write_bytes_sec",
    "total_iops_sec",
    "read_iops_sec",
    "write_iops_sec",
)
"""The block I/O limits, by libvirt's names (0: no limit)."""
BANDWIDTH = {"inbound": "inbound.average", "outbound": "outbound.average"}
"""Our parameter -> libvirt's interface parameter (KiB/s, 0: no limit)."""


# -- cpu lists --------------------------------------------------------------------------------------------


def parse_cpus(text: str) -> set[int]:
    """A CPU list as virsh takes it: '0-3', '0,2', '0-3,^2'. ValueError says why."""
    chosen: set[int] = set()
    removed: set[int] = set()
    for part in (p.strip() for p in str(text).split(",")):
        m = re.fullmatch(r"(\^)?([0-9]+)(?:-([0-9]+))?", part)
        if m is None:
            raise ValueError(f"cpus: a list like 0-3,5 or 0-3,^2, not {text!r}")
        low, high = int(m.group(2)), int(m.group(3) or m.group(2))
        if high < low:
            raise ValueError(f"cpus: {part} runs backwards")
        (removed if m.group(1) else chosen).update(range(low, high + 1))
    out = chosen - removed
    if not out:
        raise ValueError(f"cpus: {text!r} leaves no CPU")
    return out


def cpus_text(cpus: set[int] | tuple[bool, ...]) -> str:
    """{0, 1, 2, 5} or a cpumap -> '0-2,5'."""
    ids = sorted(cpus) if isinstance(cpus, set) else [i for i, on in enumerate(cpus) if on]
    runs: list[str] = []
    for i in ids:
        if runs and runs[-1].split("-")[-1] == str(i - 1):
            runs[-1] = f"{runs[-1].split('-')[0]}-{i}"
        else:
            runs.append(str(i))
    return ",".join(runs) or "none"


def _cpu_refusal(cpus: str, host_cpus: int | None, host: str) -> str | None:
    try:
        chosen = parse_cpus(cpus)
    except ValueError as exc:
        return str(exc)
    if host_cpus is not None and max(chosen) >= host_cpus:
        return f"CPU {max(chosen)} asked, {host} has CPUs 0-{host_cpus - 1}"
    return None


# -- pin --------------------------------------------------------------------------------------------------


def pin(
    ctx: TaskContext,
    dom: Any,
    cpus: str,
    vcpu: int | None = None,
    emulator: bool = False,
    live: bool = False,
    config: bool = False,
) -> str:
    name = dom.name()
    sides = _sides(dom, live, config)
    host_cpus = int(ctx.conn.getCPUMap(0)[0])
    why = _pin_refusal(vcpu, emulator, cpus, host_cpus, ctx.host)
    if why is not None:
        raise ActionError(why)
    chosen = parse_cpus(cpus)
    cpumap = tuple(i in chosen for i in range(host_cpus))
    steps: list[Change] = []
    for side in sides:
        flag = FLAG[side]
        if emulator:
            old = tuple(dom.emulatorPinInfo(flag))
            steps.append(
                Change(
                    side,
                    f"emulator threads on CPUs {cpus_text(old)} -> {cpus_text(cpumap)}",
                    partial(dom.pinEmulator, cpumap, flag),
                    partial(dom.pinEmulator, old, flag),
                )
            )
            continue
        assert vcpu is not None
        table = dom.vcpuPinInfo(flag)
        if vcpu >= len(table):
            raise ActionError(f"vCPU {vcpu} asked, {name} has vCPUs 0-{len(table) - 1} on {WHERE[side]}")
        old = tuple(table[vcpu])
        steps.append(
            Change(
                side,
                f"vCPU {vcpu} on CPUs {cpus_text(old)} -> {cpus_text(cpumap)}",
                partial(dom.pinVcpuFlags, vcpu, cpumap, flag),
                partial(dom.pinVcpuFlags, vcpu, old, flag),
            )
        )
    return "; ".join(apply_all(steps))


def _pin_refusal(vcpu: int | None, emulator: bool, cpus: str, host_cpus: int | None, host: str) -> str | None:
    if (vcpu is None) == (not emulator):
        return "pin what? a vcpu, or the emulator threads (one of the two)"
    return _cpu_refusal(cpus, host_cpus, host)


def check_pin(vm: VmState, args: dict[str, Any], state: FleetState) -> str | None:
    why = _state_sides(vm, args)
    if why is not None:
        return why
    if not args.get("cpus"):
        return "which CPUs? (cpus=0-1)"
    h = state.host(vm.host)
    host_cpus = h.info.cpus if h is not None and h.info is not None else None
    why = _pin_refusal(args.get("vcpu"), bool(args.get("emulator")), args["cpus"], host_cpus, vm.host)
    if why is not None:
        return why
    vcpu = args.get("vcpu")
    top = vm.sample.vcpus_max if vm.sample is not None else None
    if vcpu is not None and top is not None and vcpu >= top:
        return f"vCPU {vcpu} asked, {vm.name} has vCPUs 0-{top - 1}"
    return None


# -- tune -------------------------------------------------------------------------------------------------


def tune(
    ctx: TaskContext,
    dom: Any,
    shares: int | None = None,
    quota: int | None = None,
    period: int | None = None,
    disk: str | None = None,
    total_bytes_sec: int | None = None,
    read_bytes_sec: int | None = None,
    write_bytes_sec: int | None = None,
    total_iops_sec: int | None = None,
    read_iops_sec: int | None = None,
    write_iops_sec: int | None = None,
    nic: str | None = None,
    inbound: int | None = None,
    outbound: int | None = None,
    live: bool = False,
    config: bool = False,
) -> str:
    sides = _sides(dom, live, config)
    limits = dict(zip(IOTUNE, (total_bytes_sec, read_bytes_sec, write_bytes_sec), strict=False))
    limits |= dict(zip(IOTUNE[3:], (total_iops_sec, read_iops_sec, write_iops_sec), strict=True))
    limits |= {"inbound": inbound, "outbound": outbound}
    given = {k: v for k, v in limits.items() if v is not None}
    why = _tune_refusal(shares, quota, period, disk, nic, given)
    if why is not None:
        raise ActionError(why)
    sched = {
        SCHED[k]: v for k, v in (("shares", shares), ("quota", quota), ("period", period)) if v is not None
    }
    iotune = {k: v for k, v in given.items() if k in IOTUNE}
    bandwidth = {BANDWIDTH[k]: v for k, v in given.items() if k in BANDWIDTH}
    steps: list[Change] = []
    for side in sides:
        flag = FLAG[side]
        if sched:
            old = dom.schedulerParametersFlags(flag)
            back = {k: old[k] for k in sched if k in old}
            steps.append(
                Change(
                    side,
                    _what("CPU", old, sched),
                    partial(dom.setSchedulerParametersFlags, sched, flag),
                    partial(dom.setSchedulerParametersFlags, back, flag),
                )
            )
        if iotune:
            assert disk is not None
            old = dom.blockIoTune(disk, flag)
            back = {k: old[k] for k in IOTUNE if k in old}  # all six: libvirt clears total when read is set
            steps.append(
                Change(
                    side,
                    _what(f"{disk} I/O", old, iotune),
                    partial(dom.setBlockIoTune, disk, iotune, flag),
                    partial(dom.setBlockIoTune, disk, back, flag),
                )
            )
        if bandwidth:
            assert nic is not None
            old = dom.interfaceParameters(nic, flag)
            back = {k: old.get(k, 0) for k in bandwidth}
            steps.append(
                Change(
                    side,
                    _what(f"NIC {nic} KiB/s", old, bandwidth),
                    partial(dom.setInterfaceParameters, nic, bandwidth, flag),
                    partial(dom.setInterfaceParameters, nic, back, flag),
                )
            )
    return "; ".join(apply_all(steps))


def _what(label: str, old: dict[str, Any], new: dict[str, int]) -> str:
    return f"{label} " + ", ".join(f"{k} {old.get(k, '?')} -> {v}" for k, v in new.items())


def _tune_refusal(
    shares: int | None,
    quota: int | None,
    period: int | None,
    disk: str | None,
    nic: str | None,
    limits: dict[str, int],
) -> str | None:
    io = {k for k in limits if k in IOTUNE}
    net = {k for k in limits if k in BANDWIDTH}
    if shares is None and quota is None and period is None and not io and not net:
        return "nothing to change: give shares, quota, period, an I/O limit or a bandwidth"
    if quota is not None and quota != -1 and quota < 1000:
        return f"quota: -1 (no limit) or at least 1000 µs, not {quota}"
    if io and not disk:
        return "which disk? an I/O limit is per disk (disk=vda)"
    if net and not nic:
        return "which NIC? a bandwidth is per interface (nic=MAC)"
    for kind in ("bytes", "iops"):
        total, parts = f"total_{kind}_sec", {f"read_{kind}_sec", f"write_{kind}_sec"}
        if total in io and parts & io and limits[total] and any(limits[p] for p in parts & io):
            return f"{total} and read/write {kind} limits exclude each other: give one or the other"
    return None


def check_tune(vm: VmState, args: dict[str, Any], _state: FleetState) -> str | None:
    why = _state_sides(vm, args)
    if why is not None:
        return why
    limits = {k: v for k, v in args.items() if (k in IOTUNE or k in BANDWIDTH) and v is not None}
    return _tune_refusal(
        args.get("shares"), args.get("quota"), args.get("period"), args.get("disk"), args.get("nic"), limits
    )


def nic_choices(vm: VmState, _state: FleetState) -> list[tuple[str, str]]:
    d = vm.details
    if d is None:
        return []
    return [(f"{n.mac}  {n.source or ''}", n.mac) for n in d.nics if n.mac]


# -- sides ------------------------------------------------------------------------------------------------


def _sides(dom: Any, live: bool, config: bool) -> list[Side]:
    sides, why = sides_for(bool(dom.isActive()), bool(dom.isPersistent()), live, config)
    if why is not None:
        raise ActionError(f"{dom.name()}: {why}")
    return sides


def _state_sides(vm: VmState, args: dict[str, Any]) -> str | None:
    persistent = vm.details.persistent if vm.details is not None else True
    _, why = sides_for(vm.state in ACTIVE, persistent, bool(args.get("live")), bool(args.get("config")))
    return f"{vm.name}: {why}" if why is not None else None


# -- declarations ---------------------------------------------------------------------------------------

_LIMITS = tuple(
    Param(
        k,
        "int",
        f"{k.replace('_', ' ').replace(' sec', '/s')} limit on the disk (0: none)",
        low=0,
        metavar="N",
    )
    for k in IOTUNE
)

ACTIONS: tuple[Action, ...] = (
    Action(
        "pin",
        "Pin CPUs",
        "Pin a vCPU (vcpu=N) or the emulator threads to host CPUs (cpus=0-1)",
        pin,
        params=(
            Param("vcpu", "int", "the vCPU to pin (0 is the first)", low=0, metavar="N"),
            Param("emulator", "bool", "pin the emulator threads instead of a vCPU"),
            Param("cpus", "text", "host CPUs: 0-3, 0,2, 0-3,^2", required=True, metavar="LIST"),
            *SIDE_PARAMS,
        ),
        check=check_pin,
        needs="admin",
        ok="Pin",
    ),
    Action(
        "tune",
        "Tune CPU, I/O and network",
        "CPU shares and quota (schedinfo), block I/O limits per disk, NIC bandwidth",
        tune,
        params=(
            Param("shares", "int", "CPU shares (weight against other VMs)", low=2, high=262144, metavar="N"),
            Param("quota", "int", "CPU time per vCPU per period, µs (-1: no limit)", low=-1, metavar="US"),
            Param("period", "int", "the quota's period, µs", low=1000, high=1000000, metavar="US"),
            Param(
                "disk",
                "choice",
                "the disk the I/O limits are for",
                from_state=disk_choices,
                strict=False,
                metavar="DISK",
            ),
            *_LIMITS,
            Param(
                "nic",
                "choice",
                "the interface (MAC) the bandwidth is for",
                from_state=nic_choices,
                strict=False,
                metavar="MAC",
            ),
            Param("inbound", "int", "average inbound KiB/s (0: no limit)", low=0, metavar="KIBPS"),
            Param("outbound", "int", "average outbound KiB/s (0: no limit)", low=0, metavar="KIBPS"),
            *SIDE_PARAMS,
        ),
        check=check_tune,
        needs="admin",
        note="Empty fields stay as they are.",
        ok="Tune",
    ),
)
