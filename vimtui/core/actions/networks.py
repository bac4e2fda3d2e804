"""Actions on a host's virtual networks (target "network", named HOST/NET): define, start, stop, autostart,
delete. Each is a plain function `fn(ctx, ref, **args) -> str` run as a task on the host's lane (targets.py),
declared once; `vimtui net VERB HOST/NET`, the host detail's network keys, the palette and `:net` are made
from these declarations.

What is checked where: the definition's own shape (mode, subnet, range) before anything is asked
(`check`); what needs the host (a name taken, a subnet overlapping another network, running VMs on a
network to delete) on its lane, first thing in the task, so a refusal touches nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import libvirt

from vimtui.core.actions.base import Action, ActionError
from vimtui.core.actions.net_spec import MODE_CHOICES, SpecError, overlaps, spec, xml
from vimtui.core.actions.params import Param
from vimtui.core.actions.targets import Ref
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.model import FleetState
from vimtui.core.poll.host_networks import NetworkView, interfaces_by_network, parse_network


def _lookup(ctx: TaskContext, name: str) -> Any:
    try:
        return ctx.conn.networkLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
            raise ActionError(f"no network {name!r} on {ctx.host}") from exc
        raise


def _others(conn: Any) -> list[Any]:
    return [parse_network(n.XMLDesc(0)) for n in conn.listAllNetworks(0)]


def _spec_args(args: dict[str, Any]) -> dict[str, Any]:
    return {k: args.get(k) for k in ("mode", "subnet", "dhcp", "dhcp_range", "bridge", "dev") if k in args}


def define(
    ctx: TaskContext,
    ref: Ref,
    mode: str = "nat",
    subnet: str | None = None,
    dhcp: bool = True,
    dhcp_range: str | None = None,
    bridge: str | None = None,
    dev: str | None = None,
    start: bool = True,
    autostart: bool = True,
) -> str:
    """Define the network (refused, nothing defined, when its name is taken or its subnet overlaps another
    network of the host), then start it and mark it to start with the host unless told not to."""
    try:
        new = spec(ref.name, mode, subnet, dhcp, dhcp_range, bridge, dev)
    except SpecError as exc:
        raise ActionError(str(exc)) from exc
    if (why := overlaps(new, _others(ctx.conn))) is not None:
        raise ActionError(f"refused: {why} on {ctx.host}; nothing defined")
    net = ctx.conn.networkDefineXML(xml(new))
    done = [f"defined {new.describe()}"]
    try:
        if start:
            net.create()
            done.append("started")
        if autostart:
            net.setAutostart(1)
            done.append("autostart on")
    except libvirt.libvirtError as exc:  # (a bridge or subnet the host already uses): take it back
        why = exc.get_error_message()
        try:
            if net.isActive():
                net.destroy()
            net.undefine()
        except libvirt.libvirtError as again:
            raise ActionError(f"{'; '.join(done)}, then: {why}; left defined: {again}") from exc
        raise ActionError(f"{network_word(start)} {ref.name} failed: {why}; nothing left defined") from exc
    return "; ".join(done)


def network_word(start: bool) -> str:
    return "starting network" if start else "setting up network"


def start(ctx: TaskContext, ref: Ref) -> str:
    network = ref.name
    net = _lookup(ctx, network)
    if net.isActive():
        return f"network {network} was already active"
    net.create()
    return f"network {network} started"


def _running_users(conn: Any, network: str) -> list[str]:
    return sorted({u.vm for u in interfaces_by_network(conn).get(network, ()) if u.running})


def stop(ctx: TaskContext, ref: Ref) -> str:
    network = ref.name
    net = _lookup(ctx, network)
    if not net.isActive():
        return f"network {network} was already inactive"
    cut = _running_users(ctx.conn, network)
    net.destroy()
    return f"network {network} stopped" + (f"; cut off: {', '.join(cut)}" if cut else "")


def autostart(ctx: TaskContext, ref: Ref, enable: bool = True) -> str:
    network = ref.name
    net = _lookup(ctx, network)
    if not net.isPersistent():
        raise ActionError(f"network {network} is transient: it has no autostart")
    net.setAutostart(1 if enable else 0)
    return f"network {network} autostart {'on' if enable else 'off'}"


def delete(ctx: TaskContext, ref: Ref, force: bool = False) -> str:
    """Stop and undefine the network; refused while running VMs use it, unless forced (their interfaces
    stay defined, on a network that is gone)."""
    network = ref.name
    net = _lookup(ctx, network)
    users = _running_users(ctx.conn, network)
    if users and not force:
        raise ActionError(
            f"refused: running VMs use network {network}: {', '.join(users)}; "
            "move them first, or delete it anyway with force (after a confirmation that lists them)"
        )
    if net.isActive():
        net.destroy()
    if net.isPersistent():
        net.undefine()
    return f"network {network} deleted" + (f"; {', '.join(users)} lost it" if users else "")


def preview_delete(conn: Any, name: str, args: dict[str, Any]) -> Sequence[str]:
    """What a delete takes away: the network and the VMs on it (running ones refuse it unless forced)."""
    net = conn.networkLookupByName(name)
    p = parse_network(net.XMLDesc(0))
    users = interfaces_by_network(conn).get(name, [])
    running = sorted({u.vm for u in users if u.running})
    idle = sorted({u.vm for u in users if not u.running} - set(running))
    state = "active" if net.isActive() else "inactive"
    if running and not args.get("force"):
        raise ValueError(
            f"refused: running VMs use network {name}: {', '.join(running)}; delete it anyway with force"
        )
    lines = [f"network {name}: {p.mode}, {', '.join(p.subnets) or 'no address'}, {state}"]
    if running:
        lines.append(f"running VMs on it lose it (forced): {', '.join(running)}")
    if idle:
        lines.append(f"shut off VMs with an interface on it (they will not start): {', '.join(idle)}")
    return lines


def preview_stop(conn: Any, name: str, _args: dict[str, Any]) -> Sequence[str]:
    conn.networkLookupByName(name)
    running = _running_users(conn, name)
    if not running:
        return [f"network {name}: no running VM on it"]
    return [f"running VMs on it lose their network until it starts again: {', '.join(running)}"]


def preview_define(conn: Any, name: str, args: dict[str, Any]) -> Sequence[str]:
    try:
        new = spec(name, **_spec_args(args))
    except SpecError as exc:
        raise ValueError(str(exc)) from exc
    if (why := overlaps(new, _others(conn))) is not None:
        raise ValueError(f"refused: {why}")
    return [f"define {new.describe()}"]


def _check_define(ref: Ref, args: dict[str, Any], _state: FleetState) -> str | None:
    try:
        spec(ref.name, **_spec_args(args))
    except SpecError as exc:
        return str(exc)
    return None


ACTIONS: tuple[Action, ...] = (
    Action(
        "define",
        "Define network",
        "Define a virtual network (nat, isolated, routed, open, or an existing bridge), started and "
        "autostarted unless told not to; a subnet overlapping another network of the host is refused",
        define,
        params=(
            Param("mode", "choice", "how guests reach beyond it", default="nat", choices=MODE_CHOICES),
            Param("subnet", "text", "the subnet (192.168.100.0/24: the host takes .1), not for bridge mode"),
            Param("dhcp", "bool", "serve DHCP on it (--no-dhcp: addresses set by hand)", default=True),
            Param(
                "dhcp_range",
                "text",
                "START-END (default: every address after the host's)",
                metavar="START-END",
            ),
            Param(
                "bridge",
                "text",
                "bridge mode: the host's bridge; else the new bridge's name (default virbrN)",
            ),
            Param("dev", "text", "nat/routed: the host's outgoing interface (default: any)"),
            Param("start", "bool", "start it now (--no-start: only define)", default=True, asked=False),
            Param("autostart", "bool", "start it with the host", default=True),
        ),
        target="network",
        check=_check_define,
        preview=preview_define,
        needs="admin",
        timeout=60.0,
        key="N",
        bar=True,
        ok="Define",
    ),
    Action(
        "start",
        "Start network",
        "Start an inactive network",
        start,
        target="network",
        needs="admin",
        timeout=60.0,
        key="s",
        bar=True,
    ),
    Action(
        "stop",
        "Stop network",
        "Stop the network: VMs on it lose it until it starts again (the confirmation names them)",
        stop,
        target="network",
        needs="admin",
        destructive=True,
        preview=preview_stop,
        timeout=60.0,
        key="S",
    ),
    Action(
        "autostart",
        "Network autostart",
        "Start the network with its host (--no-enable: no longer); the key toggles it",
        autostart,
        params=(
            Param(
                "enable", "bool", "start with the host (--no-enable: no longer)", default=True, asked=False
            ),
        ),
        target="network",
        needs="admin",
        timeout=30.0,
        key="a",
    ),
    Action(
        "delete",
        "Delete network",
        "Stop and undefine the network; refused while running VMs use it unless forced (the confirmation "
        "lists them)",
        delete,
        params=(Param("force", "bool", "delete even while running VMs use it (they lose it)", asked=False),),
        target="network",
        needs="admin",
        destructive=True,
        preview=preview_delete,
        timeout=60.0,
        key="D",
        bar=True,
    ),
)


def view_refusal(name: str, view: NetworkView | None) -> str | None:
    """Why the network action `name` does not apply to the network as last read (None: it does; define
    needs no network): greys a key or a palette entry. The host judges again when the task runs."""
    if name == "define":
        return None
    if view is None:
        return "no network selected"
    if name == "start" and view.active:
        return f"network {view.name} is already active"
    if name == "stop" and not view.active:
        return f"network {view.name} is not active"
    if name == "autostart" and not view.persistent:
        return f"network {view.name} is transient: it has no autostart"
    return None
