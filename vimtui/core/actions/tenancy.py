"""A VM's tenant and tags, kept in its own domain XML: `<metadata><vimtui:vm>` in vimtui's namespace
(`<vimtui:tags>web,db</vimtui:tags><vimtui:tenant>acme</vimtui:tenant>`, what domxml reads), so they move
with the VM, survive a restart of the host and other tools can read them. Written with virDomainSetMetadata
to the running VM and to its persistent definition; what else the element holds is kept.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import libvirt

from vimtui.core.actions.base import VmAction
from vimtui.core.actions.params import Param
from vimtui.core.config.loading import valid_tenant
from vimtui.core.fleet.tasks import ActionError, TaskContext
from vimtui.core.model import FleetState, VmState
from vimtui.core.poll.domxml import VIMTUI_NS

ELEMENT = libvirt.VIR_DOMAIN_METADATA_ELEMENT
PREFIX = "vimtui"


def _flags(dom: Any) -> int:
    """Where a change goes: the running VM and its definition (a transient VM has only the one, a shut
    off VM only the other)."""
    flags = 0
    if dom.isActive():
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    if dom.isPersistent():
        flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
    return flags


def read_element(dom: Any) -> ET.Element:
    """The VM's `vm` element in vimtui's namespace (the definition's when it has one), or a new one."""
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG if dom.isPersistent() else libvirt.VIR_DOMAIN_AFFECT_LIVE
    try:
        text = dom.metadata(ELEMENT, VIMTUI_NS, flags)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            raise
        return ET.Element("vm")
    el = ET.fromstring(text)
    for node in el.iter():  # libvirt hands it back without the namespace; be sure of it either way
        node.tag = node.tag.rpartition("}")[2]
    return el


def write_element(dom: Any, el: ET.Element) -> None:
    dom.setMetadata(ELEMENT, ET.tostring(el, encoding="unicode"), PREFIX, VIMTUI_NS, _flags(dom))


def _child(el: ET.Element, tag: str) -> ET.Element:
    child = el.find(tag)
    return child if child is not None else ET.SubElement(el, tag)


def tags_of(el: ET.Element) -> list[str]:
    child = el.find("tags")
    text = (child.text or "") if child is not None else ""
    return [t.strip() for t in text.split(",") if t.strip()]


def tag_problem(tag: str) -> str | None:
    if not tag or tag != tag.strip() or any(c.isspace() or not c.isprintable() or c == "," for c in tag):
        return f"bad tag {tag!r}: no spaces, commas or control characters"
    return None


def changed_tags(now: Sequence[str], add: Iterable[str], remove: Iterable[str]) -> list[str]:
    """The tags after adding and removing (order kept, added ones last, no repeats)."""
    gone = set(remove)
    out = [t for t in now if t not in gone]
    for t in add:
        if t not in out and t not in gone:
            out.append(t)
    return out


def tag(
    ctx: TaskContext, dom: Any, add: Sequence[str] = (), remove: Sequence[str] = (), tenant: str = ""
) -> str:
    """Tags added and removed; the tenant set too when one is given (empty: left as it is)."""
    for t in (*add, *remove):
        if (why := tag_problem(t)) is not None:
            raise ActionError(why)
    tenant = tenant.strip()
    if tenant and (why := valid_tenant(tenant)) is not None:
        raise ActionError(why)
    el = read_element(dom)
    before = tags_of(el)
    after = changed_tags(before, add, remove)
    said = [f"tags: {', '.join(after) or 'none'}" + ("" if after != before else " (unchanged)")]
    if after != before:
        if after:
            _child(el, "tags").text = ",".join(after)
        elif (child := el.find("tags")) is not None:
            el.remove(child)
    was = _tenant(el)
    if tenant and tenant != was:
        _child(el, "tenant").text = tenant
        said.append(f"tenant: {tenant}" + (f" (was {was})" if was else ""))
    if after != before or (tenant and tenant != was):
        write_element(dom, el)
    return "; ".join(said)


def _tenant(el: ET.Element) -> str:
    child = el.find("tenant")
    return (child.text or "").strip() if child is not None else ""


def set_tenant(ctx: TaskContext, dom: Any, tenant: str = "") -> str:
    tenant = tenant.strip()
    if tenant and (why := valid_tenant(tenant)) is not None:
        raise ActionError(why)
    el = read_element(dom)
    child = el.find("tenant")
    before = _tenant(el)
    if before == tenant:
        return f"tenant unchanged: {tenant or 'none'}"
    if tenant:
        _child(el, "tenant").text = tenant
    elif child is not None:
        el.remove(child)
    write_element(dom, el)
    return f"tenant: {tenant or 'none'}" + (f" (was {before})" if before else "")


def _check_tags(vm: VmState, args: Mapping[str, Any], state: FleetState) -> str | None:
    add, remove = tuple(args.get("add") or ()), tuple(args.get("remove") or ())
    if not add and not remove and not str(args.get("tenant") or "").strip():
        return "nothing to change (tags to add or remove, or a tenant)"
    why = next((why for t in (*add, *remove) if (why := tag_problem(t)) is not None), None)
    return why or (_check_tenant(vm, args, state) if args.get("tenant") else None)


def _check_tenant(vm: VmState, args: Mapping[str, Any], state: FleetState) -> str | None:
    tenant = str(args.get("tenant") or "").strip()
    if tenant and (why := valid_tenant(tenant)) is not None:
        return why
    if state.tenant is not None and tenant != state.tenant:
        return f"scoped to tenant {state.tenant}: a VM given to another would leave this view"
    return None


def _current_tenant(vm: VmState, _state: FleetState, _now: float) -> str:
    return (vm.details.tenant or "") if vm.details is not None else ""


def tag_line(words: Sequence[str]) -> list[str]:
    """A `:tag` line's `+web -db` words as `add=web remove=db` (the VM names and other words kept)."""
    add = [w[1:] for w in words if w[:1] == "+" and len(w) > 1]
    remove = [w[1:] for w in words if w[:1] == "-" and len(w) > 1]
    out = [w for w in words if not (w[:1] in "+-" and len(w) > 1)]
    out += [f"add={','.join(add)}"] if add else []
    return out + ([f"remove={','.join(remove)}"] if remove else [])


ACTIONS: tuple[VmAction, ...] = (
    VmAction(
        "tag",
        "Tenant and tags",
        "Add and remove tags, and set the tenant (kept in the domain XML's vimtui metadata): "
        "vm tag NAME +web -db",
        tag,
        params=(
            Param("add", "list", "tags to add", metavar="TAG"),
            Param("remove", "list", "tags to remove", metavar="TAG"),
            Param(
                "tenant", "text", "the tenant to set (empty: left as it is)", flag="set-tenant", metavar="T"
            ),
        ),
        check=_check_tags,
        needs="admin",
        key="T",
        ok="Set",
    ),
    VmAction(
        "tenant",
        "Tenant",
        "Set the tenant the VM belongs to (kept in the domain XML's vimtui metadata; empty: none)",
        set_tenant,
        params=(
            Param(
                "tenant",
                "text",
                'the tenant ("": none)',
                suggest=_current_tenant,
                metavar="TENANT",
                positional=True,
            ),
        ),
        check=_check_tenant,
        needs="admin",
        ok="Set tenant",
    ),
)
