"""The guest's screen on a lab guest with a VGA card and a VNC display (Lab.add_guest(graphics=True): a
shell on its first virtual terminal): `vimtui vm screenshot` saves what it shows, keys sent by `vimtui vm
send-keys` and typed in the screen's view (v, then i) reach that shell, which runs them. Checked through
libvirt: the guest's serial log shows what the typed commands wrote there, libvirt's own screenshots show
the lines they printed."""

from __future__ import annotations

import asyncio
import io
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import wait_until
from tests.lab.lab import Lab
from tests.lab.test_cli_vm_lab import vimtui
from tests.lab.test_terminal_lab import screen, select
from tests.pty_screen import Screen

__all__ = ["screen"]  # the fixture: the real app in a pseudo-terminal

pytestmark = pytest.mark.lab

HOST = "kvm01"


@pytest.fixture
def guest(lab: Lab) -> Iterator[str]:
    name = f"shot-{uuid.uuid4().hex[:6]}"
    lab.add_guest(HOST, name, graphics=True)
    try:
        yield name
    finally:
        lab.remove_guest(HOST, name)


def libvirt_screenshot(lab: Lab, name: str) -> Image.Image:
    """The guest's screen as libvirt gives it (no vimtui in between)."""
    with lab.connect(HOST) as conn:
        stream = conn.newStream(0)
        conn.lookupByName(name).screenshot(stream, 0, 0)
        data = bytearray()
        while chunk := stream.recv(262144):
            data += chunk
        stream.finish()
    return Image.open(io.BytesIO(bytes(data))).convert("L")


def text_lines(image: Image.Image) -> int:
    """Lines of a VGA text screen (25 of 16 pixels: light grey on black) with something written on them."""
    w, h = image.size
    px = image.tobytes()
    return sum(1 for top in range(0, h, 16) if max(px[top * w : min(h, top + 16) * w]) > 100)


def typed_until_run(lab: Lab, name: str, marker: str, send: Callable[[], None], within: float = 120) -> None:
    """Send (a command that writes `marker`-42 to the serial port) again every few seconds until the serial
    log shows it: keys typed before the shell on tty1 is up are lost."""
    answer = f"{marker}-42"
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        send()
        again = time.monotonic() + 6
        while time.monotonic() < again:
            if answer in lab.serial_log(HOST, name):
                return
            time.sleep(0.2)
    pytest.fail(f"{answer} never reached {name}'s serial log: the keys did not reach its shell")


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
def test_screenshot_and_keys_from_the_cli(lab: Lab, guest: str, tmp_path: Path) -> None:
    wait_until(f"{guest} booted", lambda: f"vimtui-guest {guest} up" in lab.serial_log(HOST, guest), 180)
    shot = tmp_path / "before.png"
    done = vimtui(lab, tmp_path, "vm", "screenshot", guest, "-o", str(shot))
    assert done.returncode == 0 and "720x400 saved" in done.stderr, done.stderr
    image = Image.open(shot)
    assert image.format == "PNG" and image.size == (720, 400)  # VGA text mode, as QEMU draws it
    low, high = image.convert("L").getextrema()
    assert high > low, "a blank screenshot"

    marker = f"cli{uuid.uuid4().hex[:6]}"

    def send() -> None:
        line = f"clear; echo {marker}-$((6*7)) > /dev/ttyS0"
        done = vimtui(lab, tmp_path, "vm", "send-keys", guest, "--text", line, "--keys", "enter")
        assert done.returncode == 0, done.stdout + done.stderr

    typed_until_run(lab, guest, marker, send)
    wait_until("the cleared screen", lambda: text_lines(libvirt_screenshot(lab, guest)) == 1, 30)
    line = "echo hello; echo world"
    done = vimtui(lab, tmp_path, "vm", "send-keys", guest, "--text", line, "--keys", "enter")
    assert done.returncode == 0, done.stdout + done.stderr
    # the command line, its two lines of output and a new prompt: four lines written where one was
    wait_until("the printed lines", lambda: text_lines(libvirt_screenshot(lab, guest)) == 4, 30)
    records = (tmp_path / "vimtui" / "audit.log").read_text()
    assert "send-keys" in records and "echo hello" not in records  # typed text by its length only


@pytest.mark.timeout(900)
async def test_the_screens_view_types_into_the_guest(
    lab: Lab, guest: str, screen: object, tmp_path: Path
) -> None:
    await asyncio.to_thread(
        wait_until, f"{guest} booted", lambda: f"vimtui-guest {guest} up" in lab.serial_log(HOST, guest), 180
    )
    assert callable(screen)
    app: Screen = screen({})
    await select(app, guest)
    mark = app.mark()
    app.keys(b"v")
    await app.shows(rf"{re.escape(guest)} on {HOST}.*720x400.*fetch \d+ ms, draw \d+ ms", mark, 60)
    app.keys(b"i")
    await app.shows("TYPING INTO THE GUEST", mark, 30)
    marker = f"view{uuid.uuid4().hex[:6]}"

    def send() -> None:
        app.keys(f"echo {marker}-$((6*7)) > /dev/ttyS0\r".encode())

    await asyncio.to_thread(typed_until_run, lab, guest, marker, send)
    back = app.mark()
    app.keys(b"\x1d")  # ctrl+]: the keys are the screen's again
    app.keys(b"\x1b")
    await app.shows(r"showing 1\b", back, 60)  # the VM table again
    assert app.proc.poll() is None
    log = tmp_path / "data" / "vimtui" / "audit.log"
    closed = re.compile(r'"action": ?"screen".*"error": ?"\d+ key\(s\) sent".*"outcome": ?"closed"')
    await asyncio.to_thread(wait_until, "the close in the audit", lambda: closed.search(log.read_text()), 30)
    assert re.search(r'"action": ?"screen".*"outcome": ?"started"', log.read_text())
