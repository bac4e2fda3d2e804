"""`vimtui vm screenshot NAME [-o FILE.png] [--screen N]`: the guest's screen, over the host's connection.

With -o, saved as the file's suffix says (PNG unless another image format; `-o -` writes PNG to standard
output); without it, drawn in the terminal with half blocks, as the screen's view draws it. Exit status as
every `vm` verb: 0 done, 1 no screenshot (no display, not running), 2 usage, 3 host unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from vimtui.cli.exits import Exit, UsageError
from vimtui.core.actions.guest_screen import grab, screen_refusal
from vimtui.core.fleet.fleet import Fleet, QueryFailed
from vimtui.core.fleet.tasks import ActionError
from vimtui.core.picture import BadPicture, ansi, cells, decode, save
from vimtui.core.text import shown


def add_screenshot_verb(verbs: Any, common: argparse.ArgumentParser) -> None:
    p = verbs.add_parser(
        "screenshot",
        parents=[common],
        help="the guest's screen: saved (-o FILE.png) or drawn in the terminal",
        description="The guest's display as libvirt's screenshot of it, through vimtui's connection.",
    )
    p.add_argument("names", metavar="NAME", nargs=1, help="VM name, or HOST/NAME")
    p.add_argument("--host", metavar="H", help="the host the VM is on (when its name is on several)")
    p.add_argument("-o", "--output", metavar="FILE", help="save it (.png, .jpg ...; '-': PNG to stdout)")
    p.add_argument("--screen", type=int, default=0, metavar="N", help="the display's head (default 0)")


async def screenshot(
    fleet: Fleet, vms: Sequence[Any], errors: Sequence[tuple[str, str]], args: argparse.Namespace
) -> int:
    if errors:
        raise UsageError("; ".join(f"{n}: {why}" for n, why in errors))
    if args.output is None and not sys.stdout.isatty():
        raise UsageError("vm screenshot: standard output is not a terminal: give -o FILE.png (or -o -)")
    vm = vms[0]
    why = screen_refusal(vm, fleet.state.host(vm.host))
    if why:
        print(f"vimtui: {shown(why)}", file=sys.stderr)
        return Exit.FAILED
    try:
        shot = await fleet.ask(vm.host, grab, vm.uuid, args.screen)
    except (QueryFailed, ActionError) as exc:
        print(f"vimtui: {shown(str(exc))}", file=sys.stderr)
        return Exit.FAILED
    try:
        if args.output == "-":
            data = await asyncio.to_thread(_png, shot.data)
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        elif args.output is not None:
            w, h = await asyncio.to_thread(save, shot.data, args.output)
            print(f"{vm.name}: {w}x{h} saved to {shown(args.output)}", file=sys.stderr)
        else:
            size = shutil.get_terminal_size()
            image = await asyncio.to_thread(decode, shot.data)
            print(ansi(cells(image, size.columns, max(1, size.lines - 2))))
            print(f"{vm.name} on {vm.host}: {image.width}x{image.height}", file=sys.stderr)
    except BadPicture as exc:
        print(f"vimtui: {vm.name}: {shown(str(exc))}", file=sys.stderr)
        return Exit.FAILED
    except OSError as exc:
        print(f"vimtui: cannot write {shown(str(args.output))}: {exc.strerror or exc}", file=sys.stderr)
        return Exit.FAILED
    return Exit.OK


def _png(data: bytes) -> bytes:
    out = io.BytesIO()
    decode(data).save(out, format="PNG")
    return out.getvalue()
