"""Numbers for people: round steps for chart axes, sizes in binary units, durations (one formatter and one
parser of each, shared by the screen, the CLI, the reports, the config and the filter)."""

from __future__ import annotations

import math
import re


def nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `raw` (1.0 for nothing)."""
    if raw <= 0:
        return 1.0
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * mag >= raw * (1 - 1e-9):
            return m * mag
    return 10.0 * mag  # pragma: no cover


# -- sizes ------------------------------------------------------------------------------------------------

MISSING = "-"
"""What a figure that is not known shows as."""
_SIZE_UNITS = ("K", "M", "G", "T", "P", "E")


def format_bytes(n_bytes: float | None, *, missing: str = MISSING) -> str:
    """Bytes in binary units, at most four characters before any sign: "0B", "999B", "1.0K", "34K",
    "412M", "9.8G". A value that would print as 1000 or more moves to the next unit ("1.0G", not
    "1000M"). None and NaN are `missing`."""
    if n_bytes is None or n_bytes != n_bytes:
        return missing
    if math.isinf(n_bytes):
        return "inf" if n_bytes > 0 else "-inf"
    if n_bytes < 0:
        return "-" + format_bytes(-n_bytes, missing=missing)
    if n_bytes < 999.5:
        return f"{n_bytes:.0f}B"
    value = float(n_bytes)
    for unit in _SIZE_UNITS:
        value /= 1024.0
        if value < 999.5 or unit == _SIZE_UNITS[-1]:
            return f"{value:.1f}{unit}" if value < 9.95 else f"{value:.0f}{unit}"
    raise AssertionError("unreachable")  # pragma: no cover


# -- durations --------------------------------------------------------------------------------------------


def format_duration(seconds: float | None, *, missing: str = MISSING, tenths: bool = False) -> str:
    """A coarse duration in at most two units: "42s", "5m12s", "3h4m", "3d4h"; with `tenths`, under a
    minute to a tenth of a second ("3.4s": how long a task took). Negative counts as 0; None, NaN and
    infinities are `missing`."""
    if seconds is None or seconds != seconds or math.isinf(seconds):
        return missing
    if tenths and seconds < 59.95:
        return f"{max(seconds, 0.0):.1f}s"
    s = int(seconds) if seconds > 0 else 0
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s}s" if s else f"{m}m"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m}m" if m else f"{h}h"
    d, h = divmod(h, 24)
    return f"{d}d{h}h" if h else f"{d}d"


_DURATION_PART = re.compile(
    r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|secs|sec|s|mins|min|m|hrs|hr|h|d|w)?\s*", re.IGNORECASE
)
_SECONDS = {"ms": 0.001, "s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60, "h": 3600, "hr": 3600}
_SECONDS |= {"hrs": 3600, "d": 86400, "w": 604800, "": 1}


def parse_duration(value: str | float) -> float | None:
    """Seconds from a number (seconds) or a string: "60", "60s", "60 s", "5m", "1h30m", "500ms", "2w";
    None when it is none of these, negative or not finite. The one parser of durations: config, the
    `/` filter, alert rules and the command line's options all read them with it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) and value >= 0 else None
    total, end, parts = 0.0, 0, 0
    for m in _DURATION_PART.finditer(value):
        if m.start() != end or m.end() == m.start():
            return None
        unit = (m.group(2) or "").lower()
        if not unit and parts:
            return None  # "1m 30": a bare number only alone
        total += float(m.group(1)) * _SECONDS[unit]
        end, parts = m.end(), parts + 1
    return total if parts and end == len(value) and math.isfinite(total) else None
