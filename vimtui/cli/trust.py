"""`vimtui trust HOST`: show the SSH key a host offers (type and SHA256 fingerprint) and add it to vimtui's
known_hosts on an explicit yes.

On a terminal it asks, and only `yes` (or the fingerprint itself, as OpenSSH takes it) trusts the key.
Without one it refuses unless given `--yes --fingerprint SHA256:...`, the fingerprint checked out of band,
which must be the one the host offers: a script cannot accept a key it has not named. A key that
known_hosts contradicts (changed) or revokes is refused and never offered.

Exit status: 0 trusted (or already trusted), 1 not trusted (answered no, a fingerprint that differs, a
changed or revoked key), 2 usage or a question without a terminal, 3 the host's key could not be read.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vimtui.cli.exits import Exit, UsageError

if TYPE_CHECKING:  # the parser is built for every command: asyncssh is imported when it runs
    from vimtui.core.config.settings import Config
    from vimtui.core.fleet.inventory import HostSpec
    from vimtui.core.poll.host_keys import HostKeyCheck


def add_trust_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    help = "show a host's SSH key (type, SHA256 fingerprint) and trust it on an explicit yes"
    p = sub.add_parser("trust", parents=[common], help=help, description=help)
    p.add_argument(
        "host", metavar="HOST", help="a host's name (config or --connect), or ssh://[user@]host[:port]"
    )
    p.add_argument(
        "--yes",
        action="store_true",
        help="trust without asking (no terminal): only with --fingerprint, which must match the host's",
    )
    p.add_argument(
        "--fingerprint",
        metavar="SHA256:...",
        help="the fingerprint you checked on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub)",
    )


def find_host(name: str, specs: Sequence[HostSpec]) -> HostSpec:
    """The host named `name` (config or --connect), or an ssh:// URI given in its place."""
    from vimtui.core.fleet.inventory import InventoryError, parse_connect

    for spec in specs:
        if spec.name == name:
            break
    else:
        if "://" not in name:
            known = ", ".join(s.name for s in specs) or "none"
            raise UsageError(f"no host named {name!r} (hosts: {known}); or give ssh://[user@]host[:port]")
        try:
            spec = parse_connect(name)
        except InventoryError as exc:
            raise UsageError(str(exc)) from exc
    if spec.transport != "ssh":
        raise UsageError(f"{spec.name} is opened directly ({spec.uri}), not over SSH: it has no host key")
    return spec


def _normal(fingerprint: str) -> str:
    """`SHA256:...` as ssh-keygen prints it (the prefix may be left off)."""
    text = fingerprint.strip()
    return text if text.startswith("SHA256:") else f"SHA256:{text}"


async def run_trust(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    from vimtui.core.config.settings import data_dir
    from vimtui.core.fleet.audit import AUDIT_FILE, AuditLog
    from vimtui.core.poll.host_keys import HostKeyError, check_host_key, trust_recorded
    from vimtui.core.poll.transport import known_hosts_files

    if args.yes and not args.fingerprint:
        raise UsageError("--yes trusts only the key named by --fingerprint SHA256:... (checked on the host)")
    spec = find_host(args.host, specs)
    try:
        check = await check_host_key(spec, known_hosts_files(spec), config.defaults.connect_timeout)
    except HostKeyError as exc:
        print(f"vimtui: {exc}", file=sys.stderr)
        return Exit.UNREACHABLE
    audit = AuditLog(data_dir() / AUDIT_FILE)
    if check.verdict in ("changed", "revoked"):
        with contextlib.suppress(HostKeyError):
            trust_recorded(check, audit, time.time())  # refused, and recorded as such
        print(f"vimtui: {check.describe()}", file=sys.stderr)
        return Exit.FAILED
    if check.verdict == "known":
        print(check.describe())
        return Exit.OK
    print(f"{spec.name} ({check.where}) offers a host key that is not in known_hosts:")
    print(f"  {check.offered.get_algorithm()} {check.fingerprint}")
    if args.fingerprint and _normal(args.fingerprint) != check.fingerprint:
        print(
            f"vimtui: the host offers {check.fingerprint}, not {_normal(args.fingerprint)}: not trusted",
            file=sys.stderr,
        )
        return Exit.FAILED
    if not args.yes and not _asked(check):
        print("not trusted: nothing written")
        return Exit.FAILED
    try:
        entry = trust_recorded(check, audit, time.time())
    except (HostKeyError, OSError) as exc:
        print(f"vimtui: {exc}", file=sys.stderr)
        return Exit.FAILED
    print(f"trusted: {entry.where}")
    return Exit.OK


def _asked(check: HostKeyCheck) -> bool:
    """An explicit yes on a terminal: `yes` or the fingerprint itself; anything else is no."""
    if not sys.stdin.isatty():
        raise UsageError(
            "not asking without a terminal: check the fingerprint on the host, then give "
            "--yes --fingerprint SHA256:... with the one you checked"
        )
    print("Compare it with the host's own (on its console: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub).")
    try:
        answer = input(f"Trust it and add it to {check.trust_file}? (yes/no/[fingerprint]) ").strip()
    except EOFError:
        return False
    return answer.lower() == "yes" or (answer.startswith("SHA256:") and answer == check.fingerprint)
