"""The tenant scope: a published FleetState cut down to one tenant's VMs, with the quotas attached.

Applied once, where the Fleet publishes (`Fleet.scope`), so every face reads the cut state: the tree's
counts, the table, graphs, palette, `:` commands, CLI listings and verbs, the exporter. Without a tenant
and without quotas no scope is set and publishing does nothing more. A VM whose XML has not been read
yet has no known tenant and stays out until it is read (never shown to the wrong tenant).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TypeVar

from vimtui.core.model import FleetState, Quota, VmState

T = TypeVar("T")


class TenantScope:
    def __init__(self, tenant: str | None, quotas: Mapping[str, Quota]) -> None:
        self.tenant = tenant
        """Only this tenant's VMs are published (None: every VM)."""
        self.quotas = MappingProxyType(dict(quotas))

    def apply(self, state: FleetState) -> FleetState:
        tenant = self.tenant
        if tenant is None:
            return replace(state, quotas=self.quotas)
        vms: dict[str, VmState] = {}
        keys: dict[str, list[str]] = {}
        for k, v in state.vms.items():  # one pass; the hosts' key lists made from what is kept
            d = v.details
            if d is not None and d.tenant == tenant:
                vms[k] = v
                kept = keys.get(v.host)
                if kept is None:
                    kept = keys[v.host] = []
                kept.append(k)
        hosts = tuple(
            replace(h, vm_keys=tuple(keys.get(h.name, ()))) if h.vm_keys else h for h in state.hosts
        )
        return replace(state, hosts=hosts, vms=MappingProxyType(vms), tenant=tenant, quotas=self.quotas)

    def own_rows(self, rows: list[tuple[str, T]], vms: Mapping[str, VmState]) -> list[tuple[str, T]]:
        """The history rows of this tenant's VMs (a scoped vimtui keeps nothing of the others)."""
        tenant = self.tenant
        return [r for r in rows if (d := vms[r[0]].details) is not None and d.tenant == tenant]

    def sees(self, state: FleetState, host: str, uuid: str) -> bool:
        """Whether an event about this VM belongs in the scoped views (host events always do)."""
        return self.tenant is None or not uuid or f"{host}/{uuid}" in state.vms
