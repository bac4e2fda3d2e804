"""Lasting history: per-VM and per-host metric samples in SQLite, in two tiers, written off the event loop.

`History` (history.py) keeps the last 24 hours in memory for drawing; this archive keeps what must
survive a restart, for the graphs' 24 h window and for reports: 10-second buckets for a day (`fine`) and
5-minute buckets for 30 days (`coarse`), both configurable. A bucket keeps per metric the average, the
peak and the number of samples, so averages and peaks survive downsampling and averages of averages are
weighted properly.

The event loop only calls `add()` (once per VM and host per poll) and `note()` (an event: a state change,
an alert). They update in-memory accumulators under a lock (a few microseconds per VM, measured by
bench/archive.py) and never touch SQLite. One daemon thread of the archive's own opens the file, then,
every `fine_step` seconds (and on `flush()`/`close()`): writes the finished fine buckets in one
transaction, rolls them into the coarse buckets it holds until they end, prunes what is older than the
retention (measured from the newest sample added, i.e. the fleet's clock), and keeps the file under
`max_bytes` by deleting the oldest fine rows, then the oldest coarse rows, then the oldest events, and
giving the space back (auto_vacuum=INCREMENTAL). Reads run on the caller's thread (a worker: they block)
on a read-only connection of their own, and add what is still in memory, so a graph is current to the
last poll.

Layout: one row per (time, key) with the metrics packed in a blob, in tables ordered by time first
(`PRIMARY KEY (t, key) WITHOUT ROWID`). Time first makes every write an append at the end of the B-tree
and every prune or trim a range delete at its start, so a pass writes about as many pages as it adds
(key first would dirty a page per key per pass: some 40 MB of WAL every 10 s at 10,000 VMs). A series is
read by one primary-key lookup per bucket (a recursive CTE), whatever the fleet size: about 40 ms for a
day of 10-second buckets. The blob, for the k metrics that had samples: k (u8), then k metric ids (u8), k
sample counts (u16, capped at 65535), k averages and k peaks (float32: 7 significant digits, plenty for
graphs and reports), 1 + 11k bytes, packed and unpacked in one call. Measured for a VM's six metrics over
a day of 10-second buckets (20 VMs, random values, both layouts time first and WITHOUT ROWID): 0.78 MB
per VM per day this way, 1.6 MB with one row per (time, key, metric) and REAL columns; so the blob.
bench/archive.py prints the figures for the code as it is: with the coarse tier, about 1.6 MB per VM
for 24 hours of fine and 30 days of coarse buckets, so the default 256 MiB holds about 170 VMs before
the oldest fine rows give way (the coarse tier alone takes about 0.8 MB per VM for 30 days).

Keys ("host/uuid" for a VM, "host" for a host) and metric names are stored once, in lookup tables, as
small integer ids. A bucket's time is its start, in whole seconds (the steps are whole seconds), so a
change of step in the configuration does not make old rows mean other times. Rows are written with an
upsert that merges with what is already there, so a bucket written in parts (by `flush()`, or across a
restart) still adds up.

A key's labels (`describe()`: kind, name, host, group, uuid, tenant) are kept as JSON in its `keys` row, so
a report can name a VM long after it is gone. The event loop only puts them in memory (the fleet does so
when they are new or changed); the writer stores them when the key has a row, or as soon as it gets one.
Schema 2 added that column: a version-1 file is migrated in place (ALTER TABLE), and a read-only handle
reads a version-1 file without labels.

What can go wrong is reported through `on_problem` (from the archive's thread or a reader's), and logged,
never raised into the app: a file that is not a database or is damaged is renamed aside (with its -wal
and -shm) to `<name>.corrupt-<UTC time>` and a new one started; a file held by another vimtui (a lock
file, `<name>.lock`, with flock) or written by a newer vimtui, or a write that fails otherwise (disk
full), turns the archive off for the session: `add()` and `note()` do nothing, reads return nothing.
A crash loses what was not written yet: at most one pass of fine buckets and the coarse buckets still
open (up to `coarse_step`); `close()` writes everything. Another process holding a write lock on the file
(an sqlite3 shell) is reported once and the pass retried later.

The archive's thread does its Python work (about 10 us per VM per pass) holding the GIL, which Python
hands to the event loop every 5 ms: at 10,000 VMs a pass costs the loop a few such slices every 10 s.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import math
import operator
import os
import sqlite3
import struct
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_COARSE_KEEP",
    "DEFAULT_COARSE_STEP",
    "DEFAULT_FINE_KEEP",
    "DEFAULT_FINE_STEP",
    "DEFAULT_MAX_BYTES",
    "SCHEMA_VERSION",
    "Archive",
    "ArchiveStats",
    "Event",
    "Summary",
    "Timeline",
]

DEFAULT_FINE_STEP = 10.0
DEFAULT_FINE_KEEP = 86400.0
DEFAULT_COARSE_STEP = 300.0
DEFAULT_COARSE_KEEP = 30 * 86400.0
DEFAULT_MAX_BYTES = 256 * 2**20
SCHEMA_VERSION = 2
"""`PRAGMA user_version` of the files this code writes; a file with a higher one is left alone. 2: the
keys' labels (version 1 had none; it is migrated in place)."""

Summary = dict[str, dict[str, tuple[float, float, int]]]
"""key -> metric -> (average, peak, samples)."""
Event = tuple[float, str, str, str]
"""(time, key, kind, text)."""

_U16 = struct.Struct("<H")
_F32 = struct.Struct("<f")
_F32_MAX = 3.4028234663852886e38
_MAX_COUNT = 0xFFFF
_MAX_METRIC_ID = 0xFF
_TIME_LIMIT = float(2**40)
"""Sample times beyond +-this (year 36812) are ignored: they would not fit the integer columns."""
_TRIM_TO = 0.9
"""Over `max_bytes`, the oldest rows are deleted until the data takes this share of it."""
_SUMMARY_COARSE_STEPS = 12
"""`summary()` reads the coarse tier for windows of this many coarse steps or more (an hour by default)."""
_OPEN_WAIT = 30.0
"""Seconds a read waits for the archive's thread to have opened the file."""
_WAL_LIMIT = 4 * 2**20
_MAGIC = b"SQLite format 3\x00"
_CORRUPT_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB (primary codes)
_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
_MAX_LOOKUPS = 50_000
"""A series over more buckets than this (a clock that jumped) scans the rows in range instead."""
_BLANK = (0.0, 0.0, -math.inf)
"""A metric's accumulator before its first sample: sum, count, peak."""

_SCHEMA = """
CREATE TABLE keys (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, last INTEGER NOT NULL, label TEXT);
CREATE TABLE metrics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE fine (t INTEGER NOT NULL, key INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (t, key))
    WITHOUT ROWID;
CREATE TABLE coarse (t INTEGER NOT NULL, key INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (t, key))
    WITHOUT ROWID;
CREATE TABLE events (t REAL NOT NULL, key INTEGER NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL);
CREATE INDEX events_t ON events (t);
"""

_MIGRATE_1 = "ALTER TABLE keys ADD COLUMN label TEXT;"
"""Version 1 -> 2: the keys' labels."""
_KEY_IDS = "SELECT id, name, last FROM keys"

_UPSERT = (
    "INSERT INTO {} (t, key, data) VALUES (?, ?, ?) "
    "ON CONFLICT (t, key) DO UPDATE SET data = vimtui_merge(data, excluded.data)"
)
_SERIES = (
    "WITH RECURSIVE s(t) AS (SELECT ?1 UNION ALL SELECT t + ?2 FROM s WHERE t + ?2 <= ?3) "
    "SELECT r.t, r.data FROM s CROSS JOIN {} AS r ON r.t = s.t AND r.key = ?4"
)


@dataclass(frozen=True, slots=True)
class ArchiveStats:
    """What the archive's thread has done, for a diagnostics view and the benchmark."""

    enabled: bool
    passes: int
    """Write passes that wrote something."""
    rows: int
    """Fine and coarse rows written (upserted) so far."""
    last_pass_cpu: float
    """CPU seconds of the archive's thread in its last pass that wrote something."""
    last_pass_seconds: float
    """Wall seconds of that pass."""
    db_bytes: int
    """Pages in use times page size after the last pass (the -wal file comes on top: about 4 MiB)."""


@dataclass(frozen=True, slots=True)
class Timeline:
    """One key's buckets over a window (`timelines()`): how much of it they cover, and each metric as a
    short series for a chart."""

    step: int
    """Length of the buckets read, in seconds: the fine or the coarse tier (the one `summary()` reads)."""
    buckets: int
    """Buckets overlapping the window with a sample of any metric."""
    covered: float
    """Seconds of the window those buckets cover (each bucket clipped to the window)."""
    first: float | None
    """Start of the first such bucket (None: none)."""
    last: float | None
    """End of the last such bucket."""
    slot: float
    """Length of a series point: a whole number of buckets."""
    series: dict[str, tuple[list[float], list[float], list[float]]]
    """metric -> (slot start times, averages, peaks), oldest first, slots without samples left out."""


class _Acc:
    """One key's samples in one bucket: per metric (by the archive's metric index) sum, count, peak."""

    __slots__ = ("key", "b", "v")

    def __init__(self, key: str, b: int, v: array[float]) -> None:
        self.key = key
        self.b = b
        """The bucket number: time // step."""
        self.v = v


_Note = tuple[float, str, str, str]
_Buckets = dict[int, list[float]]


@dataclass(slots=True)
class _View:
    """One consistent picture for a read: the database as of one snapshot plus what was in memory then."""

    conn: sqlite3.Connection | None
    fine0: int | None
    """Start of the oldest fine row in the database."""
    fine: list[tuple[str, int, array[float]]]
    """Fine buckets not yet written: (key, bucket, values)."""
    coarse: list[tuple[str, int, array[float]]]
    """Coarse buckets the archive's thread holds until they end."""
    notes: list[_Note]


class _NotOurs(sqlite3.DatabaseError):
    """Not a SQLite database, or not an archive (no user_version, other tables): moved aside like damage."""


class _Newer(Exception):
    """Written by a newer vimtui: left alone."""


def _f32(x: float) -> float:
    return _F32_MAX if x > _F32_MAX else -_F32_MAX if x < -_F32_MAX else x


@functools.cache
def _layout(k: int) -> struct.Struct:
    """A bucket's blob with k metrics: k, then k metric ids (u8), k sample counts (u16), k averages and
    k peaks (float32); columns rather than records, so that a whole blob is one pack() or unpack()."""
    return struct.Struct(f"<B{k}B{k}H{k}f{k}f")


def _pack(
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


def _unpack(data: bytes) -> tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...], tuple[float, ...]]:
    """(metric ids, counts, averages, peaks) of a blob; a blob of the wrong length (damage) gives nothing."""
    k = data[0] if data else 0
    layout = _layout(k)
    if len(data) != layout.size:
        return (), (), (), ()
    vals = layout.unpack(data)
    return vals[1 : k + 1], vals[k + 1 : 2 * k + 1], vals[2 * k + 1 : 3 * k + 1], vals[3 * k + 1 :]


def _field(data: bytes, mid: bytes) -> tuple[int, float, float] | None:
    """(count, average, peak) of one metric (its id as one byte) in a blob, without unpacking the rest."""
    k = data[0] if data else 0
    i = data.find(mid, 1, k + 1) - 1
    if i < 0 or len(data) != 1 + 11 * k:
        return None
    n: int = _U16.unpack_from(data, 1 + k + 2 * i)[0]
    avg: float = _F32.unpack_from(data, 1 + 3 * k + 4 * i)[0]
    peak: float = _F32.unpack_from(data, 1 + 7 * k + 4 * i)[0]
    return n, avg, peak


def _merged(a: array[float], b: array[float]) -> array[float]:
    """Two accumulators as a new one: sums and counts added, peaks the larger."""
    if len(a) != len(b):
        width = max(len(a), len(b))
        a, b = (x + array("d", _BLANK * ((width - len(x)) // 3)) for x in (a, b))
    out = array("d", map(operator.add, a, b))
    out[2::3] = array("d", map(max, a[2::3], b[2::3]))
    return out


def _add_record(buckets: _Buckets, b: int, n: float, total: float, peak: float) -> None:
    acc = buckets.get(b)
    if acc is None:
        buckets[b] = [total, n, peak]
    else:
        acc[0] += total
        acc[1] += n
        if peak > acc[2]:
            acc[2] = peak


def _accumulate(acc: dict[int, list[float]], blob: bytes) -> None:
    """Add a blob's figures into `acc` (metric id -> [sum, count, peak])."""
    for mid, n, avg, peak in zip(*_unpack(blob), strict=True):
        s = acc.get(mid)
        if s is None:
            acc[mid] = [avg * n, n, peak]
        else:
            s[0] += avg * n
            s[1] += n
            if peak > s[2]:
                s[2] = peak


def _merge_blobs(a: bytes, b: bytes) -> bytes:
    """The SQL function behind the upsert: one bucket's two blobs as one (counts add, peaks max)."""
    acc: dict[int, list[float]] = {}
    for blob in (a, b):
        _accumulate(acc, blob)
    items = [(mid, s) for mid, s in sorted(acc.items()) if s[1]]
    return _pack(
        [mid for mid, _s in items],
        [s[1] for _m, s in items],
        [s[0] / s[1] for _m, s in items],
        [s[2] for _m, s in items],
    )


def _parse_labels(text: str) -> dict[str, str] | None:
    """A key's stored labels; None for anything but a JSON object (damage, a hand edit)."""
    try:
        info = json.loads(text)
    except ValueError:
        return None
    if not isinstance(info, dict):
        return None
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in info.items()}


def _is_corrupt(e: BaseException) -> bool:
    if isinstance(e, _NotOurs):
        return True
    code = getattr(e, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _CORRUPT_CODES


def _is_busy(e: BaseException) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _BUSY_CODES


class Archive:
    """The lasting history in one SQLite file (see the module); one writer per file, any number of reads.

    `fine_step`, `coarse_step`: bucket lengths in whole seconds (coarse a multiple of fine). `fine_keep`,
    `coarse_keep`: retention of each tier in seconds. `max_bytes`: bound of the database file. With
    `read_only` nothing is written and no lock is taken: for `vimtui report` while a TUI runs."""

    def __init__(
        self,
        path: Path,
        *,
        fine_step: float = DEFAULT_FINE_STEP,
        fine_keep: float = DEFAULT_FINE_KEEP,
        coarse_step: float = DEFAULT_COARSE_STEP,
        coarse_keep: float = DEFAULT_COARSE_KEEP,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_problem: Callable[[str], None] | None = None,
        read_only: bool = False,
    ) -> None:
        if fine_step < 1 or fine_step != int(fine_step) or coarse_step != int(coarse_step):
            raise ValueError(f"steps must be whole seconds: fine {fine_step}, coarse {coarse_step}")
        if coarse_step < fine_step or coarse_step % fine_step:
            raise ValueError(f"coarse_step ({coarse_step}) must be a multiple of fine_step ({fine_step})")
        if not fine_step <= fine_keep <= coarse_keep or coarse_keep < coarse_step:
            raise ValueError(f"need fine_step <= fine_keep <= coarse_keep: {fine_keep}, {coarse_keep}")
        if max_bytes < 2**16:
            raise ValueError(f"max_bytes must be at least 64 KiB: {max_bytes}")
        self.path = Path(path)
        self.fine_step = int(fine_step)
        self.coarse_step = int(coarse_step)
        self.fine_keep = fine_keep
        self.coarse_keep = coarse_keep
        self.max_bytes = max_bytes
        self.read_only = read_only
        self.problem: str | None = None
        """The last problem reported (also given to `on_problem`)."""
        self._on_problem = on_problem
        self._ratio = self.coarse_step // self.fine_step
        # Shared with add() and note(), under _lock: the open bucket per key, finished buckets not yet
        # taken by the writer, those it is writing, and the events alike.
        self._lock = threading.Lock()
        self._open: dict[str, _Acc] = {}
        self._ready: list[_Acc] = []
        self._inflight: list[_Acc] = []
        self._notes: list[_Note] = []
        self._inflight_notes: list[_Note] = []
        self._coarse: dict[str, _Acc] = {}
        """Open coarse buckets, as of the last commit; replaced, never changed, so readers may hold it."""
        self._labels: dict[str, dict[str, str]] = {}
        """Every key described in this session: its latest labels (the newest word, for readers too)."""
        self._labels_dirty: set[str] = set()
        """Keys described since the writer last stored their labels."""
        self._newest = -(2**62)
        """The newest fine bucket added."""
        self._index: dict[str, int] = {}
        """Metric name -> its position in an accumulator (3 x the metric's index)."""
        self._names: list[str] = []
        self._blank: array[float] = array("d")
        self._accepting = not read_only
        # A commit and what it publishes happen at once for readers: the writer holds _snap_lock around
        # COMMIT and the memory swap, a reader around starting its snapshot and copying memory.
        # Lock order: _read_lock, _snap_lock, _lock.
        self._snap_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._rdb: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._reported: set[str] = set()
        self._enabled = True
        # the writer's own state
        self._key_ids: dict[str, list[int]] = {}
        """Key name -> [id, `last` as stored]; `last` is refreshed once per coarse step of a key."""
        self._last_updates: dict[int, int] = {}
        self._metric_ids: dict[str, int] = {}
        self._mids: list[int] = []
        """Metric ids in accumulator order (0: not storable)."""
        self._fresh: list[str] = []
        """Keys inserted in the current pass: their labels, if described, go into the same pass."""
        self._label_column = True
        """Whether the file has the keys' labels (a read-only handle on a version-1 file has not)."""
        self._pruned = -(2**62)
        self._keys_pruned = -(2**62)
        self._scanned_coarse = -(2**62)
        self._stats = ArchiveStats(True, 0, 0, 0.0, 0.0, 0)
        self._recover_requested: BaseException | None = None
        # flush / close hand-shake with the writer thread
        self._cv = threading.Condition()
        self._flush_asked = 0
        self._flush_done = 0
        self._closing = False
        self._closed = False
        self._dead = False
        self._opened = threading.Event()
        self._thread: threading.Thread | None = None
        if read_only:
            self._open_read_only()
            self._opened.set()
        else:
            self._thread = threading.Thread(target=self._run, name=f"archive-{self.path.name}", daemon=True)
            self._thread.start()

    # -- the event loop's side ----------------------------------------------------------------------

    def add(self, key: str, t: float, values: Mapping[str, float | None]) -> None:
        """One sample of a key at time `t` (seconds): None, NaN and infinities are left out. Cheap: only
        memory is touched; never raises."""
        if not self._accepting:
            return
        try:
            if not -_TIME_LIMIT < t < _TIME_LIMIT:
                return
            b = int(t // self.fine_step)
            with self._lock:
                acc = self._open.get(key)
                if acc is None or acc.b != b:
                    if acc is not None:
                        self._ready.append(acc)
                    acc = self._open[key] = _Acc(key, b, self._blank[:])
                    if b > self._newest:
                        self._newest = b
                v = acc.v
                index = self._index
                for name, x in values.items():
                    if x is None or x - x:  # None, NaN (nan - nan is nan) and infinities (inf - inf)
                        continue
                    j = index.get(name)
                    if j is None or j >= len(v):
                        j = self._grow(v, name)
                    v[j] += x
                    v[j + 1] += 1.0
                    if x > v[j + 2]:
                        v[j + 2] = x
        except Exception as e:
            self._report(f"history archive: a sample of {key!r} was not recorded: {e!r}", once="add")

    def _grow(self, v: array[float], name: str) -> int:
        """A metric seen for the first time, or an accumulator made before it was: make room (under _lock)."""
        j = self._index.get(name)
        if j is None:
            j = self._index[name] = len(self._blank)
            self._names.append(name)
            self._blank.extend(_BLANK)
        if len(v) < len(self._blank):
            v.extend(self._blank[len(v) :])
        return j

    def note(self, key: str, t: float, kind: str, text: str) -> None:
        """A discrete event for reports (kind "state" and text "running", an alert fired or resolved)."""
        if not self._accepting:
            return
        try:
            if not -_TIME_LIMIT < t < _TIME_LIMIT:
                return
            with self._lock:
                self._notes.append((float(t), str(key), str(kind), str(text)))
        except Exception as e:
            self._report(f"history archive: an event of {key!r} was not recorded: {e!r}", once="note")

    def describe(self, key: str, info: Mapping[str, str]) -> None:
        """Who a key is (kind "vm" or "host", name, host, group, uuid, tenant), for reports: kept with the
        key, replacing what it was told before. Cheap: only memory is touched; never raises."""
        if not self._accepting:
            return
        try:
            labels = {str(k): str(v) for k, v in info.items()}
            with self._lock:
                self._labels[key] = labels
                self._labels_dirty.add(key)
        except Exception as e:
            self._report(f"history archive: the labels of {key!r} were not recorded: {e!r}", once="describe")

    @property
    def enabled(self) -> bool:
        """False once the archive is off for the session (locked, newer, failed) or closed."""
        return self._enabled and not self._closed

    def stats(self) -> ArchiveStats:
        return self._stats

    # -- flush and close ----------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything added so far is written (open buckets too: later samples of the same
        bucket are merged with them). For tests and shutdown, not for the event loop."""
        with self._cv:
            if self._thread is None or self._dead:
                return
            self._flush_asked += 1
            wanted = self._flush_asked
            self._cv.notify_all()
            self._cv.wait_for(lambda: self._flush_done >= wanted or self._dead, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write everything, stop the thread, close the file and release its lock. Later calls do nothing,
        and so do later `add()`s; reads return nothing."""
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._closing = True
            self._accepting = False
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            self._close_connections()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads (worker threads) ---------------------------------------------------------------------

    def series(self, key: str, metric: str, since: float, until: float) -> tuple[list[float], list[float]]:
        """(bucket start times, averages) of one metric of one key for the buckets overlapping
        [since, until], oldest first, gaps left out. Fine buckets when the fine tier reaches back to
        `since` (give or take a coarse step), else coarse ones. Blocks: call it from a worker thread."""
        try:
            with self._view(frozenset((key,))) as view:
                coarse = self._use_coarse(view, since)
                step = self.coarse_step if coarse else self.fine_step
                lo, hi = math.floor(since / step), math.floor(until / step)
                buckets: _Buckets = {}
                if view.conn is not None and hi >= lo:
                    self._series_rows(view.conn, coarse, key, metric, lo, hi, buckets)
                j = self._index.get(metric)
                if j is not None:
                    for _k, b, v in self._memory(view, coarse):
                        if lo <= b <= hi and j < len(v) and v[j + 1]:
                            _add_record(buckets, b, v[j + 1], v[j], v[j + 2])
                times = sorted(buckets)
                return [b * step for b in times], [buckets[b][0] / buckets[b][1] for b in times]
        except Exception as e:
            self._read_failed(e)
            return [], []

    def _series_rows(
        self, conn: sqlite3.Connection, coarse: bool, key: str, metric: str, lo: int, hi: int, out: _Buckets
    ) -> None:
        table, step = ("coarse", self.coarse_step) if coarse else ("fine", self.fine_step)
        kid = conn.execute("SELECT id FROM keys WHERE name = ?", (key,)).fetchone()
        mid = conn.execute("SELECT id FROM metrics WHERE name = ?", (metric,)).fetchone()
        if kid is None or mid is None:
            return
        first, last = conn.execute(f"SELECT min(t), max(t) FROM {table}").fetchone()
        if first is None:
            return
        lo, hi = max(lo, first // step), min(hi, last // step)  # one lookup per bucket: only where rows are
        if hi < lo:
            return
        want = bytes((mid[0],)) if 0 < mid[0] <= _MAX_METRIC_ID else b"\x00"
        if hi - lo < _MAX_LOOKUPS:
            rows = conn.execute(_SERIES.format(table), (lo * step, step, hi * step, kid[0]))
        else:
            rows = conn.execute(
                f"SELECT t, data FROM {table} WHERE t >= ? AND t <= ? AND key = ?",
                (lo * step, hi * step, kid[0]),
            )
        for t, data in rows:
            field = _field(data, want)
            if field is not None:
                n, avg, peak = field
                _add_record(out, t // step, n, avg * n, peak)

    def summary(self, keys: Iterable[str] | None, since: float, until: float) -> Summary:
        """Per key and metric: (average, peak, samples) over the buckets overlapping [since, until]; all
        keys when `keys` is None. Windows of an hour or more (12 coarse steps) read the coarse tier, so
        their edges are rounded to coarse buckets; shorter ones the fine tier where it reaches back."""
        wanted = None if keys is None else frozenset(keys)
        try:
            with self._view(wanted) as view:
                coarse = self._summary_tier(view, since, until)
                step = self.coarse_step if coarse else self.fine_step
                lo, hi = math.floor(since / step), math.floor(until / step)
                acc: dict[str, dict[str, list[float]]] = {}
                if view.conn is not None and hi >= lo:
                    self._summary_rows(view.conn, coarse, wanted, lo, hi, acc)
                names = list(self._names)
                for key, b, v in self._memory(view, coarse):
                    if lo <= b <= hi:
                        per = acc.setdefault(key, {})
                        for j in range(0, min(len(v), 3 * len(names)), 3):
                            if v[j + 1]:
                                s = per.get(names[j // 3])
                                if s is None:
                                    per[names[j // 3]] = [v[j], v[j + 1], v[j + 2]]
                                else:
                                    s[0] += v[j]
                                    s[1] += v[j + 1]
                                    s[2] = max(s[2], v[j + 2])
                return {
                    key: {m: (s[0] / s[1], s[2], int(s[1])) for m, s in sorted(per.items())}
                    for key, per in sorted(acc.items())
                    if per
                }
        except Exception as e:
            self._read_failed(e)
            return {}

    def _summary_rows(
        self,
        conn: sqlite3.Connection,
        coarse: bool,
        wanted: frozenset[str] | None,
        lo: int,
        hi: int,
        acc: dict[str, dict[str, list[float]]],
    ) -> None:
        table, step = ("coarse", self.coarse_step) if coarse else ("fine", self.fine_step)
        key_names = dict(conn.execute("SELECT id, name FROM keys"))
        metric_names = dict(conn.execute("SELECT id, name FROM metrics"))
        if wanted is not None:
            key_names = {i: k for i, k in key_names.items() if k in wanted}
        per_id: dict[int, dict[int, list[float]]] = {}
        for kid, data in conn.execute(
            f"SELECT key, data FROM {table} WHERE t >= ? AND t <= ?", (lo * step, hi * step)
        ):
            if kid not in key_names:
                continue
            _accumulate(per_id.setdefault(kid, {}), data)
        for kid, per in per_id.items():
            out = acc.setdefault(key_names[kid], {})
            for m, s in per.items():
                name = metric_names.get(m)
                if name is not None:
                    out[name] = s

    def timelines(
        self, keys: Iterable[str] | None, since: float, until: float, points: int = 60
    ) -> dict[str, Timeline]:
        """Per key (all when `keys` is None) with samples in [since, until]: the buckets it has there, read
        from the tier `summary()` reads, and each metric in about `points` slots (a whole number of
        buckets each) for a chart. One pass over the window's rows (not a lookup per bucket): what a report
        of many keys needs. Blocks: call it from a worker thread."""
        wanted = None if keys is None else frozenset(keys)
        try:
            with self._view(wanted) as view:
                coarse = self._summary_tier(view, since, until)
                step = self.coarse_step if coarse else self.fine_step
                lo, hi = math.floor(since / step), math.floor(until / step)
                if hi < lo:
                    return {}
                # buckets the window covers (one starting at `until` adds nothing to cover), in `points` slots
                spanned = max(1, math.ceil(until / step) - lo)
                per_slot = max(1, -(-spanned // max(1, points)))
                seen: dict[str, set[int]] = {}
                slots: dict[str, dict[str, dict[int, list[float]]]] = {}

                def add(key: str, b: int, metric: str, n: float, total: float, peak: float) -> None:
                    seen.setdefault(key, set()).add(b)
                    _add_record(
                        slots.setdefault(key, {}).setdefault(metric, {}), (b - lo) // per_slot, n, total, peak
                    )

                if view.conn is not None:
                    table = "coarse" if coarse else "fine"
                    key_names = dict(view.conn.execute("SELECT id, name FROM keys"))
                    metric_names = dict(view.conn.execute("SELECT id, name FROM metrics"))
                    for t, kid, data in view.conn.execute(
                        f"SELECT t, key, data FROM {table} WHERE t >= ? AND t <= ?", (lo * step, hi * step)
                    ):
                        key = key_names.get(kid)
                        if key is None or (wanted is not None and key not in wanted):
                            continue
                        for m, n, avg, peak in zip(*_unpack(data), strict=True):
                            name = metric_names.get(m)
                            if name is not None and n:
                                add(key, t // step, name, n, avg * n, peak)
                names = list(self._names)
                for key, b, v in self._memory(view, coarse):
                    if lo <= b <= hi:
                        for j in range(0, min(len(v), 3 * len(names)), 3):
                            if v[j + 1]:
                                add(key, b, names[j // 3], v[j + 1], v[j], v[j + 2])
                out: dict[str, Timeline] = {}
                for key in sorted(seen):
                    buckets = sorted(seen[key])
                    covered = sum(
                        max(0.0, min((b + 1) * step, until) - max(b * step, since)) for b in buckets
                    )
                    series = {
                        m: (
                            [float((lo + i * per_slot) * step) for i in sorted(acc)],
                            [acc[i][0] / acc[i][1] for i in sorted(acc)],
                            [acc[i][2] for i in sorted(acc)],
                        )
                        for m, acc in sorted(slots[key].items())
                    }
                    out[key] = Timeline(
                        step,
                        len(buckets),
                        covered,
                        float(buckets[0] * step),
                        float((buckets[-1] + 1) * step),
                        float(per_slot * step),
                        series,
                    )
                return out
        except Exception as e:
            self._read_failed(e)
            return {}

    def labels(self, keys: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
        """What `describe()` was told of each key (of `keys`, or all), from the file and from this
        session; keys never described are left out. Blocks: call it from a worker thread."""
        wanted = None if keys is None else frozenset(keys)
        out: dict[str, dict[str, str]] = {}
        try:
            self._opened.wait(_OPEN_WAIT)
            with self._read_lock:
                conn = self._rdb
                if conn is not None and self._label_column:
                    for name, text in conn.execute("SELECT name, label FROM keys WHERE label IS NOT NULL"):
                        if wanted is None or name in wanted:
                            info = _parse_labels(text)
                            if info is not None:
                                out[name] = info
            if self.enabled:
                with self._lock:
                    out.update((k, dict(v)) for k, v in self._labels.items() if wanted is None or k in wanted)
            return dict(sorted(out.items()))
        except Exception as e:
            self._read_failed(e)
            return {}

    def events(self, since: float, until: float, keys: Iterable[str] | None = None) -> list[Event]:
        """The events noted in [since, until] (of `keys`, or all), oldest first."""
        wanted = None if keys is None else frozenset(keys)
        try:
            with self._view(wanted) as view:
                out: list[Event] = []
                if view.conn is not None:
                    for t, key, kind, text in view.conn.execute(
                        "SELECT e.t, k.name, e.kind, e.text FROM events AS e JOIN keys AS k ON k.id = e.key "
                        "WHERE e.t >= ? AND e.t <= ? ORDER BY e.t",
                        (since, until),
                    ):
                        if wanted is None or key in wanted:
                            out.append((t, key, kind, text))
                out.extend(n for n in view.notes if since <= n[0] <= until)
                out.sort(key=lambda e: e[0])
                return out
        except Exception as e:
            self._read_failed(e)
            return []

    def keys(self, since: float) -> list[str]:
        """Keys with samples or events since `since` (to within a coarse step), sorted."""
        try:
            with self._view(None, values=False) as view:
                found: set[str] = set()
                if view.conn is not None:
                    span = self.coarse_step + self.fine_step
                    found.update(
                        k
                        for (k,) in view.conn.execute(
                            "SELECT name FROM keys WHERE last + ? > ?", (span, since)
                        )
                    )
                found.update(k for k, b, _v in view.fine if (b + 1) * self.fine_step > since)
                found.update(k for k, b, _v in view.coarse if (b + 1) * self.coarse_step > since)
                found.update(n[1] for n in view.notes if n[0] >= since)
                return sorted(found)
        except Exception as e:
            self._read_failed(e)
            return []

    @contextlib.contextmanager
    def _view(self, keys: frozenset[str] | None, values: bool = True) -> Iterator[_View]:
        """The database as of now and, consistent with it, what is still in memory (of `keys`). Without
        `values`, the open buckets' accumulators are not copied (nor to be read)."""
        self._opened.wait(_OPEN_WAIT)
        with self._read_lock:
            conn = self._rdb
            fine0: int | None = None
            with self._snap_lock:
                if conn is not None:
                    conn.execute("BEGIN")
                    fine0 = conn.execute("SELECT min(t) FROM fine").fetchone()[0]  # starts the snapshot
                with self._lock:
                    if not values:
                        fine = [(a.key, a.b, a.v) for a in self._open.values()]
                    elif keys is None:
                        fine = [(a.key, a.b, a.v[:]) for a in self._open.values()]
                    else:
                        fine = [(a.key, a.b, a.v[:]) for k in keys if (a := self._open.get(k)) is not None]
                    ready = list(self._ready)
                    inflight = self._inflight
                    coarse_open = self._coarse
                    notes = self._notes[:] + self._inflight_notes
            try:
                for group in (ready, inflight):
                    fine.extend((a.key, a.b, a.v) for a in group if keys is None or a.key in keys)
                if keys is None:
                    coarse = [(a.key, a.b, a.v) for a in coarse_open.values()]
                else:
                    coarse = [(a.key, a.b, a.v) for k in keys if (a := coarse_open.get(k)) is not None]
                if keys is not None:
                    notes = [n for n in notes if n[1] in keys]
                yield _View(conn, fine0, fine, coarse, notes)
            finally:
                if conn is not None and conn.in_transaction:
                    conn.execute("ROLLBACK")

    def _memory(self, view: _View, coarse: bool) -> Iterator[tuple[str, int, array[float]]]:
        """The view's unwritten buckets in the tier's bucket numbers."""
        if not coarse:
            yield from view.fine
            return
        yield from view.coarse
        for key, b, v in view.fine:
            yield key, b // self._ratio, v

    def _summary_tier(self, view: _View, since: float, until: float) -> bool:
        """Whether `summary()` (and `timelines()`) read the coarse tier for [since, until]."""
        return until - since >= _SUMMARY_COARSE_STEPS * self.coarse_step or self._use_coarse(view, since)

    def _use_coarse(self, view: _View, since: float) -> bool:
        """Whether the coarse tier has a bucket in the window from before the fine tier starts."""
        starts = [b * self.fine_step for _k, b, _v in view.fine]
        if view.fine0 is not None:
            starts.append(view.fine0)
        limit = min(starts) - self.coarse_step if starts else 2**62
        first = math.floor(since / self.coarse_step) * self.coarse_step
        if first > limit:
            return False
        if any(first <= b * self.coarse_step <= limit for _k, b, _v in view.coarse):
            return True
        if view.conn is None:
            return False
        row = view.conn.execute("SELECT 1 FROM coarse WHERE t >= ? AND t <= ? LIMIT 1", (first, limit))
        return row.fetchone() is not None

    def _read_failed(self, e: Exception) -> None:
        self._report(f"history archive {self.path}: a read failed: {e}", once=f"read {type(e).__name__}")
        if _is_corrupt(e) and self._thread is not None:
            with self._cv:
                self._recover_requested = e
                self._cv.notify_all()

    # -- the archive's thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._start()
        except Exception as e:  # a bug: off rather than a dead thread that flush() would wait for
            self._disable(f"history archive {self.path} could not be opened: {e!r}")
        finally:
            self._opened.set()
        try:
            due = time.monotonic() + self.fine_step
            while self._enabled:
                with self._cv:
                    self._cv.wait_for(
                        lambda: (
                            self._closing
                            or self._flush_asked > self._flush_done
                            or self._recover_requested is not None
                        ),
                        max(0.0, due - time.monotonic()),
                    )
                    asked, closing = self._flush_asked, self._closing
                    damaged, self._recover_requested = self._recover_requested, None
                flush = closing or asked > self._flush_done
                if not flush and time.monotonic() >= due:
                    due = time.monotonic() + self.fine_step
                if damaged is not None:
                    self._recover(damaged)
                self._pass(flush)
                with self._cv:
                    self._flush_done = asked
                    self._cv.notify_all()
                if closing:
                    break
        except Exception as e:
            self._disable(f"history archive {self.path} stopped: {e!r}")
        finally:
            self._close_connections()
            with self._cv:
                self._dead = True
                self._cv.notify_all()

    def _start(self) -> None:
        """Take the lock file, open the database (moving a damaged one aside) and both connections."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._disable(f"history archive: cannot create {self.path.parent}: {e}; running without it")
            return
        if not self._take_lock():
            return
        try:
            self._connect()
        except _Newer as e:
            self._disable(
                f"history archive {self.path} was written by a newer vimtui (schema {e}); running without it"
            )
        except sqlite3.DatabaseError as e:
            if _is_corrupt(e):
                self._recover(e)
            else:
                self._disable(f"history archive {self.path} cannot be opened: {e}; running without it")
        except OSError as e:
            self._disable(f"history archive {self.path} cannot be opened: {e}; running without it")

    def _take_lock(self) -> bool:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            self._disable(f"history archive: cannot open {lock_path}: {e}; running without it")
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            except OSError:
                holder = "?"
            os.close(fd)
            self._disable(
                f"history archive {self.path} is in use by another vimtui (pid {holder}); "
                "running without lasting history"
            )
            return False
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        return True

    def _connect(self) -> None:
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(_MAGIC))
        except FileNotFoundError:
            head = b""
        if head and head != _MAGIC:  # before SQLite opens it: closing would delete a -wal beside it
            raise _NotOurs("file is not a database")
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise _Newer(version)
            if version == 0:
                if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise _NotOurs("a database without a vimtui schema")
                db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # before the first table, or it is too late
                db.execute("PRAGMA journal_mode = WAL")
                db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
            elif version == 1:  # in place: what it holds is kept
                db.executescript(
                    f"BEGIN IMMEDIATE; {_MIGRATE_1} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                )
                log.info("history archive %s: schema 1 migrated to %s", self.path, SCHEMA_VERSION)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute(f"PRAGMA journal_size_limit = {_WAL_LIMIT}")
            db.execute("PRAGMA secure_delete = OFF")  # pruning need not overwrite old samples with zeros
            db.create_function("vimtui_merge", 2, _merge_blobs, deterministic=True)
            self._key_ids = {name: [kid, last] for kid, name, last in db.execute(_KEY_IDS)}
            self._metric_ids = {name: mid for mid, name in db.execute("SELECT id, name FROM metrics")}
            self._mids = []
            db.execute("SELECT count(*) FROM (SELECT 1 FROM fine LIMIT 1)").fetchone()
            rdb = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
            rdb.execute("PRAGMA query_only = 1")
        except BaseException:
            db.close()
            raise
        self._db = db
        with self._read_lock:
            self._rdb = rdb

    def _open_read_only(self) -> None:
        if not self.path.exists():
            self._report(f"history archive {self.path} does not exist (yet)")
            return
        rdb: sqlite3.Connection | None = None
        try:
            rdb = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            version = rdb.execute("PRAGMA user_version").fetchone()[0]
            if not 1 <= version <= SCHEMA_VERSION:
                rdb.close()
                what = "a newer vimtui's" if version > SCHEMA_VERSION else "not a vimtui history archive"
                self._report(
                    f"history archive {self.path} is {what} (schema {version}, not {SCHEMA_VERSION})"
                )
                return
            self._label_column = any(row[1] == "label" for row in rdb.execute("PRAGMA table_info(keys)"))
            self._rdb = rdb
        except (sqlite3.Error, OSError) as e:
            if rdb is not None:
                with contextlib.suppress(sqlite3.Error):
                    rdb.close()
            self._report(f"history archive {self.path} cannot be read: {e}")

    def _recover(self, e: BaseException) -> None:
        """Move a damaged database aside and start a new one; off if that fails too."""
        self._close_connections(keep_lock=True)
        try:
            moved = self._move_aside()
        except OSError as err:
            self._disable(f"history archive {self.path} is damaged ({e}) and cannot be moved aside: {err}")
            return
        self._report(
            f"history archive {self.path} was damaged ({e}); moved it to {moved} and started a new one"
        )
        self._pruned = self._keys_pruned = self._scanned_coarse = -(2**62)
        with self._lock:  # the new file has no labels yet
            self._labels_dirty.update(self._labels)
        try:
            self._connect()
        except (sqlite3.Error, OSError, _Newer) as err:
            self._disable(f"history archive {self.path}: a new one cannot be made either: {err}")

    def _move_aside(self) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        base = f"{self.path.name}.corrupt-{stamp}"
        dest = self.path.with_name(base)
        n = 1
        while dest.exists():
            dest = self.path.with_name(f"{base}.{n}")
            n += 1
        for suffix in ("", "-wal", "-shm"):  # SQLite's names, so the set opens together for a post-mortem
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{dest}{suffix}")
        return dest

    def _pass(self, flush: bool) -> None:
        """Take what is finished (everything on a flush) and write it; recover or turn off on failure."""
        with self._lock:
            taken, self._ready = self._ready, []
            newest = self._newest
            if flush:
                taken.extend(self._open.values())
                self._open = {}
            elif self._open:
                # keys that stopped (a VM gone) leave their last bucket open: the clock has moved past it
                for key in [k for k, a in self._open.items() if a.b < newest]:
                    taken.append(self._open.pop(key))
            notes, self._notes = self._notes, []
            described, self._labels_dirty = self._labels_dirty, set()
            self._inflight, self._inflight_notes = taken, notes
        if not (taken or notes or described or flush or newest > self._pruned):
            return
        for attempt in (1, 2):
            if self._db is None:
                break
            try:
                self._write(self._db, taken, notes, described, newest, flush)
                return
            except sqlite3.DatabaseError as e:
                self._rollback()
                if attempt == 1 and _is_corrupt(e):
                    self._recover(e)  # and write the same into the new file
                    continue
                if _is_busy(e):  # someone else holds a write lock on the file (an sqlite3 shell): retry later
                    self._report(f"history archive {self.path} is busy ({e}); will retry", once="busy")
                    with self._lock:
                        self._ready[:0] = taken
                        self._notes[:0] = notes
                        self._labels_dirty |= described
                        self._inflight, self._inflight_notes = [], []
                    return
                self._disable(f"history archive {self.path}: writing failed ({e}); running without it")
            except Exception as e:
                self._rollback()
                self._disable(f"history archive {self.path}: writing failed ({e!r}); running without it")
            break
        with self._lock:
            self._inflight, self._inflight_notes = [], []

    def _rollback(self) -> None:
        db = self._db
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
            with contextlib.suppress(sqlite3.Error):  # ids inserted by the rolled-back pass are gone
                self._key_ids = {name: [kid, last] for kid, name, last in db.execute(_KEY_IDS)}
                self._metric_ids = {name: mid for mid, name in db.execute("SELECT id, name FROM metrics")}
        self._mids = []
        self._last_updates = {}
        self._fresh = []
        with self._lock:  # which labels the rolled-back pass stored is not known: all of them again
            self._labels_dirty.update(self._labels)

    def _write(
        self,
        db: sqlite3.Connection,
        taken: list[_Acc],
        notes: list[_Note],
        described: set[str],
        newest: int,
        flush: bool,
    ) -> None:
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        fs, cs = self.fine_step, self.coarse_step
        coarse = dict(self._coarse)  # a new dict of new accumulators: readers may hold the published one
        done: list[_Acc] = []
        db.execute("BEGIN IMMEDIATE")
        fine_rows = []
        for acc in taken:
            t = acc.b * fs
            blob = self._encode(db, acc.v)
            if blob:
                fine_rows.append((t, self._key_id(db, acc.key, t), blob))
            cb = acc.b // self._ratio
            p = coarse.get(acc.key)
            if p is None or p.b < cb:
                if p is not None:
                    done.append(p)
                coarse[acc.key] = _Acc(acc.key, cb, acc.v)  # taken buckets are not changed any more
            elif p.b == cb:
                coarse[acc.key] = _Acc(acc.key, cb, _merged(p.v, acc.v))
            else:  # older than the open one (a clock stepped back): its own row, merged with what is there
                done.append(_Acc(acc.key, cb, acc.v))
        newest_coarse = newest // self._ratio
        if flush:
            done.extend(coarse.values())
            coarse = {}
        elif newest_coarse > self._scanned_coarse:
            for key in [k for k, p in coarse.items() if p.b < newest_coarse]:
                done.append(coarse.pop(key))
        coarse_rows = []
        for p in done:
            t = p.b * cs
            blob = self._encode(db, p.v)
            if blob:
                coarse_rows.append((t, self._key_id(db, p.key, t), blob))
        db.executemany(_UPSERT.format("fine"), fine_rows)
        db.executemany(_UPSERT.format("coarse"), coarse_rows)
        if notes:
            db.executemany(
                "INSERT INTO events (t, key, kind, text) VALUES (?, ?, ?, ?)",
                [(t, self._key_id(db, key, math.floor(t)), kind, text) for t, key, kind, text in notes],
            )
        if self._last_updates:
            db.executemany(
                "UPDATE keys SET last = ? WHERE id = ?", [(t, k) for k, t in self._last_updates.items()]
            )
            self._last_updates = {}
        if described or self._fresh:
            self._store_labels(db, described.union(self._fresh))
        if newest > self._pruned:
            self._prune(db, newest)
        used = self._bound_size(db)
        with self._snap_lock:
            db.execute("COMMIT")
            with self._lock:
                self._inflight, self._inflight_notes = [], []
                self._coarse = coarse
        self._pruned = max(self._pruned, newest)
        self._scanned_coarse = max(self._scanned_coarse, newest_coarse)
        if fine_rows or coarse_rows or notes:
            s = self._stats
            self._stats = ArchiveStats(
                True,
                s.passes + 1,
                s.rows + len(fine_rows) + len(coarse_rows),
                time.thread_time() - cpu0,
                time.perf_counter() - wall0,
                used,
            )

    def _store_labels(self, db: sqlite3.Connection, keys: set[str]) -> None:
        """The labels of these keys, for those that have a row (the others get theirs with the row)."""
        self._fresh = []
        with self._lock:
            labels = [(k, self._labels[k]) for k in keys if k in self._labels]
        rows = [
            (json.dumps(info, sort_keys=True, ensure_ascii=False), entry[0])
            for k, info in labels
            if (entry := self._key_ids.get(k)) is not None
        ]
        db.executemany("UPDATE keys SET label = ? WHERE id = ?", rows)

    def _encode(self, db: sqlite3.Connection, v: array[float]) -> bytes:
        """An accumulator as a blob: the metrics with samples (all of them, usually: one pack, no loop)."""
        counts = v[1::3]
        mids = self._metric_ids_upto(db, len(counts))
        if 0.0 in counts or 0 in mids:
            present = [i for i, n in enumerate(counts) if n and mids[i]]
            return _pack(
                [mids[i] for i in present],
                [counts[i] for i in present],
                [v[3 * i] / counts[i] for i in present],
                [v[3 * i + 2] for i in present],
            )
        return _pack(mids, counts, list(map(operator.truediv, v[0::3], counts)), v[2::3])

    def _metric_ids_upto(self, db: sqlite3.Connection, k: int) -> list[int]:
        """The ids of the first k metrics in accumulator order (0 for one that cannot be stored)."""
        mids = self._mids
        while len(mids) < k:
            name = self._names[len(mids)]
            mid = self._metric_ids.get(name)
            if mid is None:
                mid = db.execute("INSERT INTO metrics (name) VALUES (?)", (name,)).lastrowid or 0
                self._metric_ids[name] = mid
            if mid > _MAX_METRIC_ID:
                self._report(
                    f"history archive: more than {_MAX_METRIC_ID} metrics; {name!r} is not kept", once=name
                )
                mid = 0
            mids.append(mid)
        return mids if len(mids) == k else mids[:k]

    def _key_id(self, db: sqlite3.Connection, key: str, t: int) -> int:
        """The key's id (inserted if new); its `last` time is brought forward once per coarse step."""
        entry = self._key_ids.get(key)
        if entry is None:
            kid = db.execute("INSERT INTO keys (name, last) VALUES (?, ?)", (key, t)).lastrowid or 0
            entry = self._key_ids[key] = [kid, t]
            self._fresh.append(key)
        elif t > entry[1] + self.coarse_step:
            entry[1] = t
            self._last_updates[entry[0]] = t
        return entry[0]

    def _prune(self, db: sqlite3.Connection, newest: int) -> None:
        """Delete what is past retention, counted back from the newest sample."""
        now = newest * self.fine_step
        db.execute("DELETE FROM fine WHERE t < ?", (now - self.fine_keep,))
        db.execute("DELETE FROM coarse WHERE t < ?", (now - self.coarse_keep,))
        db.execute("DELETE FROM events WHERE t < ?", (now - self.coarse_keep,))
        coarse_now = newest // self._ratio
        if coarse_now > self._keys_pruned:
            # `last` trails a key's newest row by less than a coarse and a fine step: these have no rows left
            horizon = now - self.coarse_keep - self.coarse_step - self.fine_step
            for (name,) in db.execute(
                "DELETE FROM keys WHERE last < ? RETURNING name", (horizon,)
            ).fetchall():
                self._key_ids.pop(name, None)
            self._keys_pruned = coarse_now

    def _bound_size(self, db: sqlite3.Connection) -> int:
        """Keep the file under max_bytes: over it, delete the oldest fine rows, then coarse rows, then
        events, until the data takes _TRIM_TO of it, and give the free pages back. Returns bytes in use."""
        page = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        if pages * page <= self.max_bytes:
            return int((pages - free) * page)
        target = self.max_bytes * _TRIM_TO
        for table, step in (("fine", self.fine_step), ("coarse", self.coarse_step), ("events", 1)):
            for _ in range(64):
                used = (pages - db.execute("PRAGMA freelist_count").fetchone()[0]) * page
                if used <= target:
                    break
                first, last = db.execute(f"SELECT min(t), max(t) FROM {table}").fetchone()
                if first is None:
                    break
                span = last - first + step
                cut = first + max(step, span * min(1.0, 1.25 * (used - target) / used))
                db.execute(f"DELETE FROM {table} WHERE t < ?", (cut,))
        # Python's sqlite3 steps a statement without result columns once, and each step of this pragma
        # gives one free page back: so once per page
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        for _ in range(free):
            db.execute("PRAGMA incremental_vacuum")
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * page)

    # -- problems -----------------------------------------------------------------------------------

    def _report(self, message: str, once: str | None = None) -> None:
        if once is not None:
            if once in self._reported:
                return
            self._reported.add(once)
        self.problem = message
        log.warning("%s", message)
        if self._on_problem is not None:
            try:
                self._on_problem(message)
            except Exception:
                log.exception("on_problem failed")

    def _disable(self, message: str) -> None:
        """Off for the session: report, drop what is in memory, close the file."""
        self._report(message)
        self._enabled = False
        self._accepting = False
        with self._lock:
            self._open, self._ready, self._inflight = {}, [], []
            self._notes, self._inflight_notes, self._coarse = [], [], {}
            self._labels, self._labels_dirty = {}, set()
        self._stats = ArchiveStats(False, self._stats.passes, self._stats.rows, 0.0, 0.0, 0)
        self._close_connections()

    def _close_connections(self, keep_lock: bool = False) -> None:
        """The read connection first: the writer's, closed last, checkpoints the WAL into the file."""
        with self._read_lock:
            rdb, self._rdb = self._rdb, None
        if rdb is not None:
            with contextlib.suppress(sqlite3.Error):
                rdb.close()
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
            with contextlib.suppress(sqlite3.Error):
                db.close()
        if not keep_lock and self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None
