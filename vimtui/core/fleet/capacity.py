"""Capacity of a host and of a group: what it has (physical CPUs, memory, storage pools), what its VMs are
given (running ones, and every defined one), what it uses now (from the poll's stats), the overcommit
ratios and what is left. Pure functions of the published HostState: the screen, the CLI, placement and the
alert metrics all read the same figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vimtui.core.model import HostLoad, HostState, PoolFill, VmState
from vimtui.core.units import format_bytes


def load_of(vms: Iterable[VmState]) -> HostLoad:
    """The vCPUs and memory given to `vms` (one host's), those running and all of them."""
    vms_n = running = vr = vd = mr = md = unknown = 0
    given = _GIVEN
    for vm in vms:  # every VM of the host at every poll: VmState.vcpu_count and memory_kib, inline
        vms_n += 1
        vcpus = vm.vcpus
        mem = vm.mem_current_kib or vm.mem_max_kib
        if vcpus is None or not mem:
            vcpus, mem = vm.vcpu_count, vm.memory_kib
        on = vm.state in given
        running += on
        if vcpus is None or mem is None:
            unknown += 1
            continue
        vd += vcpus
        md += mem
        if on:
            vr += vcpus
            mr += mem
    return HostLoad(vms_n, running, vr, vd, mr, md, unknown)


_GIVEN = frozenset({"running", "paused", "blocked", "pmsuspended"})
"""States in which a VM holds its host's memory and vCPUs (a paused VM keeps its memory)."""


@dataclass(frozen=True, slots=True)
class Capacity:
    """One host's figures, or a group's sums (then `hosts` counts the hosts summed). Memory in KiB, pools
    in bytes, CPUs as counts. None: not known (a host not polled yet)."""

    name: str
    group: str
    hosts: int
    pcpus: int | None
    mem_total_kib: int | None
    vcpus_running: int
    vcpus_defined: int
    mem_running_kib: int
    mem_defined_kib: int
    cpu_used: float | None
    """Physical CPUs busy (the host's CPU share between its last two polls times its CPUs)."""
    mem_used_kib: int | None
    """Memory the host uses (total - free - buffers - cached)."""
    vms: int
    running: int
    pools: tuple[PoolFill, ...] | None
    """Its pools (a group's: every host's); None: not read yet."""
    maintenance: float | None = None

    @property
    def vcpu_ratio(self) -> float | None:
        """vCPUs of running VMs per physical CPU."""
        return self.vcpus_running / self.pcpus if self.pcpus else None

    @property
    def vcpu_ratio_defined(self) -> float | None:
        return self.vcpus_defined / self.pcpus if self.pcpus else None

    @property
    def mem_ratio(self) -> float | None:
        """Memory of running VMs over the host's memory."""
        return self.mem_running_kib / self.mem_total_kib if self.mem_total_kib else None

    @property
    def mem_ratio_defined(self) -> float | None:
        return self.mem_defined_kib / self.mem_total_kib if self.mem_total_kib else None

    @property
    def mem_unallocated_kib(self) -> int | None:
        """Memory not given to a running VM (negative: overcommitted)."""
        return None if self.mem_total_kib is None else self.mem_total_kib - self.mem_running_kib

    @property
    def mem_free_kib(self) -> int | None:
        """Memory not in use now (from the stats): what a VM started now can still have."""
        if self.mem_total_kib is None or self.mem_used_kib is None:
            return None
        return self.mem_total_kib - self.mem_used_kib

    @property
    def vcpus_free(self) -> int | None:
        """Physical CPUs not matched by a running VM's vCPU (negative: overcommitted)."""
        return None if self.pcpus is None else self.pcpus - self.vcpus_running

    @property
    def pool_capacity(self) -> int | None:
        return None if self.pools is None else sum(p.capacity for p in self.pools if p.active)

    @property
    def pool_allocation(self) -> int | None:
        return None if self.pools is None else sum(p.allocation for p in self.pools if p.active)

    @property
    def pool_available(self) -> int | None:
        return None if self.pools is None else sum(p.available for p in self.pools if p.active)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types (`vimtui capacity --json`): memory in bytes."""

        def b(kib: int | None) -> int | None:
            return None if kib is None else kib * 1024

        return {
            "name": self.name,
            "group": self.group,
            "hosts": self.hosts,
            "maintenance": self.maintenance,
            "vms": self.vms,
            "running": self.running,
            "cpus": self.pcpus,
            "vcpus_running": self.vcpus_running,
            "vcpus_defined": self.vcpus_defined,
            "vcpus_free": self.vcpus_free,
            "vcpu_ratio": _round(self.vcpu_ratio),
            "vcpu_ratio_defined": _round(self.vcpu_ratio_defined),
            "cpu_used": _round(self.cpu_used),
            "memory_bytes": b(self.mem_total_kib),
            "memory_running_bytes": b(self.mem_running_kib),
            "memory_defined_bytes": b(self.mem_defined_kib),
            "memory_used_bytes": b(self.mem_used_kib),
            "memory_free_bytes": b(self.mem_free_kib),
            "memory_unallocated_bytes": b(self.mem_unallocated_kib),
            "memory_ratio": _round(self.mem_ratio),
            "memory_ratio_defined": _round(self.mem_ratio_defined),
            "pool_capacity_bytes": self.pool_capacity,
            "pool_allocation_bytes": self.pool_allocation,
            "pool_available_bytes": self.pool_available,
            "pools": None
            if self.pools is None
            else [
                {
                    "name": p.name,
                    "active": p.active,
                    "capacity_bytes": p.capacity,
                    "allocation_bytes": p.allocation,
                    "available_bytes": p.available,
                }
                for p in self.pools
            ],
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def host_capacity(h: HostState) -> Capacity:
    """A host's figures from its published state."""
    node, info, load = h.node, h.info, h.load or HostLoad()
    pcpus = (node.cpus if node is not None and node.cpus else None) or (info.cpus if info else None)
    total = node.mem_total_kib if node is not None and node.mem_total_kib else None
    total = total or (info.memory_kib if info is not None and info.memory_kib else None)
    rates = h.rates
    cpu_used = None
    if rates is not None and rates.cpu_pct is not None and pcpus:
        cpu_used = rates.cpu_pct * pcpus / 100.0
    return Capacity(
        name=h.name,
        group=h.group,
        hosts=1,
        pcpus=pcpus,
        mem_total_kib=total,
        vcpus_running=load.vcpus_running,
        vcpus_defined=load.vcpus_defined,
        mem_running_kib=load.mem_running_kib,
        mem_defined_kib=load.mem_defined_kib,
        cpu_used=cpu_used,
        mem_used_kib=rates.mem_used_kib if rates is not None else None,
        vms=load.vms,
        running=load.running,
        pools=h.pools,
        maintenance=h.maintenance,
    )


def _sum(values: Iterable[float | None]) -> Any:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def group_capacity(name: str, caps: Sequence[Capacity]) -> Capacity:
    """The sums of a group's hosts (a figure unknown on one host is left out of its sum)."""
    pools = [c.pools for c in caps if c.pools is not None]
    return Capacity(
        name=name,
        group=name,
        hosts=len(caps),
        pcpus=_sum(c.pcpus for c in caps),
        mem_total_kib=_sum(c.mem_total_kib for c in caps),
        vcpus_running=sum(c.vcpus_running for c in caps),
        vcpus_defined=sum(c.vcpus_defined for c in caps),
        mem_running_kib=sum(c.mem_running_kib for c in caps),
        mem_defined_kib=sum(c.mem_defined_kib for c in caps),
        cpu_used=_sum(c.cpu_used for c in caps),
        mem_used_kib=_sum(c.mem_used_kib for c in caps),
        vms=sum(c.vms for c in caps),
        running=sum(c.running for c in caps),
        pools=tuple(p for ps in pools for p in ps) if pools else None,
    )


def by_group(hosts: Iterable[HostState], group: str | None = None) -> dict[str, list[Capacity]]:
    """Hosts' figures by group, in inventory order (only `group`'s when given)."""
    out: dict[str, list[Capacity]] = {}
    for h in hosts:
        if group is None or h.group == group:
            out.setdefault(h.group, []).append(host_capacity(h))
    return out


# -- text ------------------------------------------------------------------------------------------


def ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def kib(n: int | None) -> str:
    return format_bytes(None if n is None else n * 1024)


def summary_lines(c: Capacity) -> list[str]:
    """The figures in a few lines (the host detail, `vimtui capacity`)."""
    cpu_used = "-" if c.cpu_used is None else f"{c.cpu_used:.1f}"
    lines = [
        f"CPUs {c.pcpus or '-'}: vCPUs running {c.vcpus_running} (ratio {ratio(c.vcpu_ratio)}), "
        f"defined {c.vcpus_defined} (ratio {ratio(c.vcpu_ratio_defined)}), used {cpu_used}, "
        f"free {'-' if c.vcpus_free is None else c.vcpus_free}",
        f"Memory {kib(c.mem_total_kib)}: running {kib(c.mem_running_kib)} (ratio {ratio(c.mem_ratio)}), "
        f"defined {kib(c.mem_defined_kib)} (ratio {ratio(c.mem_ratio_defined)}), "
        f"used {kib(c.mem_used_kib)}, free {kib(c.mem_free_kib)}, unallocated {kib(c.mem_unallocated_kib)}",
    ]
    if c.pools is None:
        lines.append("Pools: not read yet")
    else:
        for p in c.pools:
            if not p.active:
                lines.append(f"Pool {p.name}: inactive")
                continue
            fill = p.fill_pct
            lines.append(
                f"Pool {p.name}: {format_bytes(p.capacity)}, allocated {format_bytes(p.allocation)}"
                f" ({'-' if fill is None else f'{fill:.0f}%'}), free {format_bytes(p.available)}"
            )
    return lines
