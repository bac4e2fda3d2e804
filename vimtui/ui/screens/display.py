"""The graphical console from the screen: `V` on a VM forwards its display over its host's SSH connection
(core/actions/display_forward.py) and shows where to point a viewer, what protects the display, and how to
close the forward. The forward outlives this dialog: `V` on the VM shows it again, `:displays` lists the
open ones; they close with vimtui, when the VM stops or leaves its host, or when the SSH connection goes.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from vimtui.core.actions.display_forward import DisplayForwards, Forward
from vimtui.core.actions.display_viewer import ended, graphical, start_viewer, viewer_command
from vimtui.core.fleet.tasks import ActionError
from vimtui.core.model import VmState
from vimtui.core.text import shown

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp


def make_forwards(app: VimApp) -> DisplayForwards:
    """The app's display forwards: each one that ends, and each viewer that connects, said in a
    notification."""

    def closed(forward: Forward) -> None:
        app.notify(f"display of {forward.vm.name} closed: {forward.closed}", timeout=5)

    def connected(forward: Forward) -> None:
        if forward.connections == 1:  # a SPICE viewer opens a channel per stream: said once
            app.notify(
                f"a viewer connected to the display of {forward.vm.name} ({forward.address})", timeout=3
            )

    return DisplayForwards(app.fleet, on_closed=closed, on_connect=connected)


async def open_display(app: VimApp, vm: VmState) -> None:
    """Forward `vm`'s display (or take the forward already open) and show its dialog."""
    forwards = app.displays
    if forwards.get(vm.key) is None:
        app.notify(f"display of {vm.name}: opening…", timeout=2)
    try:
        forward = await forwards.open(vm)
    except ActionError as exc:
        app.notify(f"display of {vm.name}: {exc}", severity="error", timeout=8)
        return
    await app.push_screen(DisplayScreen(forward))


def _viewer(forward: Forward) -> list[str] | None:
    if not graphical():
        return None
    d, host, port = forward.display, forward.local_host, forward.local_port
    return viewer_command(d.protocol, host, port, forward.url, tls_only=d.tls_only)


class DisplayScreen(ModalScreen[None]):
    """Where a forwarded display is, and the keys to use it or close it."""

    DEFAULT_CSS = """
    DisplayScreen { align: center middle; }
    DisplayScreen > Vertical { width: 84; max-width: 95%; height: auto; padding: 1 2;
        background: $panel; border: thick $primary; }
    DisplayScreen #title { text-style: bold; }
    DisplayScreen #address { margin: 1 0; text-style: bold; color: $accent; }
    DisplayScreen #notes { color: $warning; margin-bottom: 1; }
    DisplayScreen #how { color: $text-muted; }
    DisplayScreen #keys { margin-top: 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("v", "viewer", "Viewer", id="display.viewer"),
        Binding("y", "copy", "Copy address", id="display.copy"),
        Binding("x", "close_forward", "Close forward", id="display.close"),
        Binding("escape,q", "back", "Back (keep open)", id="display.back"),
    ]

    def __init__(self, forward: Forward) -> None:
        super().__init__()
        self.forward = forward
        self.argv = _viewer(forward)

    def compose(self) -> ComposeResult:
        f = self.forward
        with Vertical():
            yield Static(Text(shown(f.summary)), id="title")
            yield Static(self._address(), id="address")
            yield Static(Text("\n".join(f"• {shown(n)}" for n in f.notes)), id="notes")
            yield Static(self._how(), id="how")
            yield Static(self._keys(), id="keys")

    def on_mount(self) -> None:
        self.set_interval(1.0, self._refresh)

    def _address(self) -> Text:
        f = self.forward
        line = Text(f"{shown(f.url)}   ")
        line.append(f"(on {shown(f.vm.host)}: {shown(f.display.where)}, through SSH)", "not bold")
        if f.answered:
            line.append(f"\nanswers: {shown(f.answered)}", "not bold")
        return line

    def _how(self) -> Text:
        f = self.forward
        if self.argv is not None:
            return Text(f"v starts {shown(' '.join(self.argv))}")
        why = "no graphical session here (DISPLAY is not set)" if not graphical() else "no viewer installed"
        return Text(
            f"{why}: give the address to a viewer. From another machine: "
            f"ssh -L 5900:127.0.0.1:{f.local_port} {shown(socket.gethostname())}, then "
            f"remote-viewer {f.display.protocol}://localhost:5900"
        )

    def _keys(self) -> Text:
        f = self.forward
        state = f"closed: {f.closed}" if f.closed else f"open, {f.connections} viewer connection(s)"
        keys = ("v viewer · " if self.argv is not None else "") + "y copy · x close the forward · "
        keys += "esc back (the forward stays open; V on the VM, or :displays, shows it again)"
        return Text(f"Forward {shown(state)}\n{keys}")

    def _refresh(self) -> None:
        self.query_one("#keys", Static).update(self._keys())

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.forward.address)
        self.app.notify(f"copied {self.forward.address}", timeout=2)

    def action_viewer(self) -> None:
        if self.argv is None:
            self.app.notify(str(self._how()), severity="warning", timeout=6)
            return
        if self.forward.closed:
            self.app.notify("the forward is closed: V on the VM opens a new one", severity="warning")
            return
        self.app.run_worker(self._run_viewer(self.argv), group="display-viewer")

    async def _run_viewer(self, argv: list[str]) -> None:
        app, f = self.app, self.forward
        try:
            proc = await start_viewer(argv)
        except OSError as exc:
            app.notify(f"cannot start {argv[0]}: {exc.strerror or exc}", severity="error")
            return
        problem = await ended(proc)
        if problem:
            app.notify(f"display of {f.vm.name}: {problem}", severity="warning", timeout=8)

    async def action_close_forward(self) -> None:
        vimapp: VimApp = self.app  # type: ignore[assignment]
        await vimapp.displays.close(self.forward.vm.key)
        self.dismiss(None)

    def action_back(self) -> None:
        self.dismiss(None)
