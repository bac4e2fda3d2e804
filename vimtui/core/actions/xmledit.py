"""Edit a domain's XML: the operator's $EDITOR on its persistent definition, then a checked redefine.

Nothing changes unless libvirt accepts the whole new definition: XML that is not well-formed, that renames
the domain or changes its UUID is refused before libvirt sees it, and libvirt validates the rest against
its schema (VIR_DOMAIN_DEFINE_VALIDATE); a rejected definition leaves the domain exactly as it was.
"""

from __future__ import annotations

import difflib
import os
import shlex
import subprocess
import tempfile
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.parsers import expat

import libvirt

from vimtui.core.actions.base import VmAction
from vimtui.core.actions.params import Param
from vimtui.core.fleet.tasks import ActionError, TaskContext
from vimtui.core.model import FleetState, VmState

EDIT_FLAGS = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
"""What the editor gets (as `virsh edit`): the persistent definition, secrets included."""


class EditorError(ActionError):
    """The editor could not be run, or exited with an error: the edit is abandoned."""


def editable_xml(dom: Any) -> str:
    """The definition to hand to the editor: the persistent one (what the next boot uses), not the live
    one with its run-time additions."""
    return str(dom.XMLDesc(EDIT_FLAGS))


def definition_of(conn: Any, uuid: str) -> str:
    """`editable_xml` of the domain `uuid` on `conn` (for Fleet.ask: the screen and the CLI's edit)."""
    return editable_xml(conn.lookupByUUIDString(uuid))


def xml_problem(xml: str, name: str, uuid: str) -> str | None:
    """Why `xml` cannot redefine the domain `name`/`uuid` (None: libvirt may judge it). Touches nothing."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        line, column = exc.position
        return (
            f"the XML is not well-formed: {expat.ErrorString(exc.code)} at line {line}, column {column + 1}"
        )
    if root.tag != "domain":
        return f"the XML is a <{root.tag}>, not a <domain>"
    new_name = (root.findtext("name") or "").strip()
    if new_name != name:
        return (
            f"the name must stay {name!r} (the XML says {new_name!r}): rename is not supported here"
            if new_name
            else f"the XML has no <name>: the name must stay {name!r}"
        )
    new_uuid = (root.findtext("uuid") or "").strip()
    if not new_uuid:
        return f"the XML has no <uuid>: the UUID must stay {uuid}"
    if _uuid(new_uuid) != _uuid(uuid):
        return f"the UUID must stay {uuid} (the XML says {new_uuid})"
    return None


def _uuid(text: str) -> str:
    try:
        return str(uuidlib.UUID(text))
    except ValueError:
        return text


def redefine(ctx: TaskContext, dom: Any, xml: str) -> str:
    """Redefine the domain from `xml` after checking it; libvirt's own error when it rejects it."""
    problem = xml_problem(xml, dom.name(), dom.UUIDString())
    if problem is not None:
        raise ActionError(problem)
    persistent = bool(dom.isPersistent())
    before = editable_xml(dom) if persistent else ""
    if persistent and xml == before:
        return "unchanged: nothing to redefine"
    ctx.progress(None, "validating and defining")
    try:
        ctx.conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    except libvirt.libvirtError as exc:
        lines = (exc.get_error_message() or str(exc)).splitlines()
        msg = "; ".join(line.strip() for line in lines if line.strip())
        raise ActionError(f"libvirt rejected the XML, nothing changed: {msg}") from exc
    after = editable_xml(dom)
    changed = changed_lines(before, after)
    if not persistent:
        what = "defined: it is now persistent"
    elif changed == 0:
        return "redefined: libvirt stores the same definition (nothing changed)"
    else:
        what = f"redefined: {changed} line{'s' if changed != 1 else ''} changed"
    if dom.isActive():
        what += "; takes effect at the next boot"
    return what


def changed_lines(before: str, after: str) -> int:
    """Lines changed between two texts: for each differing block, the longer side."""
    matcher = difflib.SequenceMatcher(None, before.splitlines(), after.splitlines(), autojunk=False)
    return sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal")


def edit_text(text: str, suffix: str = ".xml", env: Mapping[str, str] = os.environ) -> str | None:
    """Let the operator edit `text` in $VISUAL, $EDITOR or vi, attached to the terminal; the new text, or
    None when it is unchanged or empty. Raises EditorError when the editor cannot run or exits non-zero.

    The file lives in a private temporary directory (the XML may hold secrets) removed afterwards."""
    editor = (env.get("VISUAL") or "").strip() or (env.get("EDITOR") or "").strip() or "vi"
    try:
        argv = shlex.split(editor)
    except ValueError as exc:
        raise EditorError(f"cannot read the editor command {editor!r}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="vimtui-edit-") as tmp:
        path = Path(tmp) / f"domain{suffix}"
        path.write_text(text, encoding="utf-8")
        try:
            proc = subprocess.run([*argv, str(path)], env=dict(env), check=False)
        except OSError as exc:
            raise EditorError(f"cannot run the editor {editor!r}: {exc.strerror or exc}") from exc
        if proc.returncode != 0:
            raise EditorError(f"the editor {editor!r} exited with status {proc.returncode}: edit abandoned")
        try:
            new = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise EditorError(f"cannot read the edited file back: {exc}") from exc
    if not new.strip() or new == text:
        return None
    return new


def _check(vm: VmState, args: dict[str, Any], state: FleetState) -> str | None:
    xml = args.get("xml")
    if not isinstance(xml, str) or not xml.strip():
        return "edit needs the new XML (xml=...)"
    return xml_problem(xml, vm.name, vm.uuid)


ACTIONS: tuple[VmAction, ...] = (
    VmAction(
        "edit",
        "Edit XML",
        "Edit the domain XML in $EDITOR; libvirt validates it and redefines the domain (next boot)",
        redefine,
        needs="admin",
        params=(Param("xml", "text", "the new domain XML", required=True, asked=False),),
        check=_check,
        bulk=False,
        key="e",
        opens="editor",
    ),
)
