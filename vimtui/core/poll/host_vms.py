"""One host's VMs as its polls and events show them, and all that is kept of each VM between polls.

`HostVms.apply` turns a poll's samples into VmStates (rates against the previous poll, details and
addresses carried over, states that an event reported after the poll's call kept); `event` applies a
lifecycle event at once; `merge` adds what the look-ups off the tick found (details, addresses). The
VMs' dict is replaced, never changed in place: a published FleetState and the fleet's sorted copy go on
holding the old one. What is kept of a VM (key, previous sample, details, event and address times) ends
with it: a VM undefined or gone from the host's poll is forgotten, and its key handed to `on_gone`.

`apply` runs for every VM at every poll, on the event loop: its loop is written for speed (see
_VmStateBuilder) and measured by bench/poll.py and bench/fleet.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import fields, replace
from operator import itemgetter
from typing import Any

import libvirt

from vimtui.core.model import DOMAIN_STATES, VmState, state_name
from vimtui.core.poll.domxml import DomainDetails
from vimtui.core.poll.host_calls import INACTIVE_STATES
from vimtui.core.poll.stats import DomainSample, VmRates, vm_rates

IP_REFRESH = 30.0
"""Seconds between address look-ups of a running VM none of whose addresses is known yet."""
IP_KEEP = 120.0
"""Seconds between address look-ups of a running VM whose addresses are known (a DHCP lease renewed keeps
its address: the look-ups found the same ones, at a cost of two or three calls on the host each). A VM
that starts again is looked up at once."""
IP_BATCH = 16
"""VMs whose addresses are looked up after one poll (the rest wait for later polls)."""
IP_SCAN = 5.0
"""Seconds between two looks for the running VMs whose addresses are due (`ip_due`), unless more than a
batch were due or a VM came, changed state or got its details meanwhile: a look walks every VM of the host,
and each look that finds some makes a call on the host's lane. At every poll, that was two walks of every
VM and a lane call for a few addresses per host a second (bench/fleet.py, 50 hosts of 200 VMs)."""

# lifecycle event -> the state the domain is in after it
_EVENT_STATE = {
    libvirt.VIR_DOMAIN_EVENT_STARTED: libvirt.VIR_DOMAIN_RUNNING,
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: libvirt.VIR_DOMAIN_PAUSED,
    libvirt.VIR_DOMAIN_EVENT_RESUMED: libvirt.VIR_DOMAIN_RUNNING,
    libvirt.VIR_DOMAIN_EVENT_STOPPED: libvirt.VIR_DOMAIN_SHUTOFF,
    libvirt.VIR_DOMAIN_EVENT_CRASHED: libvirt.VIR_DOMAIN_CRASHED,
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: libvirt.VIR_DOMAIN_PMSUSPENDED,
}


class HostVms:
    """The VMs of host `host`, keyed `host/uuid`, in the order of the host's last poll."""

    def __init__(self, host: str, clock: Callable[[], float], on_gone: Callable[[list[str]], None]) -> None:
        self.host = host
        self.clock = clock
        self.on_gone = on_gone
        """Told the keys of VMs that are gone from the host (undefined, migrated away)."""
        self.vms: dict[str, VmState] = {}
        self.samples: dict[str, DomainSample] = {}
        """uuid -> its sample of the last poll (the rates of the next one start from it)"""
        self.keys: dict[str, str] = {}
        """uuid -> the VM's key (host/uuid), kept from one poll to the next (its hash with it)"""
        self.details: dict[str, DomainDetails] = {}
        self.dirty: set[str] = set()
        """uuids whose details are to be read (new, renamed, a device added or removed)"""
        self.event_time: dict[str, float] = {}
        """uuid -> monotonic time of its last lifecycle event"""
        self.ip_time: dict[str, float] = {}
        """uuid -> monotonic time of its last address look-up"""
        self.ip_scan_at = 0.0
        """Monotonic time of the next look for VMs whose addresses are due (see IP_SCAN)."""
        self.every_vm_due = False
        """The next poll is to read every VM, not only the active ones (set here and by the session)."""
        self.roster: object = object()
        """Replaced by a new object whenever a VM comes or goes, or a VM's name or details object changes:
        what is worked out from those alone (the VMs' name order, their labels in the archive) is kept by
        its readers while this stays the same object, rather than worked out again at every poll."""

    def key(self, uuid: str) -> str:
        return f"{self.host}/{uuid}"

    # -- polls ------------------------------------------------------------------------------------

    def apply(self, samples: list[DomainSample], cpus: int, started: float, every_vm: bool = True) -> None:
        """A poll's samples (its call began at monotonic `started`) become the VMs. `every_vm` False: the
        poll read the active VMs only; the others stay as they were, and a VM that was active and is not
        among them (stopped or gone meanwhile, while another started) sets `every_vm_due`."""
        now = self.clock()
        host = self.host
        prefix = host + "/"
        old_vms, prev_samples, all_details = self.vms, self.samples, self.details
        event_time, dirty, keys = self.event_time, self.dirty, self.keys
        # events newer than this poll's call: only then does any VM need its own look-up below
        events_since = bool(event_time) and max(event_time.values()) > started
        vms: dict[str, VmState] = {}
        polled: dict[str, DomainSample] = {}
        get_key, get_old, get_details, get_prev = keys.get, old_vms.get, all_details.get, prev_samples.get
        fields_of, state_names, builder, vm_state = _APPLY_FIELDS, _STATE_NAMES, _VmStateBuilder, VmState
        changed = False  # a VM came, or its name or details object is new (see `roster`)
        for s in samples:
            uuid, name, st, reason, vcpus, mem_max, mem_current = fields_of(s)
            polled[uuid] = s
            key = get_key(uuid)
            if key is None:  # the same key string from one poll to the next (its hash is kept)
                key = keys[uuid] = prefix + uuid
            old = get_old(key)
            state = state_names.get(st, "unknown")  # state_name(st)
            if (
                old is not None
                and old.sample is s  # the record came back the same: not running (host_calls.Unchanged)
                and old.state == state
                and old.reason == reason
                and old.details is not None
                and old.details is get_details(uuid)
                and not old.stale
                and not (events_since and event_time.get(uuid, 0.0) > started)
            ):
                vms[key] = old  # what the lines below would build again
                continue
            details = get_details(uuid)
            if old is None:
                changed = True
                # first seen: when it entered this state is unknown (0), not "now" (a made-up uptime)
                since = 0.0
                first_seen = now
                ips: tuple[str, ...] = ()
                ip_source = ""
            else:
                if events_since and event_time.get(uuid, 0.0) > started:
                    state, reason, since = old.state, old.reason, old.state_since  # an event is newer
                elif old.state == state:
                    since = old.state_since
                else:
                    since = now
                    self._look_up_soon(uuid)  # started, say
                ips, ip_source = old.ips, old.ip_source
                first_seen = old.first_seen
                if old.name != name or old.details is not details:
                    changed = True
            if details is None:
                dirty.add(uuid)
            else:
                if details.name != name:
                    dirty.add(uuid)
                if vcpus is None:
                    vcpus = details.vcpus
                if mem_max is None:
                    mem_max = details.memory_kib
            new = builder()  # a VmState, built quicker than by its __init__ (see _VmStateBuilder)
            new.uuid = uuid
            new.name = name
            new.host = host
            new.state = state
            new.reason = reason
            new.vcpus = vcpus
            new.mem_max_kib = mem_max
            new.mem_current_kib = mem_current
            new.sample = s
            new.rates = vm_rates(get_prev(uuid), s, cpus)
            new.details = details
            new.ips = ips
            new.ip_source = ip_source
            new.stale = False
            new.state_since = since
            new.first_seen = first_seen
            new.__class__ = vm_state  # type: ignore[assignment]
            vms[key] = new  # type: ignore[assignment]
        gone: list[str] = []
        if not every_vm:
            # the VMs this poll did not read stay as they were, with their samples; merged in C, the
            # order then the old one (40 % of the VMs at every poll of a fleet whose VMs are mostly up)
            unread = old_vms.keys() - vms.keys()
            if unread:
                vms = old_vms | vms
                polled = prev_samples | polled
                # one active at the last poll and not now (stopped, or gone, while another started)
                if any(old_vms[key].state not in _INACTIVE_NAMES for key in unread):
                    self.every_vm_due = True
        else:
            if events_since:
                for key, vm in old_vms.items():  # appeared by event after this poll's call: keep it
                    if vm.uuid not in polled and event_time.get(vm.uuid, 0.0) > started:
                        vms[key] = vm
            gone = [key for key in old_vms if key not in vms]
        n = len(vms)
        if len(keys) > len(polled) or max(len(all_details), len(event_time), len(self.ip_time)) > n:
            live = polled.keys() | {vm.uuid for vm in vms.values()} if n > len(polled) else polled.keys()
            self.forget((keys.keys() | all_details.keys() | event_time.keys() | self.ip_time.keys()) - live)
        self.samples = polled
        self.vms = vms
        if changed or gone:
            self.roster = object()
            self.ip_scan_at = 0.0
        if gone:
            self.on_gone(gone)

    def mark_stale(self) -> None:
        """The host stopped answering: its VMs are shown as last known."""
        self.vms = {k: replace(v, stale=True) if not v.stale else v for k, v in self.vms.items()}

    # -- events -----------------------------------------------------------------------------------

    def event(self, uuid: str, name: str, event: int, detail: int) -> bool:
        """A lifecycle event, applied at once; True when the VM's details are to be read."""
        now = self.clock()
        key = self.key(uuid)
        vms = dict(self.vms)  # a new dict, never a change in place: readers (publish) keep the old one
        self.roster = object()  # rare: whatever the event does
        self.ip_scan_at = 0.0
        if event == libvirt.VIR_DOMAIN_EVENT_UNDEFINED:
            vms.pop(key, None)
            self.samples.pop(uuid, None)
            self.forget([uuid])
            self.vms = vms
            self.on_gone([key])
            return False
        if event in _EVENT_STATE:
            self.event_time[uuid] = time.monotonic()
            self._look_up_soon(uuid)  # started, say
            vm = vms.get(key)
            new_state = state_name(_EVENT_STATE[event])
            if vm is None:  # started outside vimtui: show it now, details follow
                vms[key] = self._placeholder(uuid, name, new_state, detail, now)
            else:
                rates = vm.rates if new_state == "running" else None
                # an event that leaves the state as it was (resumed while running) is no new state: its
                # time stays, as a poll keeps it (uptime, and a display forward's "started again")
                since = vm.state_since if vm.state == new_state else now
                vms[key] = replace(vm, state=new_state, reason=detail, state_since=since, rates=rates)
        elif event == libvirt.VIR_DOMAIN_EVENT_DEFINED and key not in vms:
            self.event_time[uuid] = time.monotonic()
            vms[key] = self._placeholder(uuid, name, "shutoff", 0, now)
        self.vms = vms
        if event == libvirt.VIR_DOMAIN_EVENT_DEFINED or (key in vms and vms[key].details is None):
            self.dirty.add(uuid)
            return True
        return False

    def _placeholder(self, uuid: str, name: str, state: str, reason: int, now: float) -> VmState:
        return VmState(
            uuid=uuid,
            name=name,
            host=self.host,
            state=state,
            reason=reason,
            vcpus=None,
            mem_max_kib=None,
            mem_current_kib=None,
            sample=None,
            rates=None,
            details=None,
            state_since=now,
            first_seen=now,
        )

    # -- look-ups off the tick --------------------------------------------------------------------

    def merge(self, changes: dict[str, dict[str, Any]]) -> bool:
        """Replace fields of VMs by uuid; False (nothing replaced) when every field given already holds its
        value (the usual answer of an address look-up: the same addresses from the same source)."""
        vms = self.vms
        prefix = self.host + "/"
        changed = {}
        for uuid, change in changes.items():
            key = prefix + uuid
            vm = vms.get(key)
            if vm is not None and any(getattr(vm, name) != value for name, value in change.items()):
                details = change.get("details")
                if details is not None and (vm.vcpus is None or vm.mem_max_kib is None):
                    # what the poll did not say, from the XML, as apply fills it in: a VM built before its
                    # details were read (a shut-off one is kept as built) would otherwise go on without
                    change = {
                        "vcpus": details.vcpus if vm.vcpus is None else vm.vcpus,
                        "mem_max_kib": details.memory_kib if vm.mem_max_kib is None else vm.mem_max_kib,
                    } | change
                changed[key] = replace(vm, **change)
        if changed:
            self.vms = vms | changed
            if any("details" in c or "name" in c for c in changes.values()):
                self.roster = object()
                self.ip_scan_at = 0.0  # a VM's NICs are known now
        return bool(changed)

    def _look_up_soon(self, uuid: str) -> None:
        """The VM changed state: its addresses at the next look, whenever it was last looked up."""
        self.ip_time.pop(uuid, None)
        self.ip_scan_at = 0.0

    def side_work_due(self) -> bool:
        """Whether the session has anything to read off the tick: details, or a look for due addresses."""
        return bool(self.dirty) or time.monotonic() >= self.ip_scan_at

    def ip_due(self) -> list[tuple[str, bool]]:
        """(uuid, has a guest agent) of the running VMs whose addresses are due a look-up, a batch; none
        before `ip_scan_at` (see IP_SCAN)."""
        mono = time.monotonic()
        if mono < self.ip_scan_at:
            return []
        ip_time = self.ip_time
        due = [
            (vm.uuid, bool(vm.details and vm.details.has_agent))
            for vm in self.vms.values()
            if vm.state == "running"
            and mono - ip_time.get(vm.uuid, _NEVER) >= (IP_KEEP if vm.ips else IP_REFRESH)
            and (vm.details is None or vm.details.nics)
        ]
        # more than a batch due: the rest at the next poll's look
        self.ip_scan_at = mono if len(due) > IP_BATCH else mono + IP_SCAN
        return due[:IP_BATCH]

    # -- what is kept -----------------------------------------------------------------------------

    def remembers(self, uuid: str) -> bool:
        """Whether anything of the VM `uuid` is kept (its state, key, sample, details, event or address
        time): for checking that what is kept of a VM ends with it."""
        return self.key(uuid) in self.vms or any(
            uuid in d for d in (self.keys, self.samples, self.details, self.event_time, self.ip_time)
        )

    def forget(self, uuids: Iterable[str]) -> None:
        """What is kept of VMs that are gone (their key, details, event and address times)."""
        keys, details, event_time, ip_time = self.keys, self.details, self.event_time, self.ip_time
        for uuid in uuids:
            keys.pop(uuid, None)
            details.pop(uuid, None)
            event_time.pop(uuid, None)
            ip_time.pop(uuid, None)
            self.dirty.discard(uuid)


# VmState is a frozen dataclass: its __init__ sets each field with object.__setattr__, ~3 µs a VmState, for
# every VM at every poll. _apply fills in a _VmStateBuilder instead (plain slot stores) and then makes it a
# VmState by assigning its __class__, which Python allows between classes of the same slot layout: the
# result is an ordinary VmState, built ~8x quicker. `_check_builder` makes sure, at import, that the two
# layouts still match.
_VM_FIELDS = (
    "uuid",
    "name",
    "host",
    "state",
    "reason",
    "vcpus",
    "mem_max_kib",
    "mem_current_kib",
    "sample",
    "rates",
    "details",
    "ips",
    "ip_source",
    "stale",
    "state_since",
    "first_seen",
)


class _VmStateBuilder:
    """A VmState under construction: the same slots, in the same order, and no frozen __setattr__."""

    __slots__ = _VM_FIELDS
    uuid: str
    name: str
    host: str
    state: str
    reason: int
    vcpus: int | None
    mem_max_kib: int | None
    mem_current_kib: int | None
    sample: DomainSample | None
    rates: VmRates | None
    details: DomainDetails | None
    ips: tuple[str, ...]
    ip_source: str
    stale: bool
    state_since: float
    first_seen: float


def _check_builder() -> None:
    vm_fields = fields(VmState)
    if (
        tuple(f.name for f in vm_fields) != _VM_FIELDS
        or VmState.__dict__.get("__slots__") != _VM_FIELDS
        or not all(f.init for f in vm_fields)
        or hasattr(VmState, "__post_init__")
    ):
        raise RuntimeError("VmState's fields changed: update _VM_FIELDS and HostVms.apply (host_vms.py)")
    values = tuple(range(len(_VM_FIELDS)))
    b = _VmStateBuilder()
    for name, value in zip(_VM_FIELDS, values, strict=True):
        setattr(b, name, value)
    b.__class__ = VmState  # type: ignore[assignment]
    vm: object = b
    if type(vm) is not VmState or vm != VmState(*values):  # type: ignore[arg-type]
        raise RuntimeError("a _VmStateBuilder does not turn into the VmState it stands for")


_check_builder()
_APPLY_FIELDS = itemgetter(
    *(
        DomainSample._fields.index(f)
        for f in ("uuid", "name", "state", "reason", "vcpus", "mem_max_kib", "mem_current_kib")
    )
)
"""The fields of a DomainSample that _apply reads, in one call."""
_NEVER = float("-inf")
_INACTIVE_NAMES = frozenset(state_name(st) for st in INACTIVE_STATES)
"""The names of the states libvirt's ACTIVE filter leaves out (host_calls.poll_domains)."""
_STATE_NAMES = dict(enumerate(DOMAIN_STATES))
"""state_name() as a dict: libvirt's state number -> its name (get with "unknown" for any other)."""
