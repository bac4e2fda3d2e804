"""What one poll costs us, against the floor of what it must cost, in one run. Run as root:

    .venv/bin/python bench/poll.py [--guests N] [--ticks K] [--skip-real] [--skip-scale] [--skip-memory]

1. real: a lab host (lab "bench") with its 2 booting guests plus N idle ones, reached over SSH exactly as
   vimtui reaches it. CPU of this whole process (the lane thread and the asyncssh tunnel included) per
   call, for our whole poll path (`Fleet.tick`), for the bare bulk stats call on the same connection and
   lane, and for `virsh domstats` through the same forwarded socket (plus virsh's own CPU). The kinds
   take turns within each round, so that a busy machine weighs on them alike; a round in which a call
   fails (a poll past its deadline drops the connection) is dropped and the session left to reconnect.
   The details and address look-ups that polls start off the tick are measured while the session
   settles, then held off, so that they do not run inside the measured ticks. Target: ours <= 1.5x bare.
2. scale: the real records in tests/data/domstats-lab.json, replicated to 1,000 / 5,000 / 10,000 VMs with
   moving counters, fed through our parse, rates, VmState, history and publish code; wall and CPU time.
   Target: < 25 ms per 1,000 VMs.
3. memory: RSS of a fresh process holding 10,000 VMs' state and 15 full minutes of 1-second history for
   each. Target: < 250 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import inspect
import json
import os
import pstats
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

# `tests.lab` and `bench.idle_guests` import from the repository root
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import libvirt
import psutil

import vimtui.core.fleet.fleet as fleet_module
from vimtui.core import metrics
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.fleet.startup import tune_gc
from vimtui.core.model import HostStatus
from vimtui.core.monitor.rings import History
from vimtui.core.poll.host_calls import NOWAIT, STATS
from vimtui.core.poll.lane import CallTimeout
from vimtui.core.poll.session import SessionSettings
from vimtui.core.poll.stats import NodeSample, parse_domain_stats, parse_node, vm_rates

ROOT = Path(__file__).resolve().parent.parent
LAB_NAME = "bench"
HOST = "kvm01"
DATA = ROOT / "tests" / "data" / "domstats-lab.json"
TEMPLATE_POLL = "steady-0"
TICK_SECONDS = 2.0
"""Simulated interval between two polls in the scale and memory parts."""
SCALE_SIZES = (1_000, 5_000, 10_000)
SCALE_WARMUP, SCALE_TICKS = 2, 5
MEMORY_VMS = 10_000
HISTORY_SECONDS = 905
"""Seconds of 1-second samples recorded per key: a little over the 900 the fine ring holds."""

TARGET_REAL_RATIO = 1.5
TARGET_MS_PER_1K = 25.0
TARGET_RSS_MB = 250.0
FLAT_SPREAD = 1.5
"""Largest per-VM cost over smallest across the sizes that still counts as flat."""

VIRSH_ARGS = ("domstats", "--state", "--cpu-total", "--balloon", "--vcpu", "--interface", "--block")


# ---------------------------------------------------------------------------------------------- output


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "", indent: int = 2) -> str:
    """Aligned columns; `align` has one letter a column, l or r (default: the first l, the others r)."""
    align = align or "l" + "r" * (len(headers) - 1)
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align, strict=True)]
        return " " * indent + "   ".join(parts).rstrip()

    rule = " " * indent + "-" * (sum(widths) + 3 * (len(widths) - 1))
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


# ---------------------------------------------------------------------------------------------- 1. real


@dataclass
class Series:
    """CPU and wall seconds of each measured call of one kind."""

    name: str
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    vms: list[int] = field(default_factory=list)

    @property
    def cpu_ms(self) -> float:
        return statistics.fmean(self.cpu) * 1e3

    @property
    def cpu_median_ms(self) -> float:
        return statistics.median(self.cpu) * 1e3

    @property
    def wall_ms(self) -> float:
        return statistics.fmean(self.wall) * 1e3


class PollFailed(RuntimeError):
    """A call that did not go through (the host is not up after it)."""


RECOVERABLE = (PollFailed, CallTimeout, libvirt.libvirtError)


async def _timed(fn: Callable[[], Awaitable[int]], series: Series | None) -> None:
    """Run one call; record this process's CPU and the wall time when `series` is given (else warm-up)."""
    c0, w0 = time.process_time(), time.perf_counter()
    vms = await fn()
    c1, w1 = time.process_time(), time.perf_counter()
    if series is not None:
        series.cpu.append(c1 - c0)
        series.wall.append(w1 - w0)
        series.vms.append(vms)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@dataclass
class SideWork:
    """The details and address look-ups that polls kick off (on the lane, off the tick), seen in the
    settling ticks after connecting: per tick, CPU of the tick plus its drained side work."""

    cpu: list[float] = field(default_factory=list)
    details: list[int] = field(default_factory=list)
    addresses: list[int] = field(default_factory=list)

    def extra(self, tick_cpu: float) -> float:
        """CPU seconds of the side work in all: the settling ticks less as many plain ticks."""
        return sum(self.cpu) - tick_cpu * len(self.cpu)

    def per_address(self, tick_cpu: float) -> float | None:
        """CPU seconds of one VM's address look-up, from the ticks after the first (addresses only)."""
        looked_up = sum(self.addresses[1:])
        return sum(c - tick_cpu for c in self.cpu[1:]) / looked_up if looked_up else None


@dataclass
class RealRun:
    series: list[Series]
    """ours, bare, virsh"""
    breakdown: list[Series]
    side: SideWork
    with_rates: int
    failures: list[str]


async def _measure_real(lab: Any, ticks: int, warmup: int) -> RealRun:
    """The kinds of poll, interleaved round by round so that background load hits them alike."""
    h = lab.host(HOST)
    spec = HostSpec(
        name=HOST,
        transport="ssh",
        uri="qemu:///system",
        address=h.address,
        user="root",
        identity=str(lab.key_file),
        known_hosts=str(lab.known_hosts),
        group=f"lab/{LAB_NAME}",
    )
    with tempfile.TemporaryDirectory(prefix="vimtui-bench-") as tmp:
        fleet = Fleet([spec], SessionSettings(interval=2.0), Path(tmp) / "run")
        await fleet.start(tick=False)
        try:
            state = await fleet.connected(within=30)
            host = state.host(HOST)
            if host is None or host.status != HostStatus.UP:
                raise RuntimeError(f"{HOST} did not come up: {host and host.status} {host and host.message}")
            session = fleet.sessions[HOST]
            last: list[Any] = []
            failures: list[str] = []

            async def ours() -> int:
                st = await fleet.tick(deadline=30)
                hs = st.host(HOST)
                if hs is None or hs.status != HostStatus.UP:
                    raise PollFailed(f"Fleet.tick: {hs and hs.status}: {hs and hs.message}")
                return len(st.vms)

            async def drain_side_work() -> None:
                task = session._side_task
                if task is not None and not task.done():
                    await task

            async def bare() -> int:
                conn = session._conn
                records = await session.lane.call(30, lambda: conn.getAllDomainStats(STATS, NOWAIT))
                return len(records)

            virsh_children: list[float] = []

            async def virsh() -> int:
                assert session._tunnel is not None
                ch0 = _children_cpu()
                proc = await asyncio.create_subprocess_exec(
                    "virsh",
                    "-c",
                    session._tunnel.uri,
                    *VIRSH_ARGS,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                out, err = await proc.communicate()
                if proc.returncode != 0:
                    raise PollFailed(f"virsh: exit {proc.returncode}: {err.decode().strip()}")
                virsh_children.append(_children_cpu() - ch0)
                return out.count(b"Domain: ")

            async def poll_blocking() -> int:
                last[:] = [await session.lane.call(30, session._poll_blocking)]
                return len(last[0][1])

            async def node_stats() -> int:
                conn = session._conn
                await session.lane.call(30, lambda: (conn.getCPUStats(-1), conn.getMemoryStats(-1)))
                return len(session.vms)

            async def loop_side() -> int:
                session._apply(last[0], time.monotonic())
                fleet._record_history(session)
                fleet.publish()
                return len(session.vms)

            async def recover(exc: BaseException) -> None:
                """A call failed (on a busy machine: a poll past its deadline drops the connection):
                note it, wait for the session to reconnect on its own; the round is not counted."""
                failures.append(f"{type(exc).__name__}: {exc}")
                print(f"  ! {failures[-1]}; waiting for {HOST} to reconnect", flush=True)
                await fleet.wait_for(lambda st: st.hosts[0].status == HostStatus.UP, within=120)

            # settle: every VM's details and first address look-up, a batch per poll, as after a connect
            side = SideWork()
            for _ in range(30):
                details, addresses = len(session.book.details), len(session.book.ip_time)
                c0 = time.process_time()
                try:
                    await ours()
                    await drain_side_work()
                except RECOVERABLE as exc:
                    await recover(exc)
                    continue
                side.cpu.append(time.process_time() - c0)
                side.details.append(len(session.book.details) - details)
                side.addresses.append(len(session.book.ip_time) - addresses)
                if not session.book.dirty and not session.book.ip_due():
                    break
            # From here on no address is due, but the rounds below may outlast IP_REFRESH: hold the look-ups
            # off so that their lane calls do not run inside the measured ticks (their cost is above).
            session.book.ip_due = lambda: []  # type: ignore[method-assign]

            series = [
                Series("ours: Fleet.tick()"),
                Series("bare: getAllDomainStats"),
                Series("virsh domstats"),
            ]
            breakdown = [
                Series("lane: HostSession._poll_blocking()"),
                Series("  node stats: getCPUStats + getMemoryStats"),
                Series("loop: _apply + _record_history + publish"),
            ]
            done = 0
            for _ in range(3 * (warmup + ticks)):
                if done == warmup + ticks:
                    break
                keep = done >= warmup
                try:
                    await _timed(ours, series[0] if keep else None)
                    await drain_side_work()
                    await _timed(bare, series[1] if keep else None)
                    virsh_children.clear()
                    await _timed(virsh, series[2] if keep else None)
                    if (
                        keep
                    ):  # virsh's own CPU (a reaped child) on top of ours (the tunnel carrying its bytes)
                        series[2].cpu[-1] += virsh_children[0]
                    for fn, s in zip((poll_blocking, node_stats, loop_side), breakdown, strict=True):
                        await _timed(fn, s if keep else None)
                except RECOVERABLE as exc:
                    await recover(exc)
                    continue
                done += 1
            if done < warmup + ticks:
                raise RuntimeError(f"only {done} of {warmup + ticks} rounds went through: {failures[-3:]}")
            with_rates = sum(
                1 for v in fleet.state.vms.values() if v.rates is not None and v.rates.cpu_pct is not None
            )
        finally:
            await fleet.stop()
    return RealRun(series, breakdown, side, with_rates, failures)


def part_real(guests: int, ticks: int, warmup: int = 2) -> None:
    from bench.idle_guests import remove_idle_guests, start_idle_guests
    from tests.lab.lab import Lab, hardware_virt
    from vimtui.core.poll.host_vms import IP_KEEP, IP_REFRESH

    heading(f"1. real: one lab host over SSH, its 2 booting guests + {guests} idle ones")
    if os.geteuid() != 0:
        print("  skipped: the lab needs root")
        return
    lab = Lab(LAB_NAME)
    started_names: list[str] = []
    try:
        t0 = time.monotonic()
        lab.down()  # a fresh lab: no guests left from an earlier run
        lab.up(1)
        virt = "kvm" if hardware_virt() else "qemu"
        print(f"  lab {LAB_NAME!r} up in {time.monotonic() - t0:.1f} s; idle guests: domain type {virt!r}")
        with lab.connect(HOST) as conn:
            started = start_idle_guests(conn, guests, virt)
            started_names = started.names
            print(f"  {len(started.names)} of {guests} idle guests running after {started.seconds:.1f} s")
            if started.stopped_because:
                print(f"  stopped starting more: {started.stopped_because}")
            total = len(conn.listAllDomains(0))
        time.sleep(3)  # let the last BIOSes reach their idle wait
        tune_gc()  # as the CLI and the screen do at start (else young collections land in the ticks)
        run = asyncio.run(_measure_real(lab, ticks, warmup))
        counts = {n for s in run.series for n in s.vms}
        vms = max(counts)
        bare = run.series[1].cpu_ms

        def rows(series: list[Series]) -> list[tuple[str, ...]]:
            return [
                (
                    s.name,
                    f"{s.cpu_ms:.2f}",
                    f"{s.cpu_median_ms:.2f}",
                    f"{s.cpu_ms * 1e3 / vms:.1f}",
                    f"{s.wall_ms:.0f}",
                    f"{s.cpu_ms / bare:.2f}x",
                )
                for s in series
            ]

        print(
            f"  VMs per poll: {vms} (defined on {HOST}: {total}; with a CPU rate after the run: "
            f"{run.with_rates})"
        )
        if len(counts) != 1:
            print(f"  note: the VM count varied between calls: {sorted(counts)}")
        if run.failures:
            settings = SessionSettings(interval=2.0)
            deadline = getattr(settings, "poll_timeout", settings.call_timeout)
            print(
                f"  {len(run.failures)} call(s) failed, their rounds dropped (a poll's deadline is "
                f"{deadline:.0f} s at interval 2 s): " + "; ".join(sorted(set(run.failures)))
            )
        print(
            f"  CPU of this whole process per call (virsh: plus its own), {ticks} rounds after {warmup} "
            "warm-up, the kinds interleaved in each round"
        )
        headers = ("per call", "CPU ms mean", "CPU ms median", "CPU µs/VM", "wall ms", "CPU vs bare")
        print(table(headers, rows(run.series)))
        ratio = run.series[0].cpu_ms / bare
        print(
            f"  ours/bare  = {ratio:.2f}x   target <= {TARGET_REAL_RATIO}x: "
            f"{verdict(ratio <= TARGET_REAL_RATIO)}"
        )
        print(f"  virsh/bare = {run.series[2].cpu_ms / bare:.2f}x")
        print(
            "  where ours goes: its parts, each timed on its own in the same rounds "
            "(they need not add up to ours exactly):"
        )
        print(table(headers, rows(run.breakdown)))
        tick_cpu = statistics.fmean(run.series[0].cpu)
        side = run.side
        print(
            f"  side work, off the tick (not in the rows above): after connecting, {len(side.cpu)} polls "
            f"fetched {sum(side.details)} VMs' details and looked up {sum(side.addresses)} VMs' addresses: "
            f"~{side.extra(tick_cpu) * 1e3:.0f} ms CPU on top of the polls "
            f"(~{side.extra(tick_cpu) * 1e6 / max(sum(side.details), 1):.0f} µs per VM)"
        )
        per_address = side.per_address(tick_cpu)
        if per_address is not None:
            steady = vms * 2.0 / IP_KEEP * per_address
            print(
                f"  one VM's address look-up alone: ~{per_address * 1e6:.0f} µs CPU; each running VM's is "
                f"redone every {IP_KEEP:.0f} s once its addresses are known ({IP_REFRESH:.0f} s until then): "
                f"~{steady * 1e3:.1f} ms CPU per 2-s tick at {vms} VMs (held off during the measured rounds)"
            )
    finally:
        if started_names:
            try:
                with lab.connect(HOST) as conn:
                    remove_idle_guests(conn, started_names)
            except Exception as exc:  # the lab goes down next anyway
                print(f"  could not remove the idle guests one by one: {exc}")
        lab.down()
        print(f"  lab {LAB_NAME!r} down")


# ---------------------------------------------------------------------------------------------- 2. scale

_COUNTER = re.compile(
    r"cpu\.(?:time|user|system)|vcpu\.\d+\.time|block\.\d+\.(?:rd|wr)\.(?:bytes|reqs)"
    r"|net\.\d+\.(?:rx|tx)\.(?:bytes|pkts)"
)


@dataclass
class FakeVm:
    """One replicated VM: its record with the counters at their start, and how much each moves a tick."""

    uuid: str
    name: str
    static: dict[str, Any]
    counters: list[tuple[str, int, int]]
    """(key, value at tick 0, increase per tick)"""


@dataclass
class Recorded:
    templates: list[tuple[str, dict[str, Any]]]
    info: list[Any]
    cpu_stats: dict[str, int]
    mem_stats: dict[str, int]


def load_recorded(path: Path = DATA) -> Recorded:
    data = json.loads(path.read_text())
    poll = next(p for p in data["polls"] if p["label"] == TEMPLATE_POLL)
    return Recorded(
        templates=[(d["name"], d["stats"]) for d in poll["domains"]],
        info=poll["info"],
        cpu_stats=poll["cpu_stats"],
        mem_stats=poll["mem_stats"],
    )


def make_vms(rec: Recorded, n: int, seed: int = 1) -> list[FakeVm]:
    """n VMs from the recorded ones in turn, with their own name, UUID, tap and disk path, and a load of
    their own: each cumulative counter moves by a per-VM amount every tick."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        tmpl_name, tmpl = rec.templates[i % len(rec.templates)]
        name = f"{tmpl_name}-{i:05d}"
        stats = dict(tmpl)
        for key, value in tmpl.items():
            if key.startswith("net.") and key.endswith(".name"):
                stats[key] = f"vnet{i}"
            elif key.startswith("block.") and key.endswith(".path"):
                stats[key] = str(value).replace(tmpl_name, name)
        vcpus = int(stats.get("vcpu.current", 1))
        cpu_ns = int(rng.uniform(0.02, 0.9) * vcpus * 1e9 * TICK_SECONDS)  # 2-90 % of its vCPUs
        rd_bytes = rng.randrange(0, 4 << 20) * int(TICK_SECONDS)
        wr_bytes = rng.randrange(0, 2 << 20) * int(TICK_SECONDS)
        rx_bytes = rng.randrange(200, 1 << 20) * int(TICK_SECONDS)
        tx_bytes = rng.randrange(200, 1 << 20) * int(TICK_SECONDS)
        step = {
            "cpu.time": cpu_ns,
            "cpu.user": cpu_ns * 9 // 10,
            "cpu.system": cpu_ns // 10,
            "vcpu.time": cpu_ns // vcpus,
            "rd.bytes": rd_bytes,
            "rd.reqs": rd_bytes // 4096,
            "wr.bytes": wr_bytes,
            "wr.reqs": wr_bytes // 4096,
            "rx.bytes": rx_bytes,
            "rx.pkts": rx_bytes // 800 + 1,
            "tx.bytes": tx_bytes,
            "tx.pkts": tx_bytes // 800 + 1,
        }
        counters = [(key, int(stats[key]), step[_step_kind(key)]) for key in stats if _COUNTER.fullmatch(key)]
        out.append(FakeVm(uuid=_uuid(rng), name=name, static=stats, counters=counters))
    return out


def _step_kind(key: str) -> str:
    """Which step a counter moves by: cpu.time, vcpu.time (any vCPU), rd.bytes (any disk), tx.pkts ..."""
    if key.startswith("cpu."):
        return key
    if key.startswith("vcpu."):
        return "vcpu.time"
    return ".".join(key.split(".")[-2:])


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def records_at(vms: Sequence[FakeVm], tick: int) -> list[tuple[str, str, dict[str, Any]]]:
    """What one bulk stats call returns at `tick`: a fresh dict per VM, counters moved on."""
    out = []
    for vm in vms:
        d = dict(vm.static)
        for key, base, inc in vm.counters:
            d[key] = base + inc * tick
        out.append((vm.uuid, vm.name, d))
    return out


def node_at(rec: Recorded, tick: int, t: float) -> NodeSample:
    cpus = int(rec.info[2])
    busy, idle = int(0.3 * cpus * 1e9 * TICK_SECONDS), int(0.7 * cpus * 1e9 * TICK_SECONDS)
    cpu = dict(rec.cpu_stats)
    cpu["user"] += busy * tick
    cpu["idle"] += idle * tick
    return parse_node(rec.info, cpu, rec.mem_stats, t)


class SimClock:
    """Wall time for the Fleet in the scale and memory parts: history timestamps 2 s (or 1 s) apart, as
    at a real interval (the ticks here run back to back, which would put several in one second's slot)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@contextmanager
def sim_clock(now: float) -> Iterator[SimClock]:
    """A SimClock, also standing in for the `time` module of vimtui.core.fleet.fleet (for a Fleet that reads
    time.time() itself rather than taking a clock)."""
    clock = SimClock(now)
    with mock.patch.object(fleet_module, "time", clock):
        yield clock


def floor_pass(records: Sequence[tuple[str, str, dict[str, Any]]]) -> object:
    """The least any parser must do: touch every key and value of every record once."""
    sink: object = None
    for record in records:
        for _key, value in record[2].items():
            sink = value
    return sink


class HandPath:
    """parse + rates + history, written out as the brief describes it (no VmState, no session)."""

    def __init__(self, host_cpus: int) -> None:
        self.history = History(metrics=metrics.history_names("vm"))
        self.prev: dict[str, Any] = {}
        self.host_cpus = host_cpus

    def tick(self, records: Sequence[tuple[str, str, dict[str, Any]]], t: float, wall: float) -> None:
        prev, new, record, cpus = self.prev, {}, self.history.record, self.host_cpus
        for uuid, name, stats in records:
            s = parse_domain_stats(uuid, name, stats, t)
            r = vm_rates(prev.get(uuid), s, cpus)
            new[uuid] = s
            record(
                f"scale/{uuid}",
                wall,
                {
                    "cpu": r.cpu_pct,
                    "mem": r.mem_pct,
                    "disk_rd": r.disk_rd_bps,
                    "disk_wr": r.disk_wr_bps,
                    "net_rx": r.net_rx_bps,
                    "net_tx": r.net_tx_bps,
                },
            )
        self.prev = new


class GcWatch:
    """CPU seconds spent in the cyclic garbage collector so far (a gc.callbacks hook)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._began = 0.0

    def __call__(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.process_time()
        else:
            self.total += time.process_time() - self._began


GC = GcWatch()


@dataclass
class Meter:
    """Wall (perf_counter) and CPU (process_time) seconds of the spans measured, and the GC's CPU share."""

    wall: float = 0.0
    cpu: float = 0.0
    gc: float = 0.0

    @staticmethod
    def now() -> tuple[float, float, float]:
        return time.perf_counter(), time.process_time(), GC.total

    def add(self, began: tuple[float, float, float], ended: tuple[float, float, float]) -> None:
        self.wall += ended[0] - began[0]
        self.cpu += ended[1] - began[1]
        self.gc += ended[2] - began[2]

    def __add__(self, other: Meter) -> Meter:
        return Meter(self.wall + other.wall, self.cpu + other.cpu, self.gc + other.gc)

    def per(self, n: float) -> Meter:
        return Meter(self.wall / n, self.cpu / n, self.gc / n)


class SessionPath:
    """Our code as a tick runs it: parse (on the lane, in real life), HostSession._apply (VmState, rates),
    Fleet._record_history, Fleet.publish. A Fleet of one `direct` host that is never started."""

    STAGES = ("parse", "apply", "history", "publish")

    def __init__(self, runtime_dir: Path, clock: SimClock) -> None:
        spec = HostSpec(name="scale", transport="direct", uri="test:///default")
        settings = SessionSettings(interval=TICK_SECONDS)
        if "clock" in inspect.signature(Fleet).parameters:
            self.fleet = Fleet([spec], settings, runtime_dir, clock=clock.time)
        else:
            self.fleet = Fleet([spec], settings, runtime_dir)
        self.session = self.fleet.sessions["scale"]
        self.meters = {stage: Meter() for stage in self.STAGES}

    def tick(
        self,
        records: Sequence[tuple[str, str, dict[str, Any]]],
        node: NodeSample,
        t: float,
        clock: SimClock,
        wall: float,
        *,
        keep: bool,
    ) -> None:
        now = Meter.now
        m0 = now()
        samples = [parse_domain_stats(uuid, name, stats, t) for uuid, name, stats in records]
        m1 = now()
        self.session._apply_samples(node, samples, None, time.monotonic())
        m2 = now()
        clock.now = wall
        self.fleet._record_history(self.session)
        m3 = now()
        self.fleet.publish()
        m4 = now()
        if keep:
            for stage, began, ended in zip(self.STAGES, (m0, m1, m2, m3), (m1, m2, m3, m4), strict=True):
                self.meters[stage].add(began, ended)


@dataclass
class ScaleResult:
    """Costs per VM per tick, in seconds."""

    n: int
    floor: Meter
    hand: Meter
    stages: dict[str, Meter]

    @property
    def apply_history(self) -> Meter:
        return self.stages["parse"] + self.stages["apply"] + self.stages["history"]

    @property
    def with_publish(self) -> Meter:
        return self.apply_history + self.stages["publish"]


def scale_one(rec: Recorded, n: int, profile: cProfile.Profile | None = None) -> ScaleResult:
    vms = make_vms(rec, n)
    hand = HandPath(int(rec.info[2]))
    floor, handm = Meter(), Meter()
    t0, wall0 = 1000.0, 1.8e9
    with tempfile.TemporaryDirectory(prefix="vimtui-bench-") as tmp, sim_clock(wall0) as clock:
        ours = SessionPath(Path(tmp), clock)
        for tick in range(SCALE_WARMUP + SCALE_TICKS):
            keep = tick >= SCALE_WARMUP
            t, wall = t0 + tick * TICK_SECONDS, wall0 + tick * TICK_SECONDS
            records = records_at(vms, tick)  # not timed: libvirt hands these over
            node = node_at(rec, tick, t)
            a = Meter.now()
            floor_pass(records)
            b = Meter.now()
            hand.tick(records, t, wall)
            c = Meter.now()
            if profile is not None and keep:
                profile.enable()
            ours.tick(records, node, t, clock, wall, keep=keep)
            if profile is not None:
                profile.disable()
            if keep:
                floor.add(a, b)
                handm.add(b, c)
        with_rates = sum(1 for v in ours.session.vms.values() if v.rates and v.rates.cpu_pct is not None)
        keys = len(ours.fleet.vm_history)
        if with_rates != n or keys != n:
            raise RuntimeError(f"scale {n}: {with_rates} VMs with a CPU rate, {keys} history keys")
    per = SCALE_TICKS * n
    return ScaleResult(
        n=n,
        floor=floor.per(per),
        hand=handm.per(per),
        stages={k: m.per(per) for k, m in ours.meters.items()},
    )


def part_scale(profile: bool) -> None:
    rec = load_recorded()
    heading("2. scale: recorded lab stats replicated to many VMs, through our code (no libvirt, no I/O)")
    keys = ", ".join(f"{name} ({len(stats)} keys)" for name, stats in rec.templates)
    print(f"  templates from {DATA.relative_to(ROOT)} poll {TEMPLATE_POLL!r}: {keys}, in turn")
    print(
        f"  {SCALE_TICKS} ticks timed after {SCALE_WARMUP} warm-up, {TICK_SECONDS:.0f} s apart (simulated); "
        "wall = perf_counter, CPU = process_time"
    )
    tune_gc()  # as the CLI and the screen do at start
    print(f"  gc: frozen after start, thresholds {gc.get_threshold()} (vimtui.core.fleet.startup.tune_gc)")
    if GC not in gc.callbacks:
        gc.callbacks.append(GC)
    results = []
    for n in SCALE_SIZES:
        results.append(scale_one(rec, n))
        gc.collect()
    paths: tuple[tuple[str, Callable[[ScaleResult], Meter]], ...] = (
        ("parse + rates + history", lambda r: r.hand),
        ("parse + _apply + history", lambda r: r.apply_history),
        ("parse + _apply + history + publish", lambda r: r.with_publish),
    )
    rows = []
    for r in results:
        for label, get in (("floor: touch every key and value", lambda r: r.floor), *paths):
            m = get(r)
            us = m.wall * 1e6
            rows.append(
                (
                    f"{r.n:,}",
                    label,
                    f"{us:.2f}",
                    f"{m.cpu * 1e6:.2f}",
                    f"{m.wall * r.n * 1e3:.1f}",
                    f"{m.wall / r.floor.wall:.1f}x",
                    "" if m is r.floor else verdict(us < TARGET_MS_PER_1K),
                )
            )
    print(
        table(
            (
                "VMs",
                "path",
                "wall µs/VM = ms/1k VMs",
                "CPU µs/VM",
                "wall ms/tick",
                "vs floor",
                f"< {TARGET_MS_PER_1K:.0f} ms/1k",
            ),
            rows,
            align="rlrrrrr",
        )
    )
    print(
        "  where the time goes in our path, CPU µs per VM per tick (gc: the collector's share of the total):"
    )
    print(
        table(
            ("VMs", *SessionPath.STAGES, "total", "gc"),
            [
                (
                    f"{r.n:,}",
                    *(f"{r.stages[s].cpu * 1e6:.2f}" for s in SessionPath.STAGES),
                    f"{r.with_publish.cpu * 1e6:.2f}",
                    f"{r.with_publish.gc * 1e6:.2f}",
                )
                for r in results
            ],
            align="r" * 7,
        )
    )
    print(
        f"  flat across {' / '.join(f'{n:,}' for n in SCALE_SIZES)} VMs (largest/smallest <= {FLAT_SPREAD}x):"
    )
    for label, get in paths:
        walls = [get(r).wall * 1e6 for r in results]
        cpus = [get(r).cpu * 1e6 for r in results]
        spread_wall, spread_cpu = max(walls) / min(walls), max(cpus) / min(cpus)
        print(
            f"    {label:<36} wall {' / '.join(f'{f:.1f}' for f in walls)} µs/VM "
            f"(spread {spread_wall:.2f}x), "
            f"CPU {' / '.join(f'{f:.1f}' for f in cpus)} µs/VM (spread {spread_cpu:.2f}x): "
            f"{'flat' if spread_cpu <= FLAT_SPREAD else 'NOT flat'} by CPU"
        )
    worst = max(results, key=lambda r: r.apply_history.wall)
    worst_us = worst.apply_history.wall * 1e6
    print(
        f"  target: parse + _apply + history < {TARGET_MS_PER_1K:.0f} ms per 1,000 VMs at every size: "
        f"worst {worst_us:.1f} ms wall at {worst.n:,} VMs: {verdict(worst_us < TARGET_MS_PER_1K)} "
        f"({worst_us / TARGET_MS_PER_1K:.1f}x the target)"
    )
    worst_cpu = max(r.apply_history.cpu for r in results) * 1e6
    print(
        f"          by CPU time instead (immune to a busy machine): worst {worst_cpu:.1f} ms: "
        f"{verdict(worst_cpu < TARGET_MS_PER_1K)} ({worst_cpu / TARGET_MS_PER_1K:.1f}x the target)"
    )
    if profile:
        prof = cProfile.Profile()
        scale_one(rec, SCALE_SIZES[-1], prof)
        print(
            f"  cProfile of our path (parse + _apply + history + publish), "
            f"{SCALE_SIZES[-1]:,} VMs, by own time:"
        )
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(14)


# ---------------------------------------------------------------------------------------------- 3. memory


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def memory_child() -> None:
    """In a fresh process: 10,000 VMs through our path, then 15 full minutes of 1-second history each.
    Progress on stderr, the figures as one JSON line on stdout."""
    rec = load_recorded()
    rss_start = _rss()
    vms = make_vms(rec, MEMORY_VMS)
    t0, wall0 = 1000.0, 1.8e9
    with tempfile.TemporaryDirectory(prefix="vimtui-bench-") as tmp, sim_clock(wall0) as clock:
        ours = SessionPath(Path(tmp), clock)
        fleet, session = ours.fleet, ours.session
        for tick in range(2):  # two polls: samples, then VmState with rates (no history yet)
            t = t0 + tick * TICK_SECONDS
            samples = [parse_domain_stats(u, name, st, t) for u, name, st in records_at(vms, tick)]
            session._apply_samples(node_at(rec, tick, t), samples, None, time.monotonic())
            del samples
        fleet.publish()
        del vms
        rss_state = _rss()
        began = time.monotonic()
        for s in range(HISTORY_SECONDS):
            clock.now = wall0 + 10 + s
            fleet._record_history(session)
            if (s + 1) % 100 == 0 or s + 1 == HISTORY_SECONDS:
                print(
                    f"  history: {s + 1}/{HISTORY_SECONDS} s recorded for {MEMORY_VMS:,} keys "
                    f"({time.monotonic() - began:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        rss_end = _rss()
        hist = fleet.vm_history
        latest = sum(1 for k in hist.keys() if hist.latest(k, "cpu") is not None)
        span = hist.series(next(iter(hist.keys())), "cpu", hist.fine_span, clock.now)[0]
        result = {
            "vms": len(session.vms),
            "keys": len(hist),
            "keys_with_latest": latest,
            "fine_points": len(span),
            "fine_slots": hist.fine_slots,
            "coarse_slots": hist.coarse_slots,
            "metrics": len(hist.metrics),
            "rss_start": rss_start,
            "rss_state": rss_state,
            "rss_end": rss_end,
            "history_bytes": hist.memory_bytes(),
            "fill_seconds": time.monotonic() - began,
        }
    print(json.dumps(result), flush=True)


def part_memory() -> None:
    heading(f"3. memory: a fresh process with {MEMORY_VMS:,} VMs' state and 15 min of 1-s history each")
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--memory-child"],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    per_key = r["history_bytes"] / r["keys"]
    rows = [
        ("at start (interpreter, vimtui, recorded data)", mib(r["rss_start"]), ""),
        (
            f"+ {r['vms']:,} VMs: samples and VmState with rates",
            mib(r["rss_state"]),
            mib(r["rss_state"] - r["rss_start"]),
        ),
        (
            f"+ history, {HISTORY_SECONDS} s x {r['keys']:,} keys",
            mib(r["rss_end"]),
            mib(r["rss_end"] - r["rss_state"]),
        ),
    ]
    print(table(("RSS", "total", "added"), rows))
    print(
        f"  History.memory_bytes(): {mib(r['history_bytes'])} = {r['keys']:,} keys x {per_key:,.0f} B "
        f"({r['metrics']} metrics, rings as allocated: see History.memory_bytes)"
    )
    print(
        f"  check: {r['keys_with_latest']:,} keys with a latest value, {r['fine_points']} points in the "
        f"15-minute window of one key; filled in {r['fill_seconds']:.0f} s"
    )
    total_mb = r["rss_end"] / 1e6
    print(
        f"  target: RSS < {TARGET_RSS_MB:.0f} MB: {total_mb:,.0f} MB: {verdict(total_mb < TARGET_RSS_MB)} "
        f"({total_mb / TARGET_RSS_MB:.1f}x the target; "
        f"the history alone is {r['history_bytes'] / 1e6:,.0f} MB)"
    )


# ---------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description="What one poll costs vimtui, against the floor (see the module doc)."
    )
    p.add_argument("--guests", type=int, default=100, help="idle guests to add to the lab host (100)")
    p.add_argument("--ticks", type=int, default=20, help="measured ticks per kind in the real part (20)")
    p.add_argument("--skip-real", action="store_true", help="skip part 1 (the lab)")
    p.add_argument("--skip-scale", action="store_true", help="skip part 2")
    p.add_argument("--skip-memory", action="store_true", help="skip part 3")
    p.add_argument("--profile", action="store_true", help="also cProfile our path in part 2")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        memory_child()
        return
    print(f"vimtui poll benchmark: {psutil.cpu_count()} CPUs, {machine_load()}")
    if not args.skip_real:
        part_real(args.guests, args.ticks)
    if not args.skip_scale:
        part_scale(args.profile)
    if not args.skip_memory:
        part_memory()
    print(f"\ndone: {machine_load()}")


def machine_load() -> str:
    """Load averages, and the QEMU processes running (other labs' guests compete for the same CPUs)."""
    one, five, fifteen = os.getloadavg()
    qemus = sum(1 for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("qemu-system"))
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}, {qemus} QEMU processes running"


if __name__ == "__main__":
    main()
