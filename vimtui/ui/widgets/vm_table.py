"""VmTable: one row per VM, drawn with the Line API so that 10,000 VMs cost what the visible rows cost.

Only the rows on screen are ever formatted: `render_line(y)` builds the strip of row `scroll_y + y - 1`
(line 0 is the header, fixed above the scrolled rows). A tick (`update`) works out the display order as a
permutation of the caller's sequence, in C (`Sorter`), finds the cursor's VM again and asks for one
repaint: no per-row object, no cell widget, no Rich table. Formatted strips are cached per VM key and
checked against the VmState object itself (a new object means new data; a running VM's uptime also
depends on `now`), so rows that did not change, and rows scrolled back into view, are not formatted again.

Cursor, marks and sort order survive every update: the cursor follows its VM by key (else stays at its
index, clamped), and marks are a set of keys kept even for VMs the caller filtered out.

The app applies a tick with `table.update(vms, history=fleet.vm_history, now=state.time)`, inside
`app.batch_update()` when other widgets change in the same tick.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from vimtui.core.model import VmState
from vimtui.core.monitor.rings import History
from vimtui.core.text import shown
from vimtui.ui import format as fmt

SPARK_CELLS = 8
"""Cells of the CPU sparkline: one per sample, newest on the right."""

MARK = "●"
_SEP = " "
_MAX_STR = "\U0010ffff"
_INF = float("inf")


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its id (what `sort_by` takes), header label and width range.

    Columns are dropped lowest `priority` first until the rest fit; `priority >= 100` never goes. Space left
    over widens the flexible columns (`max_width > width`) in display order."""

    id: str
    label: str
    width: int
    max_width: int
    priority: int
    right: bool = False
    sort: str | None = None
    """The column that sorting by this one means (the sparkline sorts by CPU); None: itself."""


COLUMNS: tuple[Column, ...] = (
    Column("mark", "", 1, 1, 100),
    Column("name", "NAME", 12, 32, 100),
    Column("host", "HOST", 6, 16, 50),
    Column("state", "STATE", 7, 7, 100),
    Column("vcpu", "VCPU", 4, 4, 30, right=True),
    Column("cpu", "CPU%", 6, 6, 80, right=True),
    Column("spark", "", SPARK_CELLS, SPARK_CELLS, 25, sort="cpu"),
    Column("mem", "MEM", 9, 9, 70, right=True),
    Column("disk", "DISK R/W", 9, 9, 10, right=True),
    Column("net", "NET RX/TX", 9, 9, 5, right=True),
    Column("ip", "IP", 15, 15, 15),
    Column("uptime", "UPTIME", 7, 7, 40, right=True),
    Column("tags", "TAGS", 4, 40, 1),
)
SORT_COLUMNS: tuple[str, ...] = tuple(c.id for c in COLUMNS if c.sort is None)
"""What `sort_by` accepts."""

_STATE_CLASS = {
    "running": "vm-table--running",
    "blocked": "vm-table--running",
    "paused": "vm-table--paused",
    "pmsuspended": "vm-table--paused",
    "shutdown": "vm-table--paused",
    "shutoff": "vm-table--shutoff",
    "crashed": "vm-table--crashed",
}


@dataclass(frozen=True, slots=True)
class _Slot:
    column: Column
    x: int
    width: int


def layout(width: int) -> tuple[_Slot, ...]:
    """The columns that fit in `width` cells, with their widths: a column and one space per column."""
    kept = list(COLUMNS)

    def need(cols: list[Column]) -> int:
        return sum(c.width for c in cols) + len(cols) - 1

    for col in sorted(COLUMNS, key=lambda c: c.priority):
        if need(kept) <= width or col.priority >= 100:
            break
        kept.remove(col)
    widths = {c.id: c.width for c in kept}
    spare = width - need(kept)
    if spare < 0:  # narrower than the columns that never go: the name gives way, down to 4 cells
        widths["name"] = max(4, widths["name"] + spare)
    for col in kept:
        if spare <= 0:
            break
        grow = min(spare, col.max_width - col.width)
        widths[col.id] += grow
        spare -= grow
    slots: list[_Slot] = []
    x = 0
    for col in kept:
        slots.append(_Slot(col, x, widths[col.id]))
        x += widths[col.id] + 1
    return tuple(slots)


def _fit(text: str, width: int, right: bool) -> str:
    """`text` in exactly `width` cells: padded, or cut with an ellipsis."""
    if text.isascii():
        n = len(text)
        if n == width:
            return text
        if n < width:
            return text.rjust(width) if right else text.ljust(width)
        return text[: width - 1] + "…" if width > 1 else text[:width]
    n = cell_len(text)
    if n == width:
        return text
    if n < width:
        pad = " " * (width - n)
        return pad + text if right else text + pad
    return set_cell_size(text, width - 1) + "…" if width > 1 else set_cell_size(text, width)


# ------------------------------------------------------------------------------------------- sorting
# This is the O(N) part of a tick, so no Python call is made per VM: attribute lists come from C (`map`
# with `attrgetter`), a column's sort keys from one list comprehension, and orders are permutations sorted
# by `list.__getitem__`. A key is the column's value, or `missing` where that is unknown: +inf / U+10FFFF
# ascending, -inf / "" descending, so that unknown sorts last both ways within one `sorted`.

_NAME = attrgetter("name")
_HOST = attrgetter("host")
_UUID = attrgetter("uuid")
_HOST_NAME = attrgetter("host", "name")


_vcpus = attrgetter("vcpu_count")
_mem_total_kib = attrgetter("memory_kib")


def _uptime(vm: VmState, now: float) -> float | None:
    if vm.state != "running" or vm.state_since <= 0:
        return None
    return now - vm.state_since


def _keys_state(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
    return [v.state or missing for v in vms]


def _keys_vcpu(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
    return [missing if (n := _vcpus(v)) is None else n for v in vms]


def _keys_cpu(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
    return [missing if (r := v.rates) is None or (x := r.cpu_pct) is None else x for v in vms]


def _keys_mem(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
    return [missing if (r := v.rates) is None or (x := r.mem_used_kib) is None else x for v in vms]


def _keys_disk(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
    return [
        missing
        if (r := v.rates) is None or (r.disk_rd_bps is None and r.disk_wr_bps is None)
        else (r.disk_rd_bps or 0.0) + (r.disk_wr_bps or 0.0)
        for v in vms
    ]


def _keys_net(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
    return [
        missing
        if (r := v.rates) is None or (r.net_rx_bps is None and r.net_tx_bps is None)
        else (r.net_rx_bps or 0.0) + (r.net_tx_bps or 0.0)
        for v in vms
    ]


def _keys_ip(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
    return [v.ips[0] if v.ips else missing for v in vms]


def _keys_uptime(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
    return [now - v.state_since if v.state == "running" and v.state_since > 0 else missing for v in vms]


def _keys_tags(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
    return [",".join(d.tags) if (d := v.details) is not None and d.tags else missing for v in vms]


def _keys_mark(vms: Sequence[VmState], missing: Any, now: float, marks: set[str]) -> list[Any]:
    return [0 if v.key in marks else 1 for v in vms]


_SORT_KEYS: dict[str, tuple[Callable[[Sequence[VmState], Any, float, set[str]], list[Any]], bool]] = {
    "state": (_keys_state, False),
    "vcpu": (_keys_vcpu, True),
    "cpu": (_keys_cpu, True),
    "mem": (_keys_mem, True),
    "disk": (_keys_disk, True),
    "net": (_keys_net, True),
    "ip": (_keys_ip, False),
    "uptime": (_keys_uptime, True),
    "tags": (_keys_tags, False),
    "mark": (_keys_mark, True),
}
"""Column -> (its sort keys for a list of VMs, numeric?)."""


class Sorter:
    """Orders VMs for the table, as a permutation: indices into the caller's sequence in display order.

    The VMs themselves are never moved: with every row new each tick, building a list of 10,000 objects in
    a sorted (so scattered) order costs more than sorting does, in cache misses. Keys are read in input
    order, and only the rows on screen are ever fetched through the permutation.

    The host/name permutation of the last input is remembered: an input with the same hosts and names at
    the same places (every tick of a steady fleet) is not sorted again."""

    def __init__(self) -> None:
        self._hosts: list[str] = []
        self._names: list[str] = []
        self._perm: list[int] = []

    def by_host(self, vms: Sequence[VmState]) -> list[int]:
        """Indices of `vms` in host then name order (stable). Do not modify the list: it is kept."""
        hosts = list(map(_HOST, vms))
        names = list(map(_NAME, vms))
        if hosts != self._hosts or names != self._names:
            perm = sorted(range(len(names)), key=names.__getitem__)
            perm.sort(key=hosts.__getitem__)
            self._hosts, self._names, self._perm = hosts, names, perm
        return self._perm

    def sort(
        self,
        vms: Sequence[VmState],
        column: str,
        reverse: bool,
        *,
        now: float = 0.0,
        marks: set[str] | None = None,
    ) -> Sequence[int]:
        """Indices of `vms` ordered by `column` (one of SORT_COLUMNS), ties in host then name order,
        unknown values last whichever the direction. Stable; host descending is the exact reverse of host
        ascending."""
        if column != "host" and column != "name" and column not in _SORT_KEYS:
            raise ValueError(f"unknown column {column!r}; one of {', '.join(SORT_COLUMNS)}")
        base = self.by_host(vms)
        if column == "host":
            return base[::-1] if reverse else base
        if column == "name":
            return sorted(base, key=self._names.__getitem__, reverse=reverse)
        keys_of, numeric = _SORT_KEYS[column]
        if numeric:
            missing: Any = -_INF if reverse else _INF
        else:
            missing = "" if reverse else _MAX_STR
        keys = keys_of(vms, missing, now, marks if marks is not None else set())
        # sorted(reverse=True) keeps equal items in their original order: ties stay in host/name order
        return sorted(base, key=keys.__getitem__, reverse=reverse)


def sort_vms(
    vms: Sequence[VmState], column: str, reverse: bool, *, now: float = 0.0, marks: set[str] | None = None
) -> list[VmState]:
    """`vms` in the order `Sorter().sort(...)` gives, for a one-off sort."""
    return [vms[i] for i in Sorter().sort(vms, column, reverse, now=now, marks=marks)]


# ------------------------------------------------------------------------------------------- the widget


class VmTable(ScrollView, can_focus=True):
    """VMs, one row each, sortable by any column, with a row cursor and marks (for acting on several)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,j", "cursor_down", "Down", show=False, id="vm_table.cursor_down"),
        Binding("up,k", "cursor_up", "Up", show=False, id="vm_table.cursor_up"),
        Binding("pagedown,ctrl+f", "page_down", "Page down", show=False, id="vm_table.page_down"),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False, id="vm_table.page_up"),
        Binding("home,g", "first", "First", show=False, id="vm_table.first"),
        Binding("end,G", "last", "Last", show=False, id="vm_table.last"),
        Binding("space", "toggle_mark", "Mark", id="vm_table.toggle_mark"),
        Binding("ctrl+a", "mark_all", "Mark all", show=False, id="vm_table.mark_all"),
        Binding("u", "clear_marks", "Unmark all", show=False, id="vm_table.clear_marks"),
        Binding("enter", "select", "Open", show=False, id="vm_table.select"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "vm-table--header",
        "vm-table--cursor",
        "vm-table--marked",
        "vm-table--stale",
        "vm-table--spark",
        "vm-table--running",
        "vm-table--paused",
        "vm-table--shutoff",
        "vm-table--crashed",
        "vm-table--alert-warning",
        "vm-table--alert-critical",
    }
    """
    | Class | Description |
    | :- | :- |
    | `vm-table--header` | The header row. |
    | `vm-table--cursor` | The cursor row. |
    | `vm-table--marked` | Marked rows (laid over the row). |
    | `vm-table--stale` | Rows of VMs whose host is not answering (laid over the row). |
    | `vm-table--spark` | The CPU sparkline. |
    | `vm-table--running` ... `--crashed` | The STATE cell, by state. |
    | `vm-table--alert-warning`, `--alert-critical` | The NAME cell of a VM with an alert firing. |
    """

    DEFAULT_CSS = """
    VmTable {
        background: $surface;
        color: $foreground;
        height: 1fr;
        overflow-x: hidden;
        overflow-y: auto;
        & > .vm-table--header {
            background: $panel;
            color: $foreground;
            text-style: bold;
        }
        & > .vm-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .vm-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .vm-table--marked {
            background: $accent 25%;
            color: $text-accent;
        }
        & > .vm-table--stale {
            text-style: dim italic;
        }
        & > .vm-table--spark {
            color: $primary;
        }
        & > .vm-table--running {
            color: $success;
        }
        & > .vm-table--paused {
            color: $warning;
        }
        & > .vm-table--shutoff {
            color: $text-muted;
        }
        & > .vm-table--crashed {
            color: $error;
            text-style: bold;
        }
        & > .vm-table--alert-warning {
            color: $warning;
            text-style: bold;
        }
        & > .vm-table--alert-critical {
            background: $error 30%;
            color: $text-error;
            text-style: bold;
        }
    }
    """

    cursor: reactive[int] = reactive(0, repaint=False, init=False)
    """Index of the cursor row in the current order (clamped to the rows there are)."""

    # ------------------------------------------------------------------------------------------ messages

    class Highlighted(Message):
        """The cursor is on another VM now (`key` None: the table is empty). Coalesced: only the latest of
        a burst of cursor moves is delivered."""

        def __init__(self, key: str | None, *, table: VmTable | None = None) -> None:
            super().__init__()
            self.key = key
            self.table = table

        @property
        def control(self) -> VmTable | None:
            return self.table

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, VmTable.Highlighted) and message.table is self.table

    class Selected(Message):
        """Enter (or a double click) on the cursor's VM."""

        def __init__(self, key: str, *, table: VmTable | None = None) -> None:
            super().__init__()
            self.key = key
            self.table = table

        @property
        def control(self) -> VmTable | None:
            return self.table

    class MarksChanged(Message):
        """The set of marked VM keys changed (coalesced: the latest set wins)."""

        def __init__(self, keys: frozenset[str], *, table: VmTable | None = None) -> None:
            super().__init__()
            self.keys = keys
            self.table = table

        @property
        def control(self) -> VmTable | None:
            return self.table

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, VmTable.MarksChanged) and message.table is self.table

    # ------------------------------------------------------------------------------------------ state

    def __init__(
        self,
        *,
        spark_window: float = 60.0,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        """`spark_window`: seconds of CPU history read for the sparkline (its last SPARK_CELLS samples are
        drawn); enough to hold them at the poll interval."""
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.spark_window = spark_window
        self._vms: Sequence[VmState] = ()
        """The VMs as the caller gave them (copied): rows are `_vms[_perm[i]]`."""
        self._perm: Sequence[int] = ()
        self._sorter = Sorter()
        self._keys: tuple[str, ...] | None = None
        self._marks: set[str] = set()
        self._alerts: dict[str, int] = {}
        """key -> 1 (warning or info) or 2 (critical): VMs with an alert firing"""
        self._history: History | None = None
        self._now = 0.0
        self._sort_column = "host"
        self._sort_reverse = False
        self._highlighted: str | None = None
        self._layout_width = -1
        self._layout: tuple[_Slot, ...] = ()
        self._generation = 0
        """Bumped whenever every cached strip is invalid (layout, styles, history source)."""
        self._strips: dict[str, tuple[VmState, int, float, int, Strip]] = {}
        self._header: tuple[tuple[int, str, bool], Strip] | None = None
        self._styles: dict[str, Style] = {}
        self._frame: tuple[tuple[_Slot, ...], int, int] | None = None
        self._strip_limit = 256

    @property
    def rows(self) -> tuple[str, ...]:
        """VM keys in display order."""
        if self._keys is None:
            vms = self._vms
            self._keys = tuple(vms[i].key for i in self._perm)
        return self._keys

    @property
    def visible_count(self) -> int:
        """How many VMs the table lists (after the caller's filter)."""
        return len(self._perm)

    @property
    def current_vm(self) -> VmState | None:
        return self._vms[self._perm[self.cursor]] if 0 <= self.cursor < len(self._perm) else None

    @property
    def current_key(self) -> str | None:
        vm = self.current_vm
        return None if vm is None else vm.key

    @property
    def marked(self) -> frozenset[str]:
        """Marked VM keys, including those not listed at the moment."""
        return frozenset(self._marks)

    @property
    def sort_column(self) -> str:
        return self._sort_column

    @property
    def sort_reverse(self) -> bool:
        return self._sort_reverse

    @property
    def columns(self) -> tuple[str, ...]:
        """Ids of the columns shown at the current width."""
        return tuple(s.column.id for s in self._slots())

    def update(self, vms: Sequence[VmState], *, history: History | None = None, now: float) -> None:
        """Show `vms` (already filtered), sorted by the current column; `history` feeds the sparklines and
        `now` (wall time) the uptimes. O(N) C-level work plus one repaint of the visible rows."""
        if history is not self._history:
            self._history = history
            self._generation += 1
        self._now = now
        vms = vms if isinstance(vms, tuple) else list(vms)  # ours: the caller may reuse its list
        self._apply(
            vms, self._sorter.sort(vms, self._sort_column, self._sort_reverse, now=now, marks=self._marks)
        )

    def set_alerts(self, alerts: dict[str, int]) -> None:
        """VMs with an alert firing, by key: 1 warning (or info), 2 critical; their NAME cell stands out."""
        if alerts != self._alerts:
            self._alerts = alerts
            self.refresh()

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        """Sort by `column` (one of SORT_COLUMNS); the same column again reverses. Unknown values last."""
        column = next((c.sort or c.id for c in COLUMNS if c.id == column), column)
        if column not in SORT_COLUMNS:
            raise ValueError(f"unknown column {column!r}; one of {', '.join(SORT_COLUMNS)}")
        if reverse is None:
            reverse = not self._sort_reverse if column == self._sort_column else False
        self._sort_column, self._sort_reverse = column, reverse
        self._header = None
        self._apply(
            self._vms, self._sorter.sort(self._vms, column, reverse, now=self._now, marks=self._marks)
        )

    def _apply(self, vms: Sequence[VmState], perm: Sequence[int]) -> None:
        """Make `vms` in the order `perm` the rows, keeping the cursor on its VM (else on its index,
        clamped)."""
        old = self.current_vm
        index = self.cursor
        self._vms, self._perm = vms, perm
        self._keys = None
        if old is not None:
            found = self._locate(old)
            if found is not None:
                index = found
        index = max(0, min(index, len(perm) - 1))
        self.set_reactive(VmTable.cursor, index)
        self.virtual_size = Size(0, len(perm) + 1)
        self._scroll_to_cursor()
        self.refresh()
        self._note_highlight()

    def _locate(self, old: VmState) -> int | None:
        """The row of `old`'s VM (same host and uuid) now: a bisection when sorted by host and name (the
        usual case), else C-level passes over the uuids and the permutation."""
        vms, perm = self._vms, self._perm
        if self._sort_column == "host" and not self._sort_reverse:
            target = (old.host, old.name)
            i = bisect_left(range(len(perm)), target, key=lambda r: _HOST_NAME(vms[perm[r]]))
            if i < len(perm) and (vm := vms[perm[i]]).uuid == old.uuid and vm.host == old.host:
                return i
        uuids = list(map(_UUID, vms))
        start = 0
        while True:
            try:
                j = uuids.index(old.uuid, start)
            except ValueError:
                return None
            if vms[j].host == old.host:
                return perm.index(j)
            start = j + 1

    # ------------------------------------------------------------------------------------------ cursor

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self._perm) - 1))

    def watch_cursor(self, old: int, new: int) -> None:
        self._refresh_row(old)
        self._refresh_row(new)
        self._scroll_to_cursor()
        self._note_highlight()

    def _note_highlight(self) -> None:
        key = self.current_key
        if key != self._highlighted:
            self._highlighted = key
            self.post_message(self.Highlighted(key, table=self))

    def _refresh_row(self, index: int) -> None:
        if 0 <= index < len(self._perm):
            self.refresh_line(index + 1)  # virtual line 0 is the header

    @property
    def _page(self) -> int:
        """Rows that fit below the header."""
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_to_cursor(self) -> None:
        rows = self.scrollable_content_region.height - 1
        if rows <= 0:
            return
        top = self.scroll_offset.y
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, force=True)
        elif self.cursor >= top + rows:
            self.scroll_to(y=self.cursor - rows + 1, animate=False, force=True)

    def on_resize(self, event: events.Resize) -> None:
        self._strip_limit = max(256, 8 * event.size.height)
        self._scroll_to_cursor()

    def action_cursor_down(self) -> None:
        self.cursor += 1

    def action_cursor_up(self) -> None:
        self.cursor -= 1

    def action_page_down(self) -> None:
        self.cursor += self._page

    def action_page_up(self) -> None:
        self.cursor -= self._page

    def action_first(self) -> None:
        self.cursor = 0

    def action_last(self) -> None:
        self.cursor = len(self._perm) - 1

    def action_select(self) -> None:
        key = self.current_key
        if key is not None:
            self.post_message(self.Selected(key, table=self))

    # ------------------------------------------------------------------------------------------ marks

    def action_toggle_mark(self) -> None:
        key = self.current_key
        if key is None:
            return
        if key in self._marks:
            self._marks.discard(key)
        else:
            self._marks.add(key)
        self._refresh_row(self.cursor)
        self._marks_changed(refresh=False)
        self.cursor += 1

    def action_mark_all(self) -> None:
        before = len(self._marks)
        self._marks.update(self.rows)
        if len(self._marks) != before:
            self._marks_changed()

    def action_clear_marks(self) -> None:
        if self._marks:
            self._marks.clear()
            self._marks_changed()

    def _marks_changed(self, refresh: bool = True) -> None:
        if refresh:
            self.refresh()
        if self._sort_column == "mark":
            self._header = None
        self.post_message(self.MarksChanged(frozenset(self._marks), table=self))

    # ------------------------------------------------------------------------------------------ mouse

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            for slot in self._slots():
                if slot.x <= offset.x < slot.x + slot.width + 1 and slot.column.id != "mark":
                    self.sort_by(slot.column.id)
                    break
            return
        index = self.scroll_offset.y + offset.y - 1
        if 0 <= index < len(self._perm):
            self.cursor = index
            if event.chain == 2:
                self.action_select()

    # ------------------------------------------------------------------------------------------ drawing

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._strips.clear()
        self._header = None
        self._generation += 1
        self.refresh()

    def _style(self, name: str) -> Style:
        """A component's style: "base" is the widget's own; row overlays and cell colours keep only what
        their rule sets (colours blended as the full style blends them), so they can be laid over a row."""
        style = self._styles.get(name)
        if style is None:
            if name == "base":
                style = self.rich_style
            elif name in ("vm-table--header", "vm-table--cursor"):
                style = self.get_component_rich_style(name)
            else:
                full = self.get_component_rich_style(name)
                part = self.get_component_rich_style(name, partial=True)
                style = part + Style.from_color(
                    full.color if part.color is not None else None,
                    full.bgcolor if part.bgcolor is not None else None,
                )
            self._styles[name] = style
        return style

    def _slots(self) -> tuple[_Slot, ...]:
        width = self.scrollable_content_region.width
        if width != self._layout_width:
            self._layout_width = width
            self._layout = layout(width)
            self._generation += 1
            self._header = None
        return self._layout

    def render_lines(self, crop: Region) -> list[Strip]:
        # the geometry is read once for all the lines of this paint, not once a line
        self._frame = (self._slots(), self.size.width, self.scroll_offset.y)
        try:
            return super().render_lines(crop)
        finally:
            self._frame = None

    def render_line(self, y: int) -> Strip:
        slots, width, top = self._frame or (self._slots(), self.size.width, self.scroll_offset.y)
        if y == 0:
            return self._header_strip(slots, width)
        index = top + y - 1
        if 0 <= index < len(self._perm):
            return self._row_strip(index, slots, width)
        return Strip.blank(width, self._style("base"))

    def _header_strip(self, slots: tuple[_Slot, ...], width: int) -> Strip:
        token = (self._generation, self._sort_column, self._sort_reverse)
        if self._header is not None and self._header[0] == token:
            return self._header[1]
        parts: list[str] = []
        for slot in slots:
            col = slot.column
            label = col.label
            if col.id == self._sort_column:
                arrow = "▼" if self._sort_reverse else "▲"
                label = f"{label[: max(0, slot.width - 1)]}{arrow}" if label else arrow
            parts.append(_fit(label, slot.width, col.right))
        text = _SEP.join(parts)
        style = self._style("vm-table--header")
        strip = Strip([Segment(_fit(text, width, False), style)], width)
        self._header = (token, strip)
        return strip

    def _row_strip(self, index: int, slots: tuple[_Slot, ...], width: int) -> Strip:
        vm = self._vms[self._perm[index]]
        key = vm.key
        marked = key in self._marks
        flags = (index == self.cursor) | (marked << 1) | (self._alerts.get(key, 0) << 2)
        now_token = self._now if vm.state == "running" else 0.0
        cached = self._strips.get(key)
        if (
            cached is not None
            and cached[0] is vm
            and cached[1] == flags
            and cached[2] == now_token
            and cached[3] == self._generation
        ):
            return cached[4]
        strip = self._build_row(vm, key, flags, slots, width)
        if len(self._strips) > self._strip_limit:
            self._strips.clear()
        self._strips[key] = (vm, flags, now_token, self._generation, strip)
        return strip

    def _build_row(self, vm: VmState, key: str, flags: int, slots: tuple[_Slot, ...], width: int) -> Strip:
        cursor = bool(flags & 1)
        marked = bool(flags & 2)
        row = self._style("base")
        if marked:
            row += self._style("vm-table--marked")
        if vm.stale:
            row += self._style("vm-table--stale")
        if cursor:
            row += self._style("vm-table--cursor")
            if vm.stale:
                row += self._style("vm-table--stale")
        segments: list[Segment] = []
        run: list[str] = []
        used = 0
        last = len(slots) - 1
        for i, slot in enumerate(slots):
            cid = slot.column.id
            text = _fit(self._cell(cid, vm, key, marked), slot.width, slot.column.right)
            if i != last:
                text += _SEP
            used += slot.width + (i != last)
            accent: Style | None = None
            if flags >> 2 and cid == "name":
                accent = self._style(
                    "vm-table--alert-critical" if flags >> 2 == 2 else "vm-table--alert-warning"
                )
            elif not cursor:
                if cid == "state":
                    cls = _STATE_CLASS.get(vm.state)
                    if cls is not None:
                        accent = self._style(cls)
                elif cid == "spark":
                    accent = self._style("vm-table--spark")
            if accent is None:
                run.append(text)
            else:
                if run:
                    segments.append(Segment("".join(run), row))
                    run = []
                segments.append(Segment(text[: slot.width], row + accent))
                if i != last:
                    run.append(_SEP)
        if used < width:
            run.append(" " * (width - used))
        if run:
            segments.append(Segment("".join(run), row))
        strip = Strip(segments, max(width, used))
        return strip.crop(0, width) if used > width else strip

    def _cell(self, cid: str, vm: VmState, key: str, marked: bool) -> str:
        if cid == "mark":
            return MARK if marked else ""
        if cid == "name":
            return shown(vm.name)  # a host's text: no escape or bidi control reaches the terminal
        if cid == "host":
            return shown(vm.host)
        if cid == "state":
            return vm.state
        if cid == "vcpu":
            v = _vcpus(vm)
            return "" if v is None else str(v)
        r = vm.rates
        if cid == "cpu":
            return fmt.pct(r.cpu_pct if r is not None else None, missing="")
        if cid == "spark":
            h = self._history
            if h is None or key not in h:
                return ""
            values = h.series(key, "cpu", self.spark_window, self._now)[1]
            return fmt.sparkline(values, SPARK_CELLS) if values else ""
        if cid == "mem":
            used = r.mem_used_kib if r is not None else None
            total = _mem_total_kib(vm)
            if used is None and total is None:
                return ""
            return fmt.mem_used_of(used, total)
        if cid == "disk":
            if r is None or (r.disk_rd_bps is None and r.disk_wr_bps is None):
                return ""
            return fmt.pair(fmt.rate(r.disk_rd_bps, per=""), fmt.rate(r.disk_wr_bps, per=""))
        if cid == "net":
            if r is None or (r.net_rx_bps is None and r.net_tx_bps is None):
                return ""
            return fmt.pair(fmt.rate(r.net_rx_bps, per=""), fmt.rate(r.net_tx_bps, per=""))
        if cid == "ip":
            return shown(vm.ips[0]) if vm.ips else ""
        if cid == "uptime":
            up = _uptime(vm, self._now)
            return "" if up is None else fmt.duration(up)
        if cid == "tags":
            d = vm.details
            return shown(",".join(d.tags)) if d is not None else ""
        return ""
