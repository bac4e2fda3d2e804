"""`vimtui net list|leases [HOST[/NET]...] [--json]` and `vimtui net VERB HOST/NET [--yes] [--dry-run]
[--json]`: the host's virtual networks headless, the verbs made from the network actions of the registry.

A network is named HOST/NET (NET alone in a fleet of one host). The same checks and tasks as the screen;
exit 0 when the task succeeded, 1 when it failed or was refused, 2 for usage errors, 3 when a host listed
does not answer (cli/targets.py runs the verbs). A delete refused because running VMs use the network says
so, naming them, and exits 1; with --force the confirmation lists them first (--yes skips it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from vimtui.cli.exits import Exit, UsageError
from vimtui.cli.listing import _table
from vimtui.cli.reach import connected
from vimtui.cli.targets import add_target_parser, run_target
from vimtui.core.config.settings import Config
from vimtui.core.fleet.fleet import Fleet, QueryFailed
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.fleet.startup import make_fleet
from vimtui.core.poll.host_networks import NetworkView, networks
from vimtui.core.units import format_duration


def add_net_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    verbs = add_target_parser(
        sub, common, "network", "virtual networks: list, leases, define, start, stop, autostart, delete"
    )
    for verb, text in (
        ("list", "each host's networks: mode, bridge, subnet, DHCP range, autostart, leases, VMs"),
        ("leases", "the DHCP leases: which VM holds which address"),
    ):
        v = verbs.add_parser(verb, parents=[common], help=text, description=text)
        v.add_argument("where", nargs="*", metavar="HOST[/NET]", help="only these hosts or networks")
        v.add_argument("--json", action="store_true", help="as JSON")


def _hosts_of(where: Sequence[str], specs: Sequence[HostSpec]) -> tuple[list[HostSpec], set[str]]:
    """The hosts named (all when none is), and the HOST/NET networks asked for (empty: all)."""
    names = {s.name for s in specs}
    hosts, nets = set(), set()
    for w in where:
        host, sep, net = w.partition("/")
        if host not in names:
            known = ", ".join(sorted(names)) or "none"
            raise UsageError(f"no host {host!r} in the inventory (hosts: {known})")
        hosts.add(host)
        if sep and net:
            nets.add(w)
    return ([s for s in specs if s.name in hosts] if hosts else list(specs)), nets


async def run_net(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    return await run_target(args, config, specs, "network", {"list": _run_list, "leases": _run_list})


async def _run_list(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    specs, wanted = _hosts_of(args.where, specs)
    if not specs:
        raise UsageError("no hosts: add [[hosts]] to the config or use --connect URI")
    fleet = make_fleet(config, specs)
    try:
        await fleet.start(tick=False)
        await connected(fleet, config)
        found, failed = await _gather(fleet, wanted)
    finally:
        await fleet.stop()
    missing = wanted - {f"{h}/{n.name}" for h, views in found.items() for n in views}
    if args.json:
        if args.verb == "list":
            out: Any = [{"host": h, **n.as_dict()} for h, views in found.items() for n in views]
        else:
            out = [
                {"host": h, "network": n.name, **lease_dict(x)}
                for h, views in found.items()
                for n in views
                for x in n.leases or ()
            ]
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        sys.stdout.write(list_text(found) if args.verb == "list" else leases_text(found, time.time()))
    for w in sorted(missing):
        print(f"vimtui: no network {w.partition('/')[2]!r} on {w.partition('/')[0]}", file=sys.stderr)
    for host, why in failed:
        print(f"vimtui: {host}: {why}", file=sys.stderr)
    if failed:
        return Exit.UNREACHABLE
    return Exit.FAILED if missing else Exit.OK


async def _gather(
    fleet: Fleet, wanted: set[str]
) -> tuple[dict[str, list[NetworkView]], list[tuple[str, str]]]:
    found: dict[str, list[NetworkView]] = {}
    failed: list[tuple[str, str]] = []
    for h in fleet.state.hosts:
        if not h.status.healthy:
            failed.append((h.name, f"{h.status}: {h.message}"))
            continue
        try:
            views = await fleet.ask(h.name, networks)
        except QueryFailed as exc:
            failed.append((h.name, str(exc)))
            continue
        found[h.name] = [
            n
            for n in views
            if not wanted or f"{h.name}/{n.name}" in wanted or not _names_host(wanted, h.name)
        ]
    return found, failed


def _names_host(wanted: set[str], host: str) -> bool:
    return any(w.startswith(f"{host}/") for w in wanted)


def lease_dict(x: Any) -> dict[str, Any]:
    return {
        "ip": x.ip,
        "mac": x.mac,
        "vm": x.vm or None,
        "hostname": x.hostname or None,
        "expires": x.expires,
    }


def list_text(found: dict[str, list[NetworkView]]) -> str:
    headers = ("HOST", "NETWORK", "STATE", "MODE", "BRIDGE", "SUBNET", "DHCP", "AUTOSTART", "LEASES", "VMS")
    rows = []
    for host, views in found.items():
        for n in views:
            running = n.running_users
            vms = f"{len(running)} running" + (f" of {len(n.users)}" if len(n.users) != len(running) else "")
            rows.append(
                (
                    host,
                    n.name,
                    "active" if n.active else "inactive",
                    n.mode + (f" via {n.forward_dev}" if n.forward_dev else ""),
                    n.bridge or "-",
                    ", ".join(n.subnets) or "-",
                    ", ".join(n.dhcp) or "-",
                    "yes" if n.autostart else "no",
                    "?" if n.leases is None else str(len(n.leases)),
                    vms if n.users else "-",
                )
            )
    return _table(headers, rows)


def leases_text(found: dict[str, list[NetworkView]], now: float) -> str:
    headers = ("HOST", "NETWORK", "IP", "MAC", "VM", "HOSTNAME", "EXPIRES IN")
    rows = []
    unknown = []
    for host, views in found.items():
        for n in views:
            if n.leases is None:
                if n.active:
                    unknown.append(f"{host}/{n.name}")
                continue
            for x in n.leases:
                left = format_duration(x.expires - now) if x.expires else "never"
                rows.append((host, n.name, x.ip, x.mac, x.vm or "-", x.hostname or "-", left))
    out = _table(headers, rows)
    if unknown:
        out += f"(leases not known: {', '.join(unknown)}: its libvirt cannot say)\n"
    return out
