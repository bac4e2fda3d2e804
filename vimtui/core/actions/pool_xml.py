"""A storage pool's XML from a form's fields, checked before the host is asked: each type says which fields
it needs (a netfs pool without a server is refused here, naming the field), and libvirt validates the
result against its schema when it is defined (VIR_STORAGE_POOL_DEFINE_VALIDATE). An operator's own XML
(from a file) is taken as is, under the name given, and validated the same way."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import libvirt

from vimtui.core.fleet.tasks import ActionError

TYPES = (
    "dir",
    "fs",
    "netfs",
    "logical",
    "disk",
    "iscsi",
    "iscsi-direct",
    "scsi",
    "mpath",
    "rbd",
    "gluster",
    "zfs",
)
"""The pool types libvirt knows (which ones a host takes depends on its build: it says so when defined)."""

BUILDS = frozenset({"dir", "fs", "netfs", "logical", "disk"})
"""Types whose `build` makes something (a directory, a file system, a VG, a label); the others have none."""

FORMATS = frozenset({"fs", "logical", "disk"})
"""Types whose build writes to a device (a file system, a VG, a partition table)."""

NEEDS: dict[str, tuple[str, ...]] = {
    "dir": ("path",),
    "fs": ("source_path", "path"),
    "netfs": ("source_host", "source_path", "path"),
    "logical": ("source_name",),
    "disk": ("source_path",),
    "iscsi": ("source_host", "source_path"),
    "iscsi-direct": ("source_host", "source_path"),
    "scsi": ("source_name",),
    "mpath": (),
    "rbd": ("source_host", "source_name"),
    "gluster": ("source_host", "source_name"),
    "zfs": ("source_name",),
}
"""The fields each type needs (as the form and the CLI name them)."""

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+:-]*$")


@dataclass(frozen=True, slots=True)
class PoolSpec:
    name: str
    type: str = "dir"
    path: str = ""
    source_host: str = ""
    source_path: str = ""
    source_name: str = ""
    source_format: str = ""


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a pool (None: it can): letters, digits and `_.+:-`, at most 100."""
    if not NAME.match(name) or len(name) > 100:
        return f"{name!r} cannot name a pool: use letters, digits and _ . + : - (not first), at most 100"
    return None


def missing(spec: PoolSpec) -> list[str]:
    """The fields `spec`'s type needs and does not have."""
    return [f for f in NEEDS.get(spec.type, ()) if not getattr(spec, f)]


def build(spec: PoolSpec) -> str:
    """The pool's XML; ActionError names what is missing or wrong."""
    if spec.type not in NEEDS:
        raise ActionError(f"unknown pool type {spec.type!r}: one of {', '.join(TYPES)}")
    if lacking := missing(spec):
        names = ", ".join("--" + f.replace("_", "-") for f in lacking)
        raise ActionError(f"a {spec.type} pool needs {names}")
    if spec.path and not spec.path.startswith("/"):
        raise ActionError(f"--path {spec.path!r}: an absolute path on the host")
    pool = ET.Element("pool", type=spec.type)
    ET.SubElement(pool, "name").text = spec.name
    if spec.type != "dir" and (
        spec.source_host or spec.source_path or spec.source_name or spec.source_format
    ):
        src = ET.SubElement(pool, "source")
        if spec.source_host:
            ET.SubElement(src, "host", name=spec.source_host)
        if spec.source_path:
            if spec.type in ("netfs", "gluster"):
                ET.SubElement(src, "dir", path=spec.source_path)
            else:
                ET.SubElement(src, "device", path=spec.source_path)
        if spec.source_name:
            if spec.type == "scsi":
                ET.SubElement(src, "adapter", name=spec.source_name)
            else:
                ET.SubElement(src, "name").text = spec.source_name
        if spec.source_format:
            ET.SubElement(src, "format", type=spec.source_format)
    path = spec.path or {
        "logical": f"/dev/{spec.source_name}",
        "disk": "/dev",
        "scsi": "/dev/disk/by-path",
    }.get(spec.type, "")
    if path and spec.type not in ("rbd", "gluster", "iscsi-direct"):
        target = ET.SubElement(pool, "target")
        ET.SubElement(target, "path").text = path
    ET.indent(pool)
    return ET.tostring(pool, encoding="unicode")


def read_xml(path: str, name: str) -> str:
    """An operator's pool XML from a file on this machine, its name set to the one given."""
    try:
        text = Path(path).expanduser().read_text()
    except OSError as exc:
        raise ActionError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ActionError(f"{path}: not XML: {exc}") from exc
    if root.tag != "pool":
        raise ActionError(f"{path}: a <pool> document, not <{root.tag}>")
    elem = root.find("name")
    if elem is None:
        elem = ET.SubElement(root, "name")
    elif (elem.text or "").strip() not in ("", name):
        raise ActionError(f"{path} names the pool {elem.text!r}, not {name!r}: say the same name")
    elem.text = name
    return ET.tostring(root, encoding="unicode")


def kind_of(xml: str) -> str:
    return ET.fromstring(xml).get("type", "")


def define_flags() -> int:
    return int(getattr(libvirt, "VIR_STORAGE_POOL_DEFINE_VALIDATE", 0))


def libvirt_says(exc: libvirt.libvirtError) -> str:
    """A libvirt error's message on one line (schema errors come on several, each said once)."""
    lines: list[str] = []
    for line in (exc.get_error_message() or str(exc)).splitlines():
        line = line.strip()
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines)
