"""Picture: a screenshot drawn with half blocks, two pixels a cell (core/picture.py makes the cells).

The strips are built once per new picture (runs of one colour pair are one segment, styles cached by
colour pair), so a repaint or a scroll of the screen costs nothing; a picture comes every second or two.
A message in place of a picture (no display, VM off) is drawn as text, never markup.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from vimtui.core.picture import RGB, UPPER_HALF, Cells


class Picture(Widget, can_focus=True):
    """The guest's screen, centred in the widget; focusable, so the view can read every key there."""

    DEFAULT_CSS = """
    Picture { width: 1fr; height: 1fr; background: $background; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._strips: list[Strip] = []
        self._width = 0
        self._message: Text | None = None
        self._styles: dict[tuple[RGB, RGB], Style] = {}

    def show(self, cells: Cells) -> None:
        """Draw `cells` (sized for this widget's size when they were made)."""
        strips = []
        for row in cells.pairs:
            segments = []
            run_pair, run = row[0], 0
            for pair in row:
                if pair != run_pair:
                    segments.append(Segment(UPPER_HALF * run, self._style(run_pair)))
                    run_pair, run = pair, 0
                run += 1
            segments.append(Segment(UPPER_HALF * run, self._style(run_pair)))
            strips.append(Strip(segments, cells.cols))
        if len(self._styles) > 65536:  # a photo's worth of colours: start again rather than grow
            self._styles.clear()
        self._strips, self._width, self._message = strips, cells.cols, None
        self.refresh()

    def say(self, message: str) -> None:
        """Show `message` (from a host: as text) in place of the picture."""
        self._message = Text(message, style="italic")
        self.refresh()

    def _style(self, pair: tuple[RGB, RGB]) -> Style:
        style = self._styles.get(pair)
        if style is None:
            (r1, g1, b1), (r2, g2, b2) = pair
            style = Style(color=f"#{r1:02x}{g1:02x}{b1:02x}", bgcolor=f"#{r2:02x}{g2:02x}{b2:02x}")
            self._styles[pair] = style
        return style

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if self._message is not None:
            lines = self._message.wrap(self.app.console, max(1, width - 2))
            at = y - (self.size.height - len(lines)) // 2
            if not 0 <= at < len(lines):
                return Strip.blank(width, self.rich_style)
            text = lines[at]
            pad = max(0, (width - text.cell_len) // 2)
            segments = [Segment(" " * pad, self.rich_style), *text.render(self.app.console)]
            return Strip(segments).adjust_cell_length(width, self.rich_style)
        top = max(0, (self.size.height - len(self._strips)) // 2)
        row = y - top
        if not 0 <= row < len(self._strips):
            return Strip.blank(width, self.rich_style)
        left = max(0, (width - self._width) // 2)
        strip = self._strips[row]
        if left:
            strip = Strip([Segment(" " * left, self.rich_style), *strip], left + self._width)
        return strip.crop(0, width).adjust_cell_length(width, self.rich_style)
