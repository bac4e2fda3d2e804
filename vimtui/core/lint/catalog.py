"""The lint rules by id: what each checks, its severity unless the config says otherwise, and which fix
(vm.lint-fix) can put it right. The ids are what `[lint] off` and `[lint.severity]` name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["info", "warning", "error"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error")
"""Least first: `--fail-on warning` fails on warnings and errors."""


def rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RuleInfo:
    id: str
    severity: Severity
    scope: Literal["vm", "host"]
    title: str
    fixable: bool = False
    """vm.lint-fix can put it right (a change to the domain's definition that loses nothing)."""


RULES: dict[str, RuleInfo] = {
    r.id: r
    for r in (
        RuleInfo(
            "open-display", "error", "vm", "graphics listening beyond loopback without a password", True
        ),
        RuleInfo("no-agent", "warning", "vm", "no guest agent channel", True),
        RuleInfo("unsafe-cache", "error", "vm", "disk with cache=unsafe", True),
        RuleInfo("raw-disk", "info", "vm", "raw disk (no internal snapshots)"),
        RuleInfo(
            "cpu-migration", "warning", "vm", "CPU mode that blocks migration to the group's other hosts"
        ),
        RuleInfo("local-disk", "info", "vm", "disk not on storage the group shares"),
        RuleInfo("old-snapshot", "warning", "vm", "snapshot older than snapshot_max_age_days"),
        RuleInfo("snapshot-chain", "warning", "vm", "snapshot chain longer than snapshot_max_chain"),
        RuleInfo(
            "critical-autostart", "error", "vm", "VM tagged critical does not start with its host", True
        ),
        RuleInfo("no-memory-stats", "info", "vm", "no memory statistics period (memory use unknown)", True),
        RuleInfo("duplicate-mac", "error", "vm", "the same MAC on two VMs"),
        RuleInfo("duplicate-uuid", "error", "vm", "the same UUID on two hosts"),
        RuleInfo("duplicate-ip", "error", "vm", "the same IP address on two VMs"),
        RuleInfo(
            "cpu-overcommit", "warning", "host", "vCPUs of running VMs above cpu_overcommit x host CPUs"
        ),
        RuleInfo(
            "memory-overcommit", "warning", "host", "memory of running VMs above memory_overcommit x host's"
        ),
        RuleInfo("orphan-volume", "info", "host", "volume in a pool used by no domain defined on the host"),
        RuleInfo("old-libvirt", "warning", "host", "libvirt older than min_libvirt"),
    )
}
FIXABLE = tuple(r.id for r in RULES.values() if r.fixable)


def parse_version(text: str) -> int | None:
    """ "8.0.0" (or "8.0", "8") as libvirt numbers versions (major * 1e6 + minor * 1e3 + release)."""
    parts = text.strip().split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() and len(p) <= 3 for p in parts):
        return None
    nums = [int(p) for p in parts] + [0] * (3 - len(parts))
    return nums[0] * 1_000_000 + nums[1] * 1000 + nums[2]


def format_version(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"
