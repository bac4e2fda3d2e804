"""`?`: every key (with its binding id, for [keys] in the config) and every `:` command."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from vimtui.ui.command_line import COMMANDS
from vimtui.ui.keys import known_bindings


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 100; max-width: 100%; height: 90%; background: $panel;
        border: thick $primary; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        keys = Table(title="Keys", expand=True, box=None, title_style="bold", header_style="bold")
        keys.add_column("keys", no_wrap=True)
        keys.add_column("does")
        keys.add_column("binding id (remap in [keys])", style="dim")
        keymap = self.app._keymap
        for binding_id, b in known_bindings(type(self.app)).items():
            shown = keymap.get(binding_id, b.key)
            keys.add_row(shown, b.description or b.action, binding_id)
        cmds = Table(title="Commands (:)", expand=True, box=None, title_style="bold", header_style="bold")
        cmds.add_column("command", no_wrap=True)
        cmds.add_column("aliases", style="dim")
        cmds.add_column("does")
        for c in COMMANDS:
            cmds.add_row(f":{c.name} {c.args}".rstrip(), " ".join(c.aliases), c.help)
        filt = Static(
            "[b]Filter (/)[/b]  plain text matches name, host, IP or tag; terms: host:kvm01 state:running "
            "tag:web name:db* ip:10.0 tenant:acme group:dc1  numbers: cpu>50 mem>=80 vcpus>2 memory>4096 "
            'disk>10M net>1M uptime>1d  negate with !  quote with "..."  esc clears.'
        )
        with VerticalScroll():
            yield Static(keys)
            yield Static(cmds)
            yield filt

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
