"""VimApp: composition and routing only."""

from __future__ import annotations

import tomllib
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import Footer, Header, Static


class VimApp(App[None]):
    """The vimtui screen (for now: the configured hosts)."""

    TITLE = "vimtui"
    BINDINGS = [("q", "quit", "Quit")]

    def __init__(self, hosts: list[str]) -> None:
        super().__init__()
        self._hosts = hosts

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("\n".join(self._hosts) or "no hosts configured", id="hosts")
        yield Footer()


def run_app(config_path: str | None, connect: list[str]) -> int:
    hosts = list(connect)
    if config_path:
        data = tomllib.loads(Path(config_path).read_text())
        hosts += [f"{h['name']}  {h['address']}" for h in data.get("hosts", [])]
    VimApp(hosts).run()
    return 0
