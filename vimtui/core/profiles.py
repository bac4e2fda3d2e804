"""Profiles: what an operator may do with vimtui, per host. A viewer only looks (and is connected through
libvirt's read-only socket, so libvirt itself refuses a change); an operator runs lifecycle, console,
snapshots and migrations; an admin everything. Each action declares the least profile it needs.

A profile is a safety net for the operator's own hands, not a boundary: what the SSH account may reach on
the host is (`vimtui access`). Which profile applies to a host: `--profile` for this run, else the host's
own `profile` (or `read_only = true`: viewer), else its deepest group's in `[groups]`, else the top-level
`profile`, else admin (what vimtui allowed before profiles existed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Profile = Literal["viewer", "operator", "admin"]
"""What an operator may do, least first: a viewer only looks; an operator runs lifecycle, console,
snapshots and migrations; an admin everything (delete, XML edit, devices, create, clone, resources,
storage, networks, tenancy)."""

PROFILES: tuple[Profile, ...] = ("viewer", "operator", "admin")
"""Least first."""
DEFAULT: Profile = "admin"
"""When nothing says otherwise: everything, as before profiles existed."""


def is_profile(text: object) -> bool:
    return text in PROFILES


def as_profile(text: str) -> Profile:
    """`text` as a Profile; ValueError naming the ones there are."""
    if text not in PROFILES:
        raise ValueError(f"unknown profile {text!r}: one of {', '.join(PROFILES)}")
    return text


def allows(profile: Profile, needs: Profile) -> bool:
    """Whether `profile` may do what `needs` at least."""
    return PROFILES.index(profile) >= PROFILES.index(needs)


def refusal(profile: Profile, needs: Profile, host: str, what: str) -> str | None:
    """Why `what` may not be done on `host` under `profile` (None: it may): the reason every face shows."""
    if allows(profile, needs):
        return None
    return f"{what} needs the {needs} profile (yours on {host}: {profile})"


def resolve(
    *,
    given: Profile | None,
    host: Profile | None,
    read_only: bool,
    group: str,
    groups: Mapping[str, Profile],
    top: Profile | None,
) -> Profile:
    """The profile that applies to one host: `--profile` (`given`), else the most specific the config says
    (the host's own, `read_only` as viewer, its deepest group's, the top level's), else DEFAULT."""
    if given is not None:
        return given
    if host is not None:
        return host
    if read_only:
        return "viewer"
    parts = group.split("/") if group else []
    for n in range(len(parts), 0, -1):
        found = groups.get("/".join(parts[:n]))
        if found is not None:
            return found
    return top if top is not None else DEFAULT


__all__ = ["DEFAULT", "PROFILES", "Profile", "allows", "as_profile", "is_profile", "refusal", "resolve"]
