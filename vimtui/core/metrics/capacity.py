"""The hosts' capacity metrics (overcommit, pool fill and its forecast), declared once (registry.py says what
a declaration holds); their values are core/fleet/capacity.py's figures of the published HostState."""

from __future__ import annotations

from vimtui.core.fleet.capacity import host_capacity
from vimtui.core.metrics.registry import Metric, Series, declare
from vimtui.core.model import HostState


def vcpu_ratio(h: HostState, _now: float) -> float | None:
    return host_capacity(h).vcpu_ratio if h.load is not None else None


def mem_ratio(h: HostState, _now: float) -> float | None:
    return host_capacity(h).mem_ratio if h.load is not None else None


def pool_fill(h: HostState, _now: float) -> float | None:
    """The fullest active pool's allocation over its capacity, in %."""
    fills = [f for p in h.pools or () if (f := p.fill_pct) is not None]
    return max(fills) if fills else None


def pool_full_days(h: HostState, _now: float) -> float | None:
    """Days until the first of its pools is full at the rate seen in the history (None: none is filling)."""
    days = [p.full_in / 86400.0 for p in h.pools or () if p.active and p.full_in is not None]
    return min(days) if days else None


declare(
    Metric(
        "host.vcpu_ratio",
        "host",
        "",
        "vCPU overcommit",
        "vCPUs of the running VMs per physical CPU of the host.",
        vcpu_ratio,
        label="vCPUs per CPU",
        alert=True,
        export=Series(
            "vimtui_host_vcpu_overcommit_ratio", "vCPUs of the running VMs per physical CPU of the host."
        ),
    ),
    Metric(
        "host.mem_ratio",
        "host",
        "",
        "Memory overcommit",
        "Memory given to the running VMs over the host's physical memory.",
        mem_ratio,
        label="memory given over physical",
        alert=True,
        export=Series(
            "vimtui_host_memory_overcommit_ratio", "Memory given to the running VMs over the host's memory."
        ),
    ),
    Metric(
        "host.pool_fill_pct",
        "host",
        "%",
        "Pool fill",
        "The fullest active storage pool's allocation over its capacity, in %.",
        pool_fill,
        label="fullest pool",
        alert=True,
        export=Series(
            "vimtui_host_pool_fill_ratio",
            "The fullest active storage pool's allocation over its capacity, 0 to 1.",
            unit="ratio",
            divide=100,
            lasting=True,
        ),
    ),
    Metric(
        "host.pool_full_days",
        "host",
        "",
        "Pool full in",
        "Days until the first of the host's pools is full at the rate its allocation grew over the last "
        "week of history (unknown while none is filling).",
        pool_full_days,
        label="days until a pool is full",
        alert=True,
        export=Series(
            "vimtui_host_pool_full_days",
            "Days until the first of the host's pools is full at the last week's rate.",
            lasting=True,
        ),
    ),
)
