"""The `[alerts]` table and its `[[alerts.rules]]`: read into `AlertsConfig` and `Rule`s, and written back."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from vimtui.core import metrics
from vimtui.core.config.checks import Checker, group_problem, positive, toml_type
from vimtui.core.config.locate import KeyPath
from vimtui.core.config.model import AlertsConfig
from vimtui.core.monitor.alerts import (
    DEFAULT_RULES,
    Rule,
    RuleError,
    Severity,
    alert_metric_names,
    parse_duration,
    parse_rate,
)

_ALERT_KEYS = ("defaults", "hook", "hook_timeout", "rules")
_DEFAULT_RULES = {r.name: r for r in DEFAULT_RULES}
_DURATION_HINT = 'expected a duration such as "60s", "5m", "1h30m" or a number of seconds'


def alerts_from_table(check: Checker, table: object) -> AlertsConfig | None:
    """`[alerts]`: its own keys, then each `[[alerts.rules]]` entry as a Rule."""
    if not isinstance(table, dict):
        check.error(("alerts",), f"expected a table, got {toml_type(table)}")
        return None
    values: dict[str, Any] = {}
    ok = True
    for key, value in table.items():
        path: KeyPath = ("alerts", key)
        if key == "defaults":
            good, values[key] = check.convert(path, "bool", value)
        elif key == "hook_timeout":
            good, values[key] = check.convert(path, "float", value)
            if good and (problem := positive(values[key])):
                check.error(path, problem)
                good = False
        elif key == "hook":
            good = _hook_ok(value)
            if good:
                values[key] = value if isinstance(value, str) else tuple(value)
            else:
                check.error(path, 'expected a command: a string (run by /bin/sh) or an array ["cmd", "arg"]')
        elif key == "rules":
            rules = _rules_from_array(check, value)
            good = rules is not None
            values[key] = rules
        else:
            check.unknown(path, list(_ALERT_KEYS))
            good = False
        ok = ok and good
    return AlertsConfig(**values) if ok else None


def _hook_ok(value: object) -> bool:
    if isinstance(value, str):
        return value == "" or bool(value.strip())  # "" means no hook
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(a, str) for a in value)
        and bool(value[0].strip())
    )


def _rules_from_array(check: Checker, value: object) -> tuple[Rule, ...] | None:
    if not isinstance(value, list):
        check.error(
            ("alerts", "rules"), f"expected an array of tables ([[alerts.rules]]), got {toml_type(value)}"
        )
        return None
    rules: list[Rule] = []
    names: dict[str, int] = {}
    ok = True
    for index, entry in enumerate(value):
        base: KeyPath = ("alerts", "rules", index)
        if not isinstance(entry, dict):
            check.error(base, f"expected a table, got {toml_type(entry)}")
            ok = False
            continue
        rule = _rule_from_table(check, entry, base)
        name = entry.get("name")
        if isinstance(name, str) and name in names:
            check.error((*base, "name"), f"duplicate rule name {name!r} (also alerts.rules[{names[name]}])")
            ok = False
        elif isinstance(name, str):
            names[name] = index
        if rule is None:
            ok = False
        else:
            rules.append(rule)
    return tuple(rules) if ok else None


# TOML key -> Rule field
_RULE_FIELDS = {
    "name": "name",
    "metric": "metric",
    "op": "op",
    "threshold": "threshold",
    "for": "for_seconds",
    "clear": "clear",
    "clear_for": "clear_for_seconds",
    "severity": "severity",
    "vms": "vms",
    "hosts": "hosts",
    "group": "group",
    "tags": "tags",
    "enabled": "enabled",
}


def _rule_from_table(check: Checker, table: Mapping[str, Any], base: KeyPath) -> Rule | None:
    """One `[[alerts.rules]]` entry. An entry named like a default rule and without a `metric` changes
    only the keys it gives (e.g. `name = "host-memory"` with `threshold = 95`)."""
    given: dict[str, Any] = {}
    ok = True
    metric = table.get("metric")
    spec = metrics.get(metric) if isinstance(metric, str) else None
    rate = spec is not None and spec.unit == "B/s"
    for key, value in table.items():
        path: KeyPath = (*base, key)
        target = _RULE_FIELDS.get(key)
        if target is None:
            check.unknown(path, list(_RULE_FIELDS))
            ok = False
            continue
        converted, problem = _rule_value(key, value, rate)
        if problem is not None:
            check.error(path, problem)
            ok = False
        else:
            given[target] = converted
    if "name" not in table:
        check.error((*base, "name"), "missing required key")
        return None
    default = _DEFAULT_RULES.get(table["name"]) if isinstance(table["name"], str) else None
    if "metric" not in table and default is None:
        allowed = ", ".join(alert_metric_names())
        check.error((*base, "metric"), f"missing required key (one of {allowed})")
        return None
    if not ok:
        return None
    try:
        return dataclasses.replace(default, **given) if "metric" not in table and default else Rule(**given)
    except RuleError as exc:
        check.error((*base, exc.key), exc.message)
        return None


def _rule_value(key: str, value: object, rate: bool) -> tuple[Any, str | None]:
    """A rule key's value converted, or the problem with it."""
    if key in ("name", "op", "group", "metric", "severity"):  # metric and severity: checked by Rule
        if not isinstance(value, str):
            return value, f"expected a string, got {toml_type(value)}"
        if key == "group":
            return value, group_problem(value)
        return value, None
    if key == "enabled":
        if isinstance(value, bool):
            return value, None
        return value, f"expected a boolean, got {toml_type(value)}"
    if key in ("vms", "hosts", "tags"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return value, f'expected an array of strings, e.g. ["web*"], got {toml_type(value)}'
        return tuple(value), None
    if key in ("for", "clear_for"):
        seconds = (
            None
            if isinstance(value, bool) or not isinstance(value, int | float | str)
            else parse_duration(value)
        )
        return (seconds, None) if seconds is not None else (value, _DURATION_HINT)
    # threshold, clear: a number; for a rate metric also "10M", "10 MiB/s"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), None
    if rate and isinstance(value, str) and (bps := parse_rate(value)) is not None:
        return bps, None
    if rate:
        return value, 'expected bytes/s: a number or a rate such as "10M" or "10 MiB/s"'
    return value, f"expected a number, got {toml_type(value)}"


def alerts_to_document(alerts: AlertsConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not alerts.defaults:
        out["defaults"] = False
    if alerts.hook:
        out["hook"] = alerts.hook if isinstance(alerts.hook, str) else list(alerts.hook)
    if alerts.hook_timeout != AlertsConfig().hook_timeout:
        out["hook_timeout"] = alerts.hook_timeout
    if alerts.rules:
        out["rules"] = [_rule_to_table(r) for r in alerts.rules]
    return out


def _rule_to_table(rule: Rule) -> dict[str, Any]:
    """A rule as people write it: durations as "60s", whole numbers without ".0", rates in MiB/s."""
    out: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(Rule)}
    for key, name in _RULE_FIELDS.items():
        value = getattr(rule, name)
        f = fields[name]
        if name not in ("name", "metric") and (value is None or value == f.default):
            continue
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Severity):
            value = value.value
        elif key in ("for", "clear_for"):
            text = f"{value:g}"  # "60s", but a plain number where :g would write an exponent ("1e+06")
            value = f"{text}s" if "e" not in text and float(text) == value else value
        elif key in ("threshold", "clear") and rule.spec.unit == "B/s" and value and value % 2**20 == 0:
            text = f"{value / 2**20:g}"
            value = f"{text} MiB/s" if "e" not in text and float(text) * 2**20 == value else value
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        out[key] = value
    return out
