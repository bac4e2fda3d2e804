"""Alerts: rules over the fleet's metrics and libvirt events, with hold times and hysteresis, and a hook.

A `Rule` says which metric of which VMs or hosts to watch, the threshold, how long it must hold before the
alert fires (`for_seconds`), and the hysteresis that keeps it from flapping: a firing alert resolves only
once the value has crossed back past `clear` (below the threshold for a ">" rule) and stayed there for
`clear_for_seconds`. A value between `clear` and the threshold changes nothing.

`AlertEngine.evaluate(state, now)` runs on the event loop for every published FleetState (every VM, every
rule), so it is written for that: scopes are compiled once per rule (one regex per pattern list, name
matches cached per rule), a VM with no alert and a value on the quiet side costs a few comparisons, and
only subjects with a pending or firing alert hold state (bench/alerts.py measures it). VM crashes and
I/O-error pauses also arrive as libvirt events (`on_event`), which fire at once rather than at the next
tick. A subject that disappears (VM deleted or migrated away, host removed from the inventory) resolves
its alerts with a reason instead of leaving them firing forever.

`HookRunner` runs a command per transition with the alert as JSON on stdin, off the loop's back (asyncio
subprocesses), a few at a time, each with a deadline; whatever goes wrong is reported, never raised.

Nothing here imports Textual or libvirt (the libvirt codes used are copied below by value).
"""

from __future__ import annotations

import difflib
import fnmatch
import itertools
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from vimtui.core.model import FleetState, HostState, HostStatus, VmState
from vimtui.core.poll.stats import VmRates
from vimtui.core.text import CONTROL_CHARS

if TYPE_CHECKING:
    from vimtui.core.fleet.activity import ActivityLog, Entry

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_RULES",
    "Alert",
    "AlertEngine",
    "Metric",
    "Rule",
    "RuleError",
    "Severity",
    "effective_rules",
    "parse_duration",
    "parse_rate",
    "record_alert",
]

# libvirt's codes, by value (libvirt is not imported here): virDomainState, and the reasons we look for
_SHUTOFF, _CRASHED, _PAUSED = 5, 6, 3
_PAUSED_IOERROR = 5  # VIR_DOMAIN_PAUSED_IOERROR
_PAUSED_CRASHED = 10  # VIR_DOMAIN_PAUSED_CRASHED
_SHUTOFF_CRASHED = 3  # VIR_DOMAIN_SHUTOFF_CRASHED
# lifecycle event details, as HostEvent.detail carries them (str of the int)
_STOPPED_CRASHED, _STOPPED_FAILED = "2", "5"  # VIR_DOMAIN_EVENT_STOPPED_{CRASHED,FAILED}
_SUSPENDED_IOERROR = "2"  # VIR_DOMAIN_EVENT_SUSPENDED_IOERROR
_CRASHED_PANICKED = "0"  # VIR_DOMAIN_EVENT_CRASHED_PANICKED

MIN_CLEAR_FOR = 10.0
"""Seconds a value must stay clear before an alert resolves, at least, when the rule does not say: an
alert that fires at once (for 0 s) would otherwise resolve at the first quiet sample."""


# ------------------------------------------------------------------------------------------------ rules


class Metric(StrEnum):
    """What a rule watches. `vm.*` apply to VMs, `host.*` to hosts; the last four are conditions (true or
    false: no threshold), the others numbers compared with the rule's threshold."""

    VM_CPU = "vm.cpu_pct"
    """VmRates.cpu_pct: CPU time as % of the VM's vCPUs."""
    VM_MEM = "vm.mem_pct"
    """VmRates.mem_pct: memory the guest uses (balloon driver) as % of its current memory."""
    VM_DISK_READ = "vm.disk_read_bps"
    """VmRates.disk_rd_bps: bytes/s read from all its disks."""
    VM_DISK_WRITE = "vm.disk_write_bps"
    """VmRates.disk_wr_bps."""
    VM_NET_RX = "vm.net_rx_bps"
    """VmRates.net_rx_bps: bytes/s the host received from the guest (the tap's view), all NICs."""
    VM_NET_TX = "vm.net_tx_bps"
    """VmRates.net_tx_bps: bytes/s the host sent to the guest."""
    HOST_CPU = "host.cpu_pct"
    """HostRates.cpu_pct."""
    HOST_MEM = "host.mem_pct"
    """HostRates.mem_pct: total - free - buffers - cached, in %."""
    HOST_UNREACHABLE = "host.unreachable"
    """HostState.status is unreachable, auth-failed or hostkey-mismatch."""
    VM_CRASHED = "vm.crashed"
    """The VM crashed: state crashed, or shut off / paused with reason crashed; or a crashed / stopped
    (crashed, failed) lifecycle event."""
    VM_IO_ERROR = "vm.io_error"
    """The VM is paused on an I/O error (state paused, reason ioerror; or the suspended (ioerror) event)."""
    VM_AGENT_GONE = "vm.agent_gone"
    """A running VM's guest agent disconnected (from "agent-disconnected" / "agent-connected" events)."""

    @property
    def kind(self) -> str:
        """What the metric is measured on: "vm" or "host"."""
        return self.value.partition(".")[0]

    @property
    def condition(self) -> bool:
        """True for the yes/no metrics (no threshold)."""
        return self in _CONDITIONS

    @property
    def unit(self) -> str:
        """The unit of its values: "%", "B/s", or "" for conditions."""
        return "%" if self.value.endswith("_pct") else "B/s" if self.value.endswith("_bps") else ""


_CONDITIONS = frozenset(
    {Metric.HOST_UNREACHABLE, Metric.VM_CRASHED, Metric.VM_IO_ERROR, Metric.VM_AGENT_GONE}
)
_RATE_INDEX = {
    Metric.VM_CPU: VmRates._fields.index("cpu_pct"),
    Metric.VM_MEM: VmRates._fields.index("mem_pct"),
    Metric.VM_DISK_READ: VmRates._fields.index("disk_rd_bps"),
    Metric.VM_DISK_WRITE: VmRates._fields.index("disk_wr_bps"),
    Metric.VM_NET_RX: VmRates._fields.index("net_rx_bps"),
    Metric.VM_NET_TX: VmRates._fields.index("net_tx_bps"),
}
_LABELS = {
    Metric.VM_CPU: "CPU",
    Metric.VM_MEM: "memory",
    Metric.VM_DISK_READ: "disk read",
    Metric.VM_DISK_WRITE: "disk write",
    Metric.VM_NET_RX: "net rx",
    Metric.VM_NET_TX: "net tx",
    Metric.HOST_CPU: "CPU",
    Metric.HOST_MEM: "memory",
    Metric.HOST_UNREACHABLE: "unreachable",
    Metric.VM_CRASHED: "crashed",
    Metric.VM_IO_ERROR: "paused on I/O error",
    Metric.VM_AGENT_GONE: "guest agent gone",
}


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


class RuleError(ValueError):
    """A rule that cannot be used; `key` is the config key at fault (TOML spelling: "for", "clear_for")."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule (a `[[alerts.rules]]` entry). Invalid values raise RuleError when it is built."""

    name: str
    """Unique name; a config rule with a default rule's name replaces it."""
    metric: Metric
    """What is watched (a Metric or its string)."""
    op: str = ">"
    """">" fires above the threshold, "<" below it. Conditions take ">" only."""
    threshold: float | None = None
    """Required for numbers (0..100 for %, bytes/s >= 0 for rates); None for conditions."""
    for_seconds: float = 0.0
    """How long the value must stay past the threshold, without a break, before the alert fires."""
    clear: float | None = None
    """The value it must cross back past to resolve; None: the threshold less 10% of it (more for "<")."""
    clear_for_seconds: float | None = None
    """How long it must stay clear before the alert resolves; None: for_seconds, at least MIN_CLEAR_FOR."""
    severity: Severity = Severity.WARNING
    vms: tuple[str, ...] = ()
    """Shell patterns (fnmatch, case-sensitive) on VM names; empty: every VM. VM metrics only."""
    hosts: tuple[str, ...] = ()
    """Shell patterns on host names; empty: every host."""
    group: str = ""
    """A host group and everything under it: "dc1" matches hosts in "dc1" and "dc1/rack3", not "dc10"."""
    tags: tuple[str, ...] = ()
    """VMs with any of these tags (the vimtui metadata in their XML, DomainDetails.tags); empty: every VM.
    A VM whose details have not been read yet has no tags. VM metrics only."""
    enabled: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        try:
            set_(self, "metric", Metric(self.metric))
        except ValueError:
            raise RuleError("metric", _unknown_metric(str(self.metric))) from None
        try:
            set_(self, "severity", Severity(self.severity))
        except ValueError:
            allowed = ", ".join(s.value for s in Severity)
            raise RuleError("severity", f"unknown severity {self.severity!r} (allowed: {allowed})") from None
        for name in ("vms", "hosts", "tags"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise RuleError(name, "expected a list of strings, not one string")
            set_(self, name, tuple(value))
        for name in ("threshold", "clear", "for_seconds", "clear_for_seconds"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, float(value))
        _check_rule(self)

    @property
    def trigger(self) -> float:
        """The threshold in force (0.5 for conditions, which are 0 or 1)."""
        return 0.5 if self.threshold is None else self.threshold

    @property
    def clear_at(self) -> float:
        if self.clear is not None:
            return self.clear
        if self.threshold is None:
            return 0.5
        margin = abs(self.threshold) * 0.1
        return self.threshold - margin if self.op == ">" else self.threshold + margin

    @property
    def clear_after(self) -> float:
        if self.clear_for_seconds is not None:
            return self.clear_for_seconds
        return max(self.for_seconds, MIN_CLEAR_FOR)


def _unknown_metric(value: str) -> str:
    allowed = [m.value for m in Metric]
    close = difflib.get_close_matches(value, allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown metric {value!r} ({hint}allowed: {', '.join(allowed)})"


def _check_rule(r: Rule) -> None:
    if not isinstance(r.name, str) or not r.name.strip():
        raise RuleError("name", "must not be empty")
    if r.name != r.name.strip() or CONTROL_CHARS.search(r.name):
        raise RuleError("name", "must not start or end with whitespace or contain control characters")
    if r.op not in (">", "<"):
        raise RuleError("op", f'must be ">" or "<", not {r.op!r}')
    m = r.metric
    if m.condition:
        if r.op != ">":
            raise RuleError("op", f"{m} is a condition (true or false): it takes no op")
        if r.threshold is not None:
            raise RuleError("threshold", f"{m} is a condition (true or false): it takes no threshold")
        if r.clear is not None:
            raise RuleError("clear", f"{m} is a condition (true or false): it takes no clear value")
    else:
        if r.threshold is None:
            raise RuleError("threshold", f"required for {m}")
        if not math.isfinite(r.threshold):
            raise RuleError("threshold", "must be a finite number")
        if m.unit == "%" and not 0 <= r.threshold <= 100:
            raise RuleError("threshold", "must be a percentage, 0 to 100")
        if m.unit == "B/s" and r.threshold < 0:
            raise RuleError("threshold", "must be a rate >= 0 (bytes/s)")
        if r.clear is not None:
            if not math.isfinite(r.clear):
                raise RuleError("clear", "must be a finite number")
            if r.op == ">" and r.clear > r.threshold:
                raise RuleError("clear", f"must be <= the threshold ({r.threshold:g}) for a > rule")
            if r.op == "<" and r.clear < r.threshold:
                raise RuleError("clear", f"must be >= the threshold ({r.threshold:g}) for a < rule")
    for key, value in (("for", r.for_seconds), ("clear_for", r.clear_for_seconds)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise RuleError(key, "must be a duration >= 0")
    if m.kind == "host":
        if r.vms:
            raise RuleError("vms", f"{m} is about hosts: VM name patterns do not apply (use hosts or group)")
        if r.tags:
            raise RuleError("tags", f"{m} is about hosts: VM tags do not apply (use hosts or group)")
    for key, patterns in (("vms", r.vms), ("hosts", r.hosts), ("tags", r.tags)):
        if any(not isinstance(p, str) or not p.strip() for p in patterns):
            raise RuleError(key, "entries must be non-empty strings")
    if r.group and any(not part.strip() for part in r.group.split("/")):
        raise RuleError("group", 'must be slash-separated non-empty names, e.g. "dc1/rack3"')


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("host-unreachable", Metric.HOST_UNREACHABLE, for_seconds=30.0, severity=Severity.CRITICAL),
    Rule("vm-crashed", Metric.VM_CRASHED, severity=Severity.CRITICAL),
    Rule("vm-io-error", Metric.VM_IO_ERROR, severity=Severity.CRITICAL),
    Rule("host-memory", Metric.HOST_MEM, threshold=90.0, for_seconds=60.0, severity=Severity.WARNING),
)
"""What ships: a host that stays unreachable for 30 s (a blip that reconnects at once is not an alert),
a crashed VM and a VM paused on an I/O error (at once, from the event), a host above 90% memory for a
minute (resolves below 81% for a minute)."""


def effective_rules(configured: Sequence[Rule], *, defaults: bool = True) -> tuple[Rule, ...]:
    """The rules in force: the defaults (unless `defaults` is false), each replaced in place by a
    configured rule of the same name, then the other configured rules in their order."""
    by_name = {r.name: r for r in configured}
    out = [by_name.pop(d.name, d) for d in DEFAULT_RULES] if defaults else []
    out += [r for r in configured if r.name in by_name]
    return tuple(out)


_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|secs|sec|s|mins|min|m|hrs|hr|h|d)?\s*", re.I)
_SECONDS = {"ms": 0.001, "s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60, "h": 3600, "hr": 3600}
_SECONDS |= {"hrs": 3600, "d": 86400, "": 1}


def parse_duration(value: str | float) -> float | None:
    """Seconds from a number (seconds) or a string: "60", "60s", "60 s", "5m", "1h30m", "500ms";
    None when it is none of these or negative."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) and value >= 0 else None
    total, end, parts = 0.0, 0, 0
    for m in _DURATION_PART.finditer(value):
        if m.start() != end or m.end() == m.start():
            return None
        unit = (m.group(2) or "").lower()
        if not unit and parts:
            return None  # "1m 30": a bare number only alone
        total += float(m.group(1)) * _SECONDS[unit]
        end, parts = m.end(), parts + 1
    return total if parts and end == len(value) else None


_RATE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])(?:i?b)?|b)?\s*(?:/\s*s)?\s*", re.I)
_POWERS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_rate(value: str | float) -> float | None:
    """Bytes/s from a number or a string: "10M", "10 MiB/s", "10MB/s" (K, M, G, T are binary: KiB ...),
    "500 B/s"; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) and value >= 0 else None
    m = _RATE.fullmatch(value)
    return float(m.group(1)) * _POWERS[(m.group(2) or "").lower()] if m else None


# ----------------------------------------------------------------------------------------------- alerts

_alert_ids = itertools.count(1)


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
    metric: Metric
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
        d["severity"], d["metric"], d["subject"] = str(self.severity), str(self.metric), self.subject
        return d

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


def record_alert(activity: ActivityLog, alert: Alert) -> Entry:
    """Write a transition to the task/event log: a firing warning or critical as a failure (it stands
    out), everything else as an event."""
    action = f"alert {alert.rule}" if alert.firing else f"resolved {alert.rule}"
    at = alert.fired_at if alert.firing else (alert.resolved_at or alert.fired_at)
    if alert.firing and alert.severity != Severity.INFO:
        return activity.add(
            alert.host, alert.vm, action, "failed", time=at, message=alert.message, error=alert.message
        )
    return activity.add(alert.host, alert.vm, action, "event", time=at, message=alert.message)


# ----------------------------------------------------------------------------------------------- engine


class _Event(Protocol):
    """What on_event reads (vimtui.core.poll.session.HostEvent has it)."""

    @property
    def time(self) -> float: ...
    @property
    def host(self) -> str: ...
    @property
    def vm(self) -> str: ...
    @property
    def uuid(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def detail(self) -> str: ...


class _Tracker:
    """A subject with a pending or firing alert of one rule (the only per-subject state kept)."""

    __slots__ = (
        "key",
        "host",
        "vm",
        "uuid",
        "since",
        "value",
        "alert",
        "clear_since",
        "seen",
        "detail",
    )

    def __init__(self, key: str, host: str, vm: str, uuid: str, since: float, value: float | None) -> None:
        self.key = key
        self.host = host
        self.vm = vm
        self.uuid = uuid
        self.since = since
        self.value = value
        self.alert: Alert | None = None
        """The firing alert; None while pending."""
        self.clear_since: float | None = None
        self.seen = 0
        self.detail = ""
        """Extra words for the message (a host's status message)."""


_Hot = tuple[
    "_Compiled",
    dict[str, bool] | None,
    frozenset[str],
    int,
    Callable[[Any], float | None] | None,
    bool,
    float,
    bool,
    dict[str, "_Tracker"],
]
"""A rule as evaluate's loop reads it: the rule, its name-match cache (None: every name), its tags, the
VmRates index of its metric (-1: a condition), the value function of a condition, whether a running VM
is quiet for it (crashed, io_error: no call for the usual case), trigger, op is ">", its trackers."""


class _Compiled:
    """A rule ready for the hot loop: its scope as regexes and caches, its numbers resolved."""

    __slots__ = (
        "rule",
        "metric",
        "gt",
        "trigger",
        "clear",
        "for_s",
        "clear_for",
        "rate_index",
        "value",
        "hold",
        "names",
        "name_re",
        "host_re",
        "group",
        "tags",
        "trackers",
        "hot",
    )

    def __init__(self, rule: Rule, value: Callable[[Any], float | None] | None) -> None:
        self.rule = rule
        self.metric = rule.metric
        self.gt = rule.op == ">"
        self.trigger = rule.trigger
        self.clear = rule.clear_at
        self.for_s = rule.for_seconds
        self.clear_for = rule.clear_after
        self.rate_index = _RATE_INDEX.get(rule.metric, -1)
        self.value = value
        """Value of a subject for the non-rate metrics; None from it means unknown: hold (no change)."""
        self.hold = rule.metric in _CONDITIONS or rule.metric.kind == "host"
        """Unknown holds for conditions and hosts; a VM rate that is unknown counts as quiet (a stopped
        VM's CPU alert resolves)."""
        self.name_re = _patterns(rule.vms)
        self.names: dict[str, bool] | None = None if self.name_re is None else {}
        self.host_re = _patterns(rule.hosts)
        self.group = rule.group
        self.tags = frozenset(rule.tags)
        self.trackers: dict[str, _Tracker] = {}
        """Subject key -> its pending or firing alert (the same dict for the rule's life)."""
        self.hot: _Hot = (
            self,
            self.names,
            self.tags,
            self.rate_index,
            value,
            rule.metric in (Metric.VM_CRASHED, Metric.VM_IO_ERROR),
            self.trigger,
            self.gt,
            self.trackers,
        )
        """What evaluate's loop reads, unpacked at once (faster than as many attribute reads)."""

    def match_name(self, name: str) -> bool:
        names = self.names
        assert names is not None and self.name_re is not None
        if len(names) > 100_000:
            names.clear()
        ok = names[name] = self.name_re(name) is not None
        return ok

    def host_in_scope(self, host: str, group: str) -> bool:
        if self.host_re is not None and self.host_re(host) is None:
            return False
        g = self.group
        return not g or group == g or group.startswith(g + "/")

    def vm_in_scope(self, vm: VmState, group: str) -> bool:
        if not self.host_in_scope(vm.host, group):
            return False
        if self.name_re is not None and self.name_re(vm.name) is None:
            return False
        return not self.tags or _has_tag(vm, self.tags)

    def breach(self, v: float | None) -> bool:
        return v is not None and (v > self.trigger if self.gt else v < self.trigger)

    def quiet(self, v: float | None) -> bool:
        """Clear of the hysteresis band (or no value)."""
        return v is None or (v <= self.clear if self.gt else v >= self.clear)


def _patterns(patterns: Sequence[str]) -> Callable[[str], re.Match[str] | None] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match


def _has_tag(vm: VmState, tags: frozenset[str]) -> bool:
    d = vm.details
    return d is not None and not tags.isdisjoint(d.tags)


_UNREACHABLE = frozenset({HostStatus.UNREACHABLE, HostStatus.AUTH_FAILED, HostStatus.HOSTKEY_MISMATCH})


def _host_unreachable(h: HostState) -> float | None:
    status = h.status
    if status in _UNREACHABLE:
        return 1.0
    return None if status == HostStatus.CONNECTING else 0.0


def _host_cpu(h: HostState) -> float | None:
    r = h.rates
    return None if r is None or not h.status.healthy else r.cpu_pct


def _host_mem(h: HostState) -> float | None:
    r = h.rates
    return None if r is None or not h.status.healthy else r.mem_pct


def _vm_crashed(vm: VmState) -> float | None:
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


def _vm_io_error(vm: VmState) -> float | None:
    if vm.state != "paused":
        return 0.0
    s = vm.sample
    if s is None or s.state != _PAUSED:
        return None
    return 1.0 if s.reason == _PAUSED_IOERROR else 0.0


class AlertEngine:
    """Evaluates rules against FleetStates and events; keeps what is pending and firing.

    Not thread-safe: call it from the event loop (where FleetStates are published and events arrive).
    """

    def __init__(self, rules: Iterable[Rule], *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        """Wall time, when evaluate or on_event are not given one."""
        self._agent: dict[str, bool] = {}
        """VM key -> its guest agent is connected, from agent events (absent: never heard)."""
        self._state: FleetState | None = None
        self._groups: dict[str, str] = {}
        self._tick = 0
        self._active: dict[int, Alert] = {}
        self._rules: tuple[Rule, ...] = ()
        self._compiled: list[_Compiled] = []
        self.set_rules(rules)

    # -- rules ------------------------------------------------------------------------------------

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The enabled rules, in order."""
        return self._rules

    def set_rules(self, rules: Iterable[Rule], now: float | None = None) -> list[Alert]:
        """Use these rules from now on (a config reload). An unchanged rule keeps its pending and firing
        alerts; the firing alerts of a rule that changed or went resolve (reason "rule changed")."""
        rules = tuple(r for r in rules if r.enabled)
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise RuleError("name", f"two rules named {dup!r}")
        old = {c.rule: c for c in self._compiled}
        out: list[Alert] = []
        self._compiled = []
        self._host_rules: list[_Compiled] = []
        self._vm_rules: list[_Compiled] = []
        self._by_metric: dict[Metric, list[_Compiled]] = {}
        self._scope_cache: dict[tuple[str, str], list[_Hot]] = {}
        for rule in rules:
            c = old.pop(rule, None) or _Compiled(rule, self._value_fn(rule.metric))
            self._compiled.append(c)
            (self._host_rules if rule.metric.kind == "host" else self._vm_rules).append(c)
            self._by_metric.setdefault(rule.metric, []).append(c)
        if old:
            t = self.clock() if now is None else now
            for c in old.values():
                for tr in list(c.trackers.values()):
                    if tr.alert is not None:
                        out.append(self._resolve(c, tr, t, "rule changed", None))
        self._rules = rules
        return out

    def _value_fn(self, metric: Metric) -> Callable[[Any], float | None] | None:
        if metric in _RATE_INDEX:
            return None
        if metric == Metric.VM_AGENT_GONE:
            agent = self._agent

            def agent_gone(vm: VmState) -> float | None:
                if vm.state != "running":
                    return 0.0
                connected = agent.get(vm.key)
                return None if connected is None else 0.0 if connected else 1.0

            return agent_gone
        fns: dict[Metric, Callable[[Any], float | None]] = {
            Metric.HOST_CPU: _host_cpu,
            Metric.HOST_MEM: _host_mem,
            Metric.HOST_UNREACHABLE: _host_unreachable,
            Metric.VM_CRASHED: _vm_crashed,
            Metric.VM_IO_ERROR: _vm_io_error,
        }
        return fns[metric]

    # -- what is firing ---------------------------------------------------------------------------

    @property
    def active(self) -> list[Alert]:
        """The firing alerts, most severe first, then oldest first."""
        return sorted(self._active.values(), key=lambda a: (_SEVERITY_ORDER[a.severity], a.fired_at, a.id))

    def pending(self) -> list[tuple[str, str, float]]:
        """(rule, subject key, since) of each alert waiting for its `for` time (for tests and a status
        line; the engine never publishes pending alerts)."""
        return [
            (c.rule.name, t.key, t.since)
            for c in self._compiled
            for t in c.trackers.values()
            if t.alert is None
        ]

    # -- evaluation -------------------------------------------------------------------------------

    def evaluate(self, state: FleetState, now: float | None = None) -> list[Alert]:
        """Advance every rule over `state`; the transitions of this call (fired, then resolved alerts, in
        rule order). `now` is the wall time the values hold at (default: the clock)."""
        now = self.clock() if now is None else now
        self._tick += 1
        tick = self._tick
        self._state = state
        out: list[Alert] = []
        hosts = state.hosts
        if len(self._groups) != len(hosts) or any(self._groups.get(h.name) != h.group for h in hosts):
            self._groups = {h.name: h.group for h in hosts}

        for c in self._host_rules:
            fn = c.value
            assert fn is not None
            for h in hosts:
                if c.host_in_scope(h.name, h.group):
                    self._advance(c, h.name, h.name, "", "", fn(h), now, tick, out, h.message)

        if self._vm_rules:
            cache = self._scope_cache
            per_host: dict[str, list[_Hot]] = {}
            for h in hosts:
                scoped = cache.get((h.name, h.group))
                if scoped is None:
                    scoped = cache[(h.name, h.group)] = [
                        c.hot for c in self._vm_rules if c.host_in_scope(h.name, h.group)
                    ]
                per_host[h.name] = scoped
            advance = self._advance
            v: float | None
            # the hot loop: every VM, every rule in scope of its host; a quiet VM without an alert costs
            # a few local reads and one comparison per rule (bench/alerts.py)
            for key, vm in state.vms.items():
                rules = per_host.get(vm.host)
                if not rules or vm.stale:  # stale: last known values of a host not answering: hold
                    continue
                rates: Any = vm.rates
                name = vm.name
                running = vm.state == "running"
                for c, names, tags, i, fn, run_quiet, trigger, gt, trackers in rules:
                    if names is not None:
                        ok = names.get(name)
                        if ok is None:
                            ok = c.match_name(name)
                        if not ok:
                            continue
                    if tags and not _has_tag(vm, tags):
                        continue
                    if i >= 0:
                        v = None if rates is None else rates[i]
                    elif run_quiet and running:
                        v = 0.0
                    else:
                        v = fn(vm)  # type: ignore[misc]  # not None where i < 0
                    if trackers and key in trackers:
                        advance(c, key, vm.host, name, vm.uuid, v, now, tick, out)
                    elif v is not None and (v > trigger if gt else v < trigger):
                        advance(c, key, vm.host, name, vm.uuid, v, now, tick, out)

        self._sweep(state, now, tick, out)
        return out

    def _advance(
        self,
        c: _Compiled,
        key: str,
        host: str,
        vm: str,
        uuid: str,
        v: float | None,
        now: float,
        tick: int,
        out: list[Alert],
        detail: str = "",
    ) -> None:
        """One rule, one subject, one value: the state machine (quiet -> pending -> firing -> quiet)."""
        t = c.trackers.get(key)
        if t is None:
            if not c.breach(v):
                return
            t = c.trackers[key] = _Tracker(key, host, vm, uuid, now, v)
        t.seen = tick
        if v is None and c.hold:
            return
        t.vm = vm or t.vm
        if detail or c.metric.kind == "host":  # a VM's keeps what its event said
            t.detail = detail
        if t.alert is None:  # pending: needs an unbroken breach for `for`
            if not c.breach(v):
                del c.trackers[key]
                return
            t.value = v
            if now - t.since >= c.for_s:
                out.append(self._fire(c, t, now))
        elif c.quiet(v):
            if t.clear_since is None:
                t.clear_since = now
            t.value = v
            if now - t.clear_since >= c.clear_for:
                out.append(self._resolve(c, t, now, "cleared", v))
        else:
            t.clear_since = None
            t.value = v

    def _sweep(self, state: FleetState, now: float, tick: int, out: list[Alert]) -> None:
        """Subjects with an alert that this evaluation did not reach: gone, out of scope, or on hold."""
        vms = state.vms
        where: dict[str, str] | None = None
        for c in self._compiled:
            if not c.trackers:
                continue
            for key, t in list(c.trackers.items()):
                if t.seen == tick:
                    continue
                if c.metric.kind == "host":
                    if key not in self._groups:
                        reason = "host removed"
                    else:
                        reason = "host out of the rule's scope"
                else:
                    vm = vms.get(key)
                    if vm is not None:
                        if vm.stale or c.vm_in_scope(vm, self._groups.get(vm.host, "")):
                            continue  # its host is not answering, or its value is unknown: hold
                        reason = "VM out of the rule's scope"
                    else:
                        if where is None:
                            where = {v.uuid: v.host for v in vms.values()}
                        other = where.get(t.uuid)
                        if other is not None and other != t.host:
                            reason = f"VM moved to {other}"
                        elif t.host not in self._groups:
                            reason = "host removed"
                        else:
                            reason = "VM no longer exists"
                        self._agent.pop(key, None)
                if t.alert is None:
                    del c.trackers[key]
                else:
                    out.append(self._resolve(c, t, now, reason, None))

    def _fire(self, c: _Compiled, t: _Tracker, now: float) -> Alert:
        r = c.rule
        alert = Alert(
            id=next(_alert_ids),
            rule=r.name,
            severity=r.severity,
            kind=r.metric.kind,
            host=t.host,
            vm=t.vm,
            vm_uuid=t.uuid,
            metric=r.metric,
            value=t.value,
            threshold=r.threshold,
            op=r.op,
            state="firing",
            since=t.since,
            fired_at=now,
            message=_fire_message(r, t, now),
        )
        t.alert = alert
        t.clear_since = None
        self._active[alert.id] = alert
        return alert

    def _resolve(self, c: _Compiled, t: _Tracker, now: float, reason: str, v: float | None) -> Alert:
        assert t.alert is not None
        c.trackers.pop(t.key, None)
        self._active.pop(t.alert.id, None)
        return replace(
            t.alert,
            value=v,
            state="resolved",
            resolved_at=now,
            reason=reason,
            message=_resolve_message(c, t, now, reason, v),
        )

    # -- events -----------------------------------------------------------------------------------

    def on_event(self, event: _Event, now: float | None = None) -> list[Alert]:
        """A libvirt event (vimtui.core.poll.session.HostEvent): a crash or a pause on an I/O error fires at
        once (or starts the rule's `for` time); agent (dis)connections are remembered for vm.agent_gone.
        Call it from Fleet's event subscription, before the FleetState that follows is evaluated."""
        now = event.time if now is None else now
        kind, detail = event.kind, event.detail
        key = f"{event.host}/{event.uuid}"
        if kind == "agent-connected" or kind == "agent-disconnected":
            self._agent[key] = kind == "agent-connected"
            return []
        why = ""
        if kind == "crashed":
            metric, why = Metric.VM_CRASHED, "guest panicked" if detail == _CRASHED_PANICKED else ""
        elif kind == "stopped" and detail in (_STOPPED_CRASHED, _STOPPED_FAILED):
            metric = Metric.VM_CRASHED
            why = "its QEMU process ended unexpectedly" if detail == _STOPPED_FAILED else ""
        elif kind == "suspended" and detail == _SUSPENDED_IOERROR:
            metric = Metric.VM_IO_ERROR
        else:
            return []
        rules = self._by_metric.get(metric)
        if not rules:
            return []
        vm = self._state.vms.get(key) if self._state is not None else None
        group = self._groups.get(event.host, "")
        out: list[Alert] = []
        for c in rules:
            if not c.host_in_scope(event.host, group):
                continue
            if c.name_re is not None and c.name_re(event.vm) is None:
                continue
            if c.tags and (vm is None or not _has_tag(vm, c.tags)):
                continue
            t = c.trackers.get(key)
            if t is None:
                t = c.trackers[key] = _Tracker(key, event.host, event.vm, event.uuid, now, 1.0)
                t.seen = self._tick
            t.value = 1.0
            t.detail = why
            if t.alert is None:
                if now - t.since >= c.for_s:
                    out.append(self._fire(c, t, now))
            else:
                t.clear_since = None  # it happened again: the quiet time starts over
        return out


# -------------------------------------------------------------------------------------------- messages


def _duration_text(seconds: float) -> str:
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{seconds / 3600:.1f} h"


def _value_text(metric: Metric, value: float | None) -> str:
    if value is None:
        return "unknown"
    if metric.unit == "%":
        return f"{value:.0f}%"
    if metric.unit == "B/s":
        for unit, power in (("GiB/s", 2**30), ("MiB/s", 2**20), ("KiB/s", 2**10)):
            if value >= power:
                return f"{value / power:.1f} {unit}"
        return f"{value:.0f} B/s"
    return "yes" if value else "no"


def _subject(t: _Tracker) -> str:
    return f"{t.host}/{t.vm}" if t.vm else t.host


def _fire_message(r: Rule, t: _Tracker, now: float) -> str:
    held = now - t.since
    after = f" for {_duration_text(held)}" if held >= 1 else ""
    label = _LABELS[r.metric]
    if r.metric.condition:
        extra = f": {t.detail}" if t.detail else ""
        return f"{_subject(t)} {label}{after}{extra}"
    m = r.metric
    return f"{_subject(t)} {label} {_value_text(m, t.value)} {r.op} {_value_text(m, r.threshold)}{after}"


def _resolve_message(c: _Compiled, t: _Tracker, now: float, reason: str, v: float | None) -> str:
    r = c.rule
    label = _LABELS[r.metric]
    if reason != "cleared":
        return f"{_subject(t)} {label}: resolved, {reason}"
    quiet = _duration_text(now - t.clear_since) if t.clear_since is not None else "0 s"
    if r.metric == Metric.HOST_UNREACHABLE:
        return f"{_subject(t)} reachable again"
    if r.metric.condition:
        return f"{_subject(t)} no longer {label}"
    if v is None:
        return f"{_subject(t)} {label} no longer reported (for {quiet})"
    back = "<=" if c.gt else ">="
    m = r.metric
    return f"{_subject(t)} {label} back to {_value_text(m, v)} ({back} {_value_text(m, c.clear)} for {quiet})"
