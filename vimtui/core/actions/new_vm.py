"""New VMs made on a host (target "host"), as an operator starts them from a host in vCenter or
virt-manager: from a template (the host's templates first, the default source), and from a cloud image with
cloud-init (user, SSH key, packages, or a user-data file). The work is create.py's and create_image.py's;
installing from an ISO is create_iso.py. Each is a form in the screen, a palette entry and `vimtui host
VERB H`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import libvirt

from vimtui.core.actions.base import Action, ActionError
from vimtui.core.actions.create import create_from_template, template_adds
from vimtui.core.actions.create_image import create_from_image, image_refusal
from vimtui.core.actions.create_iso import pool_choices
from vimtui.core.actions.disk_copy import volume_format
from vimtui.core.actions.params import Choice, Param
from vimtui.core.actions.rollback import no_abort
from vimtui.core.actions.templates import template_choices
from vimtui.core.actions.vm_spec import CREATE_TIMEOUT, MAX_DISK_GIB, name_refusal, size_refusal
from vimtui.core.fleet import quotas
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.model import FleetState, HostState

KEY_FILES = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")

# -- from a template -------------------------------------------------------------------------------------


def _templates(host: HostState, state: FleetState) -> list[Choice]:
    return template_choices(host.name, state)


def _first_template(host: HostState, state: FleetState, _now: float) -> str | None:
    choices = template_choices(host.name, state)
    return choices[0][1] if choices else None


def _check_template(host: HostState, args: dict[str, Any], state: FleetState) -> str | None:
    name, source = args.get("name"), args.get("template")
    why = name_refusal(name) or size_refusal(args.get("vcpus"), args.get("memory_mib"))
    if why is not None:
        return why
    found = state.find_vm(str(source), host.name)
    if not found:
        return f"no VM {source!r} on {host.name} to create from"
    if found[0].state != "shutoff":
        return f"{source} is {found[0].state}: a template must be shut off (its disks are copied)"
    if state.find_vm(str(name), host.name):
        return f"a VM named {name!r} already exists on {host.name}"
    if state.quotas:
        return quotas.refusal(found[0], template_adds(found[0], args, state), state)
    return None


def create_on_host(
    ctx: TaskContext,
    host: str,
    template: str,
    name: str,
    vcpus: int | None = None,
    memory_mib: int | None = None,
    linked: bool = False,
    start: bool = False,
) -> str:
    """`create_from_template` of the VM named `template` on this host."""
    try:
        dom = ctx.conn.lookupByName(template)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise ActionError(f"no VM {template!r} on {host}") from exc
        raise
    return create_from_template(
        ctx, dom, name, vcpus=vcpus, memory_mib=memory_mib, linked=linked, start=start
    )


FROM_TEMPLATE = Action(
    "create",
    "New VM from template",
    "A new VM from a template of this host (its templates are offered first): its disks copied "
    "(--linked: qcow2 overlays), a new name, UUID and MACs",
    create_on_host,
    params=(
        Param(
            "template",
            "choice",
            "the template (or any shut-off VM) to copy",
            required=True,
            from_state=_templates,
            suggest=_first_template,
            metavar="VM",
        ),
        Param("name", "text", "the new VM's name", required=True, metavar="NEW"),
        Param("vcpus", "int", "virtual CPUs (default: the template's)", low=1, high=4096),
        Param(
            "memory_mib",
            "size",
            "memory (default: the template's)",
            low=16,
            high=16 * 2**20,
            flag="memory",
            label="memory",
        ),
        Param("linked", "bool", "qcow2 overlays on the template's disks, not full copies"),
        Param("start", "bool", "start it once made"),
    ),
    target="host",
    new_vm="name",
    check=_check_template,
    needs="admin",
    abort=no_abort,
    timeout=CREATE_TIMEOUT,
    key="N",
    bar=True,
    ok="Create",
)

# -- from a cloud image ----------------------------------------------------------------------------------


def image_volumes(conn: Any, _host: str) -> list[Choice]:
    """The qcow2 volumes of the host's active pools that no VM uses: the cloud images to start from."""
    used: set[str] = set()
    for dom in conn.listAllDomains(0):
        used |= set(_volume_paths(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
    out: list[Choice] = []
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        for vol in pool.listAllVolumes(0):
            if vol.path() in used or f"{pool.name()}/{vol.name()}" in used or volume_format(vol) != "qcow2":
                continue
            size = vol.info()[1]
            out.append(
                (f"{pool.name()}/{vol.name()} ({size / 2**30:.1f} GiB)", f"{pool.name()}/{vol.name()}")
            )
    return sorted(out, key=lambda c: c[1])


def _volume_paths(xml: str) -> list[str]:
    out = []
    for src in ET.fromstring(xml).iterfind("devices/disk/source"):
        if src.get("pool"):
            out.append(f"{src.get('pool')}/{src.get('volume')}")
        elif src.get("file"):
            out.append(src.get("file", ""))
    return out


def _default_key(_host: HostState, _state: FleetState, _now: float) -> str | None:
    """The operator's own public key, as ssh-copy-id would pick it."""
    home = Path.home() / ".ssh"
    return next((f"~/.ssh/{f}" for f in KEY_FILES if (home / f).is_file()), None)


def read_local(path: str, what: str) -> str:
    try:
        return Path(path).expanduser().read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ActionError(f"cannot read the {what} {path}: {getattr(exc, 'strerror', None) or exc}") from exc


def image_args(host: str, args: dict[str, Any]) -> dict[str, Any]:
    """The form's values as create_from_image takes them: the key and user-data files read (locally,
    where vimtui runs), empty ones left out."""
    out = {k: v for k, v in args.items() if k not in ("ssh_key", "user_data") and v not in (None, "", ())}
    if args.get("ssh_key"):
        out["ssh_keys"] = (read_local(str(args["ssh_key"]), "SSH public key"),)
    if args.get("user_data"):
        out["user_data"] = read_local(str(args["user_data"]), "user-data file")
        out.pop("ssh_keys", None)  # a user-data of your own says which keys go in
    return out


def _check_image(host: HostState, args: dict[str, Any], state: FleetState) -> str | None:
    try:
        typed = image_args(host.name, args)
    except ActionError as exc:
        return str(exc)
    why = image_refusal(**typed)
    if why is None and state.find_vm(str(args.get("name")), host.name):
        why = f"a VM named {args.get('name')!r} already exists on {host.name}"
    if why is None and state.tenant is not None and state.quotas:
        asked = quotas.Use(int(args.get("vcpus") or 1), int(args.get("memory_mib") or 512), 1, 0)
        why = quotas.tenant_refusal(state.tenant, asked, state)
    return why


def create_image_on_host(
    ctx: TaskContext,
    host: str,
    name: str,
    image: str,
    pool: str = "default",
    vcpus: int = 1,
    memory_mib: int = 1024,
    disk_gib: int | None = None,
    network: str = "default",
    user: str | None = None,
    ssh_key: str | None = None,
    packages: Sequence[str] = (),
    user_data: str | None = None,
    start: bool = True,
) -> str:
    """`create_from_image` with the key and user-data files read where vimtui runs."""
    given = {"name": name, "image": image, "pool": pool, "vcpus": vcpus, "memory_mib": memory_mib}
    given |= {"disk_gib": disk_gib, "network": network, "user": user, "ssh_key": ssh_key}
    given |= {"packages": tuple(packages), "user_data": user_data, "start": start}
    typed = image_args(host, given)
    if ctx.fleet.state.tenant is not None:  # made for the tenant in scope, or it would not be seen
        typed.setdefault("tenant", ctx.fleet.state.tenant)
    return create_from_image(ctx, **typed)


FROM_IMAGE = Action(
    "create-image",
    "New VM from cloud image",
    "A new VM from a cloud image (qcow2) with cloud-init: a user with your SSH key and sudo, packages to "
    "install, or a user-data file of your own",
    create_image_on_host,
    params=(
        Param("name", "text", "the new VM's name", required=True, metavar="NAME"),
        Param(
            "image",
            "choice",
            "the cloud image: POOL/VOLUME, or a volume of the pool",
            required=True,
            from_host=image_volumes,
            strict=False,
            metavar="POOL/VOLUME",
        ),
        Param(
            "pool",
            "choice",
            "the pool for the new disk and seed",
            default="default",
            from_state=pool_choices,
            strict=False,
        ),
        Param("vcpus", "int", "virtual CPUs", default=1, low=1, high=4096),
        Param(
            "memory_mib",
            "size",
            "memory",
            default=1024,
            low=32,
            high=16 * 2**20,
            flag="memory",
            label="memory",
            metavar="MIB",
        ),
        Param(
            "disk_gib",
            "int",
            "grow the disk to this size (GiB; empty: the image's)",
            low=1,
            high=MAX_DISK_GIB,
            flag="disk",
            label="disk (GiB)",
            metavar="GIB",
        ),
        Param("network", "text", "a libvirt network, or bridge:NAME", default="default"),
        Param("user", "text", "a user to create (sudo, SSH key login only; empty: the image's default user)"),
        Param(
            "ssh_key",
            "path",
            "a public key file for the user",
            suggest=_default_key,
            label="SSH public key",
            metavar="FILE",
        ),
        Param("packages", "list", "packages to install at first boot", metavar="PKG"),
        Param(
            "user_data",
            "path",
            "a cloud-init user-data file of your own, instead of the above",
            metavar="FILE",
        ),
        Param("start", "bool", "start it once made", default=True),
    ),
    target="host",
    new_vm="name",
    check=_check_image,
    needs="admin",
    abort=no_abort,
    timeout=CREATE_TIMEOUT,
    key="K",
    ok="Create",
)

ACTIONS: tuple[Action, ...] = (FROM_TEMPLATE, FROM_IMAGE)
