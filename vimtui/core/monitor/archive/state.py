"""What an archive holds in memory and shares between the event loop, its thread and readers."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vimtui.core.monitor.archive.codec import Acc, Note

log = logging.getLogger("vimtui.core.monitor.archive")

DEFAULT_FINE_STEP = 10.0
DEFAULT_FINE_KEEP = 86400.0
DEFAULT_COARSE_STEP = 300.0
DEFAULT_COARSE_KEEP = 30 * 86400.0
DEFAULT_MAX_BYTES = 256 * 2**20
TIME_LIMIT = float(2**40)
"""Sample times beyond +-this (year 36812) are ignored: they would not fit the integer columns."""
TRIM_TO = 0.9
"""Over `max_bytes`, the oldest rows are deleted until the data takes this share of it."""
"""`PRAGMA user_version` of the files this code writes; a file with a higher one is left alone. 2: the
keys' labels (version 1 had none; it is migrated in place)."""

Summary = dict[str, dict[str, tuple[float, float, int]]]
"""key -> metric -> (average, peak, samples)."""
Event = tuple[float, str, str, str]
"""(time, key, kind, text)."""


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


@dataclass(slots=True)
class View:
    """One consistent picture for a read: the database as of one snapshot plus what was in memory then."""

    conn: sqlite3.Connection | None
    fine0: int | None
    """Start of the oldest fine row in the database."""
    fine: list[tuple[str, int, array[float]]]
    """Fine buckets not yet written: (key, bucket, values)."""
    coarse: list[tuple[str, int, array[float]]]
    """Coarse buckets the archive's thread holds until they end."""
    notes: list[Note]


class ArchiveBase:
    """The archive's state and its problem reporting; the reads, the writes and the thread build on it."""

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
        self._open: dict[str, Acc] = {}
        self._ready: list[Acc] = []
        self._inflight: list[Acc] = []
        self._notes: list[Note] = []
        self._inflight_notes: list[Note] = []
        self._coarse: dict[str, Acc] = {}
        """Open coarse buckets, as of the last commit; replaced, never changed, so readers may hold it."""
        self._labels: dict[str, dict[str, str]] = {}
        """Every key described in this run: its latest labels (the newest word, for readers too)."""
        self._labels_dirty: set[str] = set()
        """Keys described since the writer last stored their labels."""
        self._newest = -(2**62)
        """The newest fine bucket added."""
        self._index: dict[str, int] = {}
        """Metric name -> its position in an accumulator (3 x the metric's index)."""
        self._names: list[str] = []
        self._slots: dict[tuple[str, ...], list[int]] = {}
        """add_many's metric names -> their positions in an accumulator."""
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

    @property
    def enabled(self) -> bool:
        """False once the archive is off for the session (locked, newer, failed) or closed."""
        return self._enabled and not self._closed

    def stats(self) -> ArchiveStats:
        return self._stats

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
