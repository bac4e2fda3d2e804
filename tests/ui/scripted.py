"""Scripted polls for screen tests and snapshots: libvirt's test driver reports no statistics, so a screen
after its first poll has no CPU %, uptime, sparklines or graphs. `replay` feeds a fleet that has loaded
38 polls' worth of samples (STEPS), shaped as a real host returns them (the keys of getAllDomainStats and
of the node calls in tests/data/domstats-lab.json), through each host session's own path from the samples
on (rates, history, alerts, publish), on a clock the test moves. The workload is a fixed script: every
run, on any machine, draws the same screen."""

from __future__ import annotations

import math
import time
from typing import Any

from tests.ui.conftest import Clock
from vimtui.core.poll.stats import parse_domain_stats, parse_node
from vimtui.ui.app import VimApp

STEPS = (30.0,) * 28 + (6.0,) * 10
"""Seconds before each scripted poll: 14 minutes every 30 s, then a minute every 6 s (the graphs' window
is 15 minutes, the table's sparkline shows its last 8 samples of a minute)."""

_RUNNING, _PAUSED, _SHUTOFF = 1, 3, 5
GIB_KIB = 1024 * 1024


def _load(name: str, i: int) -> float:
    """A VM's CPU use at poll i, as a fraction of its vCPUs: a steady base, a daily-looking swell, and
    a busy spell for the batch and CI names (so graphs and sparklines have shapes, not flat lines)."""
    seed = sum(map(ord, name)) % 7
    base = 0.05 + 0.04 * seed
    swell = 0.25 * (1 + math.sin((i + 3 * seed) / 4.0)) / 2
    busy = 0.5 if ("ci-" in name or "db" in name) and 12 <= i < 22 else 0.0
    return min(0.97, base + swell + busy)


class _Counters:
    """One VM's cumulative counters across the script."""

    def __init__(self) -> None:
        self.cpu_ns = 10**12
        self.rd = self.wr = self.rx = self.tx = 10**9
        self.rd_reqs = self.wr_reqs = self.rx_pkts = self.tx_pkts = 10**6


def _vm_stats(vm: Any, state: int, c: _Counters, i: int, step: float) -> dict[str, Any]:
    """A getAllDomainStats record for one VM at scripted poll i (counters advanced by its load)."""
    stats: dict[str, Any] = {"state.state": state, "state.reason": 1}
    if state != _RUNNING and state != _PAUSED:
        return stats
    vcpus = vm.vcpu_count or 1
    mem = vm.memory_kib or GIB_KIB
    if state == _RUNNING:
        load = _load(vm.name, i)
        c.cpu_ns += int(load * vcpus * step * 1e9)
        c.rd += int(2e6 * load * step)
        c.wr += int(5e5 * (1 + i % 5) * step)
        c.rx += int(1.5e5 * (1 + (i * 3) % 7) * step)
        c.tx += int(4e4 * (1 + (i * 5) % 4) * step)
        c.rd_reqs += int(40 * load * step)
        c.wr_reqs += int(12 * step)
        c.rx_pkts += int(120 * step)
        c.tx_pkts += int(60 * step)
    used = int(mem * (0.35 + 0.3 * _load(vm.name, i // 3)))
    stats |= {
        "cpu.time": c.cpu_ns,
        "cpu.user": c.cpu_ns * 9 // 10,
        "cpu.system": c.cpu_ns // 10,
        "balloon.current": mem,
        "balloon.maximum": mem,
        "balloon.available": mem - 64 * 1024,
        "balloon.unused": mem - 64 * 1024 - used,
        "balloon.usable": mem - 64 * 1024 - used,
        "balloon.rss": used + 128 * 1024,
        "vcpu.current": vcpus,
        "vcpu.maximum": vcpus,
        "block.count": 1,
        "block.0.name": "vda",
        "block.0.rd.bytes": c.rd,
        "block.0.rd.reqs": c.rd_reqs,
        "block.0.wr.bytes": c.wr,
        "block.0.wr.reqs": c.wr_reqs,
        "block.0.capacity": 20 * GIB_KIB * 1024,
        "block.0.allocation": 6 * GIB_KIB * 1024,
        "net.count": 1,
        "net.0.name": "vnet0",
        "net.0.rx.bytes": c.rx,
        "net.0.rx.pkts": c.rx_pkts,
        "net.0.tx.bytes": c.tx,
        "net.0.tx.pkts": c.tx_pkts,
    }
    return stats


async def replay(app: VimApp, steps: tuple[float, ...] = STEPS, *, booted_at: int = 4) -> None:
    """Feed scripted polls to every host that answers, `steps` seconds apart from the clock's time.
    The VMs that run on the test driver are reported shut off until poll `booted_at` + a stagger of their
    own (so each has its uptime); paused and shut-off VMs stay so."""
    fleet = app.fleet
    clock = fleet.clock
    assert isinstance(clock, Clock), "replay moves the app's clock: make it with tests.ui.conftest.fleet_app"
    counters: dict[str, _Counters] = {}
    node_ns = {"kernel": 10**13, "user": 4 * 10**13, "idle": 10**15, "iowait": 10**11}
    # what libvirt says now: the script's VMs end in these states
    states = {
        k: {"running": _RUNNING, "paused": _PAUSED}.get(v.state, _SHUTOFF) for k, v in fleet.state.vms.items()
    }
    for i, step in enumerate(steps, 1):
        clock.now += step
        for session in fleet.sessions.values():
            info = session.state.info
            if info is None or not session.status.healthy:
                continue  # an unreachable host has no polls
            samples = []
            busy_ns = 0.0
            for n, vm in enumerate(sorted(session.vms.values(), key=lambda v: v.name)):
                state = states.get(vm.key, _SHUTOFF)
                if state == _RUNNING and i < booted_at + n:
                    state = _SHUTOFF
                c = counters.setdefault(vm.key, _Counters())
                stats = _vm_stats(vm, state, c, i, step)
                if state == _RUNNING:
                    busy_ns += _load(vm.name, i) * (vm.vcpu_count or 1) * step * 1e9
                samples.append(parse_domain_stats(vm.uuid, vm.name, stats, clock.now))
            total_ns = info.cpus * step * 1e9
            node_ns["user"] += int(busy_ns)
            node_ns["kernel"] += int(0.03 * total_ns)
            node_ns["iowait"] += int(0.01 * total_ns)
            node_ns["idle"] += max(0, int(total_ns - busy_ns - 0.04 * total_ns))
            mem_total = info.memory_kib
            mem = {
                "total": mem_total,
                "free": int(mem_total * (0.55 - 0.1 * math.sin(i / 5.0))),
                "buffers": mem_total // 50,
                "cached": mem_total // 10,
            }
            node_info = [info.cpu_model, info.memory_kib // 1024, info.cpus, info.cpu_mhz]
            node = parse_node(node_info, dict(node_ns), mem, clock.now)
            # the session's own path from a poll's result on, as its _poll takes it
            session._apply_samples(node, samples, None, time.monotonic())
            session._on_polled()
        fleet.publish()
