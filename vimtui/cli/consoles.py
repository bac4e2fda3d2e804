"""`vimtui vm console NAME` and `vimtui vm display NAME`: a guest's serial console in this terminal, and its
graphical display forwarded over the host's SSH connection to a loopback port here, given to a viewer when
one can open a window, else printed, the forward kept open until ctrl+c. Neither is a task: both belong to
the operator's terminal; both are audited (core/actions/console.py, display_forward.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from vimtui.cli.argtypes import whole
from vimtui.cli.exits import Exit, UsageError
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import ActionError


def add_display_parser(verbs: Any, common: argparse.ArgumentParser) -> None:
    p = verbs.add_parser(
        "display",
        parents=[common],
        help="forward the VNC/SPICE display over SSH to a local port and open a viewer (or print it)",
        description="Forward the VM's VNC or SPICE display through its host's SSH connection to a "
        "loopback port of this machine; start remote-viewer or a VNC viewer when one is installed and a "
        "window can open, else print the address. The forward stays open until the viewer closes or "
        "ctrl+c.",
    )
    p.add_argument("names", metavar="NAME", nargs=1, help="VM name, or HOST/NAME")
    p.add_argument("--host", metavar="H", help="the host the VM is on (when its name is on several)")
    p.add_argument("--port", type=whole(0), default=0, metavar="N", help="local port (default: any free)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--viewer", metavar="PROGRAM", default="", help="the viewer to start (given the URL)")
    how.add_argument("--no-viewer", action="store_true", help="only print the address")
    p.add_argument("--json", action="store_true", help="the address and notes as one JSON document")


async def run_console(fleet: Fleet, vms: Sequence[Any], errors: Sequence[tuple[str, str]]) -> int:
    from vimtui.core.actions import console

    if errors:
        raise UsageError("; ".join(f"{n}: {why}" for n, why in errors))
    try:
        message = await asyncio.to_thread(console.attach_vm, fleet, vms[0])
    except ActionError as exc:  # refused, no connection, it would not open, or could not be recorded
        print(f"vimtui: {exc}", file=sys.stderr)
        return Exit.FAILED
    print(f"\r\n{message or 'detached'}", file=sys.stderr)
    return Exit.OK


async def run_display(
    fleet: Fleet, vms: Sequence[Any], errors: Sequence[tuple[str, str]], args: argparse.Namespace
) -> int:
    from vimtui.core.actions.display_forward import DisplayForwards
    from vimtui.core.actions.display_viewer import ended, graphical, start_viewer, viewer_command

    if errors:
        raise UsageError("; ".join(f"{n}: {why}" for n, why in errors))
    gone = asyncio.Event()
    forwards = DisplayForwards(fleet, on_closed=lambda f: gone.set())
    try:
        forward = await forwards.open(vms[0], port=args.port)
    except ActionError as exc:
        print(f"vimtui: {exc}", file=sys.stderr)
        return Exit.FAILED
    argv = None
    if not args.no_viewer and (args.viewer or graphical()):
        argv = viewer_command(
            forward.display.protocol,
            forward.local_host,
            forward.local_port,
            forward.url,
            program=args.viewer,
            tls_only=forward.display.tls_only,
        )
    doc = {
        "vm": forward.vm.name,
        "host": forward.vm.host,
        "protocol": forward.display.protocol,
        "address": forward.address,
        "url": forward.url,
        "remote": forward.display.where,
        "password": forward.display.password,
        "answered": forward.answered or None,
        "notes": forward.notes,
        "viewer": argv,
    }
    if args.json:
        print(json.dumps(doc, indent=2), flush=True)
    else:
        print(forward.summary)
        print(f"  {forward.url}   (on {forward.vm.host}: {forward.display.where}, through SSH)")
        if forward.answered:
            print(f"  answers: {forward.answered}")
        for note in forward.notes:
            print(f"  note: {note}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    outcome, status = "closed (ctrl+c)", Exit.OK
    why = "closed by the operator (ctrl+c)"
    """The audit's reason (a forward that closed itself keeps its own)."""
    viewer = None
    try:
        waits: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(gone.wait()),
        ]
        if argv is not None:
            try:
                viewer = await start_viewer(argv)
            except OSError as exc:
                why = f"cannot start {argv[0]}: {exc.strerror or exc}"
                print(f"vimtui: {why}", file=sys.stderr)
                return Exit.FAILED
            if not args.json:
                print(f"started {' '.join(argv)}: closing it (or ctrl+c) closes the forward", flush=True)
            waits.append(asyncio.ensure_future(ended(viewer)))
        elif not args.json:
            print(_no_viewer(args, forward.display.protocol, forward.local_port), flush=True)
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        if gone.is_set():
            outcome, status = f"closed: {forward.closed}", Exit.FAILED
        elif viewer is not None and not stop.is_set():
            problem = next(iter(done)).result()
            why = problem or "the viewer exited"
            outcome = f"closed: {why}"
            status = Exit.FAILED if problem else Exit.OK
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if viewer is not None and viewer.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                viewer.terminate()
        await forwards.close_all(why)
    said = f"display of {forward.vm.name} {outcome}; {forward.connections} viewer connection(s)"
    print(said, file=sys.stderr)
    return status


def _no_viewer(args: argparse.Namespace, protocol: str, port: int) -> str:
    from vimtui.core.actions.display_viewer import VIEWERS

    if args.no_viewer:
        why = "--no-viewer"
    elif args.viewer:
        why = f"{args.viewer} not found"
    elif not _graphical():
        why = "no graphical session here: DISPLAY is not set"
    else:
        why = f"none installed of {', '.join(name for name, _ in VIEWERS.get(protocol, ()))}"
    return (
        f"no viewer started ({why}): give the address to one. From another machine: "
        f"ssh -L 5900:127.0.0.1:{port} {socket.gethostname()}, then remote-viewer {protocol}://localhost:5900"
        "\nctrl+c closes the forward"
    )


def _graphical() -> bool:
    from vimtui.core.actions.display_viewer import graphical

    return graphical()
