"""Targets named within a host: a storage pool `HOST/POOL`, a volume `HOST/POOL/VOL`, a network `HOST/NET`.

An action on one of these is a plain function `fn(ctx, ref, **args) -> str` run on the host's task lane;
`ref` names the thing (it may not exist yet: a pool being defined, a volume being created), and the
function looks it up on `ctx.conn`. The task records the host and the name within it (`POOL/VOL`) in its
VM field, and the action's id (`pool.delete`) as its action, so the task log and the audit read
`kvm01  default/web.qcow2  volume.delete`.

Refusals that the fleet state can answer (host down, read-only, profile) come from the declaration, as
for a host action; those only the host can answer (a volume in use, the backing of another) are raised by
the function before it touches anything, and said by its preview first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vimtui.core.actions.base import Action
from vimtui.core.model import FleetState

PARTS = {"pool": 1, "volume": 2, "network": 1}
"""How many names after the host a target of each kind takes."""

SPELLING = {"pool": "HOST/POOL", "volume": "HOST/POOL/VOL", "network": "HOST/NET"}

GROUP = {"pool": "pool", "volume": "vol", "network": "net"}
"""The CLI group (`vimtui vol ...`) and the word before a name on the `:` line."""


class BadTarget(ValueError):
    """A target name that names nothing the inventory has, or is spelt wrong; the message says which."""


@dataclass(frozen=True, slots=True)
class Ref:
    """A pool, volume or network by name, on one host of the inventory."""

    kind: str
    host: str
    name: str
    """Within the host: `POOL`, `POOL/VOL` or `NET`."""

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.name.split("/", PARTS[self.kind] - 1))

    @property
    def pool(self) -> str:
        return self.parts[0]

    @property
    def volume(self) -> str:
        return self.parts[1] if self.kind == "volume" else ""

    @property
    def where(self) -> str:
        return f"{self.host}/{self.name}"

    def __str__(self) -> str:
        return self.where


def parse(kind: str, text: str, state: FleetState, host: str | None = None) -> Ref:
    """`HOST/POOL` (or `POOL` with `host`, or when the inventory has one host) as a Ref of `kind`.
    BadTarget says what is wrong: a missing part, an empty name, a host not in the inventory."""
    want = PARTS[kind]
    pieces = text.split("/")
    hosts = [h.name for h in state.hosts]
    if len(pieces) == want + 1:
        where, names = pieces[0], pieces[1:]
    elif len(pieces) == want and (host is not None or len(hosts) == 1):
        where, names = host if host is not None else hosts[0], pieces
    else:
        raise BadTarget(f"{text!r}: name a {kind} as {SPELLING[kind]}")
    if not all(names) or not where:
        raise BadTarget(f"{text!r}: an empty name; name a {kind} as {SPELLING[kind]}")
    if state.host(where) is None:
        known = ", ".join(hosts) or "none"
        raise BadTarget(f"{text!r}: no host {where!r} in the inventory (hosts: {known})")
    return Ref(kind, where, "/".join(names))


def refusal(act: Action, ref: Ref, args: Mapping[str, Any], state: FleetState) -> str | None:
    """Why `act` cannot run on `ref` now with `args`, from the fleet state alone (None: the host judges)."""
    h = state.host(ref.host)
    if h is None:
        return f"no host {ref.host!r} in the inventory"
    why = act.host_state_refusal(h, state)
    if why is None and act.check is not None:
        why = act.check(ref, dict(args), state)
    return why


def describe(ref: Ref) -> str:
    """`pool default on kvm01`: a target for a person."""
    return f"{ref.kind} {ref.name} on {ref.host}"
