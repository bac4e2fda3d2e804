"""A resource change as a list of libvirt calls, each with the call that undoes it, run config side first:
when libvirt refuses one, the ones already made are undone in reverse, so nothing is left half-applied,
and the failure says in libvirt's own words what was refused and which side holds what.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import libvirt

from vimtui.core.actions.sizing import Side
from vimtui.core.fleet.tasks import ActionError

LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG
FLAG: dict[Side, int] = {"live": LIVE, "config": CONFIG}
WHERE: dict[Side, str] = {"live": "the running VM", "config": "the config"}


@dataclass(frozen=True)
class Change:
    side: Side
    what: str
    """What it changes, as the operator reads it: "vCPUs 1 -> 2"."""
    do: Callable[[], object]
    undo: Callable[[], object]


def libvirt_words(exc: BaseException) -> str:
    if isinstance(exc, libvirt.libvirtError):
        return (exc.get_error_message() or str(exc)).strip()
    return str(exc)


def apply_all(changes: Sequence[Change]) -> list[str]:
    """Make every change in order; on a refusal undo the ones made and raise ActionError saying what libvirt
    refused, in its words, and what holds now. Returns "side: what" for each change made."""
    done: list[Change] = []
    for change in changes:
        try:
            change.do()
        except libvirt.libvirtError as exc:
            raise ActionError(_failed(change, libvirt_words(exc), done)) from exc
        done.append(change)
    return summary(done)


def summary(done: Sequence[Change]) -> list[str]:
    by_side: dict[Side, list[str]] = {}
    for c in done:
        by_side.setdefault(c.side, []).append(c.what)
    return [f"{WHERE[side]}: {', '.join(whats)}" for side, whats in by_side.items()]


def _failed(change: Change, words: str, done: list[Change]) -> str:
    head = f"libvirt refused {change.what} on {WHERE[change.side]}: {words}"
    if not done:
        return f"{head}; nothing was changed"
    kept: list[Change] = []
    errors: list[str] = []
    for c in reversed(done):
        try:
            c.undo()
        except libvirt.libvirtError as exc:
            kept.append(c)
            errors.append(libvirt_words(exc))
    if not kept:
        undone = "; ".join(summary(done))
        return f"{head}; what was already changed was put back ({undone}): nothing holds"
    holds = "; ".join(summary(list(reversed(kept))))
    return f"{head}; putting back what was already changed failed ({errors[0]}), so this holds: {holds}"
