"""An alert rule compiled for the engine's hot loop, a subject's pending or firing state, and the alert
messages (the engine is alerts.py)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from typing import Any

from vimtui.core import metrics
from vimtui.core.model import Alert, VmState
from vimtui.core.monitor.rules import Rule
from vimtui.core.units import format_bytes, format_duration

ValueFn = Callable[[Any, float], "float | None"]
"""A subject's value of a metric at a wall time (vimtui.core.metrics.Value)."""
QUIET_WHEN_RUNNING = frozenset({"vm.crashed", "vm.io_error"})
"""Conditions that a running VM never has: the hot loop skips their value function for it."""


class Tracker:
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


Hot = tuple[
    "Compiled",
    dict[str, bool] | None,
    frozenset[str],
    int,
    ValueFn | None,
    bool,
    float,
    bool,
    dict[str, "Tracker"],
]
"""A rule as evaluate's loop reads it: the rule, its name-match cache (None: every name), its tags, the
VmRates index of its metric (-1: a condition), the value function of a condition, whether a running VM
is quiet for it (crashed, io_error: no call for the usual case), trigger, op is ">", its trackers."""


class Compiled:
    """A rule ready for the hot loop: its scope as regexes and caches, its numbers resolved."""

    __slots__ = (
        "rule",
        "metric",
        "subject",
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

    def __init__(self, rule: Rule, value: ValueFn | None) -> None:
        self.rule = rule
        self.metric = rule.metric
        self.gt = rule.op == ">"
        self.trigger = rule.trigger
        self.clear = rule.clear_at
        self.for_s = rule.for_seconds
        self.clear_for = rule.clear_after
        spec = rule.spec
        self.subject = spec.subject
        self.rate_index = spec.rates_index
        self.value = value
        """Value of a subject for the non-rate metrics; None from it means unknown: hold (no change)."""
        self.hold = spec.condition or spec.subject == "host"
        """Unknown holds for conditions and hosts; a VM rate that is unknown counts as quiet (a stopped
        VM's CPU alert resolves)."""
        self.name_re = patterns(rule.vms)
        self.names: dict[str, bool] | None = None if self.name_re is None else {}
        self.host_re = patterns(rule.hosts)
        self.group = rule.group
        self.tags = frozenset(rule.tags)
        self.trackers: dict[str, Tracker] = {}
        """Subject key -> its pending or firing alert (the same dict for the rule's life)."""
        self.hot: Hot = (
            self,
            self.names,
            self.tags,
            self.rate_index,
            value,
            rule.metric in QUIET_WHEN_RUNNING,
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
        return not self.tags or has_tag(vm, self.tags)

    def breach(self, v: float | None) -> bool:
        return v is not None and (v > self.trigger if self.gt else v < self.trigger)

    def quiet(self, v: float | None) -> bool:
        """Clear of the hysteresis band (or no value)."""
        return v is None or (v <= self.clear if self.gt else v >= self.clear)


def patterns(patterns: Sequence[str]) -> Callable[[str], re.Match[str] | None] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match


def has_tag(vm: VmState, tags: frozenset[str]) -> bool:
    d = vm.details
    return d is not None and not tags.isdisjoint(d.tags)


# -------------------------------------------------------------------------------------------- messages


def _duration_text(seconds: float) -> str:
    return format_duration(round(seconds))


def _value_text(metric: metrics.Metric, value: float | None) -> str:
    if value is None:
        return "unknown"
    if metric.unit == "%":
        return f"{value:.0f}%"
    if metric.unit == "B/s":
        return format_bytes(value) + "/s"
    if metric.condition:
        return "yes" if value else "no"
    return f"{value:g}{metric.unit}"


def _subject(t: Tracker) -> str:
    return f"{t.host}/{t.vm}" if t.vm else t.host


def fire_message(r: Rule, t: Tracker, now: float) -> str:
    held = now - t.since
    after = f" for {_duration_text(held)}" if held >= 1 else ""
    m = r.spec
    if m.condition:
        extra = f": {t.detail}" if t.detail else ""
        return f"{_subject(t)} {m.label}{after}{extra}"
    return f"{_subject(t)} {m.label} {_value_text(m, t.value)} {r.op} {_value_text(m, r.threshold)}{after}"


def resolve_message(c: Compiled, t: Tracker, now: float, reason: str, v: float | None) -> str:
    m = c.rule.spec
    label = m.label
    if reason != "cleared":
        return f"{_subject(t)} {label}: resolved, {reason}"
    quiet = _duration_text(now - t.clear_since if t.clear_since is not None else 0.0)
    if m.name == "host.unreachable":
        return f"{_subject(t)} reachable again"
    if m.condition:
        return f"{_subject(t)} no longer {label}"
    if v is None:
        return f"{_subject(t)} {label} no longer reported (for {quiet})"
    back = "<=" if c.gt else ">="
    return f"{_subject(t)} {label} back to {_value_text(m, v)} ({back} {_value_text(m, c.clear)} for {quiet})"
