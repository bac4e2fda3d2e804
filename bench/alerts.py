"""What the alert engine costs per tick, against a bare loop over the same fields, in one run.

    .venv/bin/python bench/alerts.py [--sizes 1000,10000] [--ticks K]

`AlertEngine.evaluate` runs on the event loop for every published FleetState, so its cost per tick is
what matters. The fleet: N VMs on N/50 hosts in two groups, their values from the lab recording
(tests/data/domstats-lab.json: web01's and db01's real samples and rates) with a little noise, and 1% of
the VMs above a threshold at any time, moving from tick to tick (so alerts go pending, fire and resolve
as they would). Five VM rules: CPU > 90% for 10 s (every VM), memory > 95% (VMs "web*"), disk writes
> 100 MiB/s (group "dc1"), crashed and paused on an I/O error (the shipped rules).

The baseline, timed in the same run on the same states: one loop over the same VMs that reads the same
fields (host, stale, name, rates; state and sample for the two conditions) and compares the five values
with their thresholds, and nothing else: the floor for any engine written in Python that looks at every
VM every tick. The states are built before the timing (building them is the poller's cost, not ours).

Printed: µs per VM per tick (median CPU time over the ticks, then wall), ms per tick, and the ratio to
the baseline. Target: the 10,000-VM tick well under a frame (16 ms) and within 3x of the baseline.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vimtui.core.model import FleetState, HostState, HostStatus, VmState, state_name
from vimtui.core.monitor.alerts import DEFAULT_RULES, AlertEngine, Rule
from vimtui.core.poll.stats import HostRates, VmRates, parse_domain_stats, vm_rates

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "domstats-lab.json"
VMS_PER_HOST = 50
HOT = 0.01
"""Share of VMs above a threshold at a tick."""
VARIANTS = 8
"""Distinct states cycled through (each tick is a new state object with new values)."""

RULES = (
    Rule("cpu", "vm.cpu_pct", threshold=90.0, for_seconds=10.0),
    Rule("mem", "vm.mem_pct", threshold=95.0, vms=("web*",)),
    Rule("disk", "vm.disk_write_bps", threshold=100 * 2**20, group="dc1"),
    *(r for r in DEFAULT_RULES if r.metric in ("vm.crashed", "vm.io_error")),
)


def recorded() -> list[tuple[Any, VmRates]]:
    """(sample, rates) of each VM between the first two steady polls of the recording."""
    polls = json.loads(DATA.read_text())["polls"]
    p0, p1 = polls[0], polls[1]
    cpus = int(p1["info"][2])
    out = []
    for d in p1["domains"]:
        prev = next(x for x in p0["domains"] if x["uuid"] == d["uuid"])
        s0 = parse_domain_stats(prev["uuid"], prev["name"], prev["stats"], p0["t"])
        s1 = parse_domain_stats(d["uuid"], d["name"], d["stats"], p1["t"])
        out.append((s1, vm_rates(s0, s1, cpus)))
    return out


def build_states(n: int, seed: int) -> list[FleetState]:
    rng = random.Random(seed)
    base = recorded()
    n_hosts = max(1, n // VMS_PER_HOST)
    hosts = tuple(
        HostState(
            name=f"kvm{h:03d}",
            group="dc1/rack1" if h % 2 == 0 else "dc2",
            address=f"kvm{h:03d}",
            uri="qemu:///system",
            transport="ssh",
            status=HostStatus.UP,
            message="",
            status_since=0.0,
            rates=HostRates(cpu_pct=20.0, mem_used_kib=None, mem_pct=50.0),
        )
        for h in range(n_hosts)
    )
    states = []
    for variant in range(VARIANTS):
        vms: dict[str, VmState] = {}
        for i in range(n):
            sample, rates = base[i % len(base)]
            hot = rng.random() < HOT
            cpu = 95.0 + rng.random() * 5 if hot else (rates.cpu_pct or 0.0) * (0.5 + rng.random())
            mem = 97.0 if hot and i % 3 == 0 else 40.0 + rng.random() * 10
            wr = (150 * 2**20) if hot and i % 3 == 1 else (rates.disk_wr_bps or 0.0) * rng.random()
            r = rates._replace(cpu_pct=cpu, mem_pct=mem, disk_wr_bps=wr)
            name = f"{'web' if i % 2 else 'db'}{i:05d}"
            uuid = f"00000000-0000-0000-0000-{i:012d}"
            host = hosts[i % n_hosts].name
            vm = VmState(
                uuid,
                name,
                host,
                state_name(sample.state),
                sample.reason,
                sample.vcpus,
                None,
                None,
                sample,
                r,
                None,
            )
            vms[vm.key] = vm
        states.append(FleetState(version=variant + 1, time=0.0, hosts=hosts, vms=MappingProxyType(vms)))
    return states


def baseline(state: FleetState, groups: dict[str, str]) -> int:
    """The same VMs and fields, the same five comparisons, nothing else."""
    hits = 0
    for vm in state.vms.values():
        host = vm.host
        if vm.stale:
            continue
        r = vm.rates
        name = vm.name
        if r is not None:
            if r.cpu_pct is not None and r.cpu_pct > 90.0:
                hits += 1
            if name.startswith("web") and r.mem_pct is not None and r.mem_pct > 95.0:
                hits += 1
            if groups[host].startswith("dc1") and r.disk_wr_bps is not None and r.disk_wr_bps > 100 * 2**20:
                hits += 1
        st = vm.state
        if st != "running":
            s = vm.sample
            if st == "crashed" or (st == "shutoff" and s is not None and s.reason == 3):
                hits += 1
        if st == "paused":
            s = vm.sample
            if s is not None and s.state == 3 and s.reason == 5:
                hits += 1
    return hits


def measure(n: int, ticks: int) -> dict[str, float]:
    states = build_states(n, seed=n)
    groups = {h.name: h.group for h in states[0].hosts}
    engine = AlertEngine(RULES)
    for i in range(VARIANTS):  # warm: trackers and name caches as in a steady run
        engine.evaluate(states[i], float(i * 2))
    eng_cpu, eng_wall, base_cpu, base_wall = [], [], [], []
    transitions = 0
    gc.collect()
    for k in range(ticks):
        state = states[k % VARIANTS]
        now = float((VARIANTS + k) * 2)
        # take turns, so that a change in the machine's load falls on both alike
        w0, c0 = time.perf_counter(), time.process_time()
        transitions += len(engine.evaluate(state, now))
        c1, w1 = time.process_time(), time.perf_counter()
        baseline(state, groups)
        c2, w2 = time.process_time(), time.perf_counter()
        eng_cpu.append(c1 - c0)
        eng_wall.append(w1 - w0)
        base_cpu.append(c2 - c1)
        base_wall.append(w2 - w1)
    return {
        "engine_cpu": statistics.median(eng_cpu),
        "engine_wall": statistics.median(eng_wall),
        "base_cpu": statistics.median(base_cpu),
        "base_wall": statistics.median(base_wall),
        "transitions": transitions / ticks,
        "active": len(engine.active),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--ticks", type=int, default=60)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"alert engine, {len(RULES)} rules, {HOT:.0%} of VMs hot each tick; median of {args.ticks} ticks")
    print("µs per VM per tick: CPU (wall); ms per tick: engine CPU; ratio: engine / baseline, CPU (wall)")
    print(f"{'VMs':>7} {'engine µs/VM':>20} {'baseline µs/VM':>20} {'ms/tick':>8} {'ratio':>14}")
    for n in sizes:
        m = measure(n, args.ticks)
        e, b = m["engine_cpu"] / n * 1e6, m["base_cpu"] / n * 1e6
        ew, bw = m["engine_wall"] / n * 1e6, m["base_wall"] / n * 1e6
        ratio = m["engine_cpu"] / m["base_cpu"] if m["base_cpu"] else float("nan")
        ratio_w = m["engine_wall"] / m["base_wall"] if m["base_wall"] else float("nan")
        engine, base = f"{e:.3f} ({ew:.3f})", f"{b:.3f} ({bw:.3f})"
        ms = m["engine_cpu"] * 1e3
        print(f"{n:>7,} {engine:>20} {base:>20} {ms:>8.2f} {f'{ratio:.2f} ({ratio_w:.2f})':>14}")
        print(
            f"        ({m['transitions']:.1f} transitions per tick, {m['active']} alerts firing at the end)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
