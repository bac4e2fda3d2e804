"""Which viewer on this machine can show a forwarded display, and how each is given the address.

remote-viewer (virt-viewer's, VNC and SPICE) first, as virt-manager's users know it; then the VNC viewers
Debian and others ship (TigerVNC, TightVNC, RealVNC all read HOST::PORT as a port, HOST:N as a display
number); spicy for SPICE. A viewer needs a graphical session: on a plain SSH login (no DISPLAY, no
WAYLAND_DISPLAY) the address is given instead of starting something that cannot open a window.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping

Argv = Callable[[str, str, int, str], list[str]]
"""(program, host, port, url) -> the command line."""


def _uri(program: str, host: str, port: int, url: str) -> list[str]:
    return [program, url]


def _double_colon(program: str, host: str, port: int, url: str) -> list[str]:
    return [program, f"{host}::{port}"]


def _spicy(program: str, host: str, port: int, url: str) -> list[str]:
    return [program, "-h", host, "-p", str(port)]


VIEWERS: Mapping[str, tuple[tuple[str, Argv], ...]] = {
    "vnc": (
        ("remote-viewer", _uri),
        ("vncviewer", _double_colon),
        ("xtigervncviewer", _double_colon),
        ("xtightvncviewer", _double_colon),
        ("xvnc4viewer", _double_colon),
        ("krdc", _uri),
    ),
    "spice": (("remote-viewer", _uri), ("spicy", _spicy)),
}
"""Per protocol, the viewers tried in order, and how each takes the address."""


def graphical(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a viewer started here can open a window."""
    env = os.environ if environ is None else environ
    return sys.platform == "darwin" or bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def viewer_command(
    protocol: str, host: str, port: int, url: str, *, program: str = "", tls_only: bool = False
) -> list[str] | None:
    """The command line of the first viewer installed for `protocol` (or of `program`, the operator's
    choice, given the URL unless it is one of the known viewers), None when none is installed. A SPICE
    display reached over TLS alone is given to remote-viewer only (the others take no TLS port here)."""
    if program:
        words = shlex.split(program)
        known = dict(VIEWERS.get(protocol, ()))
        name = os.path.basename(words[0]) if words else ""
        path = shutil.which(words[0]) if words else None
        if path is None:
            return None
        if name in known and len(words) == 1:
            return known[name](path, host, port, url)
        return [path, *words[1:], url]
    for name, argv in VIEWERS.get(protocol, ()):
        if tls_only and name != "remote-viewer":
            continue
        path = shutil.which(name)
        if path is not None:
            return argv(path, host, port, url)
    return None


async def start_viewer(argv: list[str]) -> asyncio.subprocess.Process:
    """Start a viewer in a session of its own (a terminal's ctrl+c or the screen's keys are not its), its
    output kept from the terminal (read by `ended`). OSError when it cannot be started."""
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )


async def ended(proc: asyncio.subprocess.Process) -> str:
    """Wait for a viewer to end: '' when it exited 0, else its status and its last words on stderr."""
    _, err = await proc.communicate()
    if proc.returncode == 0:
        return ""
    tail = [line for line in err.decode(errors="replace").splitlines() if line.strip()][-2:]
    said = f": {' / '.join(tail)}" if tail else ""
    return f"the viewer exited with status {proc.returncode}{said}"
