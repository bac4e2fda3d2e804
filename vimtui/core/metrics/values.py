"""Where the metrics' values come from: functions of a VmState or HostState and the time.

Values are in the metric's unit: percent, bytes, bytes per second, seconds. libvirt's KiB become bytes
here, and the exporter divides only where Prometheus wants a ratio.
"""

from __future__ import annotations

from collections.abc import Callable

from vimtui.core.model import HostState, HostStatus, VmState
from vimtui.core.poll.stats import DiskSample, NicSample

# libvirt's codes, by value (libvirt is not imported here): virDomainState, and the reasons we look for
_SHUTOFF, _PAUSED = 5, 3
_PAUSED_IOERROR = 5  # VIR_DOMAIN_PAUSED_IOERROR
_PAUSED_CRASHED = 10  # VIR_DOMAIN_PAUSED_CRASHED
_SHUTOFF_CRASHED = 3  # VIR_DOMAIN_SHUTOFF_CRASHED


def _bytes(kib: int | None) -> int | None:
    return None if kib is None else kib * 1024


# ---------------------------------------------------------------------------------------------- VM values


def vm_vcpus(vm: VmState, _now: float) -> float | None:
    """vcpu.current of a running VM; a VM that is not running has its configured count (domain XML)."""
    return vm.vcpu_count or None


def vm_memory(vm: VmState, _now: float) -> float | None:
    """What the VM has: balloon.current, else balloon.maximum, else its configured memory."""
    kib = vm.memory_kib
    return kib * 1024 if kib else None


def vm_mem_used(vm: VmState, _now: float) -> float | None:
    r = vm.rates
    return None if r is None else _bytes(r.mem_used_kib)


def vm_mem_max(vm: VmState, _now: float) -> float | None:
    return _bytes(vm.mem_max_kib)


def vm_mem_current(vm: VmState, _now: float) -> float | None:
    return _bytes(vm.mem_current_kib)


def vm_disk_bps(vm: VmState, _now: float) -> float | None:
    """Read + write; unknown when either is."""
    r = vm.rates
    if r is None or r.disk_rd_bps is None or r.disk_wr_bps is None:
        return None
    return r.disk_rd_bps + r.disk_wr_bps


def vm_net_bps(vm: VmState, _now: float) -> float | None:
    r = vm.rates
    if r is None or r.net_rx_bps is None or r.net_tx_bps is None:
        return None
    return r.net_rx_bps + r.net_tx_bps


def vm_uptime(vm: VmState, now: float) -> float | None:
    """Seconds since a running VM started; unknown when it is not running or its start is not known."""
    if vm.state != "running" or vm.state_since <= 0:
        return None
    return now - vm.state_since


def vm_up_at_least(vm: VmState, now: float) -> float | None:
    """Seconds a running VM has been up at least: since vimtui first saw it, when it was running then and
    its start is not known (libvirt does not report when a domain started)."""
    if vm.state != "running" or vm.state_since > 0 or vm.first_seen <= 0:
        return None
    return now - vm.first_seen


def vm_stale(vm: VmState, _now: float) -> float | None:
    return 1 if vm.stale else 0


def vm_cpu_seconds(vm: VmState, _now: float) -> float | None:
    s = vm.sample
    cpu = None if s is None else s.cpu_time_ns
    return None if cpu is None else cpu / 1e9


def device_total(field: int, nics: bool) -> Callable[[VmState, float], float | None]:
    """A VM's counter summed over its devices (field's position in DiskSample / NicSample): known when
    every device reports it."""

    def total(vm: VmState, _now: float) -> float | None:
        s = vm.sample
        if s is None:
            return None
        devices: tuple[DiskSample, ...] | tuple[NicSample, ...] = s.nics if nics else s.disks
        if not devices:
            return None
        out = 0
        for d in devices:
            v = d[field]
            if v is None:
                return None
            out += v  # type: ignore[operator]
        return out

    return total


def vm_crashed(vm: VmState, _now: float) -> float | None:
    """1 crashed, 0 not, None unknown. vm.state is fresh (events update it) but vm.reason may be an event
    detail rather than a state reason, so reasons come from the last poll's sample, and only when the
    sample agrees with vm.state (else an event is newer than the sample: unknown until the next poll)."""
    st = vm.state
    if st == "running":
        return 0.0
    if st == "crashed":
        return 1.0
    s = vm.sample
    if st == "shutoff":
        if s is None or s.state != _SHUTOFF:
            return None
        return 1.0 if s.reason == _SHUTOFF_CRASHED else 0.0
    if st == "paused":
        if s is None or s.state != _PAUSED:
            return None
        return 1.0 if s.reason == _PAUSED_CRASHED else 0.0
    return 0.0


def vm_io_error(vm: VmState, _now: float) -> float | None:
    if vm.state != "paused":
        return 0.0
    s = vm.sample
    if s is None or s.state != _PAUSED:
        return None
    return 1.0 if s.reason == _PAUSED_IOERROR else 0.0


# ---------------------------------------------------------------------------------------------- host values

_UNREACHABLE = frozenset(
    {HostStatus.UNREACHABLE, HostStatus.AUTH_FAILED, HostStatus.HOSTKEY_MISMATCH, HostStatus.ERROR}
)


def host_unreachable(h: HostState, _now: float) -> float | None:
    status = h.status
    if status in _UNREACHABLE:
        return 1.0
    return None if status == HostStatus.CONNECTING else 0.0


def host_up(h: HostState, _now: float) -> float | None:
    return 1 if h.status.healthy else 0


def host_cpus(h: HostState, _now: float) -> float | None:
    node, info = h.node, h.info
    return (node.cpus if node is not None and node.cpus else None) or (info.cpus if info else None)


def host_memory(h: HostState, _now: float) -> float | None:
    """The node's own total where it reports one (getInfo's can be one NUMA cell's), as `vimtui hosts`."""
    node, info = h.node, h.info
    total = node.mem_total_kib if node is not None and node.mem_total_kib else None
    return _bytes(total or (info.memory_kib if info else None))


def host_mem_free(h: HostState, _now: float) -> float | None:
    node = h.node
    return None if node is None or not h.status.healthy else _bytes(node.mem_free_kib)


def host_mem_used(h: HostState, _now: float) -> float | None:
    r = h.rates
    return None if r is None or not h.status.healthy else _bytes(r.mem_used_kib)


def host_poll_seconds(h: HostState, _now: float) -> float | None:
    return h.poll_seconds if h.last_poll and h.status.healthy else None


def host_last_poll(h: HostState, _now: float) -> float | None:
    return h.last_poll or None


def host_late_ticks(h: HostState, _now: float) -> float | None:
    return h.late_ticks
