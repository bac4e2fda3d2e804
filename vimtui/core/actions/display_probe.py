"""A look at a VNC display through the host's SSH connection before its address is given out: that it
answers at all (a display that does not would leave the operator staring at a viewer's timeout), and which
security types it offers. Those say what the domain's XML cannot: TLS (VeNCrypt) and SASL are set in the
host's qemu.conf, not in the domain. The probe stops at the security types (RFB 3.8: the server's version,
ours, then its list), before any client is set up, so it takes no share of the display from a viewer.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Any

import asyncssh

PROBE_WAIT = 10.0
"""Seconds the display has to answer through SSH."""

SECURITY = {
    1: "none",
    2: "VNC password",
    5: "RA2",
    6: "RA2ne",
    16: "Tight",
    17: "Ultra",
    18: "TLS",
    19: "VeNCrypt",
    20: "SASL",
    30: "Apple",
}
"""RFB security types by number, as RFC 6143 and its registry name them."""


@dataclass(frozen=True, slots=True)
class Probe:
    version: str = ""
    """The server's protocol version ('RFB 003.008')."""
    security: tuple[str, ...] = ()
    """The security types it offers, by name."""
    error: str = ""
    """Why it did not answer as a VNC server would ('' when it did)."""


async def probe_vnc(ssh: Any, host: str, port: int | None, socket: str = "") -> Probe:
    """Open a channel to the display through `ssh` (host:port on the far side, or its unix `socket`) and
    read its version and security types. Never raises: a Probe with `error` says what went wrong."""
    try:
        return await asyncio.wait_for(_probe(ssh, host, port, socket), PROBE_WAIT)
    except TimeoutError:
        return Probe(error=f"no answer within {PROBE_WAIT:.0f} s")
    except (OSError, asyncssh.Error, asyncio.IncompleteReadError) as exc:
        text = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        return Probe(error=str(text) or type(exc).__name__)


async def _probe(ssh: Any, host: str, port: int | None, socket: str) -> Probe:
    if socket:
        reader, writer = await ssh.open_unix_connection(socket, encoding=None)
    else:
        reader, writer = await ssh.open_connection(host, port, encoding=None)
    try:
        version = bytes(await reader.readexactly(12))
        if not version.startswith(b"RFB "):
            return Probe(error=f"not a VNC server (it said {version[:12]!r})")
        text = version.decode("ascii", "replace").strip()
        if version[4:11] < b"003.007":  # 3.3: the server picks one type, a 32-bit number
            writer.write(b"RFB 003.003\n")
            (kind,) = struct.unpack(">I", await reader.readexactly(4))
            return Probe(text, (SECURITY.get(kind, str(kind)),))
        writer.write(b"RFB 003.008\n")
        count = (await reader.readexactly(1))[0]
        if count == 0:  # refused, with a reason (too many clients ...)
            (size,) = struct.unpack(">I", await reader.readexactly(4))
            reason = (await reader.readexactly(min(size, 512))).decode("utf-8", "replace")
            return Probe(text, (), f"it refused the connection: {reason}")
        kinds = await reader.readexactly(count)
        return Probe(text, tuple(SECURITY.get(k, str(k)) for k in kinds))
    finally:
        writer.close()


def probe_notes(probe: Probe, host: str) -> list[str]:
    """What the security types offered mean for the operator (beyond a password, which the XML tells)."""
    if probe.error:
        return [f"the display did not answer through SSH: {probe.error}"]
    out = []
    offered = set(probe.security)
    if offered & {"VeNCrypt", "TLS"}:
        out.append(
            f"it offers TLS (VeNCrypt): the viewer needs {host}'s VNC CA certificate (ca-cert.pem of "
            "vnc_tls_x509_cert_dir in its qemu.conf)"
        )
    if "SASL" in offered:
        out.append(f"it asks for SASL credentials (vnc_sasl in {host}'s qemu.conf): the viewer prompts")
    return out
