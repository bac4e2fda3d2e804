"""VmTable: one row per VM, drawn with the Line API so that 10,000 VMs cost what the visible rows cost.

Only the rows on screen are ever formatted: `render_line(y)` builds the strip of row `scroll_y + y - 1`
(line 0 is the header, fixed above the scrolled rows). A tick (`update`) works out the display order as a
permutation of the caller's sequence, in C (`Sorter`), finds the cursor's VM again and asks for one
repaint: no per-row object, no cell widget, no Rich table. Formatted strips are cached per VM key and
checked against the VmState object itself (a new object means new data; a running VM's uptime also
depends on `now`), so rows that did not change, and rows scrolled back into view, are not formatted again.

Cursor, marks and sort order survive every update: the cursor follows its VM by key (else stays at its
index, clamped), and marks are a set of keys kept even for VMs the caller filtered out. The columns,
their cells and sort keys are vm_columns.py's (the metrics' from the registry); rows are drawn by vm_rows.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

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
from vimtui.ui.widgets.vm_columns import Slot, Sorter, columns, fit, layout, sort_columns
from vimtui.ui.widgets.vm_rows import StripCache, header_text, locate, overlay, paint_row, row_texts


class _FromTable(Message):
    """A message about a VmTable: `control` is the table."""

    def __init__(self, table: VmTable | None) -> None:
        super().__init__()
        self.table = table

    @property
    def control(self) -> VmTable | None:
        return self.table


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

    class Highlighted(_FromTable):
        """The cursor is on another VM now (`key` None: the table is empty). Coalesced: only the latest of
        a burst of cursor moves is delivered."""

        def __init__(self, key: str | None, *, table: VmTable | None = None) -> None:
            super().__init__(table)
            self.key = key

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, VmTable.Highlighted) and message.table is self.table

    class Selected(_FromTable):
        """Enter (or a double click) on the cursor's VM."""

        def __init__(self, key: str, *, table: VmTable | None = None) -> None:
            super().__init__(table)
            self.key = key

    class MarksChanged(_FromTable):
        """The set of marked VM keys changed (coalesced: the latest set wins)."""

        def __init__(self, keys: frozenset[str], *, table: VmTable | None = None) -> None:
            super().__init__(table)
            self.keys = keys

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
        self._layout: tuple[Slot, ...] = ()
        self._generation = 0
        """Bumped whenever every cached strip is invalid (layout, styles, history source)."""
        self._strips = StripCache()
        self._header: tuple[tuple[int, str, bool], Strip] | None = None
        self._styles: dict[str, Style] = {}
        self._frame: tuple[tuple[Slot, ...], int, int] | None = None

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
        """Sort by `column` (one of sort_columns()); the same column again reverses. Unknown values last."""
        column = next((c.sort or c.id for c in columns() if c.id == column), column)
        if column not in sort_columns():
            raise ValueError(f"unknown column {column!r}; one of {', '.join(sort_columns())}")
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
        return locate(self._vms, self._perm, old, self._sort_column == "host" and not self._sort_reverse)

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
        self._strips.limit = max(256, 8 * event.size.height)
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
            else:  # laid over a row: only what its rule sets
                style = overlay(
                    self.get_component_rich_style(name), self.get_component_rich_style(name, partial=True)
                )
            self._styles[name] = style
        return style

    def _slots(self) -> tuple[Slot, ...]:
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

    def _header_strip(self, slots: tuple[Slot, ...], width: int) -> Strip:
        token = (self._generation, self._sort_column, self._sort_reverse)
        if self._header is not None and self._header[0] == token:
            return self._header[1]
        text = header_text(slots, self._sort_column, self._sort_reverse)
        strip = Strip([Segment(fit(text, width, False), self._style("vm-table--header"))], width)
        self._header = (token, strip)
        return strip

    def _row_strip(self, index: int, slots: tuple[Slot, ...], width: int) -> Strip:
        vm = self._vms[self._perm[index]]
        key = vm.key
        flags = (index == self.cursor) | ((key in self._marks) << 1) | (self._alerts.get(key, 0) << 2)
        now = self._now if vm.state == "running" else 0.0  # a running VM's row depends on the time
        strip = self._strips.get(vm, flags, now, self._generation)
        if strip is None:
            strip = self._strips.put(
                vm, flags, now, self._generation, self._build_row(vm, key, flags, slots, width)
            )
        return strip

    def _build_row(self, vm: VmState, key: str, flags: int, slots: tuple[Slot, ...], width: int) -> Strip:
        texts = row_texts(slots, vm, bool(flags & 2), self._history, self.spark_window, self._now)
        return paint_row(vm, flags, slots, width, self._style, texts)
