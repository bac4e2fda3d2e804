"""Human units for the screen: short, fixed-width-friendly strings shared by the widgets, and `literal`,
the one way text from a host or a user reaches a widget.

Pure functions (no Textual, no clock). Unknown values (None, NaN) come out as `missing` ("-" by default),
never as a made-up zero. Sizes use binary units with one letter (K = KiB) and at most four characters:
"512B", "1.2K", "34K", "412M", "1.0G".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.cells import cell_len, set_cell_size
from rich.style import Style
from rich.text import Text

from vimtui.core.text import shown
from vimtui.core.units import MISSING, format_bytes, format_duration

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def literal(text: object, style: str | Style = "", *, keep: str = "") -> Text:
    """Text from a host or a user (a VM name, a path, an error message) as the screen shows it: control
    and escape characters made visible (vimtui.core.text.shown), and a Text, so no widget or table parses
    it as markup (`[/x]` is shown, not a crash; `[on black]` is shown, not obeyed). `keep="\n"` where
    the text may run over several lines."""
    return Text(shown(str(text), keep=keep), style=style)


def text_row(*cells: str) -> list[Text]:
    """A table row whose cells carry text from a host: each a `literal`."""
    return [literal(c) for c in cells]


def head_line(name: str, rest: str = "") -> Text:
    """A screen's first line: a name in bold, then the rest, all shown as text."""
    line = Text()
    line.append(shown(name), "bold")
    line.append(shown(rest))
    return line


def fit(text: str, width: int) -> str:
    """`text` in exactly `width` terminal cells, wide characters counted as two: cut or padded."""
    if text.isascii():
        return text[:width].ljust(width)
    return set_cell_size(text, width) if cell_len(text) != width else text


def pct(value: float | None, *, digits: int = 1, missing: str = MISSING) -> str:
    """A percentage: `pct(34.46)` -> "34.5%"; None -> "-"."""
    if value is None or value != value:
        return missing
    return f"{value:.{digits}f}%"


percent = pct


size = format_bytes
"""Bytes in binary units (core/units.format_bytes): "0B", "999B", "1.0K", "34K", "412M", "9.8G"."""


def kib(n_kib: float | None, *, missing: str = MISSING) -> str:
    """A size given in KiB (libvirt's memory unit): `kib(421888)` -> "412M"."""
    return size(None if n_kib is None else n_kib * 1024.0, missing=missing)


def rate(bytes_per_s: float | None, *, per: str = "/s", missing: str = MISSING) -> str:
    """A byte rate: `rate(1234)` -> "1.2K/s"; `per=""` for a column whose header carries the unit."""
    if bytes_per_s is None or bytes_per_s != bytes_per_s:
        return missing
    return size(bytes_per_s) + per


def pair(first: str, second: str) -> str:
    """Two short values in one cell: "1.2K/34K"."""
    return f"{first}/{second}"


def mem_used_of(used_kib: float | None, total_kib: float | None) -> str:
    """Memory used out of allocated: "412M/1.0G"; "?" for the side that is unknown ("?/1.0G")."""
    return pair(kib(used_kib, missing="?"), kib(total_kib, missing="?"))


duration = format_duration
"""A coarse duration in at most two units (core/units.format_duration): "42s", "5m12s", "3h4m"."""


def sparkline(values: Sequence[float], width: int, *, lo: float = 0.0, hi: float | None = 100.0) -> str:
    """The last `width` values as block characters (▁ .. █), newest on the right, padded on the left with
    spaces to exactly `width` characters. NaN is a gap (a space). `hi=None` scales to the largest value.
    Values outside [lo, hi] are clamped; the lowest block still shows that a sample exists."""
    if width <= 0:
        return ""
    tail = values[-width:]
    top = hi
    if top is None:
        finite = [v for v in tail if v == v and not math.isinf(v)]
        top = max(finite, default=lo)
    span = top - lo
    last = len(SPARK_BLOCKS) - 1
    out: list[str] = []
    for v in tail:
        if v != v:
            out.append(" ")
            continue
        if span <= 0:
            index = 0
        else:
            frac = (v - lo) / span
            index = last if frac >= 1.0 else (0 if frac <= 0.0 else int(frac * len(SPARK_BLOCKS)))
        out.append(SPARK_BLOCKS[min(index, last)])
    return " " * (width - len(tail)) + "".join(out)
