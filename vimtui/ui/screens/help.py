"""`?`: every key (as typed, with its binding id for [keys] in the config), every action with its `:`
command and parameters, and every other `:` command. Host and user text never reaches markup here: the
tables hold Text."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from vimtui.core.actions import REGISTRY, targets
from vimtui.ui.command_line import COMMANDS
from vimtui.ui.keys import known_bindings


def shown_keys(app: App[object], keys: str) -> str:
    """`question_mark,q` as typed: `?, q`."""
    return ", ".join(app.get_key_display(Binding(k.strip(), "")) for k in keys.split(",") if k.strip())


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
        keys.add_column(Text("binding id (remap in [keys])"), style="dim")
        keymap = self.app._keymap
        for binding_id, b in known_bindings(type(self.app)).items():
            shown = shown_keys(self.app, keymap.get(binding_id, b.key))
            keys.add_row(Text(shown), Text(b.description or b.action), Text(binding_id))
        acts = Table(
            title="Actions (: or ctrl+p)", expand=True, box=None, title_style="bold", header_style="bold"
        )
        acts.add_column("command", max_width=44)  # wraps: an action with many parameters (:tune) is long
        acts.add_column("does")
        for act in REGISTRY.values():
            typed = [] if act.opens else act.params  # the editor gives the XML, not the `:` line
            usage = (  # a pool's, volume's or network's: `:pool start HOST/POOL`
                f":{targets.GROUP[act.target]} {act.name} {targets.SPELLING[act.target]}"
                if act.target in targets.GROUP
                else f":{act.name}"
            ) + "".join(f" {p.name}={'...' if p.kind != 'bool' else 'yes'}" for p in typed)
            params = "".join(f"\n  {p.name}: {p.describe()}" for p in typed)
            acts.add_row(Text(usage), Text(act.help + params))
        cmds = Table(title="Commands (:)", expand=True, box=None, title_style="bold", header_style="bold")
        cmds.add_column("command", no_wrap=True)
        cmds.add_column("aliases", style="dim")
        cmds.add_column("does")
        for c in COMMANDS:
            cmds.add_row(Text(f":{c.name} {c.args}".rstrip()), Text(" ".join(c.aliases)), Text(c.help))
        filt = Static(
            "[b]Filter (/)[/b]  plain text matches name, host, IP or tag; terms: host:kvm01 state:running "
            "tag:web name:db* ip:10.0 tenant:acme group:dc1  numbers: cpu>50 mem>=80 vcpus>2 memory>4096 "
            'disk>10M net>1M uptime>1d  negate with !  quote with "..."  esc clears.'
        )
        with VerticalScroll():
            yield Static(keys)
            yield Static(acts)
            yield Static(cmds)
            yield filt

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
