"""What the tenant scope costs per publish, against copying the fleet's VMs once, in one run.

    .venv/bin/python bench/scope.py [--sizes 1000,10000] [--runs K]

`TenantScope.apply` runs on the event loop for every published FleetState when a tenant (or a quota) is
configured; without either, the Fleet skips it (one `is not None` test per publish). The fleet: N VMs on
N/200 hosts, a quarter each of four tenants. The baseline, timed in the same run on the same state: one
`dict()` copy of the state's VMs, which the publish already makes once (the floor of any pass over them).

Printed per size: ms per publish (best of the runs, CPU time) for the baseline, a tenant scope, quotas
only; and the tenant scope's ratio to the baseline. Target: within 2x of the baseline.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.factories import domain_details
from vimtui.core.fleet.scope import TenantScope
from vimtui.core.model import FleetState, HostState, HostStatus, Quota, VmState

TENANTS = ("acme", "beta", "gamma", "delta")


def fleet(n: int) -> FleetState:
    hosts, vms = [], {}
    for h in range(max(1, n // 200)):
        keys = []
        for i in range(min(n, 200)):
            name = f"vm{h}-{i}"
            details = domain_details(name, tenant=TENANTS[i % len(TENANTS)])
            vm = VmState(name, name, f"h{h}", "running", 0, 1, None, None, None, None, details)
            vms[vm.key] = vm
            keys.append(vm.key)
        hosts.append(HostState(f"h{h}", "", "", "x", "direct", HostStatus.UP, "", 0.0, vm_keys=tuple(keys)))
    return FleetState(1, 0.0, tuple(hosts), MappingProxyType(vms))


def best(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    quotas = {"acme": Quota(vcpus=8)}
    tenant, only_quotas = TenantScope("acme", quotas), TenantScope(None, quotas)
    for n in (int(x) for x in args.sizes.split(",")):
        state = fleet(n)
        base = best(partial(dict, state.vms), args.runs)
        scoped = best(partial(tenant.apply, state), args.runs)
        plain = best(partial(only_quotas.apply, state), args.runs)
        print(
            f"{n:>6} VMs: baseline copy {base:.2f} ms, tenant scope {scoped:.2f} ms ({scoped / base:.1f}x), "
            f"quotas only {plain:.3f} ms"
        )


if __name__ == "__main__":
    main()
