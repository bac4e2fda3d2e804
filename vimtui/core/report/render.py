"""The report as text in one of its formats: the one door the CLI uses."""

from __future__ import annotations

from collections.abc import Callable

from vimtui.core.report.as_csv import render_csv
from vimtui.core.report.as_html import render_html
from vimtui.core.report.as_json import render_json
from vimtui.core.report.as_markdown import render_md
from vimtui.core.report.model import (
    FORMATS,
    Report,
)

_RENDERERS: dict[str, Callable[[Report], str]] = {
    "csv": render_csv,
    "json": render_json,
    "md": render_md,
    "html": render_html,
}


def render(report: Report, fmt: str) -> str:
    """The report as text in one of FORMATS."""
    try:
        return _RENDERERS[fmt](report)
    except KeyError:
        raise ValueError(f"unknown report format {fmt!r} (one of {', '.join(FORMATS)})") from None
