"""The screen hands the terminal over, on a lab host: the serial console (`c`) and the XML editor (`e`),
driven by keys in the real app running in a pseudo-terminal, their effects checked through libvirt."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import libvirt
import pytest

from tests.lab.lab import Lab
from tests.lab.test_migrate_console_lab import ANSWER, console_free, typing, wait_true
from tests.pty_screen import Screen
from vimtui.core.actions.console import ESCAPE

pytestmark = pytest.mark.lab

HOST = "kvm01"


@pytest.fixture
def scratch(lab: Lab) -> Iterator[Callable[[str], str]]:
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        made.append(name)
        lab.add_guest(HOST, name)
        return name

    try:
        yield make
    finally:
        for name in made:
            lab.remove_guest(HOST, name)


@pytest.fixture
async def screen(lab: Lab, tmp_path: Path) -> AsyncIterator[Callable[[dict[str, str]], Screen]]:
    opened: list[Screen] = []

    def open_screen(extra: dict[str, str]) -> Screen:
        env = {
            **os.environ,
            "TERM": "xterm-256color",
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            **extra,
        }
        env.pop("TEXTUAL", None)
        s = Screen(lab.config_file, env)
        opened.append(s)
        return s

    try:
        yield open_screen
    finally:
        for s in opened:
            s.close()


async def select(screen: Screen, name: str) -> None:
    """Filter the table down to `name` (`/name` enter), once its row is drawn."""
    await screen.shows(re.escape(name), 0, 180)
    mark = screen.mark()
    screen.keys(b"/")  # the bar opens (and takes the keys) before the name is typed: its letters are keys
    await screen.shows(r"filter: text, field:value", mark, 60)
    mark = screen.mark()
    screen.keys(name.encode() + b"\r")
    await screen.shows(rf'showing 1\b.*filter: "{re.escape(name)}"', mark, 60)


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
async def test_console_from_the_screen_runs_a_command_and_the_screen_comes_back(
    lab: Lab, scratch: Callable[[str], str], screen: Callable[[dict[str, str]], Screen]
) -> None:
    name = await asyncio.to_thread(scratch, "scon")
    app = screen({})
    await select(app, name)
    await wait_true(f"{name} running", lambda: lab_state(lab, name) == libvirt.VIR_DOMAIN_RUNNING, 120)
    mark = app.mark()
    app.keys(b"c")
    await app.shows(rf"Connected to {re.escape(name)} \(escape: \^\]\)", mark, 60)
    assert not await asyncio.to_thread(console_free, lab, HOST, name)  # the screen holds the console
    nudge = typing(app.master)
    answered = asyncio.get_running_loop().time() + 180
    while ANSWER not in app.out.data[mark:]:  # the guest may still be booting: type again now and then
        assert asyncio.get_running_loop().time() < answered, app.text_since(mark)[-2000:]
        nudge()
        app.out.changed.clear()
        try:
            await asyncio.wait_for(app.out.changed.wait(), 3)
        except TimeoutError:
            pass
    back = app.mark()
    app.keys(ESCAPE)
    await app.shows(rf"console of {re.escape(name)}.*detached", back, 60)  # the screen, and what ended it
    await wait_true("the console to be released", lambda: console_free(lab, HOST, name), 30)
    assert app.proc.poll() is None


def lab_state(lab: Lab, name: str) -> int:
    with lab.connect(HOST) as conn:
        return int(conn.lookupByName(name).state()[0])


@pytest.mark.timeout(900)
async def test_xml_edit_from_the_screen_redefines_the_guest(
    lab: Lab, scratch: Callable[[str], str], screen: Callable[[dict[str, str]], Screen], tmp_path: Path
) -> None:
    name = await asyncio.to_thread(scratch, "sedit")
    marker = f"edited on the screen {uuid.uuid4().hex[:8]}"
    editor = tmp_path / "editor.sh"  # what an operator does in $EDITOR: add a description, save, quit
    editor.write_text(f"#!/bin/sh\nsed -i 's|</name>|</name><description>{marker}</description>|' \"$1\"\n")
    editor.chmod(0o755)
    app = screen({"EDITOR": str(editor), "VISUAL": str(editor)})
    await select(app, name)
    app.keys(b"e")

    def described() -> str | None:
        with lab.connect(HOST) as conn:
            xml = conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        node = ET.fromstring(xml).find("description")
        return None if node is None else node.text

    await wait_true("the edited definition in libvirt", lambda: described() == marker, 120)
    assert app.proc.poll() is None
