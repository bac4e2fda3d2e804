"""Actions on a host (target "host"): a plain function `fn(ctx, host, **args) -> str` run as a task on the
host's task lane, declared once like the VM actions; `vimtui host VERB H`, the host tree's keys and the
palette are made from these declarations.

Maintenance: a host in maintenance is marked in the tree and left out of placement (new VMs, migration
and evacuation destinations); its VMs are not touched. The mark is vimtui's own (core/fleet/maintenance.py),
so it is set or cleared while the host does not answer too.
"""

from __future__ import annotations

import time
from typing import Any

from vimtui.core.actions.base import Action, ActionError
from vimtui.core.actions.params import Param
from vimtui.core.fleet.maintenance import MaintenanceError
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.model import FleetState, HostState

ON_OFF = (("on", "on"), ("off", "off"))


def maintenance(ctx: TaskContext, host: str, mode: str) -> str:
    """Put `host` in maintenance (mode on) or back in service (off)."""
    fleet = ctx.fleet
    on = mode == "on"
    try:
        changed = fleet.maintenance.set(host, on, fleet.clock())
    except MaintenanceError as exc:
        raise ActionError(str(exc)) from exc
    if not changed:
        return "was already in maintenance" if on else "was already in service"
    if on:
        running = sum(1 for v in fleet.state.vms_on(host) if v.state == "running")
        extra = f"; its {running} running VM(s) stay where they are" if running else ""
        return f"in maintenance: left out of placement{extra}"
    return "back in service: placement may choose it again"


def _mode_suggest(host: HostState, _state: FleetState, _now: float) -> str:
    return "off" if host.maintenance is not None else "on"


def since(host: HostState) -> str:
    """When the host went into maintenance, for a person ("" when it is in service)."""
    if host.maintenance is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(host.maintenance))


def _check(host: HostState, args: dict[str, Any], _state: FleetState) -> str | None:
    mode = args.get("mode")
    if mode not in ("on", "off"):
        return "say on or off"
    return None


ACTIONS: tuple[Action, ...] = (
    Action(
        "maintenance",
        "Maintenance",
        "Mark the host in maintenance (on) or back in service (off): left out of placement; VMs untouched",
        maintenance,
        params=(
            Param(
                "mode",
                "choice",
                "on: in maintenance; off: back in service",
                required=True,
                choices=ON_OFF,
                suggest=_mode_suggest,
                metavar="on|off",
            ),
        ),
        target="host",
        check=_check,
        mutates=False,
        needs="admin",
        connects=False,
        timeout=30.0,
        key="O",
        bar=True,
    ),
)
