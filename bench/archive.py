"""What the lasting history archive (core/monitor/archive/) costs, against baselines measured in the same run.

    .venv/bin/python bench/archive.py [--ticks K] [--day-vms N]

1. add(): microseconds per VM per tick, on the caller's thread (the event loop's, in the app), for 1,000
   and 10,000 VMs of six metrics, ticks 2 s apart (so every fifth tick starts new 10-second buckets).
   Baselines: a bare loop storing each VM's values in a dict, and History.record (the in-memory rings that
   Fleet already feeds every tick). Target: add() < 5 us per VM.
2. The archive's thread at 10,000 VMs: CPU per write pass (its own thread time), for an ordinary pass
   (10,000 fine rows), one that also closes the 5-minute buckets (10,000 coarse rows more), and a flush.
   Passes run every fine_step seconds, so this part waits for them (about 10 s).
3. Disk: a day of 10-second buckets for N VMs (default 20, two samples a bucket, values like idle and busy
   VMs), then the file's size per VM per day, per tier (dbstat), and what reading it back costs: a 24 h
   series of one VM (8,640 lookups) and a 24 h summary of all of them.

Figures measured when the archive was written (they go stale; run this for the code as it is): add() a few
microseconds per VM per tick; the archive's thread about 10 us per VM per pass, holding the GIL, which
Python hands to the event loop every 5 ms (at 10,000 VMs a pass costs the loop a few such slices every
10 s); a 24 h series of one VM about 40 ms; a VM's six metrics over a day of 10-second buckets 0.78 MB
with the blob against 1.6 MB with one row per (time, key, metric) and REAL columns (20 VMs, random
values, both time first and WITHOUT ROWID); with the coarse tier about 1.6 MB per VM for 24 hours of
fine and 30 days of coarse buckets, so the default 256 MiB holds about 170 VMs before the oldest fine
rows give way (the coarse tier alone about 0.8 MB per VM for 30 days).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vimtui.core import metrics
from vimtui.core.monitor.archive import Archive
from vimtui.core.monitor.rings import History

T0 = 1_699_999_800
"""A start time on a 5-minute boundary."""
TICK = 2.0
SIZES = (1_000, 10_000)
TARGET_ADD_US = 5.0
PASS_VMS = 10_000
DAY = 86_400


def vm_values(rnd: random.Random) -> dict[str, float | None]:
    """Six metrics like a VM's: percentages, and byte rates that are often zero (idle disks and NICs)."""
    busy = rnd.random() < 0.3
    return {
        "cpu": rnd.uniform(0, 100) if busy else rnd.uniform(0, 3),
        "mem": rnd.uniform(20, 90),
        "disk_rd": rnd.uniform(0, 5e7) if busy else 0.0,
        "disk_wr": rnd.uniform(0, 2e7) if busy else rnd.choice((0.0, 4096.0)),
        "net_rx": rnd.uniform(0, 1e7) if busy else rnd.uniform(0, 500),
        "net_tx": rnd.uniform(0, 1e7) if busy else rnd.uniform(0, 300),
    }


def fleet(n: int, rnd: random.Random) -> list[tuple[str, dict[str, float | None]]]:
    return [(f"kvm{i % 20:02d}/{i:08x}-0000-4000-8000-{i:012x}", vm_values(rnd)) for i in range(n)]


def per_vm_tick(
    record: Callable[[str, float, dict[str, float | None]], None],
    vms: list[tuple[str, dict[str, float | None]]],
    ticks: int,
) -> float:
    """Median over `ticks` ticks of the seconds one tick's records take, per VM."""
    times = []
    for k in range(ticks):
        t = T0 + TICK * k
        start = time.perf_counter()
        for key, values in vms:
            record(key, t, values)
        times.append((time.perf_counter() - start) / len(vms))
    return statistics.median(times)


def dict_store(
    store: dict[str, dict[str, float | None]],
) -> Callable[[str, float, dict[str, float | None]], None]:
    """The baseline: what storing a VM's values costs at the least."""

    def record(key: str, t: float, values: dict[str, float | None]) -> None:
        store[key] = values

    return record


def bench_add(tmp: Path, ticks: int) -> None:
    print(f"1. add() per VM per tick (median of {ticks} ticks, {TICK:g} s apart, six metrics)")
    rnd = random.Random(1)
    for n in SIZES:
        vms = fleet(n, rnd)
        bare = dict_store({})
        history = History(metrics=metrics.history_names("vm"))
        archive = Archive(tmp / f"add-{n}.sqlite")
        archive.flush()  # opened: its thread is idle, as between passes
        per_vm_tick(archive.add, vms, 5)  # warm up: first buckets, metric index
        base = per_vm_tick(bare, vms, ticks)
        hist = per_vm_tick(history.record, vms, ticks)
        ours = per_vm_tick(archive.add, vms, ticks)
        archive.close()
        verdict = "PASS" if ours * 1e6 < TARGET_ADD_US else "FAIL"
        print(
            f"   {n:>6,} VMs: Archive.add {ours * 1e6:5.2f} us/VM   History.record {hist * 1e6:5.2f} us/VM   "
            f"bare dict store {base * 1e6:5.3f} us/VM   add/bare {ours / base:5.1f}x   add/History "
            f"{ours / hist:4.2f}x   target < {TARGET_ADD_US:g} us: {verdict}"
        )


def wait_for_pass(archive: Archive, passes: int) -> None:
    """Until the archive's thread has done more than `passes` passes (it runs one every fine_step)."""
    deadline = time.monotonic() + 30
    while archive.stats().passes <= passes:
        if time.monotonic() > deadline:
            raise SystemExit("no write pass within 30 s")
        time.sleep(0.02)


def bench_passes(tmp: Path) -> None:
    print(
        f"2. the archive's thread at {PASS_VMS:,} VMs: CPU per write pass (fine_step 1 s here, to wait less)"
    )
    rnd = random.Random(2)
    vms = fleet(PASS_VMS, rnd)
    archive = Archive(tmp / "passes.sqlite", fine_step=1, coarse_step=300)
    archive.flush()
    ordinary: list[float] = []
    rollover: list[float] = []
    rows_per_pass: list[int] = []
    t = float(T0 + 10)
    for key, values in vms:  # the first bucket; each one added below closes the one before
        archive.add(key, t, values)
    for k in range(8):
        t = T0 + 300 + 10 if k == 4 else t + 1  # k == 4: the 5-minute buckets end too
        before = archive.stats()
        for key, values in vms:
            archive.add(key, t, values)
        wait_for_pass(archive, before.passes)
        s = archive.stats()
        (rollover if k == 4 else ordinary).append(s.last_pass_cpu)
        rows_per_pass.append(s.rows - before.rows)
    start = time.thread_time()
    flush_wall = time.perf_counter()
    archive.flush()
    flush_wall = time.perf_counter() - flush_wall
    flush_cpu = archive.stats().last_pass_cpu
    caller = time.thread_time() - start
    rows = archive.stats().rows
    archive.close()
    typical = statistics.median(ordinary)
    print(
        f"   ordinary pass (fine rows only)             : {typical * 1e3:6.1f} ms CPU "
        f"(median of {len(ordinary)}, "
        f"{typical / PASS_VMS * 1e6:.1f} us/VM, {statistics.median(rows_per_pass):,.0f} rows)"
    )
    print(
        f"   pass closing the 5-minute buckets too      : {rollover[0] * 1e3:6.1f} ms CPU "
        f"({rows_per_pass[4]:,} rows; every 30th pass)"
    )
    print(
        f"   flush (open fine and coarse buckets, merged): {flush_cpu * 1e3:6.1f} ms CPU, "
        f"{flush_wall * 1e3:.1f} ms wall; caller's CPU while waiting {caller * 1e3:.1f} ms"
    )
    print(f"   at one pass every 10 s: {typical / 10 * 100:.2f} % of a core; rows so far {rows:,}")


def bench_disk(tmp: Path, n: int) -> None:
    print(f"3. disk: a day of 10-second buckets for {n} VMs (two samples a bucket)")
    rnd = random.Random(3)
    path = tmp / "day.sqlite"
    keys = [key for key, _v in fleet(n, rnd)]
    profiles = [[vm_values(rnd) for _ in range(16)] for _ in keys]
    archive = Archive(path)
    start = time.perf_counter()
    buckets = DAY // 10
    for b in range(buckets):
        for i, key in enumerate(keys):
            archive.add(key, T0 + 10 * b + 1, profiles[i][b % 16])
            archive.add(key, T0 + 10 * b + 6, profiles[i][(b + 5) % 16])
        if b % 360 == 359:
            archive.flush()
    archive.flush()
    fill = time.perf_counter() - start

    def timed(fn: Callable[[], object], runs: int = 5) -> float:
        times = []
        for _ in range(runs):
            s = time.perf_counter()
            fn()
            times.append(time.perf_counter() - s)
        return statistics.median(times)

    until = T0 + DAY
    series = timed(lambda: archive.series(keys[0], "cpu", until - DAY, until))
    points = len(archive.series(keys[0], "cpu", until - DAY, until)[0])
    summary_day = timed(lambda: archive.summary(None, until - DAY, until))
    summary_fine = timed(lambda: archive.summary(None, until - 1800, until))
    archive.close()
    size = path.stat().st_size
    with closing(sqlite3.connect(path)) as db:
        tiers = dict(db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
    fine, coarse = tiers.get("fine", 0) / n, tiers.get("coarse", 0) / n
    steady = fine + 30 * coarse
    print(
        f"   file {size / 2**20:.1f} MiB for {n} VMs: {size / n / 1e3:.0f} kB per VM per day "
        f"(fine {fine / 1e3:.0f} kB, coarse {coarse / 1e3:.1f} kB, the rest lookups and free space); "
        f"filled in {fill:.1f} s"
    )
    print(
        f"   with full retention (24 h fine + 30 days coarse): {steady / 1e6:.2f} MB per VM, so "
        f"256 MiB holds about {256 * 2**20 / steady:.0f} VMs before the oldest fine rows give way"
    )
    print(
        f"   reads: 24 h series of one VM {series * 1e3:.1f} ms ({points} points); 24 h summary of all "
        f"{n} VMs (coarse) {summary_day * 1e3:.1f} ms; 30 min summary (fine) {summary_fine * 1e3:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ticks", type=int, default=25, help="ticks timed per size in part 1")
    parser.add_argument("--day-vms", type=int, default=20, help="VMs simulated for a day in part 3")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vimtui-bench-archive-") as d:
        tmp = Path(d)
        bench_add(tmp, args.ticks)
        bench_passes(tmp)
        bench_disk(tmp, args.day_vms)


if __name__ == "__main__":
    main()
