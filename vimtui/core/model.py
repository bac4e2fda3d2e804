"""The immutable picture of the fleet that the core publishes and the screen and CLI read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import Any

from vimtui.core.poll.domxml import DomainDetails
from vimtui.core.poll.stats import DomainSample, HostRates, NodeSample, VmRates
from vimtui.core.profiles import DEFAULT as DEFAULT_PROFILE
from vimtui.core.profiles import Profile


class HostStatus(StrEnum):
    CONNECTING = "connecting"
    UP = "up"
    DEGRADED = "degraded"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth-failed"
    HOSTKEY_MISMATCH = "hostkey-mismatch"
    ERROR = "error"
    """Something unexpected (a setting libvirt or SSH would not take, a bug): the message says what; the
    session retries."""

    @property
    def healthy(self) -> bool:
        return self in (HostStatus.UP, HostStatus.DEGRADED)


# libvirt's virDomainState, by value
DOMAIN_STATES = ("nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended")


def state_name(state: int) -> str:
    return DOMAIN_STATES[state] if 0 <= state < len(DOMAIN_STATES) else "unknown"


@dataclass(frozen=True, slots=True)
class HostInfo:
    """Facts about a host that change rarely (read when it connects)."""

    hostname: str
    hypervisor: str
    hypervisor_version: str
    libvirt_version: str
    cpus: int
    cpu_mhz: int
    cpu_model: str
    memory_kib: int
    local: bool


@dataclass(frozen=True, slots=True)
class LocalMetrics:
    """psutil's view of the machine vimtui runs on, when it is one of the hosts."""

    cpu_pct: float
    mem_pct: float
    load1: float
    load5: float
    load15: float
    swap_pct: float


@dataclass(frozen=True, slots=True)
class VmState:
    uuid: str
    name: str
    host: str
    state: str
    """running, paused, shutoff ... (libvirt's state names)."""
    reason: int
    vcpus: int | None
    mem_max_kib: int | None
    mem_current_kib: int | None
    sample: DomainSample | None
    rates: VmRates | None
    details: DomainDetails | None
    ips: tuple[str, ...] = ()
    ip_source: str = ""
    """agent, lease or arp: where the addresses came from."""
    stale: bool = False
    """True while its host is not answering: the last known values, kept rather than removed."""
    state_since: float = 0.0
    """Wall time of the last state change seen (event or poll); 0 when it happened before we looked."""
    first_seen: float = 0.0
    """Wall time vimtui first saw the VM. libvirt does not tell when a domain started, so a VM running
    since before vimtui looked (state_since 0) has been up at least now - first_seen."""

    @property
    def key(self) -> str:
        return f"{self.host}/{self.uuid}"

    @property
    def vcpu_count(self) -> int | None:
        """vCPUs from the last poll, else from the domain XML (a poll before the XML was read, or a
        driver whose stats have none, leaves `vcpus` empty)."""
        if self.vcpus is not None:
            return self.vcpus
        return self.details.vcpus if self.details is not None else None

    @property
    def memory_kib(self) -> int | None:
        """The memory the VM has: its balloon's current size, else its maximum, else the domain XML's."""
        if self.mem_current_kib:
            return self.mem_current_kib
        if self.mem_max_kib:
            return self.mem_max_kib
        d = self.details
        return d.memory_kib if d is not None and d.memory_kib else None


@dataclass(frozen=True, slots=True)
class HostLoad:
    """What a host's VMs are given: vCPUs and memory of those running and of all defined (running or
    not), summed from their last poll (balloon size, else maximum, else the domain XML)."""

    vms: int = 0
    running: int = 0
    vcpus_running: int = 0
    vcpus_defined: int = 0
    mem_running_kib: int = 0
    mem_defined_kib: int = 0
    unknown: int = 0
    """VMs whose vCPUs or memory are not known (left out of the sums)."""


@dataclass(frozen=True, slots=True)
class PoolFill:
    """A storage pool of a host as libvirt's pool info says (bytes); an inactive pool says nothing."""

    name: str
    active: bool
    capacity: int
    allocation: int
    available: int
    full_in: float | None = None
    """Seconds until its allocation reaches its capacity at the rate seen over `basis` (None: not
    filling, or too little history to say)."""
    basis: float = 0.0
    """Seconds of history the rate was measured over."""

    @property
    def fill_pct(self) -> float | None:
        return self.allocation * 100.0 / self.capacity if self.active and self.capacity else None


@dataclass(frozen=True, slots=True)
class HostState:
    name: str
    group: str
    address: str
    uri: str
    transport: str
    status: HostStatus
    message: str
    status_since: float
    profile: Profile = DEFAULT_PROFILE
    """What may be done on it (a viewer is connected through libvirt's read-only socket)."""
    info: HostInfo | None = None
    node: NodeSample | None = None
    rates: HostRates | None = None
    local: LocalMetrics | None = None
    last_poll: float = 0.0
    """Wall time of the last successful poll."""
    poll_seconds: float = 0.0
    """How long the last poll took."""
    late_ticks: int = 0
    vm_keys: tuple[str, ...] = ()
    maintenance: float | None = None
    """Wall time it was put in maintenance (core/fleet/maintenance.py keeps the marks); None: in service."""
    load: HostLoad | None = None
    """Its VMs' vCPUs and memory, summed at publish (None before the fleet published it)."""
    pools: tuple[PoolFill, ...] | None = None
    """Its storage pools as last read (every few minutes, not every poll); None: not read yet."""

    @property
    def read_only(self) -> bool:
        """Connected read-only: libvirt refuses every change (the viewer profile)."""
        return self.profile == "viewer"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert at one transition: firing, then the same id again resolved."""

    id: int
    """The same for the firing and the resolved alert of one occurrence."""
    rule: str
    severity: Severity
    kind: str
    """"vm" or "host"."""
    host: str
    vm: str
    """VM name; "" for host alerts."""
    vm_uuid: str
    metric: str
    """The watched metric's name ("vm.cpu_pct")."""
    value: float | None
    """The value when it fired (or resolved); 1.0 / 0.0 for conditions; None when not reported."""
    threshold: float | None
    op: str
    state: str
    """"firing" or "resolved"."""
    since: float
    """Wall time the value first crossed the threshold (this occurrence)."""
    fired_at: float
    resolved_at: float | None = None
    message: str = ""
    """For a human: "kvm02/web1 CPU 97% > 90% for 10 s"."""
    reason: str = ""
    """Why it resolved: "cleared", or what happened to the subject ("VM moved to kvm03" ...)."""

    @property
    def subject(self) -> str:
        """Who it is about: "host/vm" or "host"."""
        return f"{self.host}/{self.vm}" if self.kind == "vm" else self.host

    @property
    def key(self) -> str:
        """Its subject's key in the fleet state and the history: the VM's `key` (host/uuid), or the host."""
        return f"{self.host}/{self.vm_uuid}" if self.kind == "vm" else self.host

    @property
    def firing(self) -> bool:
        return self.state == "firing"

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types (the hook's stdin): every field, plus `subject`."""
        d = asdict(self)
        d["severity"], d["subject"] = str(self.severity), self.subject
        return d

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


@dataclass(frozen=True, slots=True)
class Quota:
    """What one tenant may hold in all (a `[tenants.NAME]` table); None: no limit on that resource."""

    vcpus: int | None = None
    memory_mib: int | None = None
    vms: int | None = None
    disk_gib: int | None = None


def tenant_of(vm: VmState) -> str | None:
    """The tenant in the VM's vimtui metadata; None when it has none or its XML has not been read yet."""
    d = vm.details
    return d.tenant if d is not None else None


@dataclass(frozen=True)
class FleetState:
    """One consistent picture of all hosts and VMs. A new one (version + 1) per tick or event."""

    version: int
    time: float
    hosts: tuple[HostState, ...]
    vms: Mapping[str, VmState] = field(default_factory=lambda: MappingProxyType({}))
    """VMs by key (host/uuid), in host then name order."""
    alerts: tuple[Alert, ...] = ()
    """The alerts firing now, most severe first."""
    tenant: str | None = None
    """The tenant the state is scoped to (config `tenant`, `--tenant`): `vms` holds only its VMs."""
    quotas: Mapping[str, Quota] = field(default_factory=lambda: MappingProxyType({}))
    """Per tenant, what it may hold (`[tenants.NAME]`): checked before an action that adds runs."""

    def host(self, name: str) -> HostState | None:
        return next((h for h in self.hosts if h.name == name), None)

    @cached_property
    def vm_counts(self) -> Mapping[str, tuple[int, int]]:
        """host -> (its VMs, of them running): once per state, for every view that shows the counts."""
        counts: dict[str, list[int]] = {}
        for vm in self.vms.values():
            c = counts.get(vm.host)
            if c is None:
                c = counts[vm.host] = [0, 0]
            c[0] += 1
            if vm.state == "running":
                c[1] += 1
        return MappingProxyType({h: (c[0], c[1]) for h, c in counts.items()})

    @property
    def running(self) -> int:
        """How many VMs run, fleet-wide."""
        return sum(running for _total, running in self.vm_counts.values())

    def vms_on(self, host: str) -> list[VmState]:
        return [v for v in self.vms.values() if v.host == host]

    def find_vm(self, name: str, host: str | None = None) -> list[VmState]:
        return [v for v in self.vms.values() if v.name == name and (host is None or v.host == host)]
