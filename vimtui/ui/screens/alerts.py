"""`:alerts`: the alerts firing now (most severe first), then the recent fired and resolved ones.

The core decides what fires and resolves (vimtui.core.monitor.alerts); this screen only shows the fleet
state's `alerts` and the alert entries of the activity log.
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

from vimtui.core.fleet.activity import Entry
from vimtui.core.monitor.alerts import Alert
from vimtui.core.text import shown
from vimtui.ui.format import duration, literal
from vimtui.ui.messages import FleetUpdated
from vimtui.ui.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp

SEVERITY_STYLE = {"critical": "bold red", "warning": "bold yellow", "info": "cyan"}
RECENT = 50
"""Fired and resolved alerts listed under the firing ones."""


def banner_text(alerts: Sequence[Alert], now: float) -> Text:
    """One line for the top of the main screen: how many fire, and the most severe one."""
    top = alerts[0]
    more = f"  (+{len(alerts) - 1} more)" if len(alerts) > 1 else ""
    text = Text(f" ▲ {len(alerts)} alert{'s' if len(alerts) > 1 else ''} firing · ", style="bold")
    text.append(f"{top.severity} ", SEVERITY_STYLE.get(str(top.severity), ""))
    text.append(f"{shown(top.message)} ({duration(now - top.fired_at)}){more}  ·  :alerts")
    return text


def alerts_table(alerts: Sequence[Alert], now: float) -> Table:
    table = Table(expand=True, box=None, header_style="bold", pad_edge=False)
    for col in ("SEVERITY", "SUBJECT", "RULE", "FIRING FOR", "MESSAGE"):
        table.add_column(col, no_wrap=col != "MESSAGE", overflow="ellipsis")
    for a in alerts:
        table.add_row(
            Text(str(a.severity), SEVERITY_STYLE.get(str(a.severity), "")),
            literal(a.subject),
            literal(a.rule),
            duration(now - a.fired_at),
            literal(a.message),
        )
    return table


def history_table(entries: Sequence[Entry]) -> Table:
    table = Table(expand=True, box=None, header_style="bold", pad_edge=False)
    for col in ("TIME", "HOST", "VM", "WHAT", "MESSAGE"):
        table.add_column(col, no_wrap=col != "MESSAGE", overflow="ellipsis")
    for e in entries:
        fired = e.action.startswith("alert ")
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(e.time)),
            literal(e.host),
            literal(e.vm),
            literal(e.action, "bold red" if fired and e.state == "failed" else ("" if fired else "green")),
            literal(e.message),
        )
    return table


class AlertsScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back", id="alerts.back")]
    DEFAULT_CSS = """
    AlertsScreen .head { height: 1; padding: 0 1; background: $panel; }
    AlertsScreen #firing { height: auto; padding: 0 1; }
    AlertsScreen #recent { padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="firing-head", classes="head")
        yield Static("", id="firing")
        yield Static("[b]recent[/b]  fired and resolved, newest first", classes="head")
        with VerticalScroll():
            yield Static("", id="recent")
        yield KeyBar()

    @property
    def vimapp(self) -> VimApp:
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        self._show()

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        self._show()

    def _show(self) -> None:
        app = self.vimapp
        state = app.fleet.state
        now = app.clock()
        firing = state.alerts
        rules = len(app.fleet.alerts.rules)
        self.query_one("#firing-head", Static).update(
            f"[b]alerts firing: {len(firing)}[/b]  ({rules} rules in force; \\[alerts] in the config file)"
        )
        self.query_one("#firing", Static).update(alerts_table(firing, now) if firing else "nothing firing")
        recent = [e for e in app.fleet.activity.entries() if e.action.startswith(("alert ", "resolved "))][
            :RECENT
        ]
        self.query_one("#recent", Static).update(history_table(recent) if recent else "none yet")
