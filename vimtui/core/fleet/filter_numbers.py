"""The numbers of the `/` filter's metric fields (`cpu>50`, `memory>=4G`, `uptime>2h`): how a value is
read by the metric's unit, and the comparison closures (filter.py has the grammar)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from vimtui.core import metrics
from vimtui.core.model import VmState
from vimtui.core.units import parse_duration


class _HasNow(Protocol):
    @property
    def now(self) -> float: ...


_NUM = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_PLAIN_RE = re.compile(_NUM)
_PERCENT_RE = re.compile(_NUM + "%?")
_BYTES_RE = re.compile(_NUM + r"(?:([kmgt])(?:i?b)?|(b))?", re.IGNORECASE)
_POWERS = {"": 1.0, "k": 2.0**10, "m": 2.0**20, "g": 2.0**30, "t": 2.0**40}


def plain_number(value: str) -> float | None:
    m = _PLAIN_RE.fullmatch(value)
    return float(m.group(1)) if m else None


def _percent(value: str) -> float | None:
    m = _PERCENT_RE.fullmatch(value)
    return float(m.group(1)) if m else None


def _bytes(value: str) -> float | None:
    """Bytes: 10, 10K, 10M, 10G (KiB, MiB, GiB), also written 10MiB or 10MB."""
    m = _BYTES_RE.fullmatch(value)
    return float(m.group(1)) * _POWERS[(m.group(2) or "").lower()] if m else None


def _mebibytes(value: str) -> float | None:
    """Bytes, from MiB without a suffix (4096), else any of _bytes' suffixes (4G)."""
    m = _BYTES_RE.fullmatch(value)
    if m is None:
        return None
    if m.group(2) is None and m.group(3) is None:
        return float(m.group(1)) * 2**20
    return float(m.group(1)) * _POWERS[(m.group(2) or "").lower()]


def _duration(value: str) -> float | None:
    """Seconds: 90, or parts with ms/s/m/h/d/w suffixes (2h30m): the one duration parser."""
    return parse_duration(value)


NUMBER_PARSERS: dict[str, Callable[[str], float | None]] = {
    "%": _percent,
    "B/s": _bytes,
    "B": _mebibytes,
    "s": _duration,
}
"""How a value is read, by the metric's unit (a plain number otherwise)."""
SUMMARY_UNITS = {"%": "%", "B/s": "/s"}
"""What the filter bar's summary adds to a value, by the metric's unit."""


def compare(get: metrics.Value, op: str, n: float) -> Callable[[VmState, Any], bool]:
    """A comparison closure per operator (no operator call per VM). Unknown values never match."""
    if op == ">":

        def gt(vm: VmState, ctx: _HasNow) -> bool:
            v = get(vm, ctx.now)
            return v is not None and v > n

        return gt
    if op == "<":

        def lt(vm: VmState, ctx: _HasNow) -> bool:
            v = get(vm, ctx.now)
            return v is not None and v < n

        return lt
    if op == ">=":

        def ge(vm: VmState, ctx: _HasNow) -> bool:
            v = get(vm, ctx.now)
            return v is not None and v >= n

        return ge
    if op == "<=":

        def le(vm: VmState, ctx: _HasNow) -> bool:
            v = get(vm, ctx.now)
            return v is not None and v <= n

        return le
    if op == "=":

        def eq(vm: VmState, ctx: _HasNow) -> bool:
            v = get(vm, ctx.now)
            return v is not None and v == n

        return eq

    def ne(vm: VmState, ctx: _HasNow) -> bool:
        v = get(vm, ctx.now)
        return v is not None and v != n

    return ne
