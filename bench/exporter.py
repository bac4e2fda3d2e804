"""What one scrape of `vimtui export` costs to render, against the floor of writing as many lines, in one run.

    .venv/bin/python bench/exporter.py [--sizes 1000,10000] [--rounds N]

The fleet: the real records in tests/data/domstats-lab.json replicated to N VMs over 20 hosts with moving
counters (bench/poll.py's replication), two polls apart, so every VM has its samples and rates. Timed, in
process CPU time (the machine may be shared) and wall time, best and median of the rounds:

- render: `render(state, openmetrics=True)` and `openmetrics=False`, the bytes of one scrape;
- floor: a bare loop of f-strings writing the same number of sample lines, each with the same labels and a
  float value, joined and encoded: what any exporter in Python pays for the text alone;
- gzip: compressing the OpenMetrics bytes at level 1, as a scrape that accepts gzip gets them (on a worker
  thread; zlib lets go of the GIL while it works).

A scrape renders a FleetState once per format (the exporter caches the bytes per state); above
exporter.INLINE_VMS VMs it renders on a worker thread, so the event loop is not held for the time shown.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.poll import load_recorded, make_vms, node_at, records_at, table
from tests.factories import vm_from_sample
from vimtui.core.export.openmetrics import render, vm_families
from vimtui.core.export.server import INLINE_VMS
from vimtui.core.model import FleetState, HostInfo, HostState, HostStatus
from vimtui.core.poll.stats import host_rates, parse_domain_stats, vm_rates

SIZES = (1_000, 10_000)
HOSTS = 20
ROUNDS = 7
TICK_SECONDS = 2.0


def fleet_state(n: int) -> FleetState:
    """n VMs on HOSTS hosts, each with two polls behind it (samples and rates)."""
    rec = load_recorded()
    fakes = make_vms(rec, n)
    cpus = int(rec.info[2])
    t0 = 1000.0
    prev = {u: parse_domain_stats(u, name, d, t0) for u, name, d in records_at(fakes, 0)}
    node0, node1 = node_at(rec, 0, t0), node_at(rec, 1, t0 + TICK_SECONDS)
    hosts = []
    for i in range(HOSTS):
        name = f"kvm{i:02d}"
        hosts.append(
            HostState(
                name=name,
                group=f"dc{i % 3}",
                address=f"10.0.0.{i + 1}",
                uri="qemu:///system",
                transport="ssh",
                status=HostStatus.UP,
                message="",
                status_since=1.8e9,
                info=HostInfo(name, "QEMU", "8.2.0", "9.0.0", cpus, 2600, "x86_64", 24_000_000, False),
                node=node1,
                rates=host_rates(node0, node1),
                last_poll=1.8e9,
                poll_seconds=0.012,
            )
        )
    vms = {}
    for i, (uuid, name, d) in enumerate(records_at(fakes, 1)):
        s = parse_domain_stats(uuid, name, d, t0 + TICK_SECONDS)
        host = hosts[i % HOSTS].name
        vm = vm_from_sample(host, s, vm_rates(prev[uuid], s, cpus))
        vms[vm.key] = vm
    ordered = dict(sorted(vms.items(), key=lambda kv: (kv[1].host, kv[1].name)))
    return FleetState(version=2, time=1.8e9, hosts=tuple(hosts), vms=MappingProxyType(ordered))


def floor(state: FleetState, lines: int) -> bytes:
    """`lines` sample lines written by the barest f-string loop, with the VMs' labels and a float."""
    out = []
    vms = list(state.vms.values())
    per_vm = -(-lines // len(vms))
    value = 12345.678
    for k in range(per_vm):
        name = f"vimtui_vm_metric_{k}"
        for vm in vms:
            out.append(
                f'{name}{{host="{vm.host}",vm="{vm.name}",uuid="{vm.uuid}",group="dc1",tenant=""}} {value}\n'
            )
    return "".join(out[:lines]).encode()


def timed(fn: Callable[[], object], rounds: int) -> tuple[list[float], list[float]]:
    cpu, wall = [], []
    fn()  # warm-up
    for _ in range(rounds):
        gc.collect()
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        c1, w1 = time.process_time(), time.perf_counter()
        cpu.append(c1 - c0)
        wall.append(w1 - w0)
    return cpu, wall


def ms(xs: Sequence[float]) -> str:
    return f"{min(xs) * 1e3:.1f} / {statistics.median(xs) * 1e3:.1f}"


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"exporter render, {len(vm_families())} VM families, {HOSTS} hosts")
    print(f"ms of CPU per scrape, best / median of {args.rounds} rounds")
    rows = []
    for n in sizes:
        state = fleet_state(n)
        om = render(state, openmetrics=True)
        text = render(state, openmetrics=False)
        lines = sum(1 for line in om.split(b"\n") if line and not line.startswith(b"#"))
        om_cpu, om_wall = timed(lambda: render(state, openmetrics=True), args.rounds)  # noqa: B023
        tx_cpu, _ = timed(lambda: render(state, openmetrics=False), args.rounds)  # noqa: B023
        fl_cpu, _ = timed(lambda: floor(state, lines), args.rounds)  # noqa: B023
        gz_cpu, _ = timed(lambda: gzip.compress(om, 1, mtime=0), args.rounds)  # noqa: B023
        gz_size = len(gzip.compress(om, 1, mtime=0))
        ratio = min(om_cpu) / min(fl_cpu)
        rows.append(
            (
                f"{n:,}",
                f"{lines:,}",
                f"{len(om) / 2**20:.1f} / {len(text) / 2**20:.1f}",
                ms(om_cpu),
                ms(om_wall),
                ms(tx_cpu),
                ms(fl_cpu),
                f"{ratio:.2f}x",
                f"{min(om_cpu) / n * 1e6:.1f}",
                f"{ms(gz_cpu)} ({gz_size / 2**20:.1f} MiB)",
            )
        )
    print(
        table(
            [
                "VMs",
                "lines",
                "MiB om/text",
                "openmetrics",
                "(wall)",
                "text 0.0.4",
                "f-string floor",
                "ours/floor",
                "us/VM",
                "gzip -1 (size)",
            ],
            rows,
        )
    )
    print(f"\nAbove {INLINE_VMS} VMs a state is rendered on a worker thread, once per state and format.")


if __name__ == "__main__":
    main()
