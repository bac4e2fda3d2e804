"""`:audit [host=H] [vm=V] [since=1d] [user=U]`: what operators did, from this operator's log and the hosts'
audit files (every operator's records about each host), merged by time, as `vimtui audit show`.

The core reads the files (core/fleet/audit_read.py) on a worker; everything in a record (names, errors,
arguments: written by other operators' vimtuis or by anyone with the file) is shown as text, never markup.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from vimtui.core.fleet.audit_read import LOCAL, Query, Row, fleet_audit
from vimtui.ui.format import literal
from vimtui.ui.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp

OUTCOME_STYLE = {"failed": "bold red", "refused": "yellow", "abandoned": "bold yellow", "done": "green"}


def audit_table(rows: Sequence[Row]) -> Table:
    table = Table(expand=True, box=None, header_style="bold", pad_edge=False)
    for col in ("TIME", "OPERATOR", "HOST", "VM", "ACTION", "OUTCOME", "FOUND IN", "DETAIL"):
        table.add_column(col, no_wrap=col != "DETAIL", overflow="ellipsis")
    for r in reversed(rows):  # newest first
        rec = r.record
        args = rec.args if isinstance(rec.args, dict) else {}
        detail = rec.error or " ".join(f"{k}={v}" for k, v in args.items())
        table.add_row(
            time.strftime("%m-%d %H:%M:%S", time.localtime(rec.time)),
            literal(rec.operator),
            literal(rec.host),
            literal(rec.vm),
            literal(rec.action),
            literal(rec.outcome, OUTCOME_STYLE.get(rec.outcome, "")),
            literal(",".join(r.where), "" if LOCAL in r.where else "cyan"),
            literal(detail, "red" if rec.error else "dim"),
        )
    return table


def describe(query: Query) -> str:
    parts = [f"host={h}" for h in query.hosts]
    parts += [f"vm={query.vm}"] if query.vm else []
    parts += [f"user={query.user}"] if query.user else []
    if query.since is not None:
        parts.append("since " + time.strftime("%Y-%m-%d %H:%M", time.localtime(query.since)))
    return " ".join(parts) or "everything"


class AuditScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="audit.back"),
        Binding("r", "reload", "Read again", id="audit.reload"),
    ]
    DEFAULT_CSS = """
    AuditScreen #head { height: 1; padding: 0 1; background: $panel; }
    AuditScreen #problems { height: auto; padding: 0 1; color: $warning; }
    AuditScreen #rows { padding: 0 1; }
    """

    def __init__(self, query: Query) -> None:
        super().__init__()
        self.query_ = query

    def compose(self) -> ComposeResult:
        yield Static("", id="head")
        yield Static("", id="problems")
        with VerticalScroll():
            yield Static("reading the audit files ...", id="rows")
        yield KeyBar()

    @property
    def vimapp(self) -> VimApp:
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self._head("reading ...")
        self.run_worker(self._read(), group="audit", exclusive=True, exit_on_error=False)

    def _head(self, status: str) -> None:
        text = Text("audit", style="bold")
        text.append(f"  {describe(self.query_)}  ·  {status}  ·  r: read again")
        self.query_one("#head", Static).update(text)

    async def _read(self) -> None:
        got = await fleet_audit(self.vimapp.fleet, self.query_)
        operators = len({r.record.operator for r in got.rows})
        self._head(f"{len(got.rows)} records by {operators} operator{'s' * (operators != 1)}, newest first")
        problems = "\n".join(f"not read: {p}" for p in got.problems)
        self.query_one("#problems", Static).update(literal(problems))
        rows = self.query_one("#rows", Static)
        rows.update(audit_table(got.rows) if got.rows else "no records")
