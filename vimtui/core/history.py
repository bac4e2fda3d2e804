"""Compact metric history per key (a VM or a host): ring buffers of doubles at two resolutions.

Each key owns, per metric, one `array('d')` of 1-second slots covering the last 15 minutes and one of
1-minute slots covering the last 24 hours: 8 bytes a slot, no Python object per sample. A slot holds NaN
until something is recorded in it, so gaps (a host that did not answer, a VM that was off) stay visible
as gaps. Several samples in one second: the fine slot keeps the last; the minute slot keeps their mean.
Recording is O(metrics), except after a jump in time, which clears the skipped slots (at most one ring).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence

NAN = math.nan


class _Ring:
    """One resolution of one key: an array per metric, and the absolute number of the newest slot."""

    __slots__ = ("arrays", "head")

    def __init__(self, n_metrics: int, blank: array[float]) -> None:
        self.arrays = [array("d", blank) for _ in range(n_metrics)]
        self.head: int | None = None

    def advance(self, slot: int, blank: array[float]) -> bool:
        """Move the head to `slot`, clearing the slots skipped on the way; False for a slot in the past."""
        head = self.head
        if head is None:
            self.head = slot
            return True
        if slot == head:
            return True
        if slot < head:
            return False
        size = len(blank)
        skipped = min(slot - head, size)
        start = (head + 1) % size
        end = start + skipped
        for arr in self.arrays:
            if end <= size:
                arr[start:end] = blank[:skipped]
            else:
                arr[start:] = blank[: size - start]
                arr[: end - size] = blank[: end - size]
        self.head = slot
        return True


class _Entry:
    __slots__ = ("fine", "coarse", "counts")

    def __init__(self, n_metrics: int, fine_blank: array[float], coarse_blank: array[float]) -> None:
        self.fine = _Ring(n_metrics, fine_blank)
        self.coarse = _Ring(n_metrics, coarse_blank)
        self.counts = array("d", bytes(8 * n_metrics))
        """Samples averaged so far into the open minute slot, per metric."""


class History:
    """Metric history for many keys, with a fixed metric set given at construction."""

    def __init__(
        self,
        metrics: Sequence[str],
        *,
        fine_slots: int = 900,
        fine_step: float = 1.0,
        coarse_slots: int = 1440,
        coarse_step: float = 60.0,
    ) -> None:
        if len(set(metrics)) != len(metrics) or not metrics:
            raise ValueError(f"metrics must be distinct and not empty: {metrics!r}")
        if fine_slots < 1 or coarse_slots < 1 or fine_step <= 0 or coarse_step <= 0:
            raise ValueError("slot counts and steps must be positive")
        self.metrics: tuple[str, ...] = tuple(metrics)
        self.fine_slots, self.fine_step = fine_slots, fine_step
        self.coarse_slots, self.coarse_step = coarse_slots, coarse_step
        self._index = {m: i for i, m in enumerate(self.metrics)}
        self._fine_blank = array("d", [NAN]) * fine_slots
        self._coarse_blank = array("d", [NAN]) * coarse_slots
        self._entries: dict[str, _Entry] = {}

    @property
    def fine_span(self) -> float:
        """Seconds the fine ring covers (900 by default): longer windows read the coarse ring."""
        return self.fine_slots * self.fine_step

    def record(self, key: str, t: float, values: Mapping[str, float | None]) -> None:
        """Record one sample at time `t` (seconds, increasing per key). None or NaN records nothing for
        that metric; a metric not in the set raises KeyError. A sample older than the key's newest slot
        (a clock stepped back) is ignored."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(len(self.metrics), self._fine_blank, self._coarse_blank)
        fine_slot = math.floor(t / self.fine_step)
        coarse_slot = math.floor(t / self.coarse_step)
        coarse = entry.coarse
        new_minute = coarse.head is None or coarse_slot > coarse.head
        if not entry.fine.advance(fine_slot, self._fine_blank):
            return
        if not coarse.advance(coarse_slot, self._coarse_blank):
            return
        counts = entry.counts
        if new_minute:
            for i in range(len(counts)):
                counts[i] = 0.0
        fpos = fine_slot % self.fine_slots
        cpos = coarse_slot % self.coarse_slots
        index = self._index
        for name, value in values.items():
            i = index[name]
            if value is None or value != value:  # None or NaN: nothing known
                continue
            entry.fine.arrays[i][fpos] = value
            n = counts[i] + 1.0
            counts[i] = n
            arr = coarse.arrays[i]
            arr[cpos] = value if n == 1.0 else arr[cpos] + (value - arr[cpos]) / n

    def series(self, key: str, metric: str, window: float, now: float) -> tuple[list[float], list[float]]:
        """(times, values) of the slots that start in (now - window, now], oldest first, gaps left out.
        A window up to `fine_span` reads the 1-second ring, a longer one the 1-minute ring; a slot's
        time is its start."""
        i = self._index[metric]
        entry = self._entries.get(key)
        if entry is None:
            return [], []
        if window <= self.fine_span:
            ring, step, size = entry.fine, self.fine_step, self.fine_slots
        else:
            ring, step, size = entry.coarse, self.coarse_step, self.coarse_slots
        if ring.head is None:
            return [], []
        hi = min(math.floor(now / step), ring.head)
        lo = max(math.floor((now - window) / step) + 1, ring.head - size + 1)
        arr = ring.arrays[i]
        times: list[float] = []
        values: list[float] = []
        for slot in range(lo, hi + 1):
            v = arr[slot % size]
            if v == v:
                times.append(slot * step)
                values.append(v)
        return times, values

    def latest(self, key: str, metric: str) -> float | None:
        """The metric's value in the key's newest 1-second slot; None when that sample did not have it."""
        i = self._index[metric]
        entry = self._entries.get(key)
        if entry is None or entry.fine.head is None:
            return None
        v = entry.fine.arrays[i][entry.fine.head % self.fine_slots]
        return None if v != v else v

    def keys(self) -> list[str]:
        return list(self._entries)

    def drop(self, key: str) -> None:
        """Forget a key (a VM undefined, a host removed); unknown keys are fine."""
        self._entries.pop(key, None)

    def drop_missing(self, keep: Iterable[str]) -> None:
        """Forget every key not in `keep`."""
        wanted = set(keep)
        for key in [k for k in self._entries if k not in wanted]:
            del self._entries[key]

    def memory_bytes(self) -> int:
        """Bytes held in the arrays of all keys: the two rings per metric and the open minute's counts."""
        total = 0
        for entry in self._entries.values():
            for ring in (entry.fine, entry.coarse):
                for arr in ring.arrays:
                    total += arr.buffer_info()[1] * arr.itemsize
            total += entry.counts.buffer_info()[1] * entry.counts.itemsize
        return total

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
