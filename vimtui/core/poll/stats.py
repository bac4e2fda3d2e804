"""Samples from libvirt's bulk stats, parsed in one pass, and the rates between two of them.

The poller (poll/session.py) calls `conn.getAllDomainStats(STATS, NOWAIT)` once per tick per host, plus
the node's `getInfo()`, `getCPUStats(-1)` and `getMemoryStats(-1)`; everything here is pure (no libvirt, no
Textual, no clock) so it runs on recorded data in tests.

Rules for rates: a rate needs a previous sample of the same running VM, a positive interval and counters
that did not go backwards. Anything else is None ("unknown"), never a negative or a spike, and nothing is
invented: memory use comes from the guest's balloon driver or not at all.

This runs for every VM at every tick, so the per-VM types are NamedTuples (immutable, and several times
cheaper to build than frozen dataclasses) and the parser gathers a record's values by position when it has
seen its keys before, else stores each value with one dict lookup (see `parse_domain_stats`).

It is longer than the project's 500 lines on purpose: it is the poll's measured hot path (bench/poll.py,
per VM per tick), and the parse plans, the record layouts they fill by position and the rates that read
those positions are kept side by side so that a change to one is seen beside the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

# libvirt.VIR_DOMAIN_RUNNING
RUNNING = 1

_NS = 1e9

_new = tuple.__new__
"""_new(SomeNamedTuple, fields): a NamedTuple from a tuple of all its fields in order, without the
argument handling of its own __new__ (for the hot paths, where the fields are right by construction)."""


# ---------------------------------------------------------------------------------------------- samples


class DiskSample(NamedTuple):
    """One block device's counters (libvirt's block.N.*). A counter libvirt did not report is None."""

    name: str
    path: str | None
    rd_bytes: int | None
    wr_bytes: int | None
    rd_reqs: int | None
    wr_reqs: int | None
    capacity: int | None
    allocation: int | None


class NicSample(NamedTuple):
    """One interface's counters (libvirt's net.N.*), as seen from the host side of the tap: rx is what the
    host received from the guest."""

    name: str
    rx_bytes: int | None
    tx_bytes: int | None
    rx_pkts: int | None
    tx_pkts: int | None


class DomainSample(NamedTuple):
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


# How parse_domain_stats works: every key of a record maps to a slot of a list (the same key to the same
# slot in every record), through one shared table, `_Layout.table`; the loop over a record's items is then
# one dict lookup and one list store per key. The layout is learnt from the keys as they come: a key not
# in the table yet is classified the general way (`_learn`, under a lock: lanes parse on their own
# threads) and a new layout with it is published (copy on write, so a parse in progress keeps reading a
# consistent one; slots are only ever added, so a slot keeps its meaning across layouts). A key the
# parser does not read goes to slot 0, the dump. A record with a key that fits no slot (a device index
# like "01", or a table grown past its bound) is parsed again by `_parse_general`, the plain algorithm
# that defines the result.

_MISSING: Any = object()
"""The initial value of a slot whose absence and a None value mean different things."""

# fixed slots: the dump, then DomainSample's fields in order (one itemgetter reads them all)
_DUMP, _UUID, _NAME, _T, _STATE, _REASON, _CPU_TIME, _VCPUS, _VCPUS_MAX = range(9)
_BALLOON = {"maximum": 9, "current": 10, "available": 11, "unused": 12, "usable": 13, "rss": 14}
_DISKS, _NICS = 15, 16
_FIXED_INIT: tuple[Any, ...] = (None,) * 4 + (0, 0) + (None,) * 11  # state and reason default to 0
_FIELDS = itemgetter(*range(_UUID, _NICS + 1))

# per device index: a block.N region holds DiskSample's fields in order (presence: a name that is not
# None); a net.N region holds NicSample's fields in order and then a marker that any other net.N.* key
# sets (presence: any of the six not _MISSING)
_BLOCK_FIELDS = ("name", "path", "rd.bytes", "wr.bytes", "rd.reqs", "wr.reqs", "capacity", "allocation")
_NET_FIELDS = ("name", "rx.bytes", "tx.bytes", "rx.pkts", "tx.pkts")
_NET_REGION = len(_NET_FIELDS) + 1
_NIC_ABSENT = (_MISSING,) * len(_NET_FIELDS)

_MAX_KEYS = 8192
_MAX_SLOTS = 2048
"""Bounds of the learnt layout; a record that would grow it further takes the general path."""


class _Layout(NamedTuple):
    table: dict[str, int]
    """key -> slot"""
    init: list[Any]
    """the slots' initial values (a parse starts from a copy)"""
    vcpu_times: tuple[int, ...]
    """slots of the vcpu.*.time keys, summed when cpu.time is missing"""
    disks: tuple[tuple[int, Callable[[list[Any]], tuple[Any, ...]]], ...]
    """per block index, in index order: the name's slot, a getter of DiskSample's fields"""
    nics: tuple[tuple[str, Callable[[list[Any]], tuple[Any, ...]], int], ...]
    """per net index, in index order: the default name, a getter of NicSample's fields, the marker's slot"""
    block_bases: dict[str, int]
    """block index -> its region's first slot"""
    net_bases: dict[str, int]


_layout = _Layout({}, list(_FIXED_INIT), (), (), (), {}, {})
_learning = threading.Lock()

# The usual record has the same keys, in the same order, as the one before it of the same kind of VM. For
# a dict, parse_domain_stats first looks its tuple of keys up in `_plans`: a plan, compiled from the layout
# once per key tuple, gathers the sample's fields straight from the list of its values (itemgetters), so
# that no key is looked up one by one; the value-dependent steps (a disk without a name or repeating one,
# a NIC's default name, CPU time from the vCPUs) are done as the slot path does them, or left to it.
_MAX_PLANS = 256
"""Key tuples with a plan (or known to have none); records with others take the slot path."""


class _Plan(NamedTuple):
    sample: Callable[[list[Any]], tuple[Any, ...]]
    """the record's values + [None, 0, uuid, name, t, disks, nics] -> DomainSample's fields"""
    disks: tuple[Callable[[list[Any]], tuple[Any, ...]], ...]
    """per block index with a name key, in index order: the values -> DiskSample's fields"""
    nics: tuple[tuple[str, Callable[[list[Any]], tuple[Any, ...]]], ...]
    """per net index with any key, in index order: its default name, the values -> NicSample's fields"""
    cpu_time_at: int
    """where vcpu.N.time keys are present, the position of the CPU time (a record whose CPU time is None
    then takes the slot path, which sums them); else -1"""


_plans: dict[tuple[str, ...], _Plan | None] = {}


def parse_domain_stats(uuid: str, name: str, stats: Mapping[str, Any], t: float) -> DomainSample:
    """Turn one getAllDomainStats record into a DomainSample in a single pass over its items (or, for a
    dict whose keys were seen before in the same order, by gathering its values by position: `_plans`).

    Per-device keys ("block.0.rd.bytes") are grouped by index on the way; the devices are then built in
    index order. With VIR_CONNECT_GET_ALL_DOMAINS_STATS_BACKING a disk's backing images repeat its name:
    the first entry (the top image) is kept. CPU time falls back to the sum of vcpu.N.time where cpu.time
    is missing (no cgroup).
    """
    keys: tuple[str, ...] | None = None
    if type(stats) is dict:
        keys = tuple(stats)
        plan = _plans.get(keys)
        if plan is not None:
            get_sample, get_disks, get_nics, cpu_time_at = plan
            values = [*stats.values(), None, 0, uuid, name, t, (), ()]
            if cpu_time_at < 0 or values[cpu_time_at] is not None:  # else CPU time from the vCPUs: below
                if get_disks:
                    disks: tuple[DiskSample, ...] = ()
                    for get in get_disks:  # as below
                        f = get(values)
                        dev = f[0]
                        if dev is not None and not (disks and dev in {d[0] for d in disks}):
                            disks += (_new(DiskSample, f),)
                    values[-2] = disks
                if get_nics:
                    nics: tuple[NicSample, ...] = ()
                    for default, get in get_nics:
                        f = get(values)
                        if not f[0]:
                            f = (default, *f[1:])
                        nics += (_new(NicSample, f),)
                    values[-1] = nics
                return _new(DomainSample, get_sample(values))

    lay = _layout
    table = lay.table
    slots = lay.init[:]
    items = iter(stats.items())
    key: Any = _MISSING
    while True:
        try:
            for key, value in items:
                slots[table[key]] = value
            break
        except KeyError:
            if key is _MISSING or key in table:
                raise  # not from our lookup: from the mapping's own iteration
            learnt = _learn(key)
            if learnt is None:  # a key outside the usual layout: the general way, from the start
                return _parse_general(uuid, name, stats, t)
            lay = learnt
            table = lay.table
            slots += lay.init[len(slots) :]
            slots[table[key]] = value

    if slots[_CPU_TIME] is None and lay.vcpu_times:  # cpu.time missing: the vCPUs' times (ints: any order)
        vcpu_time = None
        for i in lay.vcpu_times:
            v = slots[i]
            if v is not _MISSING:
                vcpu_time = (vcpu_time or 0) + v
        slots[_CPU_TIME] = vcpu_time

    disks = ()
    for name_slot, get in lay.disks:
        dev = slots[name_slot]
        if dev is not None and not (disks and dev in {d[0] for d in disks}):  # not a backing image
            disks += (_new(DiskSample, get(slots)),)
    nics = ()
    for default, get, marker in lay.nics:
        f = get(slots)
        if _MISSING in f:
            if f == _NIC_ABSENT and slots[marker] is _MISSING:
                continue  # no net.N.* key in this record
            f = tuple(None if v is _MISSING else v for v in f)
        if not f[0]:
            f = (default, *f[1:])
        nics += (_new(NicSample, f),)

    slots[_UUID] = uuid
    slots[_NAME] = name
    slots[_T] = t
    slots[_DISKS] = disks
    slots[_NICS] = nics
    if keys is not None and keys not in _plans and len(_plans) < _MAX_PLANS:
        _plans[keys] = _compile(keys, lay)
    return _new(DomainSample, _FIELDS(slots))


def _compile(keys: tuple[str, ...], lay: _Layout) -> _Plan | None:
    """The plan of records with these keys in this order, from a layout that has them all (None when it
    does not: such records take the general path)."""
    at: dict[int, int] = {}  # slot -> the position of its value (any of them for the NIC marker)
    for i, key in enumerate(keys):
        slot = lay.table.get(key)
        if slot is None:
            return None
        if slot != _DUMP:
            at[slot] = i
    # the positions of what parse_domain_stats puts after the values: None, 0, uuid, name, t, disks, nics
    none, zero, extra = len(keys), len(keys) + 1, {_UUID: 2, _NAME: 3, _T: 4, _DISKS: 5, _NICS: 6}

    def getter(positions: list[int]) -> Callable[[list[Any]], tuple[Any, ...]]:
        return itemgetter(*positions)

    sample = getter(
        [
            none + extra[slot] if slot in extra else at.get(slot, zero if slot in (_STATE, _REASON) else none)
            for slot in range(_UUID, _NICS + 1)
        ]
    )
    disks = tuple(
        getter([at.get(name_slot + k, none) for k in range(len(_BLOCK_FIELDS))])
        for name_slot, _ in lay.disks
        if name_slot in at
    )
    nics = tuple(
        (default, getter([at.get(marker - _NET_REGION + 1 + k, none) for k in range(len(_NET_FIELDS))]))
        for default, _, marker in lay.nics
        if any(marker - _NET_REGION + 1 + k in at for k in range(_NET_REGION))
    )
    vcpu_times = any(slot in at for slot in lay.vcpu_times)
    return _Plan(sample, disks, nics, at.get(_CPU_TIME, none) if vcpu_times else -1)


def _learn(key: str) -> _Layout | None:
    """The current layout with `key` in it (learnt now, or meanwhile by another thread), or None when
    the key fits no slot."""
    global _layout
    with _learning:
        lay = _layout
        if key in lay.table:
            return lay
        if len(lay.table) >= _MAX_KEYS:
            return None
        table = dict(lay.table)
        init = list(lay.init)
        vcpu_times = lay.vcpu_times
        block_bases, net_bases = lay.block_bases, lay.net_bases
        slot = _DUMP
        group, _, rest = key.partition(".")
        if group == "block" or group == "net":
            index, _, field = rest.partition(".")
            if field:  # not "block.count"
                if not _plain_index(index):
                    return None
                bases = block_bases if group == "block" else net_bases
                base = bases.get(index)
                if base is None:
                    base = len(init)
                    if group == "block":
                        init += [None] * len(_BLOCK_FIELDS)
                        block_bases = {**block_bases, index: base}
                    else:
                        init += [_MISSING] * _NET_REGION
                        net_bases = {**net_bases, index: base}
                if group == "block":
                    if field in _BLOCK_FIELDS:
                        slot = base + _BLOCK_FIELDS.index(field)
                elif field in _NET_FIELDS:
                    slot = base + _NET_FIELDS.index(field)
                else:
                    slot = base + _NET_REGION - 1
        elif group == "balloon":
            slot = _BALLOON.get(rest, _DUMP)
        elif group == "cpu":
            if rest == "time":
                slot = _CPU_TIME
        elif group == "vcpu":
            if rest == "current":
                slot = _VCPUS
            elif rest == "maximum":
                slot = _VCPUS_MAX
            elif rest.endswith(".time"):
                slot = len(init)
                init.append(_MISSING)
                vcpu_times = (*vcpu_times, slot)
        elif group == "state":
            if rest == "state":
                slot = _STATE
            elif rest == "reason":
                slot = _REASON
        if len(init) > _MAX_SLOTS:
            return None
        table[key] = slot
        _layout = _Layout(
            table=table,
            init=init,
            vcpu_times=vcpu_times,
            disks=tuple(
                (base, itemgetter(*range(base, base + len(_BLOCK_FIELDS))))
                for _, base in sorted(block_bases.items(), key=lambda item: _index_order(item[0]))
            ),
            nics=tuple(
                (f"net{index}", itemgetter(*range(base, base + len(_NET_FIELDS))), base + _NET_REGION - 1)
                for index, base in sorted(net_bases.items(), key=lambda item: _index_order(item[0]))
            ),
            block_bases=block_bases,
            net_bases=net_bases,
        )
        return _layout


def _plain_index(index: str) -> bool:
    """A device index that sorts the same in every record: a number without leading zeros, or a name
    (never seen from libvirt) that cannot tie with one."""
    if index.isdigit():
        return index.isascii() and (index == "0" or index[0] != "0")
    return index != ""  # "" would tie with 1 << 30 in _index_order


def _parse_general(uuid: str, name: str, stats: Mapping[str, Any], t: float) -> DomainSample:
    """parse_domain_stats the plain way, for records whose keys do not fit the learnt layout."""
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


class DiskRates(NamedTuple):
    """One disk's rates over the last interval, by device name (bytes/s and requests/s)."""

    name: str
    rd_bps: float | None
    wr_bps: float | None
    rd_iops: float | None
    wr_iops: float | None


class NicRates(NamedTuple):
    """One interface's rates over the last interval (bytes/s and packets/s, host's view)."""

    name: str
    rx_bps: float | None
    tx_bps: float | None
    rx_pps: float | None
    tx_pps: float | None


class VmRates(NamedTuple):
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
    uuid, _, t, state, _, cpu, vcpus, _, mem_max, mem_current, avail, unused, usable, _, disks, nics = cur
    used = None  # mem_used_kib(cur), inline
    if avail is not None:
        free = usable if usable is not None else unused
        if not (free is None or free > avail):
            used = avail - free
    base = mem_current or mem_max
    mem_pct = used * 100.0 / base if used is not None and base else None

    if prev is None:
        return _new(VmRates, (None, None, used, mem_pct, None, None, None, None, None, None, (), ()))
    p_uuid, _, p_t, p_state, _, p_cpu, _, _, _, _, _, _, _, _, p_disks, p_nics = prev
    dt = t - p_t
    if (
        p_uuid != uuid
        or dt <= 0
        or not (p_state == RUNNING and state == RUNNING)
        or (p_cpu is not None and cpu is not None and cpu < p_cpu)
    ):
        return _new(VmRates, (None, None, used, mem_pct, None, None, None, None, None, None, (), ()))

    cpu_pct = cpu_host_pct = None
    if p_cpu is not None and cpu is not None:  # and not backwards (above)
        cpu_ns = (cpu - p_cpu) / dt
        if vcpus:
            pct = cpu_ns * 100.0 / (_NS * vcpus)
            cpu_pct = pct if pct < 100.0 else 100.0  # min(100.0, pct)
        if host_cpus > 0:
            pct = cpu_ns * 100.0 / (_NS * host_cpus)
            cpu_host_pct = pct if pct < 100.0 else 100.0

    # one disk and one NIC, the same as last time, is the usual case: inline; anything else is general
    disk_rates: tuple[DiskRates, ...]
    if len(disks) == 1 and len(p_disks) == 1 and (d := disks[0])[0] == (p := p_disks[0])[0]:
        _, _, a0, a1, a2, a3, _, _ = p
        name, _, b0, b1, b2, b3, _, _ = d
        r0 = None if a0 is None or b0 is None or b0 < a0 else (b0 - a0) / dt
        r1 = None if a1 is None or b1 is None or b1 < a1 else (b1 - a1) / dt
        r2 = None if a2 is None or b2 is None or b2 < a2 else (b2 - a2) / dt
        r3 = None if a3 is None or b3 is None or b3 < a3 else (b3 - a3) / dt
        disk_rates = (_new(DiskRates, (name, r0, r1, r2, r3)),)
        # the totals: _device_rates's sum 0.0 + r of the one rate is r itself (a float, +0.0 or more)
        rd_bps, wr_bps, rd_iops, wr_iops = r0, r1, r2, r3
    elif not disks and not p_disks:
        disk_rates, rd_bps, wr_bps, rd_iops, wr_iops = (), 0.0, 0.0, 0.0, 0.0
    else:
        disk_rates, rd_bps, wr_bps, rd_iops, wr_iops = _device_rates(p_disks, disks, dt, 2, DiskRates)
    nic_rates: tuple[NicRates, ...]
    if len(nics) == 1 and len(p_nics) == 1 and (n := nics[0])[0] == (q := p_nics[0])[0]:
        _, a0, a1, a2, a3 = q
        name, b0, b1, b2, b3 = n
        rx_bps = None if a0 is None or b0 is None or b0 < a0 else (b0 - a0) / dt
        tx_bps = None if a1 is None or b1 is None or b1 < a1 else (b1 - a1) / dt
        rx_pps = None if a2 is None or b2 is None or b2 < a2 else (b2 - a2) / dt
        tx_pps = None if a3 is None or b3 is None or b3 < a3 else (b3 - a3) / dt
        nic_rates = (_new(NicRates, (name, rx_bps, tx_bps, rx_pps, tx_pps)),)
        rx_total, tx_total = rx_bps, tx_bps  # the totals (as for the one disk above)
    elif not nics and not p_nics:
        nic_rates, rx_total, tx_total = (), 0.0, 0.0
    else:
        nic_rates, rx_total, tx_total, _, _ = _device_rates(p_nics, nics, dt, 1, NicRates)
    return _new(
        VmRates,
        (
            cpu_pct,
            cpu_host_pct,
            used,
            mem_pct,
            rd_bps,
            wr_bps,
            rd_iops,
            wr_iops,
            rx_total,
            tx_total,
            disk_rates,
            nic_rates,
        ),
    )


_R = TypeVar("_R", DiskRates, NicRates)


def _device_rates(
    prev: Sequence[tuple[Any, ...]], cur: Sequence[tuple[Any, ...]], dt: float, first: int, cls: type[_R]
) -> tuple[tuple[_R, ...], float | None, float | None, float | None, float | None]:
    """Each device's rates of its four counters (at `first`.. in its sample; its name at 0), matched by
    name, and the four totals: known when every device's rate is and no device came or went."""
    n = len(cur)
    last = first + 4
    by_name = {d[0]: d for d in prev}
    t0: float | None = 0.0 if len(by_name) == n and all(d[0] in by_name for d in cur) else None
    t1, t2, t3 = t0, t0, t0
    out = []
    for c in cur:
        p = by_name.get(c[0])
        if p is None:
            out.append(_new(cls, (c[0], None, None, None, None)))
            t0 = t1 = t2 = t3 = None
            continue
        a0, a1, a2, a3 = p[first:last]
        b0, b1, b2, b3 = c[first:last]
        r0 = None if a0 is None or b0 is None or b0 < a0 else (b0 - a0) / dt
        r1 = None if a1 is None or b1 is None or b1 < a1 else (b1 - a1) / dt
        r2 = None if a2 is None or b2 is None or b2 < a2 else (b2 - a2) / dt
        r3 = None if a3 is None or b3 is None or b3 < a3 else (b3 - a3) / dt
        out.append(_new(cls, (c[0], r0, r1, r2, r3)))
        t0 = None if t0 is None or r0 is None else t0 + r0
        t1 = None if t1 is None or r1 is None else t1 + r1
        t2 = None if t2 is None or r2 is None else t2 + r2
        t3 = None if t3 is None or r3 is None else t3 + r3
    return tuple(out), t0, t1, t2, t3


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
