"""Samples from libvirt's bulk stats, parsed in one pass, and the rates between two of them.

The poller calls `conn.getAllDomainStats(DOMAIN_STATS, NOWAIT)` once per tick per host, plus the node's
`getInfo()`, `getCPUStats(-1)` and `getMemoryStats(-1)`; everything here is pure (no libvirt, no Textual,
no clock) so it runs on recorded data in tests.

Rules for rates: a rate needs a previous sample of the same running VM, a positive interval and counters
that did not go backwards. Anything else is None ("unknown"), never a negative or a spike, and nothing is
invented: memory use comes from the guest's balloon driver or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# libvirt.VIR_DOMAIN_STATS_{STATE,CPU_TOTAL,BALLOON,VCPU,INTERFACE,BLOCK}, OR-ed: what the parser reads.
DOMAIN_STATS = 1 | 2 | 4 | 8 | 16 | 32
# libvirt.VIR_DOMAIN_RUNNING
RUNNING = 1

_NS = 1e9


# ---------------------------------------------------------------------------------------------- samples


@dataclass(frozen=True, slots=True)
class DiskSample:
    """One block device's counters (libvirt's block.N.*). A counter libvirt did not report is None."""

    name: str
    path: str | None
    rd_bytes: int | None
    wr_bytes: int | None
    rd_reqs: int | None
    wr_reqs: int | None
    capacity: int | None
    allocation: int | None


@dataclass(frozen=True, slots=True)
class NicSample:
    """One interface's counters (libvirt's net.N.*), as seen from the host side of the tap: rx is what the
    host received from the guest."""

    name: str
    rx_bytes: int | None
    tx_bytes: int | None
    rx_pkts: int | None
    tx_pkts: int | None


@dataclass(frozen=True, slots=True)
class DomainSample:
    """One VM at one poll. Memory in KiB, CPU time in ns, `t` the poll's monotonic time in seconds."""

    uuid: str
    name: str
    t: float
    state: int
    reason: int
    cpu_time_ns: int | None
    vcpus: int | None
    vcpus_max: int | None
    mem_max_kib: int | None
    mem_current_kib: int | None
    mem_available_kib: int | None
    mem_unused_kib: int | None
    mem_usable_kib: int | None
    rss_kib: int | None
    disks: tuple[DiskSample, ...] = ()
    nics: tuple[NicSample, ...] = ()

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def disk_rd_bytes(self) -> int:
        return sum(d.rd_bytes or 0 for d in self.disks)

    @property
    def disk_wr_bytes(self) -> int:
        return sum(d.wr_bytes or 0 for d in self.disks)

    @property
    def disk_rd_reqs(self) -> int:
        return sum(d.rd_reqs or 0 for d in self.disks)

    @property
    def disk_wr_reqs(self) -> int:
        return sum(d.wr_reqs or 0 for d in self.disks)

    @property
    def net_rx_bytes(self) -> int:
        return sum(n.rx_bytes or 0 for n in self.nics)

    @property
    def net_tx_bytes(self) -> int:
        return sum(n.tx_bytes or 0 for n in self.nics)


def parse_domain_stats(uuid: str, name: str, stats: Mapping[str, Any], t: float) -> DomainSample:
    """Turn one getAllDomainStats record into a DomainSample in a single pass over its keys.

    Per-device keys ("block.0.rd.bytes") are grouped by index on the way; the devices are then built in
    index order. With VIR_CONNECT_GET_ALL_DOMAINS_STATS_BACKING a disk's backing images repeat its name:
    the first entry (the top image) is kept.
    """
    state = reason = 0
    cpu_time: int | None = None
    vcpus: int | None = None
    vcpus_max: int | None = None
    vcpu_time: int | None = None  # sum of vcpu.N.time: CPU time where cpu.time is missing (no cgroup)
    balloon: dict[str, Any] = {}
    blocks: dict[str, dict[str, Any]] = {}
    nets: dict[str, dict[str, Any]] = {}
    for key, value in stats.items():
        group, _, rest = key.partition(".")
        if group == "block" or group == "net":
            index, _, field = rest.partition(".")
            if field:  # not "block.count"
                devices = blocks if group == "block" else nets
                fields = devices.get(index)
                if fields is None:
                    fields = devices[index] = {}
                fields[field] = value
        elif group == "balloon":
            balloon[rest] = value
        elif group == "cpu":
            if rest == "time":
                cpu_time = value
        elif group == "vcpu":
            if rest == "current":
                vcpus = value
            elif rest == "maximum":
                vcpus_max = value
            elif rest.endswith(".time"):
                vcpu_time = (vcpu_time or 0) + value
        elif group == "state":
            if rest == "state":
                state = value
            elif rest == "reason":
                reason = value

    disks: list[DiskSample] = []
    seen: set[str] = set()
    for index in sorted(blocks, key=_index_order):
        f = blocks[index]
        dev = f.get("name")
        if dev is None or dev in seen:
            continue
        seen.add(dev)
        disks.append(
            DiskSample(
                name=dev,
                path=f.get("path"),
                rd_bytes=f.get("rd.bytes"),
                wr_bytes=f.get("wr.bytes"),
                rd_reqs=f.get("rd.reqs"),
                wr_reqs=f.get("wr.reqs"),
                capacity=f.get("capacity"),
                allocation=f.get("allocation"),
            )
        )
    nics = tuple(
        NicSample(
            name=f.get("name") or f"net{index}",
            rx_bytes=f.get("rx.bytes"),
            tx_bytes=f.get("tx.bytes"),
            rx_pkts=f.get("rx.pkts"),
            tx_pkts=f.get("tx.pkts"),
        )
        for index, f in sorted(nets.items(), key=lambda item: _index_order(item[0]))
    )
    return DomainSample(
        uuid=uuid,
        name=name,
        t=t,
        state=state,
        reason=reason,
        cpu_time_ns=cpu_time if cpu_time is not None else vcpu_time,
        vcpus=vcpus,
        vcpus_max=vcpus_max,
        mem_max_kib=balloon.get("maximum"),
        mem_current_kib=balloon.get("current"),
        mem_available_kib=balloon.get("available"),
        mem_unused_kib=balloon.get("unused"),
        mem_usable_kib=balloon.get("usable"),
        rss_kib=balloon.get("rss"),
        disks=tuple(disks),
        nics=nics,
    )


def _index_order(index: str) -> tuple[int, str]:
    return (int(index), "") if index.isdigit() else (1 << 30, index)


@dataclass(frozen=True, slots=True)
class NodeSample:
    """A host at one poll: static facts from getInfo, memory in KiB, CPU counters in ns."""

    t: float
    cpus: int
    cpu_mhz: int
    cpu_model: str
    mem_total_kib: int | None
    mem_free_kib: int | None
    mem_buffers_kib: int | None
    mem_cached_kib: int | None
    cpu_kernel_ns: int | None
    cpu_user_ns: int | None
    cpu_idle_ns: int | None
    cpu_iowait_ns: int | None


def parse_node(
    info: Sequence[Any], cpu_stats: Mapping[str, int], mem_stats: Mapping[str, int], t: float
) -> NodeSample:
    """From `conn.getInfo()` ([model, memory MiB, cpus, MHz, nodes, sockets, cores, threads]),
    `conn.getCPUStats(-1)` and `conn.getMemoryStats(-1)`. Total memory falls back to getInfo's MiB."""
    total = mem_stats.get("total")
    if total is None and len(info) > 1 and info[1]:
        total = int(info[1]) * 1024
    return NodeSample(
        t=t,
        cpus=int(info[2]),
        cpu_mhz=int(info[3]),
        cpu_model=str(info[0]),
        mem_total_kib=total,
        mem_free_kib=mem_stats.get("free"),
        mem_buffers_kib=mem_stats.get("buffers"),
        mem_cached_kib=mem_stats.get("cached"),
        cpu_kernel_ns=cpu_stats.get("kernel"),
        cpu_user_ns=cpu_stats.get("user"),
        cpu_idle_ns=cpu_stats.get("idle"),
        cpu_iowait_ns=cpu_stats.get("iowait"),
    )


# ---------------------------------------------------------------------------------------------- rates


@dataclass(frozen=True, slots=True)
class DiskRates:
    """One disk's rates over the last interval, by device name (bytes/s and requests/s)."""

    name: str
    rd_bps: float | None
    wr_bps: float | None
    rd_iops: float | None
    wr_iops: float | None


@dataclass(frozen=True, slots=True)
class NicRates:
    """One interface's rates over the last interval (bytes/s and packets/s, host's view)."""

    name: str
    rx_bps: float | None
    tx_bps: float | None
    rx_pps: float | None
    tx_pps: float | None


@dataclass(frozen=True, slots=True)
class VmRates:
    """What a VM did between two polls, and its memory use now. None means unknown, never zero."""

    cpu_pct: float | None
    """CPU time over the interval as % of the VM's vCPUs (vcpu.current), capped at 100."""
    cpu_host_pct: float | None
    """The same CPU time as % of all the host's CPUs, capped at 100."""
    mem_used_kib: int | None
    """From the guest's balloon driver: available - usable, else available - unused; else unknown."""
    mem_pct: float | None
    """mem_used_kib as % of balloon.current (or balloon.maximum when current is missing)."""
    disk_rd_bps: float | None
    disk_wr_bps: float | None
    disk_rd_iops: float | None
    disk_wr_iops: float | None
    net_rx_bps: float | None
    net_tx_bps: float | None
    disks: tuple[DiskRates, ...] = ()
    nics: tuple[NicRates, ...] = ()

    def disk(self, name: str) -> DiskRates | None:
        return next((d for d in self.disks if d.name == name), None)

    def nic(self, name: str) -> NicRates | None:
        return next((n for n in self.nics if n.name == name), None)


def _rate(prev: int | None, cur: int | None, dt: float) -> float | None:
    """A counter's rate; None when either end is missing or the counter went backwards (a reset)."""
    d = _delta(prev, cur)
    return None if d is None else d / dt


def _total(rates: list[float | None], complete: bool) -> float | None:
    """The sum of per-device rates, known only when every device's rate is (and no device came or went)."""
    if not complete:
        return None
    total = 0.0
    for r in rates:
        if r is None:
            return None
        total += r
    return total


def mem_used_kib(s: DomainSample) -> int | None:
    """Memory the guest uses, from its balloon driver's report; None when it reports nothing usable."""
    avail = s.mem_available_kib
    if avail is None:
        return None
    free = s.mem_usable_kib if s.mem_usable_kib is not None else s.mem_unused_kib
    if free is None or free > avail:
        return None
    return avail - free


def vm_rates(prev: DomainSample | None, cur: DomainSample, host_cpus: int) -> VmRates:
    """Rates between two samples of one VM, and its memory use in `cur`.

    All rates are None without `prev`, for another VM, when the interval is not positive, or unless the
    VM was running at both polls. A CPU time that went backwards means a new QEMU process (destroy and
    start, migration in): every rate of that interval is then None, since the other counters restarted
    too. Otherwise each counter that went backwards, and each device in only one of the two samples,
    gives None for its own rate and for the VM's total of that kind.
    """
    used = mem_used_kib(cur)
    base = cur.mem_current_kib or cur.mem_max_kib
    mem_pct = used * 100.0 / base if used is not None and base else None

    dt = cur.t - prev.t if prev is not None else 0.0
    if (
        prev is None
        or prev.uuid != cur.uuid
        or dt <= 0
        or not (prev.running and cur.running)
        or (
            prev.cpu_time_ns is not None
            and cur.cpu_time_ns is not None
            and cur.cpu_time_ns < prev.cpu_time_ns
        )
    ):
        return VmRates(None, None, used, mem_pct, None, None, None, None, None, None)

    cpu_pct = cpu_host_pct = None
    cpu_ns = _rate(prev.cpu_time_ns, cur.cpu_time_ns, dt)
    if cpu_ns is not None:
        if cur.vcpus:
            cpu_pct = min(100.0, cpu_ns * 100.0 / (_NS * cur.vcpus))
        if host_cpus > 0:
            cpu_host_pct = min(100.0, cpu_ns * 100.0 / (_NS * host_cpus))

    prev_disks = {d.name: d for d in prev.disks}
    disks: list[DiskRates] = []
    for d in cur.disks:
        p = prev_disks.get(d.name)
        if p is None:
            disks.append(DiskRates(d.name, None, None, None, None))
            continue
        disks.append(
            DiskRates(
                d.name,
                _rate(p.rd_bytes, d.rd_bytes, dt),
                _rate(p.wr_bytes, d.wr_bytes, dt),
                _rate(p.rd_reqs, d.rd_reqs, dt),
                _rate(p.wr_reqs, d.wr_reqs, dt),
            )
        )
    prev_nics = {n.name: n for n in prev.nics}
    nics: list[NicRates] = []
    for n in cur.nics:
        q = prev_nics.get(n.name)
        if q is None:
            nics.append(NicRates(n.name, None, None, None, None))
            continue
        nics.append(
            NicRates(
                n.name,
                _rate(q.rx_bytes, n.rx_bytes, dt),
                _rate(q.tx_bytes, n.tx_bytes, dt),
                _rate(q.rx_pkts, n.rx_pkts, dt),
                _rate(q.tx_pkts, n.tx_pkts, dt),
            )
        )
    same_disks = len(prev_disks) == len(cur.disks) and all(d.name in prev_disks for d in cur.disks)
    same_nics = len(prev_nics) == len(cur.nics) and all(n.name in prev_nics for n in cur.nics)
    return VmRates(
        cpu_pct=cpu_pct,
        cpu_host_pct=cpu_host_pct,
        mem_used_kib=used,
        mem_pct=mem_pct,
        disk_rd_bps=_total([d.rd_bps for d in disks], same_disks),
        disk_wr_bps=_total([d.wr_bps for d in disks], same_disks),
        disk_rd_iops=_total([d.rd_iops for d in disks], same_disks),
        disk_wr_iops=_total([d.wr_iops for d in disks], same_disks),
        net_rx_bps=_total([n.rx_bps for n in nics], same_nics),
        net_tx_bps=_total([n.tx_bps for n in nics], same_nics),
        disks=tuple(disks),
        nics=tuple(nics),
    )


@dataclass(frozen=True, slots=True)
class HostRates:
    """A host's CPU use between two polls and its memory use now."""

    cpu_pct: float | None
    """(kernel + user) / (kernel + user + idle + iowait), over the interval, in %."""
    mem_used_kib: int | None
    """total - free - buffers - cached."""
    mem_pct: float | None


def host_rates(prev: NodeSample | None, cur: NodeSample) -> HostRates:
    """Host CPU % from the node's CPU counters (None without `prev`, with a counter missing or reset, or
    with no time elapsed), memory from `cur` alone."""
    cpu_pct = None
    if prev is not None:
        deltas = [
            _delta(prev.cpu_kernel_ns, cur.cpu_kernel_ns),
            _delta(prev.cpu_user_ns, cur.cpu_user_ns),
            _delta(prev.cpu_idle_ns, cur.cpu_idle_ns),
            _delta(prev.cpu_iowait_ns, cur.cpu_iowait_ns),
        ]
        kernel, user, idle, iowait = deltas
        if kernel is not None and user is not None and idle is not None and iowait is not None:
            total = kernel + user + idle + iowait
            if total > 0:
                cpu_pct = (kernel + user) * 100.0 / total

    used = None
    total_kib, free, buffers, cached = (
        cur.mem_total_kib,
        cur.mem_free_kib,
        cur.mem_buffers_kib,
        cur.mem_cached_kib,
    )
    if total_kib is not None and free is not None and buffers is not None and cached is not None:
        used = total_kib - free - buffers - cached
    mem_pct = used * 100.0 / total_kib if used is not None and total_kib else None
    return HostRates(cpu_pct=cpu_pct, mem_used_kib=used, mem_pct=mem_pct)


def _delta(prev: int | None, cur: int | None) -> int | None:
    if prev is None or cur is None or cur < prev:
        return None
    return cur - prev
