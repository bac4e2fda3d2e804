"""A hand-over of the terminal that fails gives the screen back with the reason (Textual's suspend() does
not resume when its block raises: the operator was left with a blank terminal). The real app in a
pseudo-terminal on the test driver, which has no consoles."""

from __future__ import annotations

import os
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
