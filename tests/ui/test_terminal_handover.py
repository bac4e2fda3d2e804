"""A hand-over of the terminal that fails gives the screen back with the reason (Textual's suspend() does
not resume when its block raises: the operator was left with a blank terminal). The real app in a
pseudo-terminal on the test driver, which has no consoles."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.pty_screen import Screen


@pytest.fixture
async def screen(tmp_path: Path) -> AsyncIterator[Screen]:
    config = tmp_path / "vimtui.toml"
    config.write_text('[[hosts]]\nname = "t1"\nuri = "test:///default"\n')
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "EDITOR": "false",
        "VISUAL": "false",
    }
    env.pop("TEXTUAL", None)
    s = Screen(config, env)
    try:
        yield s
    finally:
        s.close()


async def test_a_console_that_will_not_open_gives_the_screen_back_saying_why(screen: Screen) -> None:
    await screen.shows(r"\btest\b.*running", 0, 60)  # test:///default's one VM, selected
    mark = screen.mark()
    screen.keys(b"c")
    await screen.shows(r"cannot attach to its", mark, 60)
    mark = screen.mark()
    screen.keys(b"e")  # the screen takes keys again: the editor opens, fails, and that is said
    await screen.shows(r"editor: the editor 'false' exited", mark, 60)
    assert screen.proc.poll() is None


async def _appears(path: Path, within: float) -> None:
    """Until `path` exists (the editor script made it), failing after `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await asyncio.to_thread(path.exists):
        if loop.time() > deadline:
            pytest.fail(f"{path} never appeared within {within} s")
        await asyncio.sleep(0.05)


async def test_keys_typed_while_the_editor_has_the_terminal_never_reach_the_app(tmp_path: Path) -> None:
    """Keys the editor leaves unread (typed in its last moment, or into an editor that reads none) stay in
    the terminal's input: the app used to read them on resume, so a stray `p` paused the guest. Breaks if
    the hand-over does not discard the terminal's pending input before the screen takes keys again."""
    started, go = tmp_path / "editor-started", tmp_path / "editor-go"
    editor = tmp_path / "editor.sh"
    # an editor that reads no key: it says it runs, waits until the test lets it go, leaves the file as is
    editor.write_text(f'#!/bin/sh\ntouch "{started}"\nwhile [ ! -e "{go}" ]; do sleep 0.05; done\n')
    editor.chmod(0o755)
    config = tmp_path / "vimtui.toml"
    config.write_text('[[hosts]]\nname = "t1"\nuri = "test:///default"\n')
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "EDITOR": str(editor),
        "VISUAL": str(editor),
    }
    env.pop("TEXTUAL", None)
    screen = Screen(config, env)
    try:
        await screen.shows(r"\btest\b.*running", 0, 60)
        screen.keys(b"e")
        await _appears(started, 60)
        screen.keys(b"pXS")  # suspend, force off, shut down: meant for the editor
        mark = screen.mark()
        go.touch()
        await screen.shows(r"XML unchanged", mark, 60)
        # a key typed once the screen is back is read after any the app took from the editor's time: when
        # the help it opens is drawn, a stray key would already have been acted on
        screen.keys(b"?")
        await screen.shows(r"(?i)help|keys", mark, 60)
        shown = screen.text_since(mark)
        # a key acted on says "<Action>: 1 task(s) queued"; a destructive one asks first ("esc cancel")
        assert not re.search(r"task\(s\) queued|esc cancel", shown), shown[-3000:]
    finally:
        screen.close()
