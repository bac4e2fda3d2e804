"""The guest's screen in the terminal (v on a VM, `:screen`, the palette): its display as libvirt's
screenshot, drawn with half blocks, fetched again every REFRESH seconds while the view is on top, and its
keyboard: i types into the guest (every key, esc and ctrl+c included, until ctrl+]), t sends a line of
text, K a key sequence, D ctrl+alt+del (asked first: most guests reboot on it).

Screenshots are asked of the host on its lane (Fleet.ask), decoded and scaled on a thread: the event loop
only lays out the strips. One fetch at a time: a slow host is fetched as often as it answers, never
queued up. Keys go through one sender in the order typed, a burst in one lane call. The view is audited
as the serial console is: opened (not opened when that cannot be recorded), each named key sequence
(ctrl+alt+del ...), closed with how many keys were sent; typed text by its count only (a password,
maybe). z zooms in (1:2 makes a VGA text screen's letters legible, 1:1 is every pixel), arrows or hjkl
move the part shown.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from vimtui.core.actions.guest_keys import BadKeys, Chord, chord_name, key_chord, parse_keys, text_chords
from vimtui.core.actions.guest_screen import Shot, grab, press, screen_record, screen_refusal
from vimtui.core.fleet.fleet import QueryFailed
from vimtui.core.fleet.tasks import ActionError
from vimtui.core.model import VmState
from vimtui.core.picture import BadPicture, Cells, cells, decode, save
from vimtui.ui.screens.prompt import Field, PromptScreen
from vimtui.ui.widgets.key_bar import KeyBar
from vimtui.ui.widgets.picture import Picture

if TYPE_CHECKING:
    from PIL.Image import Image

    from vimtui.ui.app import VimApp

REFRESH = 1.5
"""Seconds between screenshots while the view is on top."""
AFTER_KEYS = 0.3
"""A screenshot this soon after keys were sent, so what they did shows at once."""
LEAVE_TYPING = "ctrl+right_square_bracket"
ZOOMS: tuple[float | None, ...] = (None, 0.5, 1.0)
ZOOM_NAMES = {0.5: "1:2", 1.0: "1:1"}


class GuestScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "close", "Back", id="screen.back"),
        Binding("i", "typing", "Type into it", id="screen.type"),
        Binding("t", "send_text", "Text", id="screen.text"),
        Binding("K", "send_keys", "Keys", id="screen.keys"),
        Binding("D", "ctrl_alt_del", "Ctrl+Alt+Del", id="screen.ctrl_alt_del"),
        Binding("r", "fetch_now", "Refresh", id="screen.refresh"),
        Binding("space", "pause", "Pause", id="screen.pause"),
        Binding("s", "save", "Save", id="screen.save"),
        Binding("z", "zoom", "Zoom", id="screen.zoom"),
        Binding("left,h", "pan(-1, 0)", "Left", show=False, id="screen.pan_left"),
        Binding("right,l", "pan(1, 0)", "Right", show=False, id="screen.pan_right"),
        Binding("up,k", "pan(0, -1)", "Up", show=False, id="screen.pan_up"),
        Binding("down,j", "pan(0, 1)", "Down", show=False, id="screen.pan_down"),
    ]
    DEFAULT_CSS = """
    GuestScreen #head { height: 1; padding: 0 1; background: $panel; }
    GuestScreen.-typing #head { background: $warning-muted; }
    """

    def __init__(self, vm: VmState) -> None:
        super().__init__()
        self.vm = vm
        self.typing = False
        self.paused = False
        self.shot: Shot | None = None
        self._image: Image | None = None
        self._fetching = False
        self._timer: object | None = None
        self._due = 0.0
        self._keys: asyncio.Queue[tuple[list[Chord], str]] = asyncio.Queue()
        self._sent = 0
        self._figures = ""
        self._error = ""
        self._opened = False
        self.zoom: float | None = None
        self._origin = (0, 0)
        self._region = (0, 0, 0, 0)

    @property
    def vimapp(self) -> VimApp:
        return self.app  # type: ignore[return-value]

    @property
    def takes_every_key(self) -> bool:
        """While typing into the guest, the app's own keys (ctrl+p, ctrl+q) go to the guest too."""
        return self.typing

    def compose(self) -> ComposeResult:
        yield Static("", id="head")
        yield Picture(id="picture")
        yield KeyBar()

    async def on_mount(self) -> None:
        self.query_one(Picture).say(f"{self.vm.name}: asking {self.vm.host} for its screen ...")
        self._head()
        why = await screen_record(self.vimapp.fleet, self.vm, "started")
        if why:
            self.vimapp.notify(f"screen of {self.vm.name} not opened: {why}", severity="error", markup=False)
            self.dismiss(None)
            return
        self._opened = True
        self.set_interval(0.1, self._tick)
        self.run_worker(self._sender(), group="screen-keys")

    async def on_unmount(self) -> None:
        await self._record_closed()  # the app quit with the view open

    async def _record_closed(self) -> None:
        if self._opened:
            self._opened = False
            sent = f"{self._sent} key(s) sent"
            await screen_record(self.vimapp.fleet, self.vm, "closed", sent, keys=self._sent)

    # -- the picture --------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._fetching or self.paused or not self.is_current or time.monotonic() < self._due:
            return
        self._fetching = True
        self.run_worker(self._fetch(), group="screen-fetch")

    async def _fetch(self) -> None:
        picture = self.query_one(Picture)
        size = picture.size
        started = time.monotonic()
        try:
            shot = await self.vimapp.fleet.ask(self.vm.host, grab, self.vm.uuid)
            fetched = time.monotonic()
            image, drawn = await asyncio.to_thread(
                _decode, shot.data, size.width, size.height, self.zoom, self._origin
            )
            picture.show(drawn)
            self._region = drawn.region
            done = time.monotonic()
        except (QueryFailed, ActionError, BadPicture) as exc:
            self._error = str(exc)
            picture.say(self._error)
            self._head()
            return
        finally:
            self._fetching = False
            self._due = started + REFRESH
        self.shot, self._image, self._error = shot, image, ""
        self._figures = f"fetch {1000 * (fetched - started):.0f} ms, draw {1000 * (done - fetched):.0f} ms"
        self._head()

    def on_resize(self, event: events.Resize) -> None:
        self._due = 0.0  # drawn again for the new size at the next tick

    def _head(self) -> None:
        vm = self.vm
        parts = [f"{vm.name} on {vm.host}"]
        if self._image is not None:
            parts.append(f"{self._image.width}x{self._image.height}")
        if self.zoom is not None:
            left, top, right, bottom = self._region
            parts.append(f"zoom {ZOOM_NAMES[self.zoom]} at {left},{top}-{right},{bottom} (arrows move)")
        parts.append("paused" if self.paused else f"every {REFRESH:g} s")
        if self._figures:
            parts.append(self._figures)
        if self._sent:
            parts.append(f"{self._sent} key(s) sent")
        head = Text("  ·  ".join(parts))
        if self.typing:
            head = Text("TYPING INTO THE GUEST (ctrl+] to stop)  ", style="bold") + head
        self.query_one("#head", Static).update(head)

    def action_fetch_now(self) -> None:
        self._due = 0.0

    def action_zoom(self) -> None:
        """Fit, then half (a VGA text screen's letters legible), then every pixel; starts at the bottom
        left, where a boot prompt usually is."""
        at = ZOOMS.index(self.zoom)
        self.zoom = ZOOMS[(at + 1) % len(ZOOMS)]
        if self._image is not None:
            self._origin = (0, self._image.height)
        self._redraw()

    def action_pan(self, dx: int, dy: int) -> None:
        if self.zoom is None:
            return
        left, top, right, bottom = self._region
        step_x, step_y = max(1, (right - left) // 3), max(1, (bottom - top) // 3)
        self._origin = (max(0, left + dx * step_x), max(0, top + dy * step_y))
        self._redraw()

    def _redraw(self) -> None:
        """Draw the last picture again (zoom, pan) without waiting for the next one."""
        if self._image is None:
            return
        image = self._image

        async def draw() -> None:
            size = self.query_one(Picture).size
            drawn = await asyncio.to_thread(cells, image, size.width, size.height, self.zoom, self._origin)
            self.query_one(Picture).show(drawn)
            self._region = drawn.region
            self._head()

        self.run_worker(draw(), group="screen-draw", exclusive=True)

    def action_pause(self) -> None:
        self.paused = not self.paused
        self._due = 0.0
        self._head()

    # -- keys ---------------------------------------------------------------------------------------

    def action_typing(self) -> None:
        self.typing = True
        self.add_class("-typing")
        self.query_one(Picture).focus()
        self.refresh_bindings()
        self._head()

    def _stop_typing(self) -> None:
        self.typing = False
        self.remove_class("-typing")
        self.refresh_bindings()
        self._head()

    def on_key(self, event: events.Key) -> None:
        if not self.typing:
            return
        event.stop()
        event.prevent_default()
        if event.key == LEAVE_TYPING:
            self._stop_typing()
            return
        try:
            if event.is_printable and event.character is not None:
                chords = text_chords(event.character)
            else:
                chords = [key_chord(event.key)]
        except BadKeys as exc:
            self.vimapp.notify(f"not sent: {exc}", severity="warning", timeout=3, markup=False)
            return
        self._keys.put_nowait((chords, ""))

    def action_send_text(self) -> None:
        self.run_worker(self._send_text(), group="screen-ask")

    async def _send_text(self) -> None:
        answer = await self.app.push_screen_wait(
            PromptScreen(
                f"Type into {self.vm.name}",
                [
                    Field("text", "Text", "text", "", help="typed as a US keyboard types it"),
                    Field("enter", "Then press enter", "bool", True),
                ],
                ok="Type",
            )
        )
        if answer is None:
            return
        try:
            chords = text_chords(str(answer.get("text") or ""))
            chords += [key_chord("enter")] if answer["enter"] else []
        except BadKeys as exc:
            self.vimapp.notify(str(exc), severity="warning", markup=False)
            return
        self._keys.put_nowait((chords, ""))

    def action_send_keys(self) -> None:
        self.run_worker(self._send_keys(), group="screen-ask")

    async def _send_keys(self) -> None:
        answer = await self.app.push_screen_wait(
            PromptScreen(
                f"Press keys on {self.vm.name}",
                [Field("keys", "Keys", "text", "", required=True, help="in turn: esc f2 alt+f2 ctrl+c up")],
                ok="Press",
            )
        )
        if answer is None:
            return
        try:
            chords = parse_keys([str(answer.get("keys") or "")])
        except BadKeys as exc:
            self.vimapp.notify(str(exc), severity="warning", markup=False)
            return
        self._keys.put_nowait((chords, " ".join(chord_name(c) for c in chords)))

    def action_ctrl_alt_del(self) -> None:
        self.run_worker(self._ctrl_alt_del(), group="screen-ask")

    async def _ctrl_alt_del(self) -> None:
        answer = await self.app.push_screen_wait(
            PromptScreen(
                f"Send ctrl+alt+del to {self.vm.name}?",
                [],
                ok="Send",
                detail="Most guests reboot on it (a Linux console, Windows' login screen asks).",
                danger=True,
            )
        )
        if answer is not None:
            self._keys.put_nowait(([key_chord("ctrl+alt+del")], "ctrl+alt+del"))

    async def _sender(self) -> None:
        """Sends what was typed, in order, all that is waiting in one lane call; a named sequence is
        recorded in the audit first (not sent when that cannot be written)."""
        while True:
            chords, named = await self._keys.get()
            while not self._keys.empty() and not named:
                more, more_named = self._keys.get_nowait()
                if more_named:
                    await self._send(chords, "")
                    chords, named = more, more_named
                    break
                chords = chords + more
            await self._send(chords, named)

    async def _send(self, chords: list[Chord], named: str) -> None:
        if not chords:
            return
        if named:
            why = await screen_record(self.vimapp.fleet, self.vm, "keys", keys=named)
            if why:
                self.vimapp.notify(f"{named} not sent: {why}", severity="error", markup=False)
                return
        try:
            self._sent += await self.vimapp.fleet.ask(self.vm.host, press, self.vm.uuid, chords)
        except (QueryFailed, ActionError) as exc:
            self.vimapp.notify(f"keys not sent to {self.vm.name}: {exc}", severity="error", markup=False)
            return
        self._due = min(self._due, time.monotonic() + AFTER_KEYS)
        self._head()

    # -- saving, closing ----------------------------------------------------------------------------

    def action_save(self) -> None:
        self.run_worker(self._save(), group="screen-ask")

    async def _save(self) -> None:
        if self.shot is None:
            self.vimapp.notify("nothing to save yet", severity="warning", markup=False)
            return
        shot = self.shot
        default = f"{self.vm.name}-{time.strftime('%Y%m%d-%H%M%S')}.png"
        field = Field("path", "File", default=default, required=True)
        answer = await self.app.push_screen_wait(PromptScreen("Save the screenshot", [field], ok="Save"))
        if answer is None:
            return
        path = str(answer["path"])
        try:
            size = await asyncio.to_thread(save, shot.data, path)
        except (OSError, BadPicture) as exc:
            self.vimapp.notify(f"not saved: {exc}", severity="error", markup=False)
            return
        self.vimapp.notify(f"saved {path} ({size[0]}x{size[1]})", timeout=4, markup=False)

    async def action_close(self) -> None:
        await self._record_closed()
        self.dismiss(None)


def _decode(
    data: bytes, cols: int, rows: int, zoom: float | None, origin: tuple[int, int]
) -> tuple[Image, Cells]:
    image = decode(data)
    return image, cells(image, max(1, cols), max(1, rows), zoom, origin)


async def open_screen(app: VimApp, vm: VmState) -> None:
    """Push the view for `vm`, or say why it cannot show."""
    why = screen_refusal(vm, app.fleet.state.host(vm.host))
    if why:
        app.notify(why, severity="warning", timeout=4, markup=False)
        return
    await app.push_screen(GuestScreen(vm))
