"""Tenant quotas: what each tenant holds (vCPUs, memory, VMs, disk), read from the fleet state, and the
refusal of an action that would take a tenant past its `[tenants.NAME]` limits, with the numbers.

An action says what it adds with `Action.adds`, a function of (vm, args, state) returning a `Demand`
(create and clone: a whole VM; a resource change: the difference). The check runs where every other
refusal does (`Action.refusal`), so the screen's form, the `:` line and the CLI refuse alike, before
anything is sent to a host. Only growth is checked: a tenant over its quota may still shrink.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vimtui.core.model import FleetState, Quota, VmState, tenant_of

GIB = 2**30


@dataclass(frozen=True, slots=True)
class Use:
    """What a tenant holds (or an action adds): vCPUs, memory (MiB, the VMs' maximum), VMs, disk (GiB of
    virtual capacity)."""

    vcpus: int = 0
    memory_mib: int = 0
    vms: int = 0
    disk_gib: float = 0.0

    def __add__(self, other: Use) -> Use:
        return Use(
            self.vcpus + other.vcpus,
            self.memory_mib + other.memory_mib,
            self.vms + other.vms,
            self.disk_gib + other.disk_gib,
        )


Demand = Use
"""What an action adds to its VM's tenant (negative parts: what it gives back)."""

Adds = Callable[[VmState, Mapping[str, Any], FleetState], Demand]
"""fn(vm, args, state): what running the action on `vm` with `args` adds to the tenant of `vm`."""

# (field, the limit's field, how the refusal names it)
_PARTS = (
    ("vcpus", "vcpus", "vCPUs"),
    ("memory_mib", "memory_mib", "MiB of memory"),
    ("vms", "vms", "VMs"),
    ("disk_gib", "disk_gib", "GiB of disk"),
)


def vm_use(vm: VmState) -> Use:
    """What one VM holds: its vCPUs, its maximum memory, its disks' capacity (CD-ROMs left out)."""
    d = vm.details
    mem_kib = vm.mem_max_kib or (d.memory_kib if d is not None else 0) or 0
    disk = 0
    sample = vm.sample
    if sample is not None:
        disks = {x.target for x in d.disks if x.device == "disk"} if d is not None else None
        disk = sum(b.capacity or 0 for b in sample.disks if disks is None or b.name in disks)
    return Use(vm.vcpu_count or 0, mem_kib // 1024, 1, disk / GIB)


def use_of(vms: Iterable[VmState]) -> dict[str, Use]:
    """Per tenant, what its VMs hold (VMs without a tenant are not counted)."""
    out: dict[str, Use] = {}
    for vm in vms:
        tenant = tenant_of(vm)
        if tenant:
            out[tenant] = out.get(tenant, Use()) + vm_use(vm)
    return out


def _num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() or abs(x) >= 10 else f"{x:,.1f}"


def over(tenant: str, quota: Quota, used: Use, asked: Use) -> str | None:
    """Why `asked` on top of `used` passes `quota` ("acme: 6 of 8 vCPUs in use, 4 asked"); None: it fits."""
    for part, limit_field, label in _PARTS:
        want = getattr(asked, part)
        limit = getattr(quota, limit_field)
        if limit is None or want <= 0:
            continue
        have = getattr(used, part)
        if have + want > limit:
            return f"{tenant}: {_num(have)} of {_num(limit)} {label} in use, {_num(want)} asked"
    return None


def refusal(
    vm: VmState, asked: Use, state: FleetState, pending: Mapping[str, Use] | None = None
) -> str | None:
    """Why the tenant of `vm` may not take `asked` more (its quota, with the numbers); None when it may or
    has no quota. `pending`: what steps checked before this one, in the same request, already take."""
    tenant = tenant_of(vm)
    return tenant_refusal(tenant, asked, state, pending) if tenant else None


def tenant_refusal(
    tenant: str, asked: Use, state: FleetState, pending: Mapping[str, Use] | None = None
) -> str | None:
    """Why `tenant` may not take `asked` more (None: it may, or it has no quota)."""
    quota = state.quotas.get(tenant)
    if quota is None:
        return None
    used = use_of(v for v in state.vms.values() if tenant_of(v) == tenant).get(tenant, Use())
    if pending:
        used = used + pending.get(tenant, Use())
    return over(tenant, quota, used, asked)


@dataclass(frozen=True, slots=True)
class TenantUse:
    """One row of the tenants view and `vimtui tenants`: a tenant, what it holds, its quota."""

    tenant: str
    use: Use
    quota: Quota | None

    def as_dict(self) -> dict[str, Any]:
        q = self.quota
        return {
            "tenant": self.tenant,
            "vcpus": self.use.vcpus,
            "memory_mib": self.use.memory_mib,
            "vms": self.use.vms,
            "disk_gib": round(self.use.disk_gib, 1),
            "quota": None
            if q is None
            else {"vcpus": q.vcpus, "memory_mib": q.memory_mib, "vms": q.vms, "disk_gib": q.disk_gib},
        }


def tenants_table(state: FleetState) -> list[TenantUse]:
    """Every tenant with VMs or a quota (the scoped one only, in a tenant-scoped state), by name."""
    use = use_of(state.vms.values())
    names = set(use) | set(state.quotas)
    if state.tenant is not None:
        names = {state.tenant}
    return [TenantUse(t, use.get(t, Use()), state.quotas.get(t)) for t in sorted(names)]


def fraction(used: float, limit: int | None) -> str:
    """ "6 / 8" or "6" when there is no limit (the tenants view's and the CLI's cells)."""
    return f"{_num(used)} / {_num(limit)}" if limit is not None else _num(used)
