"""The real app in a pseudo-terminal, for tests of what happens when it hands the terminal over (console,
$EDITOR): keys in, what it draws gathered as it comes."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.lab.test_migrate_console_lab import Output

ROWS, COLS = 40, 140
ANSI = re.compile(rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78])")


class Screen:
    """The app (`python -m vimtui --config`) in a pseudo-terminal of ROWS x COLS: keys in, what it
    draws gathered; `text_since(mark)` is the output from `mark` on without escape sequences."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vimtui", "--config", str(config)],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.out = Output(self.master)

    def mark(self) -> int:
        return len(self.out.data)

    def text_since(self, mark: int) -> str:
        return ANSI.sub(b"", bytes(self.out.data[mark:])).decode(errors="replace")

    async def shows(self, what: str, since: int, within: float) -> None:
        """Until `what` (a regular expression) is drawn after `since`; fails naming what was drawn."""
        deadline = asyncio.get_running_loop().time() + within
        while not re.search(what, self.text_since(since)):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or self.proc.poll() is not None:
                tail = self.text_since(since)[-2000:]
                pytest.fail(f"the screen never showed {what!r} within {within} s; its last output: {tail!r}")
            self.out.changed.clear()
            try:
                await asyncio.wait_for(self.out.changed.wait(), min(remaining, 1.0))
            except TimeoutError:
                pass

    def keys(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.out.close()
        os.close(self.master)
