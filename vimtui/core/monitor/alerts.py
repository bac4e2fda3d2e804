"""Alerts: the engine that evaluates rules (rules.py) over the fleet's metrics and libvirt events.

`AlertEngine.evaluate(state, now)` runs on the event loop for every published FleetState (every VM, every
rule), so it is written for that: scopes are compiled once per rule (one regex per pattern list, name
matches cached per rule), a VM with no alert and a value on the quiet side costs a few comparisons, and
only subjects with a pending or firing alert hold state (bench/alerts.py measures it). VM crashes and
I/O-error pauses also arrive as libvirt events (`on_event`), which fire at once rather than at the next
tick. A subject that disappears (VM deleted or migrated away, host removed from the inventory) resolves
its alerts with a reason instead of leaving them firing forever.

A metric's value comes from its declaration (vimtui.core.metrics): a VmRates field read by position in
the hot loop, or its value function; vm.agent_gone from the agent events this engine follows. Nothing
here imports Textual or libvirt (the libvirt codes used are copied below by value).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from vimtui.core import metrics
from vimtui.core.model import Alert, FleetState, Severity, VmState
from vimtui.core.monitor.compiled import (
    Compiled,
    Hot,
    Tracker,
    ValueFn,
    fire_message,
    has_tag,
    resolve_message,
)
from vimtui.core.monitor.rules import (
    DEFAULT_RULES,
    MIN_CLEAR_FOR,
    Rule,
    RuleError,
    alert_metric_names,
    effective_rules,
    parse_duration,
    parse_rate,
)

if TYPE_CHECKING:
    from vimtui.core.fleet.activity import ActivityLog, Entry

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_RULES",
    "MIN_CLEAR_FOR",
    "Alert",
    "AlertEngine",
    "Rule",
    "RuleError",
    "Severity",
    "alert_metric_names",
    "effective_rules",
    "parse_duration",
    "parse_rate",
    "record_alert",
]

# lifecycle event details, as HostEvent.detail carries them (str of the int)
_STOPPED_CRASHED, _STOPPED_FAILED = "2", "5"  # VIR_DOMAIN_EVENT_STOPPED_{CRASHED,FAILED}
_SUSPENDED_IOERROR = "2"  # VIR_DOMAIN_EVENT_SUSPENDED_IOERROR
_CRASHED_PANICKED = "0"  # VIR_DOMAIN_EVENT_CRASHED_PANICKED

_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}

# ----------------------------------------------------------------------------------------------- alerts

_alert_ids = itertools.count(1)


def _quiet_running(hot: Hot) -> bool:
    """A rule for which a running VM is quiet (value 0, not a breach) whatever its name and tags."""
    _c, names, tags, _i, _fn, run_quiet, trigger, gt, _trackers = hot
    return run_quiet and names is None and not tags and not (0.0 > trigger if gt else 0.0 < trigger)


def _clock_free(hot: Hot) -> bool:
    """A rule whose value is a function of the VmState alone (not of the clock, nor of events): a rates
    field, or a condition of QUIET_WHEN_RUNNING (state and reason)."""
    _c, _names, _tags, i, _fn, run_quiet, _trigger, _gt, _trackers = hot
    return i >= 0 or run_quiet


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
        self._compiled: list[Compiled] = []
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
        self._host_rules: list[Compiled] = []
        self._vm_rules: list[Compiled] = []
        self._by_metric: dict[str, list[Compiled]] = {}
        self._scope_cache: dict[tuple[str, str], list[Hot]] = {}
        self._settled: dict[str, VmState] = {}
        """VMs (not running) found quiet by every rule of their host at the last evaluate, each with the
        VmState it was then (see evaluate)."""
        for rule in rules:
            c = old.pop(rule, None) or Compiled(rule, self._value_fn(rule.spec))
            self._compiled.append(c)
            (self._host_rules if c.subject == "host" else self._vm_rules).append(c)
            self._by_metric.setdefault(rule.metric, []).append(c)
        if old:
            t = self.clock() if now is None else now
            for c in old.values():
                for tr in list(c.trackers.values()):
                    if tr.alert is not None:
                        out.append(self._resolve(c, tr, t, "rule changed", None))
        self._rules = rules
        return out

    def _value_fn(self, metric: metrics.Metric) -> ValueFn | None:
        """How the engine reads a rule's metric: None for a VM rates field (read by position), the
        agent events for vm.agent_gone, else the metric's own value."""
        if metric.rates_index >= 0:
            return None
        if metric.events:
            agent = self._agent

            def agent_gone(vm: VmState, _now: float) -> float | None:
                if vm.state != "running":
                    return 0.0
                connected = agent.get(vm.key)
                return None if connected is None else 0.0 if connected else 1.0

            return agent_gone
        return metric.getter

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
            self._settled = {}  # a host in another group: other rules may hold for its VMs

        for c in self._host_rules:
            fn = c.value
            assert fn is not None
            for h in hosts:
                if c.host_in_scope(h.name, h.group):
                    self._advance(c, h.name, h.name, "", "", fn(h, now), now, tick, out, h.message)

        if self._vm_rules:
            cache = self._scope_cache
            per_host: dict[str, list[Hot]] = {}
            for h in hosts:
                scoped = cache.get((h.name, h.group))
                if scoped is None:
                    scoped = cache[(h.name, h.group)] = [
                        c.hot for c in self._vm_rules if c.host_in_scope(h.name, h.group)
                    ]
                per_host[h.name] = scoped
            # a running VM is quiet (value 0) for every rule of the shipped kind (crashed, io_error): where
            # each rule of its host is one, for every VM, a running VM none of them tracks needs no pass
            quiet_running = {
                host for host, rules in per_host.items() if rules and all(map(_quiet_running, rules))
            }
            # Where each rule of a host reads a value that is the VmState's alone (a rates field, or a
            # state condition such as crashed), a VM whose VmState is the same object as at the last
            # evaluate, and which was quiet then and has no tracker now, is quiet again: skipped. A
            # stopped VM's VmState stays the same object from poll to poll (HostVms.apply).
            clock_free = {host for host, rules in per_host.items() if rules and all(map(_clock_free, rules))}
            settled = self._settled
            now_settled = self._settled = {}
            tracked: set[str] = set()
            for c in self._vm_rules:
                tracked.update(c.trackers)  # (evaluating a VM changes only its own trackers)
            advance = self._advance
            v: float | None
            # the hot loop: every VM, every rule in scope of its host; a quiet VM without an alert costs
            # a few local reads and one comparison per rule (bench/alerts.py)
            for key, vm in state.vms.items():
                rules = per_host.get(vm.host)
                if not rules or vm.stale:  # stale: last known values of a host not answering: hold
                    continue
                running = vm.state == "running"
                if running and vm.host in quiet_running and key not in tracked:
                    continue  # what the loop below would find for it: nothing
                if settled.get(key) is vm and key not in tracked:
                    now_settled[key] = vm
                    continue  # as at the last evaluate: nothing
                rates: Any = vm.rates
                name = vm.name
                for c, names, tags, i, fn, run_quiet, trigger, gt, trackers in rules:
                    if names is not None:
                        ok = names.get(name)
                        if ok is None:
                            ok = c.match_name(name)
                        if not ok:
                            continue
                    if tags and not has_tag(vm, tags):
                        continue
                    if i >= 0:
                        v = None if rates is None else rates[i]
                    elif run_quiet and running:
                        v = 0.0
                    else:
                        v = fn(vm, now)  # type: ignore[misc]  # not None where i < 0
                    if trackers and key in trackers:
                        advance(c, key, vm.host, name, vm.uuid, v, now, tick, out)
                    elif v is not None and (v > trigger if gt else v < trigger):
                        advance(c, key, vm.host, name, vm.uuid, v, now, tick, out)
                if not running and vm.host in clock_free and not any(key in r[8] for r in rules):
                    now_settled[key] = vm

        self._sweep(state, now, tick, out)
        return out

    def _advance(
        self,
        c: Compiled,
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
            t = c.trackers[key] = Tracker(key, host, vm, uuid, now, v)
        t.seen = tick
        if v is None and c.hold:
            return
        t.vm = vm or t.vm
        if detail or c.subject == "host":  # a VM's keeps what its event said
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
                if c.subject == "host":
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

    def _fire(self, c: Compiled, t: Tracker, now: float) -> Alert:
        r = c.rule
        alert = Alert(
            id=next(_alert_ids),
            rule=r.name,
            severity=r.severity,
            kind=c.subject,
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
            message=fire_message(r, t, now),
        )
        t.alert = alert
        t.clear_since = None
        self._active[alert.id] = alert
        return alert

    def _resolve(self, c: Compiled, t: Tracker, now: float, reason: str, v: float | None) -> Alert:
        assert t.alert is not None
        c.trackers.pop(t.key, None)
        self._active.pop(t.alert.id, None)
        return replace(
            t.alert,
            value=v,
            state="resolved",
            resolved_at=now,
            reason=reason,
            message=resolve_message(c, t, now, reason, v),
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
            metric, why = "vm.crashed", "guest panicked" if detail == _CRASHED_PANICKED else ""
        elif kind == "stopped" and detail in (_STOPPED_CRASHED, _STOPPED_FAILED):
            metric = "vm.crashed"
            why = "its QEMU process ended unexpectedly" if detail == _STOPPED_FAILED else ""
        elif kind == "suspended" and detail == _SUSPENDED_IOERROR:
            metric = "vm.io_error"
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
            if c.tags and (vm is None or not has_tag(vm, c.tags)):
                continue
            t = c.trackers.get(key)
            if t is None:
                t = c.trackers[key] = Tracker(key, event.host, event.vm, event.uuid, now, 1.0)
                t.seen = self._tick
            t.value = 1.0
            t.detail = why
            if t.alert is None:
                if now - t.since >= c.for_s:
                    out.append(self._fire(c, t, now))
            else:
                t.clear_since = None  # it happened again: the quiet time starts over
        return out
