"""Storage pools of every host, read every POOL_INTERVAL seconds (not each poll: they change slowly and
the poll is the fleet's hot path), kept in the lasting history as host metrics, and forecast: at the rate
its allocation grew over the last week of history, when a pool is full.

The reads are `Fleet.ask` questions (the host's lane, with its deadline); the forecast reads the archive
on a worker thread. A host that cannot answer keeps the pools last read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from vimtui.core.model import PoolFill

if TYPE_CHECKING:
    from vimtui.core.fleet.fleet import Fleet
    from vimtui.core.monitor.archive import Archive

POOL_INTERVAL = 60.0
"""Seconds between two reads of a host's pools."""
FORECAST_WINDOW = 7 * 86400.0
"""History the fill rate is measured over: the last week."""
MIN_BASIS = 3600.0
"""Less history than this says nothing about a rate."""
WEEK = 7 * 86400.0


def read_pools(conn: Any) -> tuple[PoolFill, ...]:
    """Every pool of the host with libvirt's pool info (what `virsh pool-info` shows), by name."""
    out = []
    for pool in conn.listAllStoragePools(0):
        active = bool(pool.isActive())
        cap = alloc = avail = 0
        if active:
            _state, cap, alloc, avail = pool.info()
        out.append(PoolFill(pool.name(), active, int(cap), int(alloc), int(avail)))
    return tuple(sorted(out, key=lambda p: p.name))


def metric_name(pool: str) -> str:
    """The archive's name for a pool's allocation (a host metric)."""
    return f"pool.{pool}.allocation"


def full_in(
    times: Sequence[float], allocations: Sequence[float], pool: PoolFill
) -> tuple[float | None, float]:
    """(seconds until `pool` is full at the least-squares rate of its allocation over `times`, the span of
    history measured); None when it is not filling or the history is too short."""
    span = (times[-1] - times[0]) if len(times) > 1 else 0.0
    if len(times) < 3 or span < MIN_BASIS or not pool.active or not pool.capacity:
        return None, span
    n = len(times)
    mt, ma = sum(times) / n, sum(allocations) / n
    var = sum((t - mt) ** 2 for t in times)
    if var <= 0:
        return None, span
    slope = sum((t - mt) * (a - ma) for t, a in zip(times, allocations, strict=True)) / var
    if slope <= 0:
        return None, span
    left = max(pool.capacity - pool.allocation, 0)
    return left / slope, span


def forecast_text(host: str, pool: PoolFill) -> str:
    """ "pool default on kvm02 full in about 3 days at the last week's rate", or what is known instead."""
    if not pool.active:
        return f"pool {pool.name} on {host} is inactive"
    if pool.full_in is None:
        if pool.basis < MIN_BASIS:
            return f"pool {pool.name} on {host}: too little history for a forecast"
        return f"pool {pool.name} on {host} has not grown over the last {_span(pool.basis)}"
    return (
        f"pool {pool.name} on {host} full in about {_span(pool.full_in, about=True)} at {_rate(pool.basis)}"
    )


def _rate(basis: float) -> str:
    return "the last week's rate" if basis >= WEEK * 0.9 else f"the rate of the last {_span(basis)}"


def _span(seconds: float, *, about: bool = False) -> str:
    if seconds < 2 * 3600:
        n, unit = round(seconds / 60), "minute"
    elif seconds < 2 * 86400:
        n, unit = round(seconds / 3600), "hour"
    else:
        n, unit = round(seconds / 86400), "day"
    n = max(n, 1)
    return f"{n} {unit}{'s' if n != 1 else ''}"


class PoolWatch:
    """Reads each host's pools every POOL_INTERVAL, into the fleet's host figures and history."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self._read_at: dict[str, float] = {}

    async def run(self) -> None:
        """Forever: read the pools of every connected host whose last read is older than the interval."""
        while True:
            now = time.monotonic()
            due = [
                h.name
                for h in self.fleet.state.hosts
                if h.status.healthy and now - self._read_at.get(h.name, float("-inf")) >= POOL_INTERVAL
            ]
            for name in due:
                await self.refresh(name)
            await asyncio.sleep(5.0)

    async def refresh_all(self) -> None:
        """Read every connected host's pools once (the CLI before it prints)."""
        names = [h.name for h in self.fleet.state.hosts if h.status.healthy]
        await asyncio.gather(*(self.refresh(n) for n in names))

    async def refresh(self, host: str) -> None:
        """Read one host's pools; a failure keeps what was read before."""
        self._read_at[host] = time.monotonic()
        try:
            pools = await self.fleet.ask(host, read_pools)
        except Exception:  # QueryFailed (the fleet's; not imported: the fleet imports this module)
            return
        fleet = self.fleet
        now = fleet.clock()
        archive = fleet.archive
        if archive is not None:
            archive.add(host, now, {metric_name(p.name): float(p.allocation) for p in pools if p.active})
            with contextlib.suppress(Exception):  # a forecast that cannot be made is left out
                pools = await asyncio.to_thread(self._forecast, archive, host, pools, now)
        figures = dict(fleet.figures.pools)
        figures[host] = pools
        fleet.figures.pools = figures
        fleet.notify()

    @staticmethod
    def _forecast(
        archive: Archive, host: str, pools: tuple[PoolFill, ...], now: float
    ) -> tuple[PoolFill, ...]:
        out = []
        for p in pools:
            if p.active:
                times, values = archive.series(host, metric_name(p.name), now - FORECAST_WINDOW, now)
                seconds, basis = full_in(times, values, p)
                p = replace(p, full_in=seconds, basis=basis)
            out.append(p)
        return tuple(out)
