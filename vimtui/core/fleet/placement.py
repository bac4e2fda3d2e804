"""Placement: which hosts a new VM (or one that moves) should go to, best first, with the figures behind each
rank, and the hosts left out with the reason. A pure function of the published FleetState: `vimtui place`, `vm
create --host auto`, the destination choices of the forms and the evacuation plan all rank the same way.

A host is left out when it is in maintenance, not answering, connected read-only, asked to be left out, has
fewer CPUs than the VM has vCPUs, has less memory free now than the VM asks (from its stats, so a start would
not fail; without them, less than its running VMs leave of its memory), or has no active pool with room for
the disk. The others are ranked by the share of their capacity taken once the VM is there, on the tightest of
three figures: memory given to running VMs over the host's memory, vCPUs of running VMs over its CPUs times
VCPU_RATIO (a planning ratio: a vCPU is not a whole CPU the way a byte of memory is a byte), and the pool's
allocation over its capacity. Lowest first: the host with the most room where it is tightest, which also keeps
the fleet balanced (each VM goes where the load is lightest). Ties go to the lower mean of the three, then to
the name.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from vimtui.core.fleet.capacity import Capacity, host_capacity
from vimtui.core.model import FleetState, HostState, PoolFill
from vimtui.core.units import format_bytes

VCPU_RATIO = 4.0
"""vCPUs per physical CPU counted as a full host in the ranking (memory counts 1:1)."""


@dataclass(frozen=True)
class Demand:
    """What is to be placed: a VM's vCPUs, memory (KiB) and disk (bytes, in one pool)."""

    vcpus: int = 1
    memory_kib: int = 0
    disk_bytes: int = 0
    pool: str = ""
    """The pool the disk must go to ('': any active pool with room, the one with most free space)."""
    group: str = ""
    """Only hosts of this group ('': any)."""
    leave_out: frozenset[str] = frozenset()
    """Hosts not to consider (the VM's own host when it moves)."""

    def describe(self) -> str:
        parts = [f"{self.vcpus} vCPU{'s' if self.vcpus != 1 else ''}", format_bytes(self.memory_kib * 1024)]
        if self.disk_bytes:
            parts.append(f"{format_bytes(self.disk_bytes)} disk" + (f" in {self.pool}" if self.pool else ""))
        if self.group:
            parts.append(f"group {self.group}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Ranked:
    """A host that can take the demand, and how it stands once it has."""

    host: str
    rank: int
    score: float
    """The tightest share after placing (1.0: full at the planning ratios)."""
    limit: str
    """Which figure is the tightest: memory, vcpus or disk."""
    mem_share: float
    vcpu_share: float
    disk_share: float | None
    vcpus_after: int
    pcpus: int
    mem_after_kib: int
    mem_total_kib: int
    mem_free_kib: int | None
    """Memory free now (stats), before placing."""
    pool: str | None
    pool_free: int | None
    """The pool's free bytes before placing."""

    def figures(self) -> str:
        """The figures behind the rank, in one line."""
        parts = [
            f"vCPUs {self.vcpus_after}/{self.pcpus} ({self.vcpus_after / self.pcpus:.2f}:1)",
            f"memory {format_bytes(self.mem_after_kib * 1024)}/{format_bytes(self.mem_total_kib * 1024)}"
            f" ({self.mem_share * 100:.0f}%)",
        ]
        if self.mem_free_kib is not None:
            parts.append(f"free now {format_bytes(self.mem_free_kib * 1024)}")
        if self.pool is not None and self.disk_share is not None:
            parts.append(
                f"pool {self.pool} {self.disk_share * 100:.0f}% after, {format_bytes(self.pool_free)} free"
            )
        return ", ".join(parts) + f"; tightest: {self.limit} {self.score * 100:.0f}%"

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "rank": self.rank,
            "score": round(self.score, 4),
            "limit": self.limit,
            "memory_share": round(self.mem_share, 4),
            "vcpu_share": round(self.vcpu_share, 4),
            "disk_share": None if self.disk_share is None else round(self.disk_share, 4),
            "vcpus_after": self.vcpus_after,
            "cpus": self.pcpus,
            "memory_after_bytes": self.mem_after_kib * 1024,
            "memory_bytes": self.mem_total_kib * 1024,
            "memory_free_bytes": None if self.mem_free_kib is None else self.mem_free_kib * 1024,
            "pool": self.pool,
            "pool_free_bytes": self.pool_free,
        }


@dataclass(frozen=True)
class LeftOut:
    host: str
    reason: str


@dataclass(frozen=True)
class Placement:
    demand: Demand
    ranked: tuple[Ranked, ...]
    left_out: tuple[LeftOut, ...] = field(default=())

    @property
    def best(self) -> str | None:
        return self.ranked[0].host if self.ranked else None

    @property
    def hosts(self) -> list[str]:
        """The hosts that can take it, best first."""
        return [r.host for r in self.ranked]

    def why_none(self) -> str:
        """Why no host can take it (for a refusal)."""
        if not self.left_out:
            return f"no host{' in group ' + self.demand.group if self.demand.group else ''} to place on"
        return (
            "no host can take "
            + self.demand.describe()
            + ": "
            + "; ".join(f"{x.host}: {x.reason}" for x in self.left_out)
        )

    def as_dict(self) -> dict[str, Any]:
        d = self.demand
        return {
            "demand": {
                "vcpus": d.vcpus,
                "memory_bytes": d.memory_kib * 1024,
                "disk_bytes": d.disk_bytes,
                "pool": d.pool or None,
                "group": d.group or None,
            },
            "ranked": [r.as_dict() for r in self.ranked],
            "left_out": [{"host": x.host, "reason": x.reason} for x in self.left_out],
        }


def place(state: FleetState, demand: Demand, planned: Sequence[tuple[str, Demand]] = ()) -> Placement:
    """Hosts of `state` that can take `demand`, best first, and the others with the reason. `planned`:
    placements already decided but not made yet (an evacuation's earlier moves), counted as if made."""
    ranked: list[Ranked] = []
    left: list[LeftOut] = []
    for h in state.hosts:
        if demand.group and h.group != demand.group:
            continue
        why = _refusal(h, demand)
        if why is not None:
            left.append(LeftOut(h.name, why))
            continue
        extra = [d for name, d in planned if name == h.name]
        fit = _fit(host_capacity(h), demand, extra)
        if isinstance(fit, str):
            left.append(LeftOut(h.name, fit))
        else:
            ranked.append(fit)
    ranked.sort(key=lambda r: (r.score, (r.mem_share + r.vcpu_share + (r.disk_share or 0)) / 3, r.host))
    ranked = [_with_rank(r, i + 1) for i, r in enumerate(ranked)]
    return Placement(demand, tuple(ranked), tuple(left))


def _with_rank(r: Ranked, rank: int) -> Ranked:
    return replace(r, rank=rank)


def _refusal(h: HostState, d: Demand) -> str | None:
    if h.name in d.leave_out:
        return "left out as asked"
    if h.maintenance is not None:
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(h.maintenance))
        return f"in maintenance since {since}"
    if not h.status.healthy:
        return f"{h.status}" + (f": {h.message}" if h.message else "")
    if h.read_only:
        return "connected read-only"
    return None


def _fit(c: Capacity, d: Demand, planned: Sequence[Demand]) -> Ranked | str:
    """How `c` stands with `d` (and what is planned there) placed, or why it cannot take it."""
    if not c.pcpus or not c.mem_total_kib:
        return "its CPUs and memory are not known yet"
    p_vcpus = sum(x.vcpus for x in planned)
    p_mem = sum(x.memory_kib for x in planned)
    if d.vcpus > c.pcpus:
        return f"{d.vcpus} vCPUs asked, it has {c.pcpus} CPUs"
    asked = format_bytes(d.memory_kib * 1024)
    if d.memory_kib > c.mem_total_kib:
        return f"{asked} asked, {c.name} has {format_bytes(c.mem_total_kib * 1024)} of memory"
    free, what = c.mem_free_kib, "free"
    if free is None:  # no figures from the host yet (or a driver without them): what no running VM is given
        free, what = c.mem_total_kib - c.mem_running_kib, "not given to running VMs"
    free -= p_mem
    if d.memory_kib > free:
        return f"{asked} asked, {format_bytes(max(free, 0) * 1024)} {what} on {c.name}"
    pool: PoolFill | None = None
    disk_share = None
    if d.disk_bytes or d.pool:
        chosen = _pool(c, d, planned)
        if isinstance(chosen, str):
            return chosen
        pool = chosen
        taken = sum(x.disk_bytes for x in planned if not x.pool or x.pool == pool.name)
        disk_share = (pool.allocation + taken + d.disk_bytes) / pool.capacity if pool.capacity else 1.0
    vcpus_after = c.vcpus_running + p_vcpus + d.vcpus
    mem_after = c.mem_running_kib + p_mem + d.memory_kib
    mem_share = mem_after / c.mem_total_kib
    vcpu_share = vcpus_after / (c.pcpus * VCPU_RATIO)
    shares = {"memory": mem_share, "vcpus": vcpu_share}
    if disk_share is not None:
        shares["disk"] = disk_share
    limit = max(shares, key=lambda k: shares[k])
    return Ranked(
        host=c.name,
        rank=0,
        score=shares[limit],
        limit=limit,
        mem_share=mem_share,
        vcpu_share=vcpu_share,
        disk_share=disk_share,
        vcpus_after=vcpus_after,
        pcpus=c.pcpus,
        mem_after_kib=mem_after,
        mem_total_kib=c.mem_total_kib,
        mem_free_kib=c.mem_free_kib,
        pool=pool.name if pool is not None else None,
        pool_free=pool.available if pool is not None else None,
    )


def _pool(c: Capacity, d: Demand, planned: Sequence[Demand]) -> PoolFill | str:
    """The pool the disk would go to on `c`, or why there is none."""
    if c.pools is None:
        return "its storage pools are not read yet"
    active = [p for p in c.pools if p.active]
    if d.pool:
        named = next((p for p in c.pools if p.name == d.pool), None)
        if named is None:
            return f"no pool {d.pool!r}"
        if not named.active:
            return f"pool {d.pool} is inactive"
        active = [named]
    if not active:
        return "no active storage pool"

    def free(p: PoolFill) -> int:
        return p.available - sum(x.disk_bytes for x in planned if not x.pool or x.pool == p.name)

    best = max(active, key=lambda p: (free(p), p.name))
    if free(best) < d.disk_bytes:
        where = f"pool {best.name}" if d.pool else f"the roomiest pool ({best.name})"
        return f"{format_bytes(d.disk_bytes)} disk asked, {format_bytes(max(free(best), 0))} free in {where}"
    return best
