"""Compact metric history per key (a VM or a host): ring buffers of 2-byte codes at two resolutions.

Each key owns two rings: 1-second slots covering the last 15 minutes (`fine`) and 1-minute slots covering
the last 24 hours (`coarse`). A ring is one `array('H')` holding every metric of a slot side by side (slot
s, metric i at `position(s) * len(metrics) + i`), so a key costs two arrays, the open minute's short
list and one small object, never a Python object per sample. A slot holds the code `NO_VALUE` until
something is recorded in it, so gaps (a host that did not answer, a VM that was off) stay visible as gaps.

Several samples in one second: the fine slot keeps the last; the minute slot keeps their mean. The open
minute is kept as a running sum and count per metric (a float and an int, `acc`) and written into its slot, as
a code, when the next minute starts; `series()` reads it from there meanwhile.

Memory. The fine ring is allocated at a key's first record, whole by default (`fine_chunk`); the coarse
ring is allocated lazily and grows `coarse_chunk` slots (an hour) at a time up to `coarse_slots`, so a key
recorded for 15 minutes holds 2 B x metrics x (900 + 60) slots, and one recorded for a day
2 B x metrics x (900 + 1440). Recording is O(metrics), except after a jump in time, which clears the
skipped slots (at most one ring) and, once in a while, when the coarse ring grows by a chunk.

Encoding, chosen per metric by `History(percent=...)` (default: the naming rule below):

- percent metrics (the names "cpu" and "mem", and every name ending in "pct", unless `percent` is given):
  code = round(x * 100), i.e. steps of 0.01 %: a value in [0, 655.34] decodes within 0.005 of itself.
- every other metric (byte rates): code = round(log1p(x) * 2048): a value in [0, about 7.9e13] decodes
  within (1 + x) * 2.5e-4 of itself, i.e. under 0.025 % relative error for rates of a few B/s and up.

A value below 0 is stored as 0 and one above the range as its top (`PCT_MAX`, `RATE_MAX`); None and NaN
record nothing. `encode()` and `decode()` are the two directions, for one value.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence

NO_VALUE = 0xFFFF
"""The code of a slot with no value (nothing recorded, or None/NaN)."""
MAX_CODE = NO_VALUE - 1
PCT_SCALE = 100.0
"""Codes per percent point: percent metrics are stored in steps of 0.01 %."""
RATE_SCALE = 2048.0
"""Codes per unit of log1p(x) for the other metrics: one step is a factor exp(1/2048), 0.049 %."""
PCT_MAX = MAX_CODE / PCT_SCALE
"""The largest percent value stored as itself (655.34); larger ones are stored as this."""
RATE_MAX = math.expm1(MAX_CODE / RATE_SCALE)
"""The largest rate stored as itself (about 7.9e13, past 1e13 B/s); larger ones are stored as this."""
PCT_TOLERANCE = 0.5 / PCT_SCALE
"""|decode(encode(x)) - x| for a percent value in [0, PCT_MAX] (plus float rounding)."""
RATE_TOLERANCE = 2.5e-4
"""|decode(encode(x)) - x| <= (1 + x) * RATE_TOLERANCE for a rate in [0, RATE_MAX]: exp(0.5/2048) - 1."""

_PERCENT_NAMES = ("cpu", "mem")


def is_percent_name(metric: str) -> bool:
    """The default rule for which metrics are percentages: "cpu", "mem", and names ending in "pct"."""
    return metric in _PERCENT_NAMES or metric.endswith("pct")


def encode(value: float | None, percent: bool) -> int:
    """The 2-byte code of one value (`NO_VALUE` for None or NaN), clamped to the metric's range."""
    if value is None or value != value:
        return NO_VALUE
    if value <= 0.0:
        return 0
    if percent:
        return MAX_CODE if value >= PCT_MAX else int(value * PCT_SCALE + 0.5)
    return MAX_CODE if value >= RATE_MAX else int(math.log1p(value) * RATE_SCALE + 0.5)


def decode(code: int, percent: bool) -> float | None:
    """The value a code stands for; None for `NO_VALUE`."""
    if code == NO_VALUE:
        return None
    return code / PCT_SCALE if percent else math.expm1(code / RATE_SCALE)


def _move(
    arr: array[int], base: int, head: int, slot: int, size: int, chunk: int, blank: array[int]
) -> tuple[array[int], int]:
    """Make `slot` (> head) a ring's newest slot; return its array (a new one if it grew) and base.

    Slot s lives at position (s - base) % size. Until the ring has wrapped once, `arr` may be shorter
    than `size` slots (positions past `head - base` were never written, so they need no clearing) and
    grows `chunk` slots at a time, into a new array of exactly that size (no over-allocation). After a
    jump of a whole ring or more nothing survives: the ring starts a new first lap at `slot`."""
    n = len(blank) // size  # codes a slot (one per metric)
    if slot - head >= size:
        arr[:] = blank[: len(arr)]
        return arr, slot
    offset = slot - base
    have = len(arr) // n
    if offset >= have:  # still in the first lap: grow to cover `slot`
        want = min(size, (offset // chunk + 1) * chunk)
        arr = arr + blank[: (want - have) * n]
    first = max(head + 1, base + size)  # slots from here to `slot` hold the previous lap
    if first <= slot:
        start = (first - base) % size
        end = start + slot - first + 1
        if end <= size:
            arr[start * n : end * n] = blank[: (end - start) * n]
        else:
            arr[start * n :] = blank[: (size - start) * n]
            arr[: (end - size) * n] = blank[: (end - size) * n]
    return arr, base


class _Entry:
    """One key: its two rings (array, base slot, newest slot) and the open minute's sums and counts."""

    __slots__ = ("began", "fine", "fine_base", "fine_head", "coarse", "coarse_base", "coarse_head", "acc")

    def __init__(self, fine_slot: int, coarse_slot: int, n_metrics: int, began: float) -> None:
        self.began = began
        """The time of the key's first sample: its first minute slot starts earlier and holds no more."""
        self.fine: array[int] = array("H")
        self.fine_base = fine_slot
        self.fine_head = fine_slot - 1  # so that the first record grows the ring to cover its slot
        self.coarse: array[int] = array("H")
        self.coarse_base = self.coarse_head = coarse_slot
        self.acc: list[float] = [0.0] * n_metrics + [0] * n_metrics
        """The open minute: the sum of the samples per metric (floats), then their count per metric (ints).
        A list rather than an array("d"): at every record, a list's item assignment costs half."""


class History:
    """Metric history for many keys, with a fixed metric set given at construction.

    `percent`: the metrics stored as percentages (0.01 % steps, up to 655.34); the others are stored
    with a log code (rates in B/s, up to about 7.9e13). Default: `is_percent_name` of each metric.
    `fine_chunk` (default: the whole ring) and `coarse_chunk` (default: 60 slots, an hour): how many
    slots a ring is allocated at a time, until it holds `fine_slots` / `coarse_slots`."""

    def __init__(
        self,
        metrics: Sequence[str],
        *,
        percent: Iterable[str] | None = None,
        fine_slots: int = 900,
        fine_step: float = 1.0,
        coarse_slots: int = 1440,
        coarse_step: float = 60.0,
        fine_chunk: int | None = None,
        coarse_chunk: int = 60,
    ) -> None:
        if len(set(metrics)) != len(metrics) or not metrics:
            raise ValueError(f"metrics must be distinct and not empty: {metrics!r}")
        if fine_slots < 1 or coarse_slots < 1 or fine_step <= 0 or coarse_step <= 0:
            raise ValueError("slot counts and steps must be positive")
        fine_chunk = fine_slots if fine_chunk is None else fine_chunk
        if fine_chunk < 1 or coarse_chunk < 1:
            raise ValueError("chunks must be positive")
        self.metrics: tuple[str, ...] = tuple(metrics)
        if percent is None:
            pct = frozenset(m for m in self.metrics if is_percent_name(m))
        else:
            pct = frozenset(percent)
            if not pct <= set(self.metrics):
                raise ValueError(f"percent metrics not in the metric set: {sorted(pct - set(self.metrics))}")
        self.percent: frozenset[str] = pct
        """The metrics stored as percentages; the others get the log code."""
        self.fine_slots, self.fine_step = fine_slots, fine_step
        self.coarse_slots, self.coarse_step = coarse_slots, coarse_step
        self._fine_chunk, self._coarse_chunk = fine_chunk, coarse_chunk
        self._index = {m: i for i, m in enumerate(self.metrics)}
        self._pct = tuple(m in pct for m in self.metrics)
        n = len(self.metrics)
        self._fine_blank = array("H", [NO_VALUE]) * (fine_slots * n)
        self._fine_blanks = tuple(self._fine_blank[: k * n] for k in range(min(fine_slots, 16)))
        """Blank runs of fewer than 16 fine slots (and than the ring), for its usual moves (record_many)."""
        self._coarse_blank = array("H", [NO_VALUE]) * (coarse_slots * n)
        self._zeros: list[float] = [0.0] * n + [0] * n  # sums, counts (ints: no float made a record)
        self._entries: dict[str, _Entry] = {}

    @property
    def fine_span(self) -> float:
        """Seconds the fine ring covers (900 by default): longer windows read the coarse ring."""
        return self.fine_slots * self.fine_step

    def record(self, key: str, t: float, values: Mapping[str, float | None]) -> None:
        """Record one sample at time `t` (seconds, increasing per key). None or NaN records nothing for
        that metric; a metric not in the set raises KeyError. A sample older than the key's newest slot
        (a clock stepped back) is ignored. Values are clamped to the metric's range (see the module)."""
        fine_slot = math.floor(t / self.fine_step)
        coarse_slot = math.floor(t / self.coarse_step)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(fine_slot, coarse_slot, len(self.metrics), t)
        elif fine_slot < entry.fine_head or coarse_slot < entry.coarse_head:
            return
        if fine_slot != entry.fine_head:
            entry.fine, entry.fine_base = _move(
                entry.fine,
                entry.fine_base,
                entry.fine_head,
                fine_slot,
                self.fine_slots,
                self._fine_chunk,
                self._fine_blank,
            )
            entry.fine_head = fine_slot
        acc = entry.acc
        n = len(self._pct)
        if coarse_slot != entry.coarse_head:
            self._close_minute(entry, coarse_slot)
        fine = entry.fine
        base = ((fine_slot - entry.fine_base) % self.fine_slots) * n
        index, pct = self._index, self._pct
        for name, value in values.items():
            i = index[name]
            if value is None or value != value:  # None or NaN: nothing known
                continue
            if value <= 0.0:
                value, code = 0.0, 0
            elif pct[i]:
                if value >= PCT_MAX:
                    value, code = PCT_MAX, MAX_CODE
                else:
                    code = int(value * PCT_SCALE + 0.5)
            elif value >= RATE_MAX:
                value, code = RATE_MAX, MAX_CODE
            else:
                code = int(math.log1p(value) * RATE_SCALE + 0.5)
            fine[base + i] = code
            acc[i] += value
            acc[n + i] += 1

    def record_many(self, t: float, rows: Iterable[tuple[str, Sequence[float | None]]]) -> None:
        """Record one sample per key at the same time `t`: `rows` are (key, values), the values in the
        order of `metrics` (all of them). The same as `record(key, t, dict(zip(metrics, values)))` for
        each row, in one pass (a poll's VMs: the slot numbers once, the usual ring move inline)."""
        fine_slot = math.floor(t / self.fine_step)
        coarse_slot = math.floor(t / self.coarse_step)
        entries = self._entries
        pct = self._pct
        n = len(pct)
        size = self.fine_slots
        full = size * n
        blank, blanks = self._fine_blank, self._fine_blanks
        log1p = math.log1p
        # The keys of one poll usually share their ring's base and newest slot (first and last recorded
        # together): the move of a whole ring is worked out once for them, and reused while they match.
        same_base = same_head = None
        clear1: slice | None = None
        clear2: slice | None = None
        blank1 = blank2 = blank
        same_pos = 0
        for key, values in rows:
            entry = entries.get(key)
            if entry is None:
                entry = entries[key] = _Entry(fine_slot, coarse_slot, n, t)
            elif fine_slot < entry.fine_head or coarse_slot < entry.coarse_head:
                continue
            fine = entry.fine
            head = entry.fine_head
            fbase = entry.fine_base
            if head == same_head and fbase == same_base and len(fine) == full:
                if clear1 is not None:
                    fine[clear1] = blank1
                    if clear2 is not None:
                        fine[clear2] = blank2
                entry.fine_head = fine_slot
                pos = same_pos
            else:
                if fine_slot != head:
                    gap = fine_slot - head
                    if gap < len(blanks) and len(fine) == full:
                        # the ring is whole and moves on by a few slots: _move's usual case, inline
                        clear1 = clear2 = None
                        first = head + 1 if head + 1 >= fbase + size else fbase + size
                        if first <= fine_slot:
                            start = (first - fbase) % size
                            end = start + fine_slot - first + 1
                            if end <= size:
                                clear1, blank1 = slice(start * n, end * n), blanks[end - start]
                            else:
                                clear1, blank1 = slice(start * n, full), blanks[size - start]
                                clear2, blank2 = slice(0, (end - size) * n), blanks[end - size]
                            fine[clear1] = blank1
                            if clear2 is not None:
                                fine[clear2] = blank2
                        same_base, same_head = fbase, head
                        same_pos = ((fine_slot - fbase) % size) * n
                    else:
                        fine, entry.fine_base = _move(
                            fine, fbase, head, fine_slot, size, self._fine_chunk, blank
                        )
                        entry.fine = fine
                    entry.fine_head = fine_slot
                pos = ((fine_slot - entry.fine_base) % size) * n
            if coarse_slot != entry.coarse_head:
                self._close_minute(entry, coarse_slot)
            acc = entry.acc
            i = 0
            for value in values:
                if value is not None and value == value:  # else None or NaN: nothing known
                    if value <= 0.0:  # 0 (an idle disk or NIC: the usual value), or below: stored as 0
                        fine[pos + i] = 0
                        acc[n + i] += 1
                        i += 1
                        continue
                    if pct[i]:
                        if value >= PCT_MAX:
                            value, code = PCT_MAX, MAX_CODE
                        else:
                            code = int(value * PCT_SCALE + 0.5)
                    elif value >= RATE_MAX:
                        value, code = RATE_MAX, MAX_CODE
                    else:
                        code = int(log1p(value) * RATE_SCALE + 0.5)
                    fine[pos + i] = code
                    acc[i] += value
                    acc[n + i] += 1
                i += 1

    def _close_minute(self, entry: _Entry, coarse_slot: int) -> None:
        """Move the coarse ring to `coarse_slot`, writing the minute that ends into its slot."""
        head, size = entry.coarse_head, self.coarse_slots
        entry.coarse, entry.coarse_base = _move(
            entry.coarse, entry.coarse_base, head, coarse_slot, size, self._coarse_chunk, self._coarse_blank
        )
        acc, pct = entry.acc, self._pct
        n = len(pct)
        if coarse_slot - head < size:  # the minute that ends is still in the ring
            base = ((head - entry.coarse_base) % size) * n
            arr = entry.coarse
            for i in range(n):
                count = acc[n + i]
                if count:
                    arr[base + i] = encode(acc[i] / count, pct[i])
        acc[:] = self._zeros
        entry.coarse_head = coarse_slot

    def series(self, key: str, metric: str, window: float, now: float) -> tuple[list[float], list[float]]:
        """(times, values) of the slots that start in (now - window, now], oldest first, gaps left out.
        A window up to `fine_span` reads the 1-second ring, a longer one the 1-minute ring; a slot's
        time is its start. Values are decoded from their codes (see the module for the tolerance)."""
        i = self._index[metric]
        entry = self._entries.get(key)
        if entry is None:
            return [], []
        pct = self._pct[i]
        n = len(self._pct)
        coarse = window > self.fine_span
        if coarse:
            arr, base, head = entry.coarse, entry.coarse_base, entry.coarse_head
            step, size = self.coarse_step, self.coarse_slots
        else:
            arr, base, head = entry.fine, entry.fine_base, entry.fine_head
            step, size = self.fine_step, self.fine_slots
        hi = min(math.floor(now / step), head)
        lo = max(math.floor((now - window) / step) + 1, head - size + 1, base)
        times: list[float] = []
        values: list[float] = []
        last = hi - 1 if coarse and hi == head else hi  # the open minute is in `acc`, not yet in `arr`
        for slot in range(lo, last + 1):
            code = arr[((slot - base) % size) * n + i]
            if code != NO_VALUE:
                times.append(slot * step)
                values.append(code / PCT_SCALE if pct else math.expm1(code / RATE_SCALE))
        if last != hi and hi >= lo:
            count = entry.acc[n + i]
            if count:
                v = decode(encode(entry.acc[i] / count, pct), pct)
                assert v is not None
                times.append(hi * step)
                values.append(v)
        return times, values

    def latest(self, key: str, metric: str) -> float | None:
        """The metric's value in the key's newest 1-second slot; None when that sample did not have it."""
        i = self._index[metric]
        entry = self._entries.get(key)
        if entry is None:
            return None
        pos = (entry.fine_head - entry.fine_base) % self.fine_slots
        return decode(entry.fine[pos * len(self._pct) + i], self._pct[i])

    def began(self, key: str) -> float | None:
        """The time of the key's first sample (None for a key never recorded): what is older comes from
        elsewhere (the archive of an earlier run)."""
        entry = self._entries.get(key)
        return None if entry is None else entry.began

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
        """Bytes of sample data held for all keys: the two rings as allocated so far (2 B a slot per
        metric) and the open minute's sum and count per metric (8 B each). Python object headers are not
        counted (about 650 B a key at 10,000 keys: the entry, its two arrays, the open minute's list and
        its floats, its slot numbers and the dict slot)."""
        total = 0
        for entry in self._entries.values():
            for arr in (entry.fine, entry.coarse):
                total += len(arr) * arr.itemsize
            total += 8 * len(entry.acc)
        return total

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
