"""Every VM action, by name: the one table the bindings, the palette and the CLI verbs are made from.

Each module under here holds plain blocking functions `fn(ctx, dom, **args) -> str` and a tuple ACTIONS of
the VmAction entries that describe them; `operations.py` turns a request into checked tasks.
"""

from __future__ import annotations

from vimtui.core.actions import (
    clone,
    console,
    create,
    devices,
    lifecycle,
    migrate,
    remove,
    snapshots,
    xmledit,
)
from vimtui.core.actions.base import ACTIVE, INACTIVE, RUNNING, VmAction


def _abort(conn: object, uuid: str) -> None:
    lifecycle.abort_job(conn, uuid)


LIFECYCLE: tuple[VmAction, ...] = (
    VmAction(
        "start",
        "Start",
        "Power on (restores a managed save if there is one)",
        lifecycle.start,
        states=INACTIVE,
        not_applicable="only a shut off VM starts (resume a paused one)",
        key="s",
    ),
    VmAction(
        "shutdown",
        "Shut down",
        "ACPI power button, wait for the guest to power off (--timeout), then offer force off",
        lifecycle.shutdown,
        states=RUNNING,
        not_applicable="only a running guest can act on the power button",
        timeout=3600.0,
        key="S",
    ),
    VmAction(
        "reboot",
        "Reboot",
        "Ask the guest to reboot (ACPI)",
        lifecycle.reboot,
        states=RUNNING,
        key="R",
    ),
    VmAction(
        "reset",
        "Reset",
        "Hardware reset, without asking the guest",
        lifecycle.reset,
        states=ACTIVE,
        destructive=True,
    ),
    VmAction(
        "destroy",
        "Force off",
        "Pull the plug: stop at once, without asking the guest",
        lifecycle.destroy,
        states=ACTIVE,
        destructive=True,
        key="X",
    ),
    VmAction(
        "suspend",
        "Suspend",
        "Pause the vCPUs (memory stays on the host)",
        lifecycle.suspend,
        states=RUNNING,
        key="p",
    ),
    VmAction(
        "resume",
        "Resume",
        "Run a paused VM again",
        lifecycle.resume,
        states=frozenset({"paused"}),
        not_applicable="only a paused VM resumes",
        key="P",
    ),
    VmAction(
        "save",
        "Managed save",
        "Save memory to the host and stop; the next start restores it",
        lifecycle.managed_save,
        states=frozenset({"running", "paused"}),
        abort=_abort,
        timeout=3600.0,
    ),
    VmAction(
        "autostart",
        "Autostart",
        "Start with its host (--off: no longer)",
        lifecycle.autostart,
    ),
)

ACTIONS: dict[str, VmAction] = {
    a.name: a
    for a in (
        *LIFECYCLE,
        *remove.ACTIONS,
        *snapshots.ACTIONS,
        *clone.ACTIONS,
        *migrate.ACTIONS,
        *create.ACTIONS,
        *console.ACTIONS,
        *xmledit.ACTIONS,
        *devices.ACTIONS,
    )
}

__all__ = ["ACTIONS", "VmAction"]
