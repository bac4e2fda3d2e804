"""The headless commands (`vimtui hosts|vms|stats`): the same core as the screen, printed as text or JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from vimtui.cli.exits import Exit, UsageError
from vimtui.cli.reach import connected
from vimtui.core.config.settings import Config
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.fleet.quotas import fraction, tenants_table
from vimtui.core.fleet.startup import make_fleet
from vimtui.core.model import FleetState, HostState, VmState
from vimtui.core.text import cells, pad
from vimtui.core.units import format_bytes


async def run(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    wanted = getattr(args, "host", None) or []
    unknown = [h for h in wanted if h not in {s.name for s in specs}]
    if unknown:
        raise UsageError(f"no such host: {', '.join(unknown)} (known: {', '.join(s.name for s in specs)})")
    if wanted:
        specs = [s for s in specs if s.name in wanted]
    if not specs:
        raise UsageError("no hosts: add [[hosts]] to the config or use --connect URI")
    fleet = make_fleet(config, specs)
    await fleet.start(tick=False)
    try:
        d = config.defaults
        await connected(fleet, config)
        if args.command == "stats":
            await _stats(fleet, args, config)
        else:
            state = await fleet.tick(deadline=d.call_timeout)
            await settle(fleet, d.call_timeout)
            state = fleet.publish()
            if args.command == "tenants":
                out = tenants_text(state, args.json)
            else:
                out = _hosts(state, args.json) if args.command == "hosts" else _vms(state, args.json)
            sys.stdout.write(out)
        failed = [h for h in fleet.state.hosts if not h.status.healthy]
        for h in failed:
            print(f"vimtui: {h.name}: {h.status}: {h.message}", file=sys.stderr)
        return Exit.UNREACHABLE if failed else Exit.OK
    finally:
        await fleet.stop()


async def settle(fleet: Fleet, within: float) -> None:
    """Wait for the work a poll started (domain details, addresses) to finish."""
    tasks = [t for s in fleet.sessions.values() if (t := s._side_task) is not None and not t.done()]
    if tasks:
        await asyncio.wait(tasks, timeout=within)


async def _stats(fleet: Fleet, args: argparse.Namespace, config: Config) -> None:
    interval = args.interval or config.defaults.interval
    loop = asyncio.get_running_loop()
    started = loop.time()
    await fleet.tick(deadline=config.defaults.call_timeout)  # the first poll only sets the baseline
    for n in range(args.count):
        started += interval
        await asyncio.sleep(max(0.0, started - loop.time()))
        state = await fleet.tick(deadline=config.defaults.call_timeout)
        if args.json:
            sys.stdout.write(json.dumps(stats_json(state)) + "\n")
        else:
            if n:
                sys.stdout.write("\n")
            sys.stdout.write(_stats_text(state))
        sys.stdout.flush()


# ---------------------------------------------------------------------------------------------- JSON


def host_json(h: HostState, state: FleetState) -> dict[str, Any]:
    vms = state.vms_on(h.name)
    info = h.info
    return {
        "name": h.name,
        "group": h.group,
        "address": h.address,
        "uri": h.uri,
        "transport": h.transport,
        "read_only": h.read_only,
        "profile": h.profile,
        "status": str(h.status),
        "message": h.message,
        "hostname": info.hostname if info else None,
        "hypervisor": info.hypervisor if info else None,
        "hypervisor_version": info.hypervisor_version if info else None,
        "libvirt_version": info.libvirt_version if info else None,
        "cpus": info.cpus if info else None,
        # the node's own memory total where it reports one (getInfo's can be a NUMA cell's)
        "memory_kib": (h.node.mem_total_kib if h.node and h.node.mem_total_kib else None)
        or (info.memory_kib if info else None),
        "cpu_pct": h.rates.cpu_pct if h.rates else None,
        "mem_used_kib": h.rates.mem_used_kib if h.rates else None,
        "mem_pct": h.rates.mem_pct if h.rates else None,
        "vms": len(vms),
        "running": sum(1 for v in vms if v.state == "running"),
        "vcpus_allocated": sum(v.vcpus or 0 for v in vms if v.state == "running"),
    }


def vm_json(v: VmState) -> dict[str, Any]:
    d = v.details
    return {
        "name": v.name,
        "uuid": v.uuid,
        "host": v.host,
        "state": v.state,
        "stale": v.stale,
        "vcpus": v.vcpus,
        "mem_max_kib": v.mem_max_kib,
        "mem_current_kib": v.mem_current_kib,
        "ips": list(v.ips),
        "ip_source": v.ip_source or None,
        "tags": list(d.tags) if d else [],
        "tenant": d.tenant if d else None,
        "template": d.template if d else None,
        "autostart": d.autostart if d else None,
        "persistent": d.persistent if d else None,
        "disks": [
            {"target": x.target, "device": x.device, "source": x.source, "format": x.driver_type}
            for x in d.disks
        ]
        if d
        else [],
        "nics": [{"mac": x.mac, "source": x.source, "model": x.model, "target": x.target} for x in d.nics]
        if d
        else [],
    }


def vm_rates_json(v: VmState) -> dict[str, Any]:
    r = v.rates
    keys = (
        "cpu_pct",
        "cpu_host_pct",
        "mem_used_kib",
        "mem_pct",
        "disk_rd_bps",
        "disk_wr_bps",
        "disk_rd_iops",
        "disk_wr_iops",
        "net_rx_bps",
        "net_tx_bps",
    )
    out: dict[str, Any] = {"host": v.host, "name": v.name, "uuid": v.uuid, "state": v.state}
    out.update({k: getattr(r, k) if r is not None else None for k in keys})
    return out


def stats_json(state: FleetState) -> dict[str, Any]:
    return {
        "time": state.time,
        "hosts": [
            {
                "name": h.name,
                "status": str(h.status),
                "cpu_pct": h.rates.cpu_pct if h.rates else None,
                "mem_pct": h.rates.mem_pct if h.rates else None,
            }
            for h in state.hosts
        ],
        "vms": [vm_rates_json(v) for v in state.vms.values()],
    }


# ---------------------------------------------------------------------------------------------- text


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded by terminal cells, so a wide name (数据库) does not push its row out of line."""
    widths = [
        max(cells(h), *(cells(r[i]) for r in rows)) if rows else cells(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(pad(h, w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(pad(c, w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def tenants_text(state: FleetState, as_json: bool) -> str:
    """`vimtui tenants`: each tenant's use against its quota (the scoped tenant only, in a scoped config);
    the numbers a refusal gives."""
    rows = tenants_table(state)
    if as_json:
        return json.dumps([r.as_dict() for r in rows], indent=2) + "\n"
    if not rows:
        return "no tenant has VMs or a quota ([tenants.NAME] in the config; vimtui vm tenant NAME T)\n"
    out = []
    for r in rows:
        q, u = r.quota, r.use
        out.append(
            [
                r.tenant,
                fraction(u.vcpus, q.vcpus if q else None),
                fraction(u.memory_mib, q.memory_mib if q else None),
                fraction(u.vms, q.vms if q else None),
                fraction(u.disk_gib, q.disk_gib if q else None),
            ]
        )
    return _table(["TENANT", "VCPUS", "MEMORY MIB", "VMS", "DISK GIB"], out)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}%"


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f}M"


def _rate(bps: float | None) -> str:
    return "-" if bps is None else format_bytes(bps) + "/s"


def _hosts(state: FleetState, as_json: bool) -> str:
    if as_json:
        return json.dumps([host_json(h, state) for h in state.hosts], indent=2) + "\n"
    rows = []
    for h in state.hosts:
        j = host_json(h, state)
        rows.append(
            [
                h.name,
                h.group or "-",
                str(h.status),
                j["hypervisor"] or "-",
                j["libvirt_version"] or "-",
                str(j["cpus"] or "-"),
                _mib(j["memory_kib"]),
                _pct(j["cpu_pct"]),
                _pct(j["mem_pct"]),
                f"{j['running']}/{j['vms']}",
            ]
        )
    return _table(["HOST", "GROUP", "STATUS", "HV", "LIBVIRT", "CPUS", "MEMORY", "CPU", "MEM", "VMS"], rows)


def _vms(state: FleetState, as_json: bool) -> str:
    """The VMs, then the templates in a section of their own (JSON: each with `template`)."""
    vms = list(state.vms.values())
    if as_json:
        return json.dumps([vm_json(v) for v in vms], indent=2) + "\n"
    templates = [v for v in vms if v.details is not None and v.details.template]
    out = _table(
        ["NAME", "HOST", "STATE", "VCPUS", "MEMORY", "IP", "TAGS"],
        _vm_rows(v for v in vms if v not in templates),
    )
    if templates:
        out += "\nTEMPLATES (vimtui vm untemplate NAME to run one)\n"
        out += _table(["NAME", "HOST", "STATE", "VCPUS", "MEMORY", "IP", "TAGS"], _vm_rows(templates))
    return out


def _vm_rows(vms: Iterable[VmState]) -> list[list[str]]:
    return [
        [
            v.name,
            v.host,
            v.state + (" (stale)" if v.stale else ""),
            str(v.vcpus or "-"),
            _mib(v.mem_max_kib),
            ",".join(v.ips) or "-",
            ",".join(v.details.tags) if v.details else "-",
        ]
        for v in vms
    ]


def _stats_text(state: FleetState) -> str:
    rows = []
    for v in state.vms.values():
        r = v.rates
        rows.append(
            [
                v.name,
                v.host,
                v.state,
                _pct(r.cpu_pct if r else None),
                _mib(r.mem_used_kib if r else None),
                _rate(r.disk_rd_bps if r else None),
                _rate(r.disk_wr_bps if r else None),
                _rate(r.net_rx_bps if r else None),
                _rate(r.net_tx_bps if r else None),
            ]
        )
    return _table(
        ["NAME", "HOST", "STATE", "CPU", "MEM-USED", "DISK-RD", "DISK-WR", "NET-RX", "NET-TX"], rows
    )
