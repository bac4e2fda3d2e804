"""Lasting history: per-VM and per-host metric samples in SQLite, in two tiers, written off the event loop.

`History` (monitor/rings.py) keeps the last 24 hours in memory for drawing; this archive keeps what must
survive a restart, for the graphs' 24 h window and for reports: 10-second buckets for a day (`fine`) and
5-minute buckets for 30 days (`coarse`), both configurable. A bucket keeps per metric the average, the
peak and the number of samples, so averages and peaks survive downsampling and averages of averages are
weighted properly.

The event loop only calls `add()` (once per VM and host per poll), `note()` (an event: a state change, an
alert) and `describe()` (a key's labels). They update in-memory accumulators under a lock and never touch
SQLite (store.py). One daemon thread of the archive's own opens the file (files.py), then, every
`fine_step` seconds (and on `flush()`/`close()`) runs a write pass (writes.py): the finished fine buckets
in one transaction, rolled into the coarse buckets it holds until they end, pruned past the retention
(measured from the newest sample added, i.e. the fleet's clock), and the file kept under `max_bytes` by
deleting the oldest fine rows, then the oldest coarse rows, then the oldest events, giving the space back
(auto_vacuum=INCREMENTAL). Reads (reads.py) run on the caller's thread (a worker: they block) on a
read-only connection of their own, and add what is still in memory, so a graph is current to the last poll.

Layout (schema.py): one row per (time, key) with the metrics packed in a blob (codec.py), in tables
ordered by time first (`PRIMARY KEY (t, key) WITHOUT ROWID`). Time first makes every write an append at the
end of the B-tree and every prune or trim a range delete at its start, so a pass writes about as many pages
as it adds (key first would dirty a page per key per pass). A series is read by one primary-key lookup per
bucket (a recursive CTE), whatever the fleet size. The blob is about half the size of one row per metric
with REAL columns; bench/archive.py measures the sizes and costs of the code as it is.

Keys ("host/uuid" for a VM, "host" for a host) and metric names are stored once, in lookup tables, as
small integer ids. A bucket's time is its start, in whole seconds (the steps are whole seconds), so a
change of step in the configuration does not make old rows mean other times. Rows are written with an
upsert that merges with what is already there, so a bucket written in parts (by `flush()`, or across a
restart) still adds up. A key's labels are kept as JSON in its `keys` row, so a report can name a VM long
after it is gone; schema 2 added that column, and a version-1 file is migrated in place.

What can go wrong is reported through `on_problem` and logged, never raised into the app: a file that is
not a database or is damaged is renamed aside (with its -wal and -shm) to `<name>.corrupt-<UTC time>` and
a new one started; a file held by another vimtui (a lock file, `<name>.lock`, with flock) or written by a
newer vimtui, or a write that fails otherwise (disk full), turns the archive off for the run: `add()` and
`note()` do nothing, reads return nothing. A crash loses what was not written yet: at most one pass of
fine buckets and the coarse buckets still open (up to `coarse_step`); `close()` writes everything.
Another process holding a write lock on the file (an sqlite3 shell) is reported once and the pass retried.
"""

from __future__ import annotations

from vimtui.core.monitor.archive.schema import SCHEMA_VERSION
from vimtui.core.monitor.archive.state import (
    DEFAULT_COARSE_KEEP,
    DEFAULT_COARSE_STEP,
    DEFAULT_FINE_KEEP,
    DEFAULT_FINE_STEP,
    DEFAULT_MAX_BYTES,
    ArchiveStats,
    Event,
    Summary,
    Timeline,
)
from vimtui.core.monitor.archive.store import Archive

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
