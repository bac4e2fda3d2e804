"""Alert rules: what an alert watches, its threshold, hold times and hysteresis, and the shipped defaults.

A `Rule` says which metric of which VMs or hosts to watch (a metric the registry declares as an alert
metric: vimtui.core.metrics), the threshold, how long it must hold before the alert fires
(`for_seconds`), and the hysteresis that keeps it from flapping: a firing alert resolves only once the
value has crossed back past `clear` (below the threshold for a ">" rule) and stayed there for
`clear_for_seconds`. A value between `clear` and the threshold changes nothing.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from vimtui.core import metrics
from vimtui.core.model import Severity
from vimtui.core.text import CONTROL_CHARS
from vimtui.core.units import parse_duration

__all__ = [
    "DEFAULT_RULES",
    "MIN_CLEAR_FOR",
    "Rule",
    "RuleError",
    "Severity",
    "alert_metric",
    "alert_metric_names",
    "effective_rules",
    "parse_duration",
    "parse_rate",
]

MIN_CLEAR_FOR = 10.0
"""Seconds a value must stay clear before an alert resolves, at least, when the rule does not say: an
alert that fires at once (for 0 s) would otherwise resolve at the first quiet sample."""


# ------------------------------------------------------------------------------------------------ rules


def alert_metric_names() -> tuple[str, ...]:
    """The metrics a rule can watch (the registry's alert metrics)."""
    return tuple(m.name for m in metrics.alert_metrics())


def alert_metric(name: str) -> metrics.Metric:
    """The alert metric called `name`; RuleError("metric") when there is none."""
    m = metrics.get(name)
    if m is None or not m.alert:
        raise RuleError("metric", _unknown_metric(name))
    return m


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
    metric: str
    """What is watched: an alert metric's name ("vm.cpu_pct"), or the metric itself."""
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
        name = self.metric.name if isinstance(self.metric, metrics.Metric) else self.metric
        set_(self, "metric", alert_metric(name if isinstance(name, str) else repr(name)).name)
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
    def spec(self) -> metrics.Metric:
        """The watched metric's declaration."""
        return alert_metric(self.metric)

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
    allowed = list(alert_metric_names())
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
    spec = r.spec
    m = r.metric
    if spec.condition:
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
        if spec.unit == "%" and not 0 <= r.threshold <= 100:
            raise RuleError("threshold", "must be a percentage, 0 to 100")
        if spec.unit == "B/s" and r.threshold < 0:
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
    if spec.subject == "host":
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
    Rule("host-unreachable", "host.unreachable", for_seconds=30.0, severity=Severity.CRITICAL),
    Rule("vm-crashed", "vm.crashed", severity=Severity.CRITICAL),
    Rule("vm-io-error", "vm.io_error", severity=Severity.CRITICAL),
    Rule("host-memory", "host.mem_pct", threshold=90.0, for_seconds=60.0, severity=Severity.WARNING),
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
