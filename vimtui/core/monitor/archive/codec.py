"""A bucket's figures as one blob and the arithmetic on them: the archive's storage format.

The blob, for the k metrics that had samples: k (u8), then k metric ids (u8), k sample counts (u16, capped
at 65535), k averages and k peaks (float32: 7 significant digits, plenty for graphs and reports), 1 + 11k
bytes, packed and unpacked in one call."""

from __future__ import annotations

import functools
import math
import operator
import struct
from array import array
from collections.abc import Sequence

_U16 = struct.Struct("<H")
_F32 = struct.Struct("<f")
_F32_MAX = 3.4028234663852886e38
_MAX_COUNT = 0xFFFF
MAX_METRIC_ID = 0xFF
BLANK = (0.0, 0.0, -math.inf)
"""A metric's accumulator before its first sample: sum, count, peak."""


class Acc:
    """One key's samples in one bucket: per metric (by the archive's metric index) sum, count, peak."""

    __slots__ = ("key", "b", "v", "rows", "at")

    def __init__(self, key: str, b: int, v: array[float]) -> None:
        self.key = key
        self.b = b
        """The bucket number: time // step."""
        self.v = v
        self.rows: list[float | None] | None = None
        """Samples not yet in `v` (Archive.add_many's rows, one a poll, end to end: a list of numbers
        holds no tuples for the garbage collector to look at): `fold` adds them."""
        self.at: list[int] | None = None
        """The places in `v` of each row's values."""

    def fold(self, blank: array[float]) -> None:
        """The rows held back into the sums, counts and peaks, a column (a metric's samples in this bucket)
        at a time: sum() and max() of the column where its values are all numbers, else leaving out None,
        NaN and infinities (as Archive.add) and anything else that is not a number: never raises (it runs
        on the archive's thread and under reads too). `blank`: the accumulator of no samples at
        the archive's width now (a metric seen since the bucket opened makes room)."""
        rows, at, v = self.rows, self.at, self.v
        self.rows = self.at = None
        if len(v) < len(blank):
            v.extend(blank[len(v) :])
        if not rows or not at:
            return
        width = len(at)
        for i, j in enumerate(at):
            col: list[float] = rows[i::width]  # type: ignore[assignment]  # what is not a number: below
            if col[0] is None and col.count(None) == len(col):
                continue  # a metric the key does not have (a VM without a balloon): no exception raised
            try:
                total = sum(col)
            except TypeError:  # None (nothing known at some polls), or worse
                col = [x for x in col if isinstance(x, (int, float))]
                if not col:
                    continue
                total = sum(col)
            if total - total == 0.0:  # no NaN, no infinity
                v[j] += total
                v[j + 1] += len(col)
                top = max(col)
                if top > v[j + 2]:
                    v[j + 2] = top
                continue
            for x in col:
                if x - x:  # NaN (nan - nan is nan) and infinities (inf - inf)
                    continue
                v[j] += x
                v[j + 1] += 1.0
                if x > v[j + 2]:
                    v[j + 2] = x


Note = tuple[float, str, str, str]
Buckets = dict[int, list[float]]


def _f32(x: float) -> float:
    return _F32_MAX if x > _F32_MAX else -_F32_MAX if x < -_F32_MAX else x


@functools.cache
def _layout(k: int) -> struct.Struct:
    """A bucket's blob with k metrics: k, then k metric ids (u8), k sample counts (u16), k averages and
    k peaks (float32); columns rather than records, so that a whole blob is one pack() or unpack()."""
    return struct.Struct(f"<B{k}B{k}H{k}f{k}f")


def pack(
    mids: Sequence[int], counts: Sequence[float], avgs: Sequence[float], peaks: Sequence[float]
) -> bytes:
    """The blob of one bucket (counts capped at 65535, values clamped to float32's range)."""
    if not mids:
        return b""
    if max(counts) > _MAX_COUNT:
        counts = [min(n, _MAX_COUNT) for n in counts]
    if min(avgs) < -_F32_MAX or max(avgs) > _F32_MAX:
        avgs = [_f32(x) for x in avgs]
    if min(peaks) < -_F32_MAX or max(peaks) > _F32_MAX:
        peaks = [_f32(x) for x in peaks]
    return _layout(len(mids)).pack(len(mids), *mids, *map(int, counts), *avgs, *peaks)


def unpack(data: bytes) -> tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...], tuple[float, ...]]:
    """(metric ids, counts, averages, peaks) of a blob; a blob of the wrong length (damage) gives nothing."""
    k = data[0] if data else 0
    layout = _layout(k)
    if len(data) != layout.size:
        return (), (), (), ()
    vals = layout.unpack(data)
    return vals[1 : k + 1], vals[k + 1 : 2 * k + 1], vals[2 * k + 1 : 3 * k + 1], vals[3 * k + 1 :]


def field_of(data: bytes, mid: bytes) -> tuple[int, float, float] | None:
    """(count, average, peak) of one metric (its id as one byte) in a blob, without unpacking the rest."""
    k = data[0] if data else 0
    i = data.find(mid, 1, k + 1) - 1
    if i < 0 or len(data) != 1 + 11 * k:
        return None
    n: int = _U16.unpack_from(data, 1 + k + 2 * i)[0]
    avg: float = _F32.unpack_from(data, 1 + 3 * k + 4 * i)[0]
    peak: float = _F32.unpack_from(data, 1 + 7 * k + 4 * i)[0]
    return n, avg, peak


def merged(a: array[float], b: array[float]) -> array[float]:
    """Two accumulators as a new one: sums and counts added, peaks the larger."""
    if len(a) != len(b):
        width = max(len(a), len(b))
        a, b = (x + array("d", BLANK * ((width - len(x)) // 3)) for x in (a, b))
    out = array("d", map(operator.add, a, b))
    out[2::3] = array("d", map(max, a[2::3], b[2::3]))
    return out


def add_record(buckets: Buckets, b: int, n: float, total: float, peak: float) -> None:
    acc = buckets.get(b)
    if acc is None:
        buckets[b] = [total, n, peak]
    else:
        acc[0] += total
        acc[1] += n
        if peak > acc[2]:
            acc[2] = peak


def accumulate(acc: dict[int, list[float]], blob: bytes) -> None:
    """Add a blob's figures into `acc` (metric id -> [sum, count, peak])."""
    for mid, n, avg, peak in zip(*unpack(blob), strict=True):
        s = acc.get(mid)
        if s is None:
            acc[mid] = [avg * n, n, peak]
        else:
            s[0] += avg * n
            s[1] += n
            if peak > s[2]:
                s[2] = peak


def merge_blobs(a: bytes, b: bytes) -> bytes:
    """The SQL function behind the upsert: one bucket's two blobs as one (counts add, peaks max)."""
    acc: dict[int, list[float]] = {}
    for blob in (a, b):
        accumulate(acc, blob)
    items = [(mid, s) for mid, s in sorted(acc.items()) if s[1]]
    return pack(
        [mid for mid, _s in items],
        [s[1] for _m, s in items],
        [s[0] / s[1] for _m, s in items],
        [s[2] for _m, s in items],
    )
