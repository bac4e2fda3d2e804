"""Setting a Static's text only when it changed: a plain Static.update repaints (and, unless told not to,
lays out the whole screen) even for the same text, and the screens set theirs at every publish."""

from __future__ import annotations

from textual.visual import VisualType
from textual.widgets import Static


def set_text(widget: Static, content: VisualType, *, layout: bool) -> None:
    """`widget.update(content)` unless it already shows `content`. `layout=False` where the widget's
    height does not follow its text (a one-line bar): no layout pass of the screen (at 50 hosts ~80 ms at
    every publish, most of the screen's cost then)."""
    if content != widget.content:
        widget.update(content, layout=layout)
