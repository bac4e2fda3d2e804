"""`vimtui access [HOST] [--json]`: what the account vimtui uses can really do on each host (read-only or
read-write socket, libvirt's ACLs where polkit is in use), beside the profile the config gives it.

Exit status: 0 when every host's account can do what its profile allows, 1 when one cannot, 2 for an
unknown host, 3 when a host could not be asked."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Sequence
from typing import Any

from vimtui.cli.exits import Exit, UsageError
from vimtui.core.config.settings import Config, runtime_dir
from vimtui.core.fleet.inventory import HostSpec


def add_access_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "access",
        parents=[common],
        help="what the SSH account can really do on each host (sockets, ACLs) beside its profile",
    )
    p.add_argument("host", metavar="HOST", nargs="?", help="one host (default: every host)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


async def run_access(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    from vimtui.core.poll.access import ask
    from vimtui.core.poll.transport import SshOptions

    chosen = [s for s in specs if args.host in (None, s.name)]
    if args.host is not None and not chosen:
        raise UsageError(f"no host {args.host!r} in the inventory")
    d = config.defaults
    options = SshOptions(d.connect_timeout, d.keepalive_interval, d.keepalive_count_max)
    where = runtime_dir(os.environ) / "access"
    found = await asyncio.gather(*(ask(s, where, options) for s in chosen))
    if args.json:
        print(json.dumps([a.as_dict() for a in found], indent=2))
    else:
        for a in found:
            print("\n".join(a.lines()))
    if any(a.error for a in found):
        return Exit.UNREACHABLE
    return Exit.OK if all(a.enough for a in found) else Exit.FAILED
