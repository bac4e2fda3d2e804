"""Keys for a guest's keyboard: names and typed text as Linux input keycodes (libvirt's
VIR_KEYCODE_SET_LINUX), a chord at a time, as a US keyboard would send them.

A chord is the keycodes held down together ('ctrl+alt+del' is (29, 56, 111)); `parse_keys` reads chords
as an operator writes them (and as Textual names keys, so the screen passes its key events through),
`text_chords` turns text into the chords that type it. Pure: nothing here talks to a host.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Chord = tuple[int, ...]

MODIFIERS: dict[str, int] = {
    "ctrl": 29,
    "control": 29,
    "shift": 42,
    "alt": 56,
    "meta": 125,
    "super": 125,
    "win": 125,
    "altgr": 100,
    "rctrl": 97,
    "rshift": 54,
}
SHIFT = 42

_LETTERS = dict(zip("qwertyuiop", range(16, 26), strict=True))
_LETTERS |= dict(zip("asdfghjkl", range(30, 39), strict=True))
_LETTERS |= dict(zip("zxcvbnm", range(44, 51), strict=True))
_PLAIN: dict[str, int] = {
    **_LETTERS,
    **dict(zip("1234567890", range(2, 12), strict=True)),
    "-": 12,
    "=": 13,
    "[": 26,
    "]": 27,
    ";": 39,
    "'": 40,
    "`": 41,
    "\\": 43,
    ",": 51,
    ".": 52,
    "/": 53,
    " ": 57,
    "\t": 15,
    "\n": 28,
    "\r": 28,
}
_SHIFTED: dict[str, int] = {
    **{c.upper(): k for c, k in _LETTERS.items()},
    **dict(zip("!@#$%^&*()", range(2, 12), strict=True)),
    "_": 12,
    "+": 13,
    "{": 26,
    "}": 27,
    ":": 39,
    '"': 40,
    "~": 41,
    "|": 43,
    "<": 51,
    ">": 52,
    "?": 53,
}
NAMED: dict[str, int] = {
    "esc": 1,
    "escape": 1,
    "backspace": 14,
    "bs": 14,
    "tab": 15,
    "enter": 28,
    "return": 28,
    "space": 57,
    "capslock": 58,
    "numlock": 69,
    "scrolllock": 70,
    "sysrq": 99,
    "print": 99,
    "home": 102,
    "up": 103,
    "pageup": 104,
    "pgup": 104,
    "left": 105,
    "right": 106,
    "end": 107,
    "down": 108,
    "pagedown": 109,
    "pgdn": 109,
    "insert": 110,
    "ins": 110,
    "del": 111,
    "delete": 111,
    "pause": 119,
    "menu": 139,
    **{f"f{n}": 58 + n for n in range(1, 11)},
    "f11": 87,
    "f12": 88,
    # Textual's names of printable keys that are not their character
    "minus": 12,
    "equals_sign": 13,
    "left_square_bracket": 26,
    "right_square_bracket": 27,
    "semicolon": 39,
    "apostrophe": 40,
    "grave_accent": 41,
    "backslash": 43,
    "comma": 51,
    "full_stop": 52,
    "slash": 53,
}
MAX_CHORD = 16
"""libvirt takes at most 16 keycodes in one send."""


class BadKeys(ValueError):
    """A key name that is not known, or a character that a US keyboard cannot type; the message says which."""


def key_chord(word: str) -> Chord:
    """One chord from its name: 'ctrl+alt+del', 'enter', 'f2', 'alt+f2', 'shift+tab', 'A', 'ctrl+c', '+'.
    Modifiers first, joined by '+'; the last part is the key (a name or one character)."""
    text = word.strip()
    if not text:
        raise BadKeys("an empty key name")
    mods: list[str]
    if text == "+":
        mods, key = [], "+"
    elif text.endswith("++"):
        mods, key = text[:-2].split("+"), "+"
    else:
        *mods, key = text.split("+")
    codes: list[int] = []
    for m in mods:
        code = MODIFIERS.get(m.lower())
        if code is None:
            raise BadKeys(f"{word!r}: {m!r} is not a modifier (ctrl, alt, shift, meta, altgr)")
        if code not in codes:
            codes.append(code)
    if len(key) == 1:
        base = _char_chord(key, word)
        codes += [c for c in base if c not in codes]
    else:
        code = NAMED.get(key.lower())
        if code is None:
            raise BadKeys(f"{word!r}: no key named {key!r} (enter, esc, tab, f1..f12, up, del, ...)")
        codes.append(code)
    return tuple(codes)


def _char_chord(ch: str, word: str) -> Chord:
    if ch in _PLAIN:
        return (_PLAIN[ch],)
    if ch in _SHIFTED:
        return (SHIFT, _SHIFTED[ch])
    raise BadKeys(f"{word!r}: {ch!r} cannot be typed on a US keyboard")


def parse_keys(words: Iterable[str]) -> list[Chord]:
    """Chords from words, each word a chord or several separated by spaces or commas: ['ctrl+alt+del'],
    ['esc', 'f2'], ['alt+f2 enter']. A lone ',' or '+' is the key itself."""
    out: list[Chord] = []
    for item in words:
        for token in item.split():
            parts = [token] if token == "," or token.endswith("+,") else token.split(",")
            out += [key_chord(word) for word in parts if word]
    return out


def text_chords(text: str) -> list[Chord]:
    """The chords that type `text` on a US keyboard ('\\n' is enter); BadKeys names a character it cannot
    type (the guest's own keymap decides what a keycode means: a guest with another layout gets others)."""
    return [_char_chord(ch, ch) for ch in text]


def chord_name(chord: Sequence[int]) -> str:
    """A chord as it is written: (29, 56, 111) -> 'ctrl+alt+del'."""
    mods = {v: k for k, v in reversed(list(MODIFIERS.items()))}
    names = {v: k for k, v in reversed(list(NAMED.items())) if "_" not in k}
    chars = {v: k for k, v in _PLAIN.items() if k not in "\t\n\r "}
    parts = []
    for code in chord:
        parts.append(mods.get(code) or names.get(code) or chars.get(code) or f"#{code}")
    return "+".join(parts)
