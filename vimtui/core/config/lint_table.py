"""The `[lint]` table: rule ids switched off, severities changed (`[lint.severity]`) and the rules'
figures, read into `LintConfig` with every problem located by file, line and key."""

from __future__ import annotations

import difflib
from typing import Any

from vimtui.core.config.checks import Checker, toml_type
from vimtui.core.config.model import LintConfig
from vimtui.core.lint.catalog import RULES, SEVERITIES, parse_version


def _rule_problem(rule: str) -> str | None:
    if rule in RULES:
        return None
    close = difflib.get_close_matches(rule, list(RULES), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "see vimtui lint --rules"
    return f"unknown lint rule {rule!r} ({hint})"


def lint_from_table(check: Checker, table: object) -> LintConfig | None:
    if not isinstance(table, dict):
        check.error(("lint",), f"expected a table, got {toml_type(table)}")
        return None
    rest: dict[str, Any] = dict(table)
    ok = True
    off = rest.pop("off", [])
    if not isinstance(off, list):
        check.error(
            ("lint", "off"), f'expected an array of rule ids, e.g. ["raw-disk"], got {toml_type(off)}'
        )
        ok, off = False, []
    for i, rule in enumerate(off):
        problem = (
            f"expected a rule id, got {toml_type(rule)}" if not isinstance(rule, str) else _rule_problem(rule)
        )
        if problem:
            check.error(("lint", "off", i), problem)
            ok = False
    severity = rest.pop("severity", {})
    if not isinstance(severity, dict):
        check.error(
            ("lint", "severity"), f"expected a table of rule id = severity, got {toml_type(severity)}"
        )
        ok, severity = False, {}
    for rule, level in severity.items():
        problem = _rule_problem(rule)
        if problem is None and level not in SEVERITIES:
            problem = f"expected one of {', '.join(map(repr, SEVERITIES))}, got {level!r}"
        if problem:
            check.error(("lint", "severity", rule), problem)
            ok = False
    shared = rest.pop("shared_paths", [])
    if not isinstance(shared, list) or not all(isinstance(p, str) and p.startswith("/") for p in shared):
        check.error(("lint", "shared_paths"), 'expected an array of absolute paths, e.g. ["/srv/shared"]')
        ok, shared = False, []
    built = check.build(LintConfig, rest, ("lint",))
    if built is None:
        return None
    if parse_version(built.min_libvirt) is None:
        check.error(("lint", "min_libvirt"), 'expected a libvirt version such as "8.0.0"')
        ok = False
    if not built.critical_tag.strip():
        check.error(("lint", "critical_tag"), "must not be empty")
        ok = False
    if not ok:
        return None
    return msgspec_replace(
        built, off=tuple(off), severity=tuple(severity.items()), shared_paths=tuple(shared)
    )


def msgspec_replace(config: LintConfig, **changes: Any) -> LintConfig:
    import msgspec

    return msgspec.structs.replace(config, **changes)


def lint_to_document(config: LintConfig) -> dict[str, Any]:
    """The keys that differ from the defaults, for writing the config back."""
    default = LintConfig()
    doc: dict[str, Any] = {}
    for name in LintConfig.__struct_fields__:
        value = getattr(config, name)
        if value != getattr(default, name):
            doc[name] = (
                dict(value) if name == "severity" else list(value) if isinstance(value, tuple) else value
            )
    return doc
