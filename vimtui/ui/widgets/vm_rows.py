"""How a VM table row is drawn: its cells' text, its segments and their styles, and where a VM is in a
new order (the widget, vm_table.py, caches the strips and owns the styles)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from vimtui.core.model import VmState
from vimtui.core.monitor.rings import History
from vimtui.core.text import shown
from vimtui.ui import format as fmt
from vimtui.ui.widgets.vm_columns import HOST_NAME, SPARK_CELLS, UUID, Column, Slot, fit

MARK = "●"
SEP = " "

STATE_CLASS = {
    "running": "vm-table--running",
    "blocked": "vm-table--running",
    "paused": "vm-table--paused",
    "pmsuspended": "vm-table--paused",
    "shutdown": "vm-table--paused",
    "shutoff": "vm-table--shutoff",
    "crashed": "vm-table--crashed",
}
"""The STATE cell's component class, by state."""
TEMPLATE = " [tpl]"
"""After a template's name: a source to create from, not a VM to run (templates.py)."""


class StripCache:
    """Row strips by VM key, each good while the VmState object (a new one means new data), the row's
    flags, the time it depends on and the table's generation (layout, styles) are the same."""

    def __init__(self) -> None:
        self.limit = 256
        """Strips kept at most (cleared when more would be)."""
        self._strips: dict[str, tuple[VmState, int, float, int, Strip]] = {}

    def get(self, vm: VmState, flags: int, now: float, generation: int) -> Strip | None:
        cached = self._strips.get(vm.key)
        if cached is None or cached[0] is not vm or cached[1:4] != (flags, now, generation):
            return None
        return cached[4]

    def put(self, vm: VmState, flags: int, now: float, generation: int, strip: Strip) -> Strip:
        if len(self._strips) > self.limit:
            self._strips.clear()
        self._strips[vm.key] = (vm, flags, now, generation, strip)
        return strip

    def clear(self) -> None:
        self._strips.clear()


def overlay(full: Style, part: Style) -> Style:
    """A component's style to lay over a row: what its rule sets (`part`), with colours blended as the
    full style blends them."""
    return part + Style.from_color(
        full.color if part.color is not None else None, full.bgcolor if part.bgcolor is not None else None
    )


def header_text(slots: Sequence[Slot], sort_column: str, reverse: bool) -> str:
    """The header line: each column's label, the sort column's with an arrow."""
    parts: list[str] = []
    for slot in slots:
        col = slot.column
        label = col.label
        if col.id == sort_column:
            arrow = "▼" if reverse else "▲"
            label = f"{label[: max(0, slot.width - 1)]}{arrow}" if label else arrow
        parts.append(fit(label, slot.width, col.right))
    return SEP.join(parts)


def cell_text(
    col: Column, vm: VmState, marked: bool, history: History | None, spark_window: float, now: float
) -> str:
    """One cell's text (not yet fitted to its width)."""
    if col.text is not None:
        return col.text(vm, now)
    cid = col.id
    if cid == "mark":
        return MARK if marked else ""
    if cid == "name":  # a host's text: no escape or bidi control reaches the terminal
        d = vm.details
        return shown(vm.name) + (TEMPLATE if d is not None and d.template else "")
    if cid == "host":
        return shown(vm.host)
    if cid == "state":
        return vm.state
    if cid == "spark":
        key = vm.key
        if history is None or key not in history:
            return ""
        values = history.series(key, "cpu", spark_window, now)[1]
        return fmt.sparkline(values, SPARK_CELLS) if values else ""
    if cid == "ip":
        return shown(vm.ips[0]) if vm.ips else ""
    if cid == "tags":
        d = vm.details
        return shown(",".join(d.tags)) if d is not None else ""
    return ""


def row_texts(
    slots: Sequence[Slot], vm: VmState, marked: bool, history: History | None, spark_window: float, now: float
) -> list[str]:
    """A row's cells' texts, one per slot (a metric column's from its compiled `text`)."""
    return [
        c.text(vm, now)
        if (c := slot.column).text is not None
        else cell_text(c, vm, marked, history, spark_window, now)
        for slot in slots
    ]


def paint_row(
    vm: VmState,
    flags: int,
    slots: Sequence[Slot],
    width: int,
    style: Callable[[str], Style],
    texts: Sequence[str],
) -> Strip:
    """A row's strip: `flags` is cursor (1) | marked (2) | alert level << 2; `style` gives a component
    class's style, `texts` the cells' texts, one per slot. Runs of plain cells become one segment."""
    cursor = bool(flags & 1)
    marked = bool(flags & 2)
    row = style("base")
    if marked:
        row += style("vm-table--marked")
    if vm.stale:
        row += style("vm-table--stale")
    if cursor:
        row += style("vm-table--cursor")
        if vm.stale:
            row += style("vm-table--stale")
    segments: list[Segment] = []
    run: list[str] = []
    used = 0
    last = len(slots) - 1
    for i, slot in enumerate(slots):
        cid = slot.column.id
        text = fit(texts[i], slot.width, slot.column.right)
        if i != last:
            text += SEP
        used += slot.width + (i != last)
        accent: Style | None = None
        if flags >> 2 and cid == "name":
            accent = style("vm-table--alert-critical" if flags >> 2 == 2 else "vm-table--alert-warning")
        elif not cursor:
            if cid == "state":
                cls = STATE_CLASS.get(vm.state)
                if cls is not None:
                    accent = style(cls)
            elif cid == "spark":
                accent = style("vm-table--spark")
        if accent is None:
            run.append(text)
        else:
            if run:
                segments.append(Segment("".join(run), row))
                run = []
            segments.append(Segment(text[: slot.width], row + accent))
            if i != last:
                run.append(SEP)
    if used < width:
        run.append(" " * (width - used))
    if run:
        segments.append(Segment("".join(run), row))
    strip = Strip(segments, max(width, used))
    return strip.crop(0, width) if used > width else strip


def locate(vms: Sequence[VmState], perm: Sequence[int], old: VmState, by_host_name: bool) -> int | None:
    """The row of `old`'s VM (same host and uuid) in `perm`: a bisection when the order is by host and name
    (the usual case), else C-level passes over the uuids and the permutation."""
    if by_host_name:
        target = (old.host, old.name)
        i = bisect_left(range(len(perm)), target, key=lambda r: HOST_NAME(vms[perm[r]]))
        if i < len(perm) and (vm := vms[perm[i]]).uuid == old.uuid and vm.host == old.host:
            return i
    uuids = list(map(UUID, vms))
    start = 0
    while True:
        try:
            j = uuids.index(old.uuid, start)
        except ValueError:
            return None
        if vms[j].host == old.host:
            return perm.index(j)
        start = j + 1
