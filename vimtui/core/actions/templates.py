"""Templates: a shut-off VM marked `<vimtui:template/>` in its own domain XML (vimtui's metadata namespace,
beside the tenant and tags of tenancy.py), so the mark moves with the VM and other tools read it with
`virsh metadata`. A template is a source to create from, not a VM to run: start and delete refuse it until
it is unmarked (the check is made again on the host when the task runs, so a stale screen cannot start
one). "New VM from template" on a host offers its templates first.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import libvirt

from vimtui.core.actions.base import ActionError, VmAction, dom_state
from vimtui.core.actions.tenancy import read_element, write_element
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.model import FleetState, VmState, state_name

TAG = "template"
UNMARK_HINT = "unmark it first (vm untemplate)"


def is_template(vm: VmState) -> bool:
    """Marked as a template, as its domain XML was last read."""
    return vm.details is not None and vm.details.template


def marked(dom: Any) -> bool:
    """Whether the domain's definition holds the template mark now (asked of the host)."""
    return read_element(dom).find(TAG) is not None


def refuse_if_template(dom: Any, what: str) -> None:
    """Raised on the host when the VM is a template: the fleet state may be older than the mark."""
    if marked(dom):
        raise ActionError(f"{dom.name()} is a template: {what} refused; {UNMARK_HINT}")


def mark(ctx: TaskContext, dom: Any) -> str:
    """Mark a shut-off VM as a template (its definition's metadata)."""
    state = dom_state(dom)
    if state != libvirt.VIR_DOMAIN_SHUTOFF:
        raise ActionError(f"{dom.name()} is {state_name(state)}: shut it down before making it a template")
    if not dom.isPersistent():
        raise ActionError(f"{dom.name()} is transient: only a defined VM can be a template")
    el = read_element(dom)
    if el.find(TAG) is not None:
        return "was already a template"
    ET.SubElement(el, TAG)
    write_element(dom, el)
    return "marked as a template: start and delete refuse it until it is unmarked"


def unmark(ctx: TaskContext, dom: Any) -> str:
    """Make a template an ordinary VM again."""
    el = read_element(dom)
    found = el.find(TAG)
    if found is None:
        return "was not a template"
    el.remove(found)
    write_element(dom, el)
    return "no longer a template: an ordinary VM again"


def template_choices(host: str, state: FleetState) -> list[tuple[str, str]]:
    """What a create form offers as its source on `host`: the templates first, then the other shut-off
    VMs (any shut-off VM can be copied), each labelled so."""
    vms = sorted(state.vms_on(host), key=lambda v: v.name)
    first = [(f"{v.name} (template)", v.name) for v in vms if is_template(v)]
    rest = [(f"{v.name} (shut-off VM)", v.name) for v in vms if not is_template(v) and v.state == "shutoff"]
    return first + rest


def templates_on(host: str, state: FleetState) -> Sequence[VmState]:
    return [v for v in state.vms_on(host) if is_template(v)]


ACTIONS: tuple[VmAction, ...] = (
    VmAction(
        "template",
        "Mark as template",
        "Mark a shut-off VM as a template (vimtui metadata in its domain XML): listed apart, the default "
        "source of new VMs, start and delete refused until unmarked",
        mark,
        needs="admin",
        states=frozenset({"shutoff"}),
        not_applicable="shut it down before making it a template",
        templates="not",
    ),
    VmAction(
        "untemplate",
        "Unmark template",
        "Make a template an ordinary VM again (it can be started and deleted)",
        unmark,
        needs="admin",
        templates="only",
    ),
)
