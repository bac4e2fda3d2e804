"""Where each key of a TOML text is written: tomllib gives no positions, so errors find their line here."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping

import tomli_w

PathElem = str | int
KeyPath = tuple[PathElem, ...]

_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART})*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_DOTTED})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_DOTTED})\s*=")
_KEY_PART_RE = re.compile(_KEY_PART)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _split_key(dotted: str) -> list[str]:
    parts: list[str] = []
    for raw in _KEY_PART_RE.findall(dotted):
        if raw.startswith('"'):
            parts.append(str(tomllib.loads(f"k = {raw}")["k"]))  # let tomllib decode the escapes
        elif raw.startswith("'"):
            parts.append(raw[1:-1])
        else:
            parts.append(raw)
    return parts


def locate_keys(text: str) -> dict[KeyPath, int]:
    """Map each key path written in `text` to the line where it first appears.

    tomllib gives no positions, so this scans line by line: table headers (each `[[array]]` occurrence
    gets the next index) and `key =` lines within them. Best effort: it skips the bodies of multi-line
    strings but does not parse values; keys inside inline tables are located at their parent's line by
    the caller's fallback to the longest known prefix.
    """
    lines: dict[KeyPath, int] = {}
    last_index: dict[KeyPath, int] = {}  # resolved path of an array of tables -> its latest index
    current: KeyPath = ()
    open_string: str | None = None

    def resolve(names: list[str]) -> KeyPath:
        path: KeyPath = ()
        for name in names:
            path = (*path, name)
            if path in last_index:
                path = (*path, last_index[path])
        return path

    for lineno, line in enumerate(text.splitlines(), start=1):
        if open_string is not None:
            if open_string in line:
                open_string = None
            continue
        if m := _ARRAY_HEADER.match(line):
            names = _split_key(m.group(1))
            array = (*resolve(names[:-1]), names[-1])
            index = last_index.get(array, -1) + 1
            last_index[array] = index
            current = (*array, index)
            lines.setdefault(array, lineno)
            lines.setdefault(current, lineno)
            continue
        if m := _TABLE_HEADER.match(line):
            current = resolve(_split_key(m.group(1)))
            lines.setdefault(current, lineno)
            continue
        if m := _KEY_LINE.match(line):
            path = current
            for name in _split_key(m.group(1)):
                path = (*path, name)
                lines.setdefault(path, lineno)
            value = line[m.end() :]
            for quote in ('"""', "'''"):
                start = value.find(quote)
                if start != -1 and value.count(quote, start) % 2 == 1:
                    open_string = quote
                    break
    return lines


def line_for(lines: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    """The line of `path`, else of its longest located prefix (a missing key points at its table)."""
    for end in range(len(path), 0, -1):
        if (found := lines.get(path[:end])) is not None:
            return found
    return None


def format_key(path: KeyPath) -> str:
    out = ""
    for elem in path:
        if isinstance(elem, int):
            out += f"[{elem}]"
        else:
            name = elem if _BARE_KEY.fullmatch(elem) else tomli_w.dumps({"k": elem})[4:].strip()
            out += f".{name}" if out else name
    return out
