"""Reading the archive: series, summaries, timelines, labels, events (on worker threads: they block).

A read takes one consistent view: the database as of one snapshot and what was still in memory then, so
a graph is current to the last poll."""

from __future__ import annotations

import contextlib
import math
import sqlite3
from array import array
from collections.abc import Iterable, Iterator

from vimtui.core.monitor.archive.codec import (
    MAX_METRIC_ID,
    Buckets,
    accumulate,
    add_record,
    field_of,
    unpack,
)
from vimtui.core.monitor.archive.schema import SERIES, is_corrupt, parse_labels
from vimtui.core.monitor.archive.state import (
    ArchiveBase,
    Event,
    Summary,
    Timeline,
    View,
)

OPEN_WAIT = 30.0
"""Seconds a read waits for the archive's thread to have opened the file."""
MAX_LOOKUPS = 50_000
"""A series over more buckets than this (a clock that jumped) scans the rows in range instead."""


class ArchiveReads(ArchiveBase):
    """The reads of an archive (they run on the caller's thread, on a read-only connection of their own)."""

    def series(self, key: str, metric: str, since: float, until: float) -> tuple[list[float], list[float]]:
        """(bucket start times, averages) of one metric of one key for the buckets overlapping
        [since, until], oldest first, gaps left out. Fine buckets when the fine tier reaches back to
        `since` (give or take a coarse step), else coarse ones. Blocks: call it from a worker thread."""
        try:
            with self._view(frozenset((key,))) as view:
                coarse = self._use_coarse(view, since)
                step = self.coarse_step if coarse else self.fine_step
                lo, hi = math.floor(since / step), math.floor(until / step)
                buckets: Buckets = {}
                if view.conn is not None and hi >= lo:
                    self._series_rows(view.conn, coarse, key, metric, lo, hi, buckets)
                j = self._index.get(metric)
                if j is not None:
                    for _k, b, v in self._memory(view, coarse):
                        if lo <= b <= hi and j < len(v) and v[j + 1]:
                            add_record(buckets, b, v[j + 1], v[j], v[j + 2])
                times = sorted(buckets)
                return [b * step for b in times], [buckets[b][0] / buckets[b][1] for b in times]
        except Exception as e:
            self._read_failed(e)
            return [], []

    def _series_rows(
        self, conn: sqlite3.Connection, coarse: bool, key: str, metric: str, lo: int, hi: int, out: Buckets
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
        want = bytes((mid[0],)) if 0 < mid[0] <= MAX_METRIC_ID else b"\x00"
        if hi - lo < MAX_LOOKUPS:
            rows = conn.execute(SERIES.format(table), (lo * step, step, hi * step, kid[0]))
        else:
            rows = conn.execute(
                f"SELECT t, data FROM {table} WHERE t >= ? AND t <= ? AND key = ?",
                (lo * step, hi * step, kid[0]),
            )
        for t, data in rows:
            field = field_of(data, want)
            if field is not None:
                n, avg, peak = field
                add_record(out, t // step, n, avg * n, peak)

    def summary(self, keys: Iterable[str] | None, since: float, until: float) -> Summary:
        """Per key and metric: (average, peak, samples) over the buckets overlapping [since, until]; all
        keys when `keys` is None. Windows the fine tier covers are read from it; longer ones, or ones
        reaching back before it, from the coarse tier, their edges rounded to coarse buckets."""
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
            accumulate(per_id.setdefault(kid, {}), data)
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
                    add_record(
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
                        for m, n, avg, peak in zip(*unpack(data), strict=True):
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
            self._opened.wait(OPEN_WAIT)
            with self._read_lock:
                conn = self._rdb
                if conn is not None and self._label_column:
                    for name, text in conn.execute("SELECT name, label FROM keys WHERE label IS NOT NULL"):
                        if wanted is None or name in wanted:
                            info = parse_labels(text)
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
    def _view(self, keys: frozenset[str] | None, values: bool = True) -> Iterator[View]:
        """The database as of now and, consistent with it, what is still in memory (of `keys`). Without
        `values`, the open buckets' accumulators are not copied (nor to be read)."""
        self._opened.wait(OPEN_WAIT)
        with self._read_lock:
            conn = self._rdb
            fine0: int | None = None
            with self._snap_lock:
                if conn is not None:
                    conn.execute("BEGIN")
                    fine0 = conn.execute("SELECT min(t) FROM fine").fetchone()[0]  # starts the snapshot
                with self._lock:
                    if values:  # the rows add_many held back of the keys read, into their sums
                        for held in self._open.values() if keys is None else map(self._open.get, keys):
                            if held is not None and held.rows is not None:
                                held.fold(self._blank)
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
                yield View(conn, fine0, fine, coarse, notes)
            finally:
                if conn is not None and conn.in_transaction:
                    conn.execute("ROLLBACK")

    def _memory(self, view: View, coarse: bool) -> Iterator[tuple[str, int, array[float]]]:
        """The view's unwritten buckets in the tier's bucket numbers."""
        if not coarse:
            yield from view.fine
            return
        yield from view.coarse
        for key, b, v in view.fine:
            yield key, b // self._ratio, v

    def _summary_tier(self, view: View, since: float, until: float) -> bool:
        """Whether `summary()` (and `timelines()`) read the coarse tier for [since, until]: only for a window
        longer than the fine tier keeps, or reaching back before the fine tier's oldest bucket (an hour
        drawn from 5-minute buckets is a dozen dots where the fine tier has 360 points)."""
        return until - since > self.fine_keep or self._use_coarse(view, since)

    def _use_coarse(self, view: View, since: float) -> bool:
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
        if is_corrupt(e) and self._thread is not None:
            with self._cv:
                self._recover_requested = e
                self._cv.notify_all()
