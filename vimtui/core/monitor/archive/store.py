"""The archive: what the event loop calls, and the thread that writes."""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from vimtui.core.monitor.archive.codec import BLANK, Acc
from vimtui.core.monitor.archive.reads import ArchiveReads
from vimtui.core.monitor.archive.state import (
    DEFAULT_COARSE_KEEP,
    DEFAULT_COARSE_STEP,
    DEFAULT_FINE_KEEP,
    DEFAULT_FINE_STEP,
    DEFAULT_MAX_BYTES,
    TIME_LIMIT,
)
from vimtui.core.monitor.archive.writes import ArchiveWrites


class Archive(ArchiveReads, ArchiveWrites):
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
        super().__init__(
            path,
            fine_step=fine_step,
            fine_keep=fine_keep,
            coarse_step=coarse_step,
            coarse_keep=coarse_keep,
            max_bytes=max_bytes,
            on_problem=on_problem,
            read_only=read_only,
        )
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
            if not -TIME_LIMIT < t < TIME_LIMIT:
                return
            b = int(t // self.fine_step)
            with self._lock:
                acc = self._open.get(key)
                if acc is None or acc.b != b:
                    if acc is not None:
                        acc.fold(self._blank)
                        self._ready.append(acc)
                    acc = self._open[key] = Acc(key, b, self._blank[:])
                    if b > self._newest:
                        self._newest = b
                elif acc.rows is not None:
                    acc.fold(self._blank)
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

    def add_many(
        self, t: float, names: Sequence[str], rows: Iterable[tuple[str, Sequence[float | None]]]
    ) -> None:
        """add() of many keys' samples at time `t`, each row's values in the order of `names`: every VM of
        a host at each poll, under one taking of the lock. A row's values are kept with its key's bucket
        and added to the sums when the bucket closes or is read (Acc.fold: a column at a time, in C), not
        value by value here: at 50 hosts of 200 VMs, a row costs a look-up and a list's extend."""
        if not self._accepting:
            return
        try:
            if not -TIME_LIMIT < t < TIME_LIMIT:
                return
            b = int(t // self.fine_step)
            names = names if type(names) is tuple else tuple(names)
            with self._lock:
                at = self._slots.get(names)
                if at is None:
                    index = self._index
                    at = [j if (j := index.get(n)) is not None else self._grow(array("d"), n) for n in names]
                    self._slots[names] = at
                opened, ready, blank = self._open, self._ready, self._blank
                width = len(at)
                for key, row in rows:
                    if len(row) != width:
                        raise ValueError(f"{len(row)} values for {width} metrics ({key})")
                    acc = opened.get(key)
                    if acc is None or acc.b != b:
                        if acc is not None:
                            acc.fold(blank)
                            ready.append(acc)
                        acc = opened[key] = Acc(key, b, blank[:])
                    held = acc.rows
                    if held is None:
                        acc.rows, acc.at = [*row], at
                    elif acc.at is at:
                        held += row
                    else:  # other names: what is held first
                        acc.fold(blank)
                        acc.rows, acc.at = [*row], at
                if b > self._newest:
                    self._newest = b
        except Exception as e:
            self._report(f"history archive: samples at {t!r} were not recorded: {e!r}", once="add")

    def _grow(self, v: array[float], name: str) -> int:
        """A metric seen for the first time, or an accumulator made before it was: make room (under _lock)."""
        j = self._index.get(name)
        if j is None:
            j = self._index[name] = len(self._blank)
            self._names.append(name)
            self._blank.extend(BLANK)
        if len(v) < len(self._blank):
            v.extend(self._blank[len(v) :])
        return j

    def note(self, key: str, t: float, kind: str, text: str) -> None:
        """A discrete event for reports (kind "state" and text "running", an alert fired or resolved)."""
        if not self._accepting:
            return
        try:
            if not -TIME_LIMIT < t < TIME_LIMIT:
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
