"""Text from outside (hosts, users, config files, programs' output) made safe to show.

A VM name, a description, a disk path, libvirt's error message or an SSH server's disconnect reason is
controlled by someone else. Shown as it is, a control character can move the cursor, clear a terminal,
set its title (ESC ] 0; ... BEL), a bidi override can make "gpj.exe" read as "exe.jpg", and a CSV cell
that starts with "=" is a formula to a spreadsheet. `shown` makes such text inert and visible; the screen
then shows it as text (never as markup), the CLI prints it, the reports write it.
"""

from __future__ import annotations

import re
import unicodedata

CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""C0 and C1 control characters: never in a name, and masked in what is shown of a program's output."""

REPLACEMENT = "\ufffd"
"""What stands for a C1 control, a bidi control, a line or paragraph separator or a lone surrogate."""

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
"""Marks, embeddings, overrides and isolates: they reorder what follows them on the line."""


def _stand_ins() -> dict[int, str]:
    table = {c: chr(0x2400 + c) for c in range(0x20)}  # C0 as its control picture: ESC -> ␛, BEL -> ␇
    table[0x7F] = "\u2421"  # DEL -> ␡
    table.update(dict.fromkeys(range(0x80, 0xA0), REPLACEMENT))
    table.update(dict.fromkeys(map(ord, BIDI_CONTROLS), REPLACEMENT))
    table.update(dict.fromkeys((0x2028, 0x2029), REPLACEMENT))
    table.update(dict.fromkeys(range(0xD800, 0xE000), REPLACEMENT))  # from undecodable bytes
    return table


_STAND_INS = _stand_ins()
_KEEPING: dict[str, dict[int, str]] = {}


def shown(text: str, *, keep: str = "") -> str:
    """`text` with every control and escape character replaced by a visible stand-in, one character for
    one: C0 controls by their control pictures (ESC by "␛", a newline by "␊"), DEL by "␡", C1 controls,
    bidi controls, line and paragraph separators and lone surrogates by "�". `keep` names characters to
    leave (`keep="\\n"` for text shown on several lines). Markup is not this function's business: the
    screen shows the result as text, never parsed."""
    if text.isprintable():  # the common case, checked in C: no control, format or separator character
        return text
    table = _STAND_INS
    if keep:
        table = _KEEPING.get(keep) or _KEEPING.setdefault(
            keep, {c: s for c, s in _STAND_INS.items() if chr(c) not in keep}
        )
    return text.translate(table)


def cells(text: str) -> int:
    """How many terminal columns `text` takes: East Asian wide and full-width characters two, combining
    marks none (for plain-text tables: a column of wide names stays aligned)."""
    if text.isascii():
        return len(text)
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text
    )


def pad(text: str, width: int) -> str:
    """`text` padded with spaces to `width` terminal columns."""
    return text + " " * (width - cells(text))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""How a spreadsheet cell starts a formula (or, with a tab or a carriage return, hides that it does)."""


def csv_cell(text: str) -> str:
    """A text cell for a CSV file a spreadsheet will open: control characters made visible, and a cell
    that a spreadsheet would run as a formula (`=HYPERLINK(...)`, `+1`, `@SUM`) led by a `'` so it is
    shown as the text it is (the OWASP advice for CSV injection)."""
    text = shown(text, keep="\n")
    return "'" + text if text.startswith(FORMULA_STARTS) else text
