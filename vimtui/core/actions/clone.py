"""Clone: a new VM from a shut-off one, each disk fully copied through its storage pool (or, linked, a
qcow2 overlay on the source's disk); new name, UUID and MACs; progress while copying; nothing left behind
on failure or cancel. The same machinery as creating from a template, with the source's size kept."""

from __future__ import annotations

from typing import Any

from vimtui.core.actions.base import INACTIVE, VmAction
from vimtui.core.actions.create import create_from_template, template_adds, template_check
from vimtui.core.actions.params import Param
from vimtui.core.fleet.tasks import TaskContext


def clone(ctx: TaskContext, dom: Any, name: str, linked: bool = False, start: bool = False) -> str:
    result = create_from_template(ctx, dom, name, start=start, linked=linked)
    return "cloned" + result.removeprefix("created")


ACTIONS: tuple[VmAction, ...] = (
    VmAction(
        "clone",
        "Clone",
        "Copy a shut-off VM: its disks through the pool (--linked: qcow2 overlays), new name, UUID, MACs",
        clone,
        needs="admin",
        params=(
            Param(
                "name",
                "text",
                "the clone's name",
                required=True,
                suggest=lambda vm, st, now: f"{vm.name}-clone",
                metavar="NEW",
            ),
            Param("linked", "bool", "qcow2 overlays on the source's disks"),
            Param("start", "bool", "start the clone"),
        ),
        states=INACTIVE,
        not_applicable="shut it down first: its disks are copied",
        check=template_check,
        adds=template_adds,
        timeout=6 * 3600.0,
        bulk=False,
        key="C",
    ),
)
