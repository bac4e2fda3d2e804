"""Power and state: start, shutdown, reboot, reset, force off, suspend, resume, managed save, autostart."""

from __future__ import annotations

from typing import Any

import libvirt

from vimtui.core.actions.base import ActionError, dom_state, job_progress
from vimtui.core.actions.templates import refuse_if_template
from vimtui.core.fleet.tasks import TaskContext

SHUTOFF = libvirt.VIR_DOMAIN_SHUTOFF
SHUTDOWN_TIMEOUT = 120.0
"""Seconds a guest gets to power off after the ACPI button before shutdown gives up (or forces)."""


def start(ctx: TaskContext, dom: Any) -> str:
    refuse_if_template(dom, "start")
    restored = bool(dom.hasManagedSaveImage(0))
    ctx.progress(None, "restoring its saved memory" if restored else "starting")
    dom.create()
    return "started from its managed save" if restored else "started"


def shutdown(ctx: TaskContext, dom: Any, timeout: float = SHUTDOWN_TIMEOUT, force: bool = False) -> str:
    """ACPI power button, then wait for the guest to power off; at the deadline, force it off if asked,
    else fail saying so (the screen then offers force off)."""
    dom.shutdown()
    if timeout <= 0:
        return "ACPI shutdown sent (not waiting for the guest)"
    ctx.progress(0.0, f"ACPI shutdown sent, waiting up to {timeout:.0f} s")
    if ctx.wait(lambda: dom_state(dom) == SHUTOFF, timeout, interval=0.5):
        return "shut down by the guest (ACPI)"
    if force:
        dom.destroy()
        return f"still running after {timeout:.0f} s: forced off"
    raise ActionError(
        f"still running after {timeout:.0f} s: the guest did not act on the ACPI power button "
        "(force off to stop it)"
    )


def reboot(ctx: TaskContext, dom: Any) -> str:
    dom.reboot(0)
    return "reboot requested from the guest (ACPI)"


def reset(ctx: TaskContext, dom: Any) -> str:
    dom.reset(0)
    return "reset (hardware reset, no guest shutdown)"


def destroy(ctx: TaskContext, dom: Any) -> str:
    dom.destroy()
    return "forced off"


def suspend(ctx: TaskContext, dom: Any) -> str:
    dom.suspend()
    return "paused"


def resume(ctx: TaskContext, dom: Any) -> str:
    dom.resume()
    return "resumed"


def managed_save(ctx: TaskContext, dom: Any) -> str:
    with job_progress(ctx, dom, "saving memory"):
        dom.managedSave(0)
    return "memory saved to the host and stopped; start restores it"


def autostart(ctx: TaskContext, dom: Any, enable: bool = True) -> str:
    if not dom.isPersistent():
        raise ActionError("a transient VM cannot start with its host")
    dom.setAutostart(1 if enable else 0)
    return "starts with its host" if enable else "no longer starts with its host"


def abort_job(conn: Any, uuid: str) -> None:
    conn.lookupByUUIDString(uuid).abortJob()
