"""The activity log: every task and event, newest first, as the task log pane and `:tasks` show it.

Entries are immutable; a task that progresses replaces its entry (same id) with a newer one. Host status
changes and libvirt events come in from the fleet; tasks (start, migrate ...) will add theirs.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

_ids = itertools.count(1)


def next_id() -> int:
    """Ids shared by events and tasks: one sequence, so an id names one entry of the log."""
    return next(_ids)


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    time: float
    """Wall time it started (or happened)."""
    host: str
    vm: str
    action: str
    state: str
    """event, queued, running, done, failed, cancelled."""
    progress: float | None = None
    """0-100 while running, where known."""
    message: str = ""
    ended: float | None = None
    error: str = ""

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.time

    @property
    def finished(self) -> bool:
        return self.state in ("event", "done", "failed", "cancelled")


class ActivityLog:
    """A bounded, ordered log. `entries()` is newest first."""

    def __init__(self, size: int = 2000) -> None:
        self.size = size
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self._subscribers: list[Callable[[Entry], None]] = []
        self.version = 0

    def subscribe(self, fn: Callable[[Entry], None]) -> Callable[[], None]:
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn)

    def add(self, host: str, vm: str, action: str, state: str = "event", **fields: object) -> Entry:
        entry = Entry(next_id(), fields.pop("time", None) or time.time(), host, vm, action, state)  # type: ignore[arg-type]
        entry = replace(entry, **fields)  # type: ignore[arg-type]
        if entry.finished and entry.ended is None:
            entry = replace(entry, ended=entry.time)
        return self.put(entry)

    def put(self, entry: Entry) -> Entry:
        """Add or replace (same id) an entry."""
        self._entries[entry.id] = entry  # a replaced entry keeps its place
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        self.version += 1
        for fn in list(self._subscribers):
            fn(entry)
        return entry

    def entries(self) -> list[Entry]:
        """Newest first; entries of the same moment in host order (stable screens, readable logs)."""
        return sorted(self._entries.values(), key=lambda e: (-e.time, e.host, -e.id))

    def __len__(self) -> int:
        return len(self._entries)
