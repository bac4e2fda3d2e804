"""Hosts and groups, from the config file and from `--connect` arguments.

Everything downstream (transport, host sessions, the host tree) sees only `HostSpec`: how to reach one
host, whichever way it was named.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from vimtui.core import profiles
from vimtui.core.config.settings import Config, HostConfig
from vimtui.core.profiles import Profile

__all__ = ["ADHOC_GROUP", "HostSpec", "InventoryError", "Transport", "build_inventory", "parse_connect"]

Transport = Literal["ssh", "direct"]

ADHOC_GROUP = "adhoc"
"""Group of the hosts given with --connect."""

SYSTEM_URI = "qemu:///system"

_ACCEPTED = (
    "expected ssh://[user@]host[:port] or a libvirt URI such as qemu:///system, "
    "qemu+ssh://host/system or test:///default"
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


class InventoryError(ValueError):
    """A host that cannot be added to the inventory (a --connect argument that does not parse)."""


@dataclass(frozen=True, slots=True)
class HostSpec:
    """How to reach one host."""

    name: str
    """Unique display name."""
    transport: Transport
    """"ssh": tunnel to `address` and open `uri` there; "direct": open `uri` from here as is."""
    uri: str
    """libvirt URI: on the remote host for ssh (e.g. qemu:///system), opened locally as is for direct."""
    address: str = ""
    """SSH address (host name or IP, IPv6 without brackets); "" for direct."""
    user: str | None = None
    """SSH user; None lets SSH decide."""
    port: int = 22
    """SSH port."""
    identity: str | None = None
    """SSH private key path, `~` not yet expanded."""
    known_hosts: str | None = None
    """known_hosts file to check the host key against, instead of the usual ones."""
    group: str = ""
    """Slash-separated place in the host tree; "" for the top level."""
    profile: Profile = profiles.DEFAULT
    """What may be done on this host (profiles.resolve: --profile, the host's, its group's, the top's)."""
    migration_address: str = ""
    """Where other hosts send a live migration to this host (tcp://ADDRESS); "" lets libvirt choose."""

    @property
    def read_only(self) -> bool:
        """Connected through libvirt's read-only socket: a viewer, whom libvirt itself refuses a change."""
        return self.profile == "viewer"


def _parse_ssh(text: str) -> HostSpec:
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # an unclosed [IPv6, a bad port
        raise InventoryError(f"{text!r}: {exc}") from None
    if parts.query or parts.fragment:
        raise InventoryError(f"{text!r}: ssh:// takes no ?query or #fragment")
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user = userinfo if at else None
    if user is not None and ":" in user:
        raise InventoryError(f"{text!r}: a password in the URI is not accepted; use keys or the agent")
    if user == "":
        raise InventoryError(f"{text!r}: empty user before '@'")
    if hostport.startswith("["):  # [IPv6]:port
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise InventoryError(f"{text!r}: malformed [IPv6] address")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_or_empty = hostport.partition(":")
        port_text = port_text_or_empty if colon else None
    if not host:
        raise InventoryError(f"{text!r}: no host; {_ACCEPTED}")
    port = 22
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise InventoryError(f"{text!r}: the port must be a number between 1 and 65535")
        port = int(port_text)
    path = parts.path.rstrip("/")
    if path == "/session":
        raise InventoryError(
            f"{text!r}: only the system libvirt instance is supported over ssh, not /session"
        )
    if path not in ("", "/system"):
        raise InventoryError(f"{text!r}: unknown path {parts.path!r}; use ssh://[user@]host[:port]")
    return HostSpec(
        name=host, transport="ssh", uri=SYSTEM_URI, address=host, user=user, port=port, group=ADHOC_GROUP
    )


_LIBVIRT_SSH = re.compile(r"qemu\+(ssh|libssh|libssh2)")
_SSH_PARAMS = {"keyfile": "identity", "known_hosts": "known_hosts"}


def _parse_libvirt_ssh(text: str) -> HostSpec:
    """qemu+ssh://[user@]host[:port]/system[?keyfile=...&known_hosts=...]: reached through vimtui's own SSH
    tunnel, with its strict host-key check, never through libvirt's ssh transport (whose no_verify, or an
    ssh that asks, would accept an unknown key)."""
    try:
        parts = urlsplit(text)
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise InventoryError(f"{text!r}: {exc}") from exc
    if parts.path.rstrip("/") != "/system":
        raise InventoryError(
            f"{text!r}: only qemu+ssh://host/system is supported (the system libvirt instance, reached "
            "through vimtui's own SSH tunnel)"
        )
    extra: dict[str, str] = {}
    for key, value in query:
        if key in _SSH_PARAMS:
            extra[_SSH_PARAMS[key]] = value
        elif key == "no_verify":
            raise InventoryError(
                f"{text!r}: no_verify is not honoured: vimtui checks host keys strictly; verify the host's "
                "key and add it to known_hosts (ssh-keyscan), or name the file with ?known_hosts=PATH"
            )
        else:
            raise InventoryError(
                f"{text!r}: ?{key}= is not supported: vimtui reaches the host through its own SSH tunnel "
                "(keyfile= and known_hosts= are understood)"
            )
    spec = _parse_ssh(urlunsplit(("ssh", parts.netloc, "", "", "")))
    return replace(spec, **extra)  # type: ignore[arg-type]


def _direct_name(text: str) -> str:
    parts = urlsplit(text)
    _ = parts.port  # raises ValueError for a malformed or out-of-range port
    if parts.hostname:
        return parts.hostname
    scheme = parts.scheme.lower()
    if scheme == "qemu" and parts.path.rstrip("/") in ("/system", "/session"):
        return "local"
    stem = PurePosixPath(parts.path).stem
    return f"{scheme}-{stem}" if stem else scheme


def parse_connect(text: str) -> HostSpec:
    """Turn one --connect argument into a HostSpec.

    `ssh://[user@]host[:port]` and `qemu+ssh://[user@]host[:port]/system` reach the host over vimtui's SSH
    tunnel and open its qemu:///system; any other libvirt URI (`qemu:///system`, `test:///default`, ...) is
    opened directly as given.
    Raises InventoryError (a ValueError) for anything else.
    """
    text = text.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        hint = f" (did you mean ssh://{text}?)" if text and ":" not in text and "/" not in text else ""
        raise InventoryError(f"{text!r} is not a URI{hint}; {_ACCEPTED}")
    if scheme.lower() == "ssh":
        return _parse_ssh(text)
    if _LIBVIRT_SSH.fullmatch(scheme.lower()):
        return _parse_libvirt_ssh(text)
    try:
        name = _direct_name(text)
    except ValueError as exc:  # urlsplit rejects e.g. a malformed port or [IPv6]
        raise InventoryError(f"{text!r}: {exc}") from exc
    return HostSpec(name=name, transport="direct", uri=text, group=ADHOC_GROUP)


def _from_config(host: HostConfig, profile: Profile) -> HostSpec:
    return HostSpec(
        name=host.name,
        transport="ssh" if host.address else "direct",
        uri=host.uri,
        address=host.address,
        user=host.user,
        port=host.port,
        identity=host.identity,
        known_hosts=host.known_hosts,
        group=host.group,
        profile=profile,
        migration_address=host.migration_address,
    )


def build_inventory(
    config: Config, connect: Sequence[str] = (), profile: Profile | None = None
) -> tuple[HostSpec, ...]:
    """Config hosts first, then the --connect ones in order, each with the profile that applies to it
    (`profile`: --profile, which applies to every host).

    A --connect host whose name is already taken gets the first free suffix `-2`, `-3`, ... so every
    name is unique (config names are unique already: the loader checks).
    """

    def profile_of(group: str, own: str | None = None, read_only: bool = False) -> Profile:
        groups = {path: profiles.as_profile(g.profile) for path, g in config.groups.items() if g.profile}
        mine = profiles.as_profile(own) if own else None
        return profiles.resolve(
            given=profile, host=mine, read_only=read_only, group=group, groups=groups, top=config.profile
        )

    specs = [_from_config(h, profile_of(h.group, h.profile, h.read_only)) for h in config.hosts]
    taken = {spec.name for spec in specs}
    for text in connect:
        spec = parse_connect(text)
        name, n = spec.name, 1
        while name in taken:
            n += 1
            name = f"{spec.name}-{n}"
        taken.add(name)
        specs.append(replace(spec, name=name, profile=profile_of(spec.group)))
    return tuple(specs)
