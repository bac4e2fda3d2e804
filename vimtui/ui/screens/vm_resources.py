"""The VM detail's resources tab: what the VM has live and in its config, side by side, a value that
differs between the two marked (a change made for the next boot, or one made live only)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from vimtui.core.actions.resource_view import Resources
from vimtui.ui.format import literal


def resources_table(res: Resources) -> Group:
    t = Table(expand=False, box=None, header_style="bold", show_edge=False, padding=(0, 3, 0, 0))
    t.add_column("")
    t.add_column("live" if res.running else "live (not running)")
    t.add_column("config (next boot)")
    for title, rows in res.sections.items():
        if not rows:
            continue
        t.add_row(Text(title, style="bold underline"), "", "")
        for row in rows:
            style = "bold" if row.differs else ""
            t.add_row(
                literal(f"  {row.what}"), literal(row.live or "-", style), literal(row.config or "-", style)
            )
    note = Text(
        "\nbold: live and config differ. Change them from the palette (ctrl+p) or with :set, :resize-disk,"
        " :pin, :tune",
        style="dim",
    )
    return Group(t, note)
