"""Every action, declared once: the registry the bindings, the palette, the `:` commands, the forms and
the CLI verbs are all made from.

Each module under here holds plain blocking functions `fn(ctx, dom, **args) -> str` and a tuple ACTIONS of
the Action entries that describe them; `operations.py` turns a request into checked tasks. A new module
adds its tuple to `register(...)` below; nothing else needs to know it.
"""

from __future__ import annotations

from vimtui.core.actions import (
    clone,
    console,
    create,
    create_iso,
    devices,
    evacuate,
    guest_screen,
    hosts,
    lifecycle,
    lint_fix,
    migrate,
    networks,
    new_vm,
    pools,
    remove,
    resources,
    snapshots,
    templates,
    tenancy,
    transfers,
    tuning,
    volumes,
    xmledit,
)
from vimtui.core.actions.base import ACTIVE, INACTIVE, RUNNING, Action, VmAction
from vimtui.core.actions.params import Param


def _abort(conn: object, uuid: str) -> None:
    lifecycle.abort_job(conn, uuid)


LIFECYCLE: tuple[VmAction, ...] = (
    VmAction(
        "start",
        "Start",
        "Power on (restores a managed save if there is one)",
        lifecycle.start,
        needs="operator",
        states=INACTIVE,
        not_applicable="only a shut off VM starts (resume a paused one)",
        templates="not",
        key="s",
        bar=True,
    ),
    VmAction(
        "shutdown",
        "Shut down",
        "ACPI power button, wait for the guest to power off (--timeout), then offer force off",
        lifecycle.shutdown,
        needs="operator",
        params=(
            Param(
                "timeout",
                "float",
                "seconds to wait for the guest to power off (0: do not wait)",
                default=lifecycle.SHUTDOWN_TIMEOUT,
                low=0,
                high=86400,
                asked=False,
                metavar="S",
            ),
            Param("force", "bool", "force off when the guest is still on at the timeout", asked=False),
        ),
        states=RUNNING,
        not_applicable="only a running guest can act on the power button",
        timeout=3600.0,
        key="S",
        bar=True,
    ),
    VmAction(
        "reboot",
        "Reboot",
        "Ask the guest to reboot (ACPI)",
        lifecycle.reboot,
        needs="operator",
        states=RUNNING,
        key="R",
    ),
    VmAction(
        "reset",
        "Reset",
        "Hardware reset, without asking the guest",
        lifecycle.reset,
        needs="operator",
        states=ACTIVE,
        destructive=True,
    ),
    VmAction(
        "destroy",
        "Force off",
        "Pull the plug: stop at once, without asking the guest",
        lifecycle.destroy,
        needs="operator",
        states=ACTIVE,
        destructive=True,
        key="X",
    ),
    VmAction(
        "suspend",
        "Suspend",
        "Pause the vCPUs (memory stays on the host)",
        lifecycle.suspend,
        needs="operator",
        states=RUNNING,
        key="p",
        bar=True,
    ),
    VmAction(
        "resume",
        "Resume",
        "Run a paused VM again",
        lifecycle.resume,
        needs="operator",
        states=frozenset({"paused"}),
        not_applicable="only a paused VM resumes",
        key="P",
        bar=True,
    ),
    VmAction(
        "save",
        "Managed save",
        "Save memory to the host and stop; the next start restores it",
        lifecycle.managed_save,
        needs="operator",
        states=frozenset({"running", "paused"}),
        abort=_abort,
        timeout=3600.0,
    ),
    VmAction(
        "autostart",
        "Autostart",
        "Start with its host (--no-enable: no longer); the key toggles it",
        lifecycle.autostart,
        needs="operator",
        params=(
            Param(
                "enable",
                "bool",
                "start with the host (--no-enable: no longer)",
                default=True,
                suggest=lambda vm, _st, _now: not (vm.details and vm.details.autostart),
                asked=False,
            ),
        ),
    ),
)

REGISTRY: dict[str, Action] = {}
"""Every action by id (`vm.start`)."""

ACTIONS: dict[str, Action] = {}
"""The VM actions by name (`start`): what `:start` and `vimtui vm start` look up."""


def register(*actions: Action) -> None:
    """Add actions to the registry: every face finds them from here (a test declares one this way)."""
    for a in actions:
        if a.id in REGISTRY:
            raise ValueError(f"action {a.id} is declared twice")
        names = {p.name for p in a.params}
        if len(names) != len(a.params):
            raise ValueError(f"action {a.id} declares a parameter twice")
        REGISTRY[a.id] = a
        if a.target == "vm":
            ACTIONS[a.name] = a


def unregister(action_id: str) -> None:
    a = REGISTRY.pop(action_id, None)
    if a is not None and a.target == "vm":
        ACTIONS.pop(a.name, None)


def of_kind(target: str) -> list[Action]:
    return [a for a in REGISTRY.values() if a.target == target]


register(
    *LIFECYCLE,
    *remove.ACTIONS,
    *snapshots.ACTIONS,
    *clone.ACTIONS,
    *migrate.ACTIONS,
    *create.ACTIONS,
    *console.ACTIONS,
    *guest_screen.ACTIONS,
    *xmledit.ACTIONS,
    *devices.ACTIONS,
    *hosts.ACTIONS,
    *evacuate.ACTIONS,
    *resources.ACTIONS,
    *tuning.ACTIONS,
    *lint_fix.ACTIONS,
    *tenancy.ACTIONS,
    *pools.ACTIONS,
    *volumes.ACTIONS,
    *transfers.ACTIONS,
    *networks.ACTIONS,
    *templates.ACTIONS,
    *create_iso.ACTIONS,
    *new_vm.ACTIONS,
)

__all__ = ["ACTIONS", "REGISTRY", "Action", "Param", "VmAction", "of_kind", "register", "unregister"]
