"""`vimtui export [--listen ADDR:PORT]`: poll the fleet as the screen does and serve its metrics to
Prometheus (OpenMetrics or the classic text format, by the scrape's Accept header) until SIGINT or SIGTERM.

Exit status: 0 when stopped by a signal, 2 for usage errors (a bad --listen, an address already in use,
an unknown --host, no hosts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import msgspec

from vimtui.cli.argtypes import parsed_by, seconds
from vimtui.cli.exits import Exit

if TYPE_CHECKING:  # the parser is built for every command: the exporter is imported when it runs
    from vimtui.core.config.settings import Config
    from vimtui.core.fleet.inventory import HostSpec

DEFAULT_LISTEN = "127.0.0.1:9177"


def parse_listen(text: str) -> tuple[str | None, int]:
    """ADDR:PORT, [IPv6]:PORT, or :PORT (every interface) -> (host, port); host None for every interface.
    ValueError (argparse shows its message) for anything else."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"expected ADDR:PORT, e.g. {DEFAULT_LISTEN} or [::1]:9177: {text!r}")
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"port must be a number from 0 to 65535: {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
        except OSError:
            raise ValueError(f"not an IPv6 address in brackets: {text!r}") from None
        return host, int(port)
    if ":" in host:
        raise ValueError(f"an IPv6 address goes in brackets, e.g. [::1]:9177: {text!r}")
    if any(c.isspace() or c in "[]/" for c in host):
        raise ValueError(f"not a host name or address: {text!r}")
    return host or None, int(port)


def add_export_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    help = "serve the fleet's metrics to Prometheus (OpenMetrics) until SIGINT or SIGTERM"
    p = sub.add_parser("export", parents=[common], help=help, description=help)
    p.add_argument(
        "--listen",
        metavar="ADDR:PORT",
        type=parsed_by(parse_listen, "listen"),
        default=parse_listen(DEFAULT_LISTEN),
        help=f"where to serve /metrics (default {DEFAULT_LISTEN}; [::1]:PORT for IPv6, :PORT for all)",
    )
    p.add_argument("--host", metavar="H", action="append", help="only host H (repeatable)")
    p.add_argument(
        "--interval",
        metavar="S",
        type=seconds(),
        default=None,
        help="seconds between polls (default: the config's interval)",
    )


def _show(host: str | None, port: int) -> str:
    if host is None:
        return f"*:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _error(message: str) -> int:
    print(f"vimtui: error: {message}", file=sys.stderr, flush=True)
    return Exit.USAGE


async def run_export(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    from vimtui.core.export.server import serve
    from vimtui.core.fleet.startup import make_fleet

    wanted = args.host or []
    unknown = [h for h in wanted if h not in {s.name for s in specs}]
    if unknown:
        return _error(f"no such host: {', '.join(unknown)} (known: {', '.join(s.name for s in specs)})")
    if wanted:
        specs = [s for s in specs if s.name in wanted]
    if not specs:
        return _error("no hosts: add [[hosts]] to the config or use --connect URI")
    if args.interval:
        config = replace(config, defaults=msgspec.structs.replace(config.defaults, interval=args.interval))
    host, port = args.listen
    fleet = make_fleet(config, specs, archive=True)
    try:
        server = await serve(fleet, host, port)
    except OSError as exc:  # in use, not an address of this machine, unknown name
        await fleet.stop()
        # asyncio words a failed bind its own way: the system's words for the error number
        if isinstance(exc, socket.gaierror) or not exc.errno:
            reason = exc.strerror or str(exc)
        else:
            reason = os.strerror(exc.errno)
        reason = reason[:1].lower() + reason[1:]
        return _error(f"cannot listen on {_show(host, port)}: {reason}")

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        for sock in server.sockets:
            addr = sock.getsockname()
            print(f"vimtui: serving http://{_show(addr[0], addr[1])}/metrics", file=sys.stderr, flush=True)
        await fleet.start()
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)
        await fleet.stop()
    return Exit.OK
