"""The config's profiles: the top-level `profile`, the `[groups."PATH"]` tables, and how a host's own
`profile` and `read_only` agree. Read into `Config.profile` and `Config.groups`, and written back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from vimtui.core.config.checks import Checker, group_problem, profile_problem, toml_type
from vimtui.core.config.model import GroupConfig, HostConfig
from vimtui.core.profiles import Profile

KEYS = ("profile", "groups")
"""The top-level keys read here."""
ADHOC = "adhoc"
"""The group of the hosts given with --connect: a `[groups.adhoc]` table applies to them."""


def top_profile(check: Checker, value: object) -> Profile | None:
    if not isinstance(value, str):
        check.error(("profile",), f"expected a string, got {toml_type(value)}")
        return None
    if problem := profile_problem(value):
        check.error(("profile",), problem)
        return None
    return cast(Profile, value)


def groups_from(check: Checker, table: object, hosts: Sequence[Mapping[str, Any]]) -> dict[str, GroupConfig]:
    """`[groups."PATH"]`: each a group some host is in (or under), so a misspelt one is said, not ignored."""
    if not isinstance(table, dict):
        example = '[groups."dc1/rack3"]'
        check.error(("groups",), f"expected a table of groups, e.g. {example}, got {toml_type(table)}")
        return {}
    used = {ADHOC}
    for host in hosts:
        group = host.get("group")
        parts = group.split("/") if isinstance(group, str) and group else []
        used.update("/".join(parts[:n]) for n in range(1, len(parts) + 1))
    out: dict[str, GroupConfig] = {}
    for path, entry in table.items():
        base = ("groups", path)
        if problem := group_problem(path) or (None if path else "must not be empty"):
            check.error(base, f"group {path!r}: {problem}")
            continue
        if not isinstance(entry, dict):
            check.error(base, f"expected a table, got {toml_type(entry)}")
            continue
        if path not in used:
            check.error(base, f"no host is in group {path!r} (a host's `group`, or one under it)")
            continue
        built = check.build(GroupConfig, entry, base)
        if built is not None:
            out[path] = built
    return out


def check_host(check: Checker, host: HostConfig, index: int) -> None:
    """`read_only = true` is the viewer profile: a host may not say both it and another profile."""
    if host.read_only and host.profile not in (None, "viewer"):
        check.error(
            ("hosts", index, "profile"),
            f"read_only = true is the viewer profile: it cannot also be {host.profile!r} (drop one)",
        )


def to_document(profile: Profile | None, groups: Mapping[str, GroupConfig]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if profile is not None:
        doc["profile"] = profile
    tables = {path: {"profile": g.profile} for path, g in groups.items() if g.profile is not None}
    if tables:
        doc["groups"] = tables
    return doc
