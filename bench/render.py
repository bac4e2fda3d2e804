"""What one tick costs the VM table on screen, against Textual's DataTable, for 1,000 to 10,000 VMs.

    .venv/bin/python bench/render.py [--ticks K] [--sizes 1000,2000,5000,10000] [--datatable-budget S]

In a headless app of 200x50 cells, each tick brings new VmState objects for ALL VMs (every rate changed,
the sparkline history one sample longer) and is timed from the call that applies it to the end of the
repaint:

- VmTable: `table.update(vms, history=..., now=...)`, then the repaint, done synchronously the way
  Textual does it a frame later: the widget's refresh request goes to the screen (what the widget's idle
  handler and the screen's `Update` handler do: `screen._dirty_widgets.add(widget)`), then
  `screen._on_timer_update()`, what the screen's update timer runs: the layout if needed and the
  compositor's update of the dirty regions, which calls `render_line` for every line of the table on
  screen (counted, and checked to be all 50). Done this way the figure holds no timer wait or idle
  polling (`pilot.pause()` sleeps 20 ms at least); the pause comes after the timed part, outside it.
  Headless, the app skips only the final write of the ANSI string to the terminal, which costs the same
  for both widgets and does not depend on N.
- DataTable (the baseline, rows added once and not timed): formatting the cell strings of every VM (a
  DataTable cannot know which rows are visible, so it must be given them all), `update_cell` for every
  cell, then the same repaint. The formatting share is printed on its own. Its ticks stop once they have
  taken --datatable-budget seconds of a size (at least 3 are kept), and sizes it would need more than 5 s a
  tick for are skipped: both are reported.

The core makes new VmState objects every tick, and the old ones are freed when the last reference to them
goes, which may be the table's (its sorted list) or the app's: O(N) work that belongs to the data model
whatever widget shows it, and the same for both. The benchmark holds the previous tick's list until the
timed part is over, then drops it and reports that time on its own ("free old").

Ticks are timed in process CPU time (the judged figure: the machine may be shared) and in wall time; the
allocations of building the fake VMs happen before a tick, with a gc.collect() between ticks. VmTable's
ticks are taken in ROUNDS rounds over all the sizes, so that a change in the machine's load falls on every
size alike. Target (the brief's): the VmTable tick, in its default order (host, name: the order does not
change between ticks), under 16 ms (one frame at 60 Hz) at every size, and flat: the 10,000-VM tick no
more than FLAT_SPREAD times the 1,000-VM tick. Also measured, for information: sorted by CPU, where the
order changes every tick (a real O(N log N) sort each time).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import DataTable

from tests.factories import domain_details
from vimtui.core.model import VmState
from vimtui.core.monitor.rings import History
from vimtui.core.poll.stats import VmRates
from vimtui.ui import format as fmt
from vimtui.ui.widgets.vm_columns import SPARK_CELLS
from vimtui.ui.widgets.vm_table import VmTable

SIZE = (200, 50)
SIZES = (1_000, 2_000, 5_000, 10_000)
TICKS = 20
WARMUP = 2
ROUNDS = 4
TICK_SECONDS = 2.0
TARGET_MS = 16.0
FLAT_SPREAD = 1.5
"""The 10,000-VM tick over the 1,000-VM tick that still counts as flat."""
DATATABLE_BUDGET = 20.0
DATATABLE_MAX_TICK = 5.0
HOSTS = 20
COLUMNS = ("name", "host", "state", "vcpu", "cpu", "spark", "mem", "disk", "net", "ip", "uptime", "tags")


# ---------------------------------------------------------------------------------------------- fleet


class FakeFleet:
    """N VMs on HOSTS hosts; each tick makes new VmState objects with new rates and records history."""

    def __init__(self, n: int, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.now = 1_700_000_000.0
        # one metric and short rings: what the sparklines read, without a GB of history at 10,000 VMs
        self.history = History(("cpu",), fine_slots=120, coarse_slots=60)
        self.base = []
        # FleetState's order: hosts in the order of the config (not alphabetical), names sorted within each
        hosts = [f"kvm{h:02d}" for h in range(HOSTS)]
        self.rng.shuffle(hosts)
        rank = {h: r for r, h in enumerate(hosts)}
        for i in sorted(range(n), key=lambda i: (rank[f"kvm{i % HOSTS:02d}"], i)):
            host = f"kvm{i % HOSTS:02d}"
            name = f"vm-{i:05d}"
            tags = ("prod", "web") if i % 3 == 0 else ()
            self.base.append(
                (
                    f"{i:08x}-0000-4000-8000-{i:012x}",
                    name,
                    host,
                    "running" if i % 10 else "shutoff",
                    domain_details(
                        name, memory_kib=2 << 20, vcpus=2, arch="x86_64", tags=tags, has_agent=True
                    ),
                    (f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",),
                )
            )

    def tick(self) -> list[VmState]:
        self.now += TICK_SECONDS
        rnd = self.rng.random
        vms: list[VmState] = []
        record = self.history.record
        for uuid, name, host, state, details, ips in self.base:
            running = state == "running"
            rates = (
                VmRates(
                    cpu_pct=rnd() * 100.0,
                    cpu_host_pct=rnd() * 10.0,
                    mem_used_kib=int(rnd() * (2 << 20)),
                    mem_pct=rnd() * 100.0,
                    disk_rd_bps=rnd() * 5e6,
                    disk_wr_bps=rnd() * 1e6,
                    disk_rd_iops=rnd() * 100,
                    disk_wr_iops=rnd() * 100,
                    net_rx_bps=rnd() * 1e7,
                    net_tx_bps=rnd() * 1e6,
                )
                if running
                else None
            )
            vm = VmState(
                uuid=uuid,
                name=name,
                host=host,
                state=state,
                reason=1,
                vcpus=2,
                mem_max_kib=2 << 20,
                mem_current_kib=2 << 20,
                sample=None,
                rates=rates,
                details=details,
                ips=ips if running else (),
                state_since=self.now - 86400 * 3,
            )
            vms.append(vm)
            if rates is not None:
                record(f"{host}/{uuid}", self.now, {"cpu": rates.cpu_pct})
        return vms


def cells(vm: VmState, history: History, now: float) -> list[str]:
    """What the DataTable baseline shows for one VM: the same columns, made by the same helpers."""
    r = vm.rates
    key = vm.key
    spark = fmt.sparkline(history.series(key, "cpu", 60.0, now)[1], SPARK_CELLS) if key in history else ""
    up = now - vm.state_since if vm.state == "running" else None
    return [
        vm.name,
        vm.host,
        vm.state,
        str(vm.vcpus),
        fmt.pct(r.cpu_pct if r else None, missing=""),
        spark,
        fmt.mem_used_of(r.mem_used_kib if r else None, vm.mem_current_kib),
        fmt.pair(fmt.rate(r.disk_rd_bps, per=""), fmt.rate(r.disk_wr_bps, per="")) if r else "",
        fmt.pair(fmt.rate(r.net_rx_bps, per=""), fmt.rate(r.net_tx_bps, per="")) if r else "",
        vm.ips[0] if vm.ips else "",
        "" if up is None else fmt.duration(up),
        ",".join(vm.details.tags) if vm.details else "",
    ]


# ---------------------------------------------------------------------------------------------- timing


@dataclass
class Run:
    name: str
    n: int
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    extra: list[float] = field(default_factory=list)
    """DataTable: CPU seconds of formatting; VmTable: lines rendered."""
    free: list[float] = field(default_factory=list)
    """CPU seconds to free the previous tick's VmState objects (not in the tick: see the docstring)."""
    note: str = ""

    @property
    def cpu_ms(self) -> float:
        return statistics.fmean(self.cpu) * 1e3

    @property
    def wall_ms(self) -> float:
        return statistics.fmean(self.wall) * 1e3

    @property
    def median_ms(self) -> float:
        return statistics.median(self.cpu) * 1e3


def repaint(app: App[None], widget: Widget) -> None:
    """Paint now what Textual would paint at the next frame (see the module's docstring)."""
    screen = app.screen
    screen._dirty_widgets.add(widget)
    screen._on_timer_update()


class CountingVmTable(VmTable):
    lines = 0

    def render_line(self, y: int) -> Strip:
        CountingVmTable.lines += 1
        return super().render_line(y)


class CountingDataTable(DataTable[str]):
    lines = 0

    def render_line(self, y: int) -> Strip:
        CountingDataTable.lines += 1
        return super().render_line(y)


class BenchApp(App[None]):
    def __init__(self, widget: Widget) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


async def bench_vm_table(fleet: FakeFleet, ticks: int, sort: str | None, run: Run) -> None:
    """`ticks` timed ticks (after WARMUP) of a new table on `fleet`, added to `run`."""
    n = len(fleet.base)
    table = CountingVmTable()
    app = BenchApp(table)
    async with app.run_test(size=SIZE) as pilot:
        if sort:
            table.sort_by(sort, reverse=True)
        previous: list[VmState] = []
        for tick in range(WARMUP + ticks):
            vms = fleet.tick()
            await pilot.pause()
            gc.collect()
            CountingVmTable.lines = 0
            w0, c0 = time.perf_counter(), time.process_time()
            table.update(vms, history=fleet.history, now=fleet.now)
            repaint(app, table)
            c1, w1 = time.process_time(), time.perf_counter()
            previous = vms  # the last reference to the previous tick's VMs goes: they are freed here
            c2 = time.process_time()
            if tick >= WARMUP:
                run.cpu.append(c1 - c0)
                run.wall.append(w1 - w0)
                run.extra.append(CountingVmTable.lines)
                run.free.append(c2 - c1)
        del previous
        assert table.visible_count == n
    if min(run.extra) < SIZE[1]:
        raise SystemExit(f"the repaint rendered {min(run.extra)} lines, not the {SIZE[1]} on screen")


async def bench_data_table(n: int, ticks: int, budget: float) -> Run:
    fleet = FakeFleet(n)
    table = CountingDataTable(cursor_type="row")
    app = BenchApp(table)
    run = Run("DataTable", n)
    async with app.run_test(size=SIZE) as pilot:
        for c in COLUMNS:
            table.add_column(c.upper(), key=c)
        vms = fleet.tick()
        table.add_rows([*cells(vm, fleet.history, fleet.now)] for vm in vms)
        keys = [row.key for row in table.ordered_rows]
        await pilot.pause()
        spent = 0.0
        previous = vms
        for tick in range(WARMUP + ticks):
            vms = fleet.tick()
            await pilot.pause()
            gc.collect()
            CountingDataTable.lines = 0
            w0, c0 = time.perf_counter(), time.process_time()
            now, history = fleet.now, fleet.history
            rows = [cells(vm, history, now) for vm in vms]
            cf = time.process_time()
            update = table.update_cell
            for row_key, texts in zip(keys, rows, strict=True):
                for column, text in zip(COLUMNS, texts, strict=True):
                    update(row_key, column, text)
            repaint(app, table)
            c1, w1 = time.process_time(), time.perf_counter()
            previous = vms  # as for VmTable: the previous tick's VMs are freed outside the timed part
            spent += c1 - c0
            if CountingDataTable.lines < SIZE[1]:
                raise SystemExit(
                    f"DataTable's repaint rendered {CountingDataTable.lines} lines, not {SIZE[1]}"
                )
            if tick >= WARMUP:
                run.cpu.append(c1 - c0)
                run.wall.append(w1 - w0)
                run.extra.append(cf - c0)
            if tick >= WARMUP + 2 and spent > budget:
                run.note = f"stopped after {len(run.cpu)} ticks (budget {budget:.0f} s)"
                break
        del previous
    return run


# ---------------------------------------------------------------------------------------------- output


def table_text(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells_ = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells_) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "  " + "   ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    return "\n".join(
        [line(cells_[0]), "  " + "-" * (sum(widths) + 3 * (len(widths) - 1)), *map(line, cells_[1:])]
    )


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} on {os.cpu_count()} CPUs"


async def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--ticks", type=int, default=TICKS)
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--datatable-budget", type=float, default=DATATABLE_BUDGET, help="CPU seconds per size")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"vimtui render benchmark: {SIZE[0]}x{SIZE[1]} headless, {args.ticks} ticks a size "
        f"(VmTable: {ROUNDS} rounds over the sizes, +{WARMUP} warm-up ticks each),"
    )
    print(f"all rows new each tick; {load()}")

    # in ROUNDS rounds over the sizes, so that a change in the machine's load falls on all sizes alike
    variants = {"VmTable": None, "VmTable by cpu": "cpu"}
    tables = {name: [Run(name, n) for n in sizes] for name in variants}
    fleets = [FakeFleet(n) for n in sizes]
    per_round = max(1, args.ticks // ROUNDS)
    for _ in range(ROUNDS):
        for i, fleet in enumerate(fleets):
            for name, sort in variants.items():
                await bench_vm_table(fleet, per_round, sort, tables[name][i])
    del fleets
    baseline: list[Run | None] = []
    for n in sizes:
        last = next((r for r in reversed(baseline) if r is not None), None)
        if last is not None and last.cpu_ms / 1e3 * n / last.n > DATATABLE_MAX_TICK:
            baseline.append(None)
            continue
        baseline.append(await bench_data_table(n, args.ticks, args.datatable_budget))

    print("\nms per tick (update + repaint): mean CPU (median CPU, mean wall)")
    rows = []
    for i, n in enumerate(sizes):
        ours, by_cpu, dt = tables["VmTable"][i], tables["VmTable by cpu"][i], baseline[i]
        rows.append(
            [
                f"{n:,}",
                f"{ours.cpu_ms:.2f} ({ours.median_ms:.2f}, {ours.wall_ms:.2f})",
                f"{by_cpu.cpu_ms:.2f} ({by_cpu.median_ms:.2f}, {by_cpu.wall_ms:.2f})",
                f"{int(min(ours.extra))}",
                f"{statistics.fmean(ours.free) * 1e3:.2f}",
                "skipped" if dt is None else f"{dt.cpu_ms:.1f} ({dt.median_ms:.1f}, {dt.wall_ms:.1f})",
                "" if dt is None else f"{statistics.fmean(dt.extra) * 1e3:.1f}",
                "" if dt is None else f"{dt.cpu_ms / ours.cpu_ms:.0f}x",
            ]
        )
    print(
        table_text(
            (
                "VMs",
                "VmTable",
                "by cpu",
                "lines",
                "free old",
                "DataTable",
                "of it: format",
                "DataTable/VmTable",
            ),
            rows,
        )
    )
    for i, dt in enumerate(baseline):
        if dt is None:
            print(f"  DataTable at {sizes[i]:,}: skipped, projected over {DATATABLE_MAX_TICK:.0f} s a tick")
        elif dt.note:
            print(f"  DataTable at {sizes[i]:,}: {dt.note}")

    ok = True
    for name, runs in tables.items():
        worst = max(r.cpu_ms for r in runs)
        under = worst < TARGET_MS
        spread = runs[-1].cpu_ms / runs[0].cpu_ms
        flat = spread <= FLAT_SPREAD
        judged = variants[name] is None
        if judged:
            ok = under and flat
        print(
            f"  {'target' if judged else 'for information'}, {name}: under {TARGET_MS:.0f} ms at every size "
            f"(worst {worst:.2f} ms): {'PASS' if under else 'FAIL'}; "
            f"flat, {runs[-1].n:,} / {runs[0].n:,} VMs = {spread:.2f}x (<= {FLAT_SPREAD}x): "
            f"{'PASS' if flat else 'FAIL'}"
        )
    print(f"done: {load()}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
