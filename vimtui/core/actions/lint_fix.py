"""The fixes fleet lint offers where they are safe: each changes only the domain's own definition, loses
nothing, and applies at the next start unless it can apply now (autostart, the balloon's period). One
action, `vm.lint-fix --rule RULE`, so the lint view, the palette, `:` and the CLI share it; admin only."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import libvirt

from vimtui.core.actions.base import VmAction
from vimtui.core.actions.params import Param
from vimtui.core.fleet.tasks import ActionError, TaskContext
from vimtui.core.lint.catalog import FIXABLE, RULES
from vimtui.core.lint.domview import LOOPBACK
from vimtui.core.poll.domxml import AGENT_CHANNEL

EDIT_FLAGS = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
AGENT_XML = f"<channel type='unix'><target type='virtio' name='{AGENT_CHANNEL}'/></channel>"


def _redefine(ctx: TaskContext, dom: Any, change: Any) -> int:
    """Edit the persistent definition with `change(root) -> n changed`; defined again only if n > 0."""
    if not dom.isPersistent():
        raise ActionError("a transient VM has no definition to fix")
    root = ET.fromstring(dom.XMLDesc(EDIT_FLAGS))
    n = int(change(root))
    if n:
        ctx.conn.defineXMLFlags(ET.tostring(root, encoding="unicode"), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    return n


def _loopback(root: ET.Element) -> int:
    n = 0
    for g in root.iterfind("devices/graphics"):
        if g.get("type") not in ("vnc", "spice") or g.get("passwd"):
            continue
        changed = False
        if g.get("listen") and not g.get("listen", "").startswith(LOOPBACK):
            g.set("listen", "127.0.0.1")
            changed = True
        for el in g.findall("listen"):
            if el.get("type", "address") == "network" or (
                el.get("type", "address") == "address" and not el.get("address", "127.").startswith(LOOPBACK)
            ):
                el.attrib.clear()
                el.set("type", "address")
                el.set("address", "127.0.0.1")
                changed = True
        n += changed
    return n


def _safe_cache(root: ET.Element) -> int:
    n = 0
    for drv in root.iterfind("devices/disk/driver"):
        if drv.get("cache") == "unsafe":
            del drv.attrib["cache"]  # the hypervisor's default (writeback): flushes reach the disk
            n += 1
    return n


def fix(ctx: TaskContext, dom: Any, rule: str, period: int = 10) -> str:
    active = bool(dom.isActive())
    later = " (applies at its next start)" if active else ""
    if rule == "open-display":
        n = _redefine(ctx, dom, _loopback)
        return f"{n} display(s) now listen on 127.0.0.1{later}" if n else "no display listens beyond loopback"
    if rule == "unsafe-cache":
        n = _redefine(ctx, dom, _safe_cache)
        return f"{n} disk(s) no longer cache=unsafe{later}" if n else "no disk has cache=unsafe"
    if rule == "no-agent":
        if not dom.isPersistent():
            raise ActionError("a transient VM has no definition to fix")
        if AGENT_CHANNEL in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE):
            return "it already has a guest agent channel"
        dom.attachDeviceFlags(AGENT_XML, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        return f"guest agent channel added{later}"
    if rule == "critical-autostart":
        if not dom.isPersistent():
            raise ActionError("a transient VM cannot start with its host")
        dom.setAutostart(1)
        return "starts with its host"
    if rule == "no-memory-stats":
        balloon = ET.fromstring(dom.XMLDesc(0)).find("devices/memballoon")
        if balloon is None or balloon.get("model") == "none":
            raise ActionError("it has no memory balloon: add one to its definition (at its next start)")
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if active else 0)
        dom.setMemoryStatsPeriod(period, flags)
        return f"memory statistics every {period} s" + (", now and at its next start" if active else "")
    raise ActionError(f"no fix for lint rule {rule!r}")


ACTIONS: tuple[VmAction, ...] = (
    VmAction(
        "lint-fix",
        "Fix lint finding",
        "Put a lint finding right where it is safe (display to loopback, agent channel, cache, autostart, "
        "memory statistics)",
        fix,
        params=(
            Param(
                "rule",
                "choice",
                "the lint rule to fix",
                required=True,
                choices=tuple((f"{r}: {RULES[r].title}", r) for r in FIXABLE),
                metavar="RULE",
            ),
            Param(
                "period",
                "int",
                "seconds between memory statistics (no-memory-stats)",
                default=10,
                low=1,
                high=3600,
            ),
        ),
        needs="admin",
        bulk=True,
    ),
)
