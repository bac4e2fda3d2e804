"""The checks a resource change passes before anything is sent, with the numbers in the refusal: beyond the
VM's maximum vCPUs or memory, beyond the host's CPUs, beyond the host's free memory ("4 GiB asked, 2.1 GiB
free on kvm02"), a maximum lowered under what the VM has. Pure functions of what is known: the form and
the CLI check against the fleet state, the task again against what libvirt says just before it changes
anything (the state may be a poll old).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Side = Literal["config", "live"]
"""Where a change goes: the persistent definition (from the next boot) or the running VM."""


@dataclass(frozen=True)
class Sizing:
    """One side of a VM: what it has and its maximum (None: not known, not checked)."""

    vcpus: int | None = None
    max_vcpus: int | None = None
    memory_kib: int | None = None
    max_memory_kib: int | None = None


@dataclass(frozen=True)
class HostRoom:
    """What the host has: its CPUs, its memory, what is free (None: not known, not checked)."""

    name: str
    cpus: int | None = None
    memory_kib: int | None = None
    free_kib: int | None = None


@dataclass(frozen=True)
class Request:
    """What `vm set` asks (None: unchanged). Memory in MiB as typed."""

    vcpus: int | None = None
    memory_mib: int | None = None
    max_vcpus: int | None = None
    max_memory_mib: int | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.vcpus, self.memory_mib, self.max_vcpus, self.max_memory_mib))

    @property
    def maxima(self) -> bool:
        return self.max_vcpus is not None or self.max_memory_mib is not None


def size_text(kib: float) -> str:
    """KiB as an operator reads a memory size: "112 MiB", "2.1 GiB", "4 GiB"."""
    mib = kib / 1024
    if mib < 1024:
        return f"{mib:.0f} MiB"
    gib = mib / 1024
    return f"{gib:.0f} GiB" if float(round(gib, 1)).is_integer() else f"{gib:.1f} GiB"


def sides_for(running: bool, persistent: bool, live: bool, config: bool) -> tuple[list[Side], str | None]:
    """Which sides a change goes to, config first, as virsh's flags mean them: neither flag is "current"
    (the running VM when it runs, else its config); both flags both. Second: why not (None: it can)."""
    if not live and not config:
        return (["live"] if running else ["config"]), None
    if live and not running:
        return [], "it is not running: there is no live side to change (use --config)"
    if config and not persistent:
        return [], "it is transient: it has no config to change (use --live)"
    both: tuple[tuple[Side, bool], ...] = (("config", config), ("live", live))
    return [s for s, on in both if on], None


def target(side: Sizing, req: Request) -> Sizing:
    """What one side would have after the request."""
    return replace(
        side,
        vcpus=req.vcpus if req.vcpus is not None else side.vcpus,
        max_vcpus=req.max_vcpus if req.max_vcpus is not None else side.max_vcpus,
        memory_kib=req.memory_mib * 1024 if req.memory_mib is not None else side.memory_kib,
        max_memory_kib=req.max_memory_mib * 1024 if req.max_memory_mib is not None else side.max_memory_kib,
    )


def refusal(
    vm: str, req: Request, sides: dict[Side, Sizing], host: HostRoom, *, running: bool = True
) -> str | None:
    """Why `req` cannot go to these sides of `vm` (None: it can, as far as the numbers known say)."""
    if req.empty:
        return "nothing to change: give vcpus, memory, max_vcpus or max_memory"
    if req.maxima and "config" not in sides:
        return (
            f"{vm}: a maximum changes only in the config (from the next boot): add --config"
            if running
            else f"{vm}: a maximum changes only in the config"
        )
    if host.cpus is not None:
        for what, asked in (("vCPUs", req.vcpus), ("maximum vCPUs", req.max_vcpus)):
            if asked is not None and asked > host.cpus:
                return f"{what} {asked} asked, {host.name} has {host.cpus} CPUs"
    for side, now in sides.items():
        after = target(now, req)
        where = "in the config" if side == "config" else "on the running VM"
        if after.vcpus is not None and after.max_vcpus is not None and after.vcpus > after.max_vcpus:
            if req.vcpus is None:
                return (
                    f"{vm} has {after.vcpus} vCPUs {where}, above the {after.max_vcpus} asked as its "
                    "maximum: give vcpus too"
                )
            return f"{req.vcpus} vCPUs asked, {vm}'s maximum {where} is {after.max_vcpus}"
        if after.memory_kib is not None and after.max_memory_kib is not None:
            if after.memory_kib > after.max_memory_kib:
                if req.memory_mib is None:
                    return (
                        f"{vm} has {size_text(after.memory_kib)} {where}, above the "
                        f"{size_text(after.max_memory_kib)} asked as its maximum: give memory too"
                    )
                return (
                    f"{size_text(after.memory_kib)} asked, {vm}'s maximum memory {where} is "
                    f"{size_text(after.max_memory_kib)}"
                )
        for what, kib in (("memory", after.memory_kib), ("maximum memory", after.max_memory_kib)):
            if kib is not None and host.memory_kib is not None and kib > host.memory_kib:
                return f"{what} {size_text(kib)} asked, {host.name} has {size_text(host.memory_kib)} in all"
        if side == "live" and req.memory_mib is not None and now.memory_kib is not None:
            more = req.memory_mib * 1024 - now.memory_kib
            if host.free_kib is not None and more > host.free_kib:
                return (
                    f"{size_text(req.memory_mib * 1024)} asked ({size_text(more)} more than now), "
                    f"{size_text(host.free_kib)} free on {host.name}"
                )
    return None


def changes(before: Sizing, after: Sizing) -> list[str]:
    """What differs, as an operator reads it: "vCPUs 1 -> 2", "memory 112 MiB -> 96 MiB"."""
    out = []
    for what, a, b, mem in (
        ("max vCPUs", before.max_vcpus, after.max_vcpus, False),
        ("vCPUs", before.vcpus, after.vcpus, False),
        ("max memory", before.max_memory_kib, after.max_memory_kib, True),
        ("memory", before.memory_kib, after.memory_kib, True),
    ):
        if b is not None and a != b:
            out.append(f"{what} {_shown(a, mem)} -> {_shown(b, mem)}")
    return out


def _shown(value: int | None, memory: bool) -> str:
    if value is None:
        return "?"
    return size_text(value) if memory else str(value)
