"""What the fleet adds to a session's HostState when it publishes: its VMs' load (vCPUs and memory given),
its maintenance mark and its storage pools as last read. Kept per host and recomputed only when one of
them changed (a poll replaces the host's VMs; marks and pools change rarely), so a publish costs one
identity check per host when nothing did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from vimtui.core.fleet.capacity import load_of
from vimtui.core.model import HostLoad, HostState, PoolFill, VmState


class HostFigures:
    def __init__(self) -> None:
        self.maintenance: dict[str, float] = {}
        """Host -> wall time it went into maintenance (set by the Maintenance store)."""
        self.pools: dict[str, tuple[PoolFill, ...]] = {}
        """Host -> its pools as last read."""
        self._loads: dict[str, tuple[Mapping[str, VmState], HostLoad]] = {}
        self._made: dict[str, tuple[HostState, HostLoad, float | None, object, HostState]] = {}

    def compose(self, base: HostState, vms: Mapping[str, VmState]) -> HostState:
        """`base` (the session's) with the load of `vms` (the host's VMs, replaced by each poll, never
        changed in place), the maintenance mark and the pools."""
        name = base.name
        kept = self._loads.get(name)
        if kept is None or kept[0] is not vms:
            kept = self._loads[name] = (vms, load_of(vms.values()))
        load = kept[1]
        mark = self.maintenance.get(name)
        pools = self.pools.get(name)
        made = self._made.get(name)
        if made is not None and made[0] is base and made[1] is load and made[2] == mark and made[3] is pools:
            return made[4]
        state = replace(base, load=load, maintenance=mark, pools=pools)
        self._made[name] = (base, load, mark, pools, state)
        return state

    def forget(self, host: str) -> None:
        self._loads.pop(host, None)
        self._made.pop(host, None)
