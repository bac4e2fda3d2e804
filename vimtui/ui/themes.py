"""Themes: the ones shipped in `themes/`, plus the user's own from `<config dir>/themes/*.toml`.

A theme file is TOML with the fields of Textual's Theme (name, primary, secondary, accent, success,
warning, error, foreground, background, surface, panel, boost, dark, ansi, luminosity_spread, text_alpha)
and a [variables] table. Widgets use theme variables only, so a theme file restyles everything.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable
from pathlib import Path

from textual.theme import Theme

SHIPPED = Path(__file__).resolve().parent.parent.parent / "themes"
"""`themes/` at the top of the source tree (or beside the installed package, see pyproject)."""
DEFAULT_THEME = "dark"
_FIELDS = {f.name for f in dataclasses.fields(Theme)}


class ThemeError(ValueError):
    """A theme file that cannot be used: the message names the file and the key."""


def shipped_dir() -> Path:
    installed = Path(__file__).resolve().parent.parent / "_themes"  # in a wheel (see pyproject.toml)
    return installed if installed.is_dir() else SHIPPED


def load_theme(path: Path) -> Theme:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ThemeError(f"{path}: {exc}") from exc
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ThemeError(f"{path}: {unknown[0]}: unknown key (theme keys: {', '.join(sorted(_FIELDS))})")
    if not isinstance(data.get("name"), str) or not isinstance(data.get("primary"), str):
        raise ThemeError(f"{path}: a theme needs a name and a primary colour")
    try:
        return Theme(**data)
    except (TypeError, ValueError) as exc:
        raise ThemeError(f"{path}: {exc}") from exc


def load_themes(dirs: Iterable[Path]) -> tuple[dict[str, Theme], list[str]]:
    """Themes by name from each dir in order (later ones win), and the errors met on the way."""
    themes: dict[str, Theme] = {}
    errors: list[str] = []
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.toml")):
            try:
                theme = load_theme(path)
            except ThemeError as exc:
                errors.append(str(exc))
                continue
            themes[theme.name] = theme
    return themes, errors
