"""The CLI's text output made inert: every write to stdout and stderr passes through
`vimtui.core.text.shown`, so a VM name, a libvirt error or an SSH server's disconnect reason can neither
move the cursor, clear the screen, retitle the terminal (ESC ] 0; ... BEL) nor reorder a line (bidi
overrides). One place for every `print` of every command, the logging module's last-resort handler
included; JSON output is unchanged (json escapes every control character itself).

Not for `vm console`, which hands the terminal to the guest on purpose.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from vimtui.core.text import shown


class Neutralised:
    """A text stream that writes through another with control characters made visible (newlines kept)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(shown(text, keep="\n"))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding ... of the stream underneath
        return getattr(self._stream, name)


@contextmanager
def neutralised_output() -> Iterator[None]:
    """stdout and stderr neutralised for the block, then put back as they were."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Neutralised(out), Neutralised(err)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
