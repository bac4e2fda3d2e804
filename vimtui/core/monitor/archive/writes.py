"""The archive's write pass: finished buckets into the fine tier, rolled into the coarse one, pruned, and
the file kept under its size bound, all in one transaction on the archive's thread."""

from __future__ import annotations

import contextlib
import json
import math
import operator
import sqlite3
import time
from array import array

from vimtui.core.monitor.archive.codec import MAX_METRIC_ID, Acc, Note, merged, pack
from vimtui.core.monitor.archive.files import ArchiveFiles
from vimtui.core.monitor.archive.schema import KEY_IDS, UPSERT, is_busy, is_corrupt
from vimtui.core.monitor.archive.state import TRIM_TO, ArchiveStats

RETRY_KEEP = 50_000
"""Buckets (and events) kept for a retry while the file cannot be written: a few passes of a large fleet."""


class ArchiveWrites(ArchiveFiles):
    """The write pass of the archive's thread."""

    def _pass(self, flush: bool) -> None:
        """Take what is finished (everything on a flush) and write it; recover or turn off on failure."""
        with self._lock:
            taken, self._ready = self._ready, []
            newest = self._newest
            if flush:
                opened = list(self._open.values())
                self._open = {}
            else:
                # keys that stopped (a VM gone) leave their last bucket open: the clock has moved past it
                opened = [self._open.pop(k) for k, a in list(self._open.items()) if a.b < newest]
            for acc in opened:  # the rows add_many held back
                acc.fold(self._blank)
            taken.extend(opened)
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
                if any(k.startswith("write-failed:") for k in self._reported):
                    self._reported = {k for k in self._reported if not k.startswith("write-failed:")}
                    self._report(f"history archive {self.path}: writing again")
                return
            except sqlite3.DatabaseError as e:
                self._rollback()
                if attempt == 1 and is_corrupt(e):
                    self._recover(e)  # and write the same into the new file
                    continue
                if is_busy(e):  # someone else holds a write lock on the file (an sqlite3 shell): retry later
                    self._report(f"history archive {self.path} is busy ({e}); will retry", once="busy")
                    self._keep_for_retry(taken, notes, described)
                    return
                if isinstance(e, sqlite3.OperationalError):  # disk full, I/O error: may pass; retry later
                    self._report(
                        f"history archive {self.path}: writing failed ({e}); keeping the samples and "
                        "retrying at each pass",
                        once=f"write-failed:{e}",
                    )
                    self._keep_for_retry(taken, notes, described)
                    return
                self._disable(f"history archive {self.path}: writing failed ({e}); running without it")
            except Exception as e:
                self._rollback()
                self._disable(f"history archive {self.path}: writing failed ({e!r}); running without it")
            break
        with self._lock:
            self._inflight, self._inflight_notes = [], []

    def _keep_for_retry(self, taken: list[Acc], notes: list[Note], described: set[str]) -> None:
        """What a failed pass took goes back, to be written by a later one; beyond RETRY_KEEP buckets the
        oldest are dropped (said once), so a file system that stays full cannot grow memory for good."""
        with self._lock:
            self._ready[:0] = taken
            self._notes[:0] = notes
            self._labels_dirty |= described
            self._inflight, self._inflight_notes = [], []
            over = len(self._ready) - RETRY_KEEP
            if over > 0:
                del self._ready[:over]
            over_notes = len(self._notes) - RETRY_KEEP
            if over_notes > 0:
                del self._notes[:over_notes]
        if over > 0 or over_notes > 0:
            self._report(
                f"history archive {self.path}: still not writable; the oldest samples kept for it are "
                "being dropped",
                once="retry-dropped",
            )

    def _rollback(self) -> None:
        db = self._db
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
            with contextlib.suppress(sqlite3.Error):  # ids inserted by the rolled-back pass are gone
                self._key_ids = {name: [kid, last] for kid, name, last in db.execute(KEY_IDS)}
                self._metric_ids = {name: mid for mid, name in db.execute("SELECT id, name FROM metrics")}
        self._mids = []
        self._last_updates = {}
        self._fresh = []
        with self._lock:  # which labels the rolled-back pass stored is not known: all of them again
            self._labels_dirty.update(self._labels)

    def _write(
        self,
        db: sqlite3.Connection,
        taken: list[Acc],
        notes: list[Note],
        described: set[str],
        newest: int,
        flush: bool,
    ) -> None:
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        fs, cs = self.fine_step, self.coarse_step
        coarse = dict(self._coarse)  # a new dict of new accumulators: readers may hold the published one
        done: list[Acc] = []
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
                coarse[acc.key] = Acc(acc.key, cb, acc.v)  # taken buckets are not changed any more
            elif p.b == cb:
                coarse[acc.key] = Acc(acc.key, cb, merged(p.v, acc.v))
            else:  # older than the open one (a clock stepped back): its own row, merged with what is there
                done.append(Acc(acc.key, cb, acc.v))
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
        db.executemany(UPSERT.format("fine"), fine_rows)
        db.executemany(UPSERT.format("coarse"), coarse_rows)
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
            return pack(
                [mids[i] for i in present],
                [counts[i] for i in present],
                [v[3 * i] / counts[i] for i in present],
                [v[3 * i + 2] for i in present],
            )
        return pack(mids, counts, list(map(operator.truediv, v[0::3], counts)), v[2::3])

    def _metric_ids_upto(self, db: sqlite3.Connection, k: int) -> list[int]:
        """The ids of the first k metrics in accumulator order (0 for one that cannot be stored)."""
        mids = self._mids
        while len(mids) < k:
            name = self._names[len(mids)]
            mid = self._metric_ids.get(name)
            if mid is None:
                mid = db.execute("INSERT INTO metrics (name) VALUES (?)", (name,)).lastrowid or 0
                self._metric_ids[name] = mid
            if mid > MAX_METRIC_ID:
                self._report(
                    f"history archive: more than {MAX_METRIC_ID} metrics; {name!r} is not kept", once=name
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
        events, until the data takes TRIM_TO of it, and give the free pages back. Returns bytes in use."""
        page = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        if pages * page <= self.max_bytes:
            return int((pages - free) * page)
        target = self.max_bytes * TRIM_TO
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
