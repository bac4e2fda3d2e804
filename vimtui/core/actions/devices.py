"""Attach and detach a disk or a NIC: always in the persistent definition, and in the running guest too when
it runs (VIR_DOMAIN_AFFECT_CONFIG | VIR_DOMAIN_AFFECT_LIVE).

A live unplug is a request to the guest, which acknowledges it when it likes (or never: no ACPI hotplug
support, a busy or hung guest); a detach waits until the device is really gone from the live definition,
and says so plainly when it is still there at the deadline.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import quoteattr

import libvirt

from vimtui.core.actions.base import VmAction
from vimtui.core.actions.device_args import (
    BUS_PREFIX,
    DEVICES,
    check_disk,
    check_nic,
    disk_args_problem,
    nic_args_problem,
)
from vimtui.core.actions.params import Choice, Param
from vimtui.core.fleet.tasks import ActionError, TaskContext
from vimtui.core.model import FleetState, VmState

CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG
LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
DETACH_TIMEOUT = 60.0
"""Seconds a live detach waits for the guest to release the device."""


# -- reading the definitions ------------------------------------------------------------------------


def _message(exc: libvirt.libvirtError) -> str:
    return (exc.get_error_message() or str(exc)).strip()


def _flags(dom: Any) -> int:
    """Where a change goes: the config (unless the domain is transient) and the live guest (if active)."""
    flags = CONFIG if dom.isPersistent() else 0
    if dom.isActive():
        flags |= LIVE
    return flags


def _where(flags: int) -> str:
    if flags & CONFIG and flags & LIVE:
        return "live and in its config"
    if flags & LIVE:
        return "live only (a transient VM has no config)"
    return "in its config (it is not running: from its next start)"


def _definitions(dom: Any) -> tuple[ET.Element | None, ET.Element | None]:
    """(persistent, live) definitions; None for the one the domain does not have."""
    config = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) if dom.isPersistent() else None
    live = ET.fromstring(dom.XMLDesc(0)) if dom.isActive() else None
    return config, live


def _disk_target(el: ET.Element) -> str:
    t = el.find("target")
    return t.get("dev", "") if t is not None else ""


def _disk_source(el: ET.Element) -> str:
    s = el.find("source")
    if s is None:
        return ""
    if s.get("pool"):
        return f"{s.get('pool')}/{s.get('volume')}"
    return s.get("file") or s.get("dev") or s.get("name") or ""


def _nic_mac(el: ET.Element) -> str:
    m = el.find("mac")
    return (m.get("address") or "").lower() if m is not None else ""


def _disks(root: ET.Element | None) -> dict[str, ET.Element]:
    return {_disk_target(d): d for d in root.iterfind("devices/disk")} if root is not None else {}


def _nics(root: ET.Element | None) -> dict[str, ET.Element]:
    return {_nic_mac(n): n for n in root.iterfind("devices/interface")} if root is not None else {}


def _device_xml(el: ET.Element) -> str:
    """A device element as detachDeviceFlags takes it: without the run-time alias and the address, which
    may differ between the live and the persistent copy (libvirt matches a disk by target, a NIC by MAC)."""
    copy = ET.fromstring(ET.tostring(el, encoding="unicode"))
    for child in list(copy):
        if child.tag in ("alias", "address"):
            copy.remove(child)
    return ET.tostring(copy, encoding="unicode")


def _attach(ctx: TaskContext, dom: Any, xml: str, flags: int, what: str) -> None:
    try:
        dom.attachDeviceFlags(xml, flags)
    except libvirt.libvirtError as exc:
        raise ActionError(f"libvirt refused to attach {what}, nothing changed: {_message(exc)}") from exc


# -- disks ------------------------------------------------------------------------------------------


def _volume(ctx: TaskContext, source: str) -> tuple[Any, Any]:
    """(pool, volume) named by "POOL/VOLUME" or by an absolute path on the host; refuses unknown ones."""
    conn = ctx.conn
    if source.startswith("/"):
        try:
            vol = conn.storageVolLookupByPath(source)
        except libvirt.libvirtError:
            for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
                path = ET.fromstring(pool.XMLDesc(0)).findtext("target/path") or ""
                if path and source.startswith(path.rstrip("/") + "/"):
                    _refresh(pool)  # a file put there behind libvirt's back
            try:
                vol = conn.storageVolLookupByPath(source)
            except libvirt.libvirtError as exc:
                raise ActionError(
                    f"{source} is not a volume of any active storage pool on {ctx.host} "
                    "(only pool volumes can be attached: their format is known)"
                ) from exc
        return vol.storagePoolLookupByVolume(), vol
    pool_name, _, vol_name = source.partition("/")
    why = disk_args_problem(source, None, "virtio", "disk", ctx.host)
    if why:
        raise ActionError(why)
    try:
        pool = conn.storagePoolLookupByName(pool_name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise
        names = sorted(p.name() for p in conn.listAllStoragePools(0))
        raise ActionError(
            f"no storage pool {pool_name!r} on {ctx.host} (pools: {', '.join(names) or 'none'})"
        ) from exc
    if not pool.isActive():
        raise ActionError(f"storage pool {pool_name!r} on {ctx.host} is not active")
    try:
        return pool, pool.storageVolLookupByName(vol_name)
    except libvirt.libvirtError:
        _refresh(pool)
    try:
        return pool, pool.storageVolLookupByName(vol_name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise
        names = sorted(pool.listVolumes())
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise ActionError(
            f"no volume {vol_name!r} in storage pool {pool_name!r} on {ctx.host} (volumes: {shown or 'none'})"
        ) from exc


def _refresh(pool: Any) -> None:
    try:
        pool.refresh(0)
    except libvirt.libvirtError:
        pass  # busy (a volume being built): look with what it knows


def _disk_name(prefix: str, index: int) -> str:
    """vda, vdb ... vdz, vdaa ... as libvirt numbers them."""
    name = ""
    index += 1
    while index > 0:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("a") + rest) + name
    return prefix + name


def free_target(used: set[str], bus: str) -> str:
    prefix = BUS_PREFIX.get(bus, "vd")
    for i in range(26 * 27):
        name = _disk_name(prefix, i)
        if name not in used:
            return name
    raise ActionError(f"no free {prefix}X target name left")


def attach_disk(
    ctx: TaskContext,
    dom: Any,
    source: str,
    target: str | None = None,
    bus: str = "virtio",
    device: str = "disk",
    readonly: bool = False,
) -> str:
    """Attach a storage volume ("POOL/VOLUME" or its path on the host) as `target` (the next free vdX/sdX
    when not given); its format (qcow2, raw) is the volume's."""
    why = disk_args_problem(source, target, bus, device, ctx.host)
    if why:
        raise ActionError(why)
    config, live = _definitions(dom)
    disks = {**_disks(live), **_disks(config)}
    if target is not None:
        if target in disks:
            src = _disk_source(disks[target]) or "no media"
            raise ActionError(f"target {target} is already used on {dom.name()} (by {src})")
    else:
        target = free_target(set(disks), bus)
    pool, vol = _volume(ctx, source)
    vol_xml = ET.fromstring(vol.XMLDesc(0))
    fmt = vol_xml.find("target/format")
    kind = (fmt.get("type") if fmt is not None else None) or "raw"
    driver = "raw" if kind in ("iso", "none", "auto", "unknown") else kind
    path = vol.path()
    for t, el in disks.items():
        src = _disk_source(el)
        if src and src in (path, f"{pool.name()}/{vol.name()}"):
            raise ActionError(f"{source} is already attached to {dom.name()} as {t}")
    if source.startswith("/"):
        vtype = int(vol.info()[0])
        if vtype == libvirt.VIR_STORAGE_VOL_BLOCK:
            disk_type, src_xml = "block", f"<source dev={quoteattr(path)}/>"
        else:
            disk_type, src_xml = "file", f"<source file={quoteattr(path)}/>"
    else:
        disk_type = "volume"
        src_xml = f"<source pool={quoteattr(pool.name())} volume={quoteattr(vol.name())}/>"
    ro = "<readonly/>" if readonly or device == "cdrom" else ""
    xml = (
        f"<disk type='{disk_type}' device='{device}'><driver name='qemu' type={quoteattr(driver)}/>"
        f"{src_xml}<target dev={quoteattr(target)} bus={quoteattr(bus)}/>{ro}</disk>"
    )
    flags = _flags(dom)
    ctx.progress(None, f"attaching {source} as {target}")
    _attach(ctx, dom, xml, flags, f"{source} as {target}")
    config, live = _definitions(dom)
    missing = [
        n
        for n, root, f in (("config", config, CONFIG), ("live", live, LIVE))
        if flags & f and target not in _disks(root)
    ]
    if missing:
        raise ActionError(f"libvirt accepted the disk but {target} is not in the {' and '.join(missing)} XML")
    mode = ", read-only" if ro else ""
    return f"attached {source} ({driver}{mode}) as {target} on {bus}: {_where(flags)}"


def detach_disk(ctx: TaskContext, dom: Any, target: str, timeout: float = DETACH_TIMEOUT) -> str:
    """Detach the disk the guest sees as `target`; a live detach waits up to `timeout` s for the guest."""
    config, live = _definitions(dom)
    found = {**_disks(live), **_disks(config)}
    if target not in found:
        names = ", ".join(sorted(t for t in found if t)) or "none"
        raise ActionError(f"no disk {target!r} on {dom.name()} (disks: {names})")
    return _detach(
        ctx,
        dom,
        f"disk {target}",
        _disks(config).get(target),
        _disks(live).get(target),
        lambda root: target in _disks(root),
        timeout,
    )


# -- NICs -------------------------------------------------------------------------------------------


def _network(ctx: TaskContext, name: str, active: bool) -> None:
    try:
        net = ctx.conn.networkLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
            raise
        names = sorted(n.name() for n in ctx.conn.listAllNetworks(0))
        raise ActionError(
            f"no network {name!r} on {ctx.host} (networks: {', '.join(names) or 'none'})"
        ) from exc
    if active and not net.isActive():
        raise ActionError(f"network {name!r} on {ctx.host} is not active: the running guest cannot use it")


def new_mac(used: set[str]) -> str:
    """A random MAC in QEMU's 52:54:00 range, not one of `used`."""
    while True:
        mac = "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))
        if mac not in used:
            return mac


def attach_nic(
    ctx: TaskContext,
    dom: Any,
    network: str | None = None,
    bridge: str | None = None,
    model: str = "virtio",
    mac: str | None = None,
) -> str:
    """Attach a NIC on a libvirt network (default: "default") or a host bridge; a new MAC when not given."""
    why = nic_args_problem(network, bridge, model, mac)
    if why:
        raise ActionError(why)
    config, live = _definitions(dom)
    used = {**_nics(live), **_nics(config)}
    if mac is not None:
        mac = mac.strip().lower()
        if mac in used:
            raise ActionError(f"MAC {mac} is already used by a NIC of {dom.name()}")
    else:
        mac = new_mac(set(used))
    flags = _flags(dom)
    if bridge:
        on = f"bridge {bridge}"
        xml = f"<interface type='bridge'><source bridge={quoteattr(bridge)}/>"
    else:
        network = network or "default"
        _network(ctx, network, active=bool(flags & LIVE))
        on = f"network {network}"
        xml = f"<interface type='network'><source network={quoteattr(network)}/>"
    xml += f"<mac address='{mac}'/><model type={quoteattr(model)}/></interface>"
    ctx.progress(None, f"attaching a {model} NIC on {on}")
    _attach(ctx, dom, xml, flags, f"a NIC on {on}")
    config, live = _definitions(dom)
    missing = [
        n
        for n, root, f in (("config", config, CONFIG), ("live", live, LIVE))
        if flags & f and mac not in _nics(root)
    ]
    if missing:
        raise ActionError(f"libvirt accepted the NIC but {mac} is not in the {' and '.join(missing)} XML")
    return f"attached a {model} NIC {mac} on {on}: {_where(flags)}"


def detach_nic(ctx: TaskContext, dom: Any, mac: str, timeout: float = DETACH_TIMEOUT) -> str:
    """Detach the NIC with this MAC address; a live detach waits up to `timeout` s for the guest."""
    mac = mac.strip().lower()
    config, live = _definitions(dom)
    found = {**_nics(live), **_nics(config)}
    if mac not in found:
        macs = ", ".join(sorted(m for m in found if m)) or "none"
        raise ActionError(f"no NIC with MAC {mac} on {dom.name()} (NICs: {macs})")
    return _detach(
        ctx,
        dom,
        f"NIC {mac}",
        _nics(config).get(mac),
        _nics(live).get(mac),
        lambda root: mac in _nics(root),
        timeout,
    )


# -- detaching ---------------------------------------------------------------------------------------


def _detach(
    ctx: TaskContext,
    dom: Any,
    what: str,
    in_config: ET.Element | None,
    in_live: ET.Element | None,
    present: Callable[[ET.Element], bool],
    timeout: float,
) -> str:
    """Detach a device from the config and the live guest, whichever has it; wait for the guest to let go
    of it (until `timeout`), and fail saying it is still attached when it has not."""
    flags = (CONFIG if in_config is not None else 0) | (LIVE if in_live is not None else 0)
    el = in_config if in_config is not None else in_live
    assert el is not None
    ctx.progress(None, f"detaching {what}")
    try:
        dom.detachDeviceFlags(_device_xml(el), flags)
    except libvirt.libvirtError as exc:
        raise ActionError(f"libvirt refused to detach {what}: {_message(exc)}") from exc
    config_note = " and from its config" if flags & CONFIG else ""
    if not flags & LIVE:
        return f"detached {what} from its config (it is not in the running guest)"

    def gone() -> bool:
        try:
            return not present(ET.fromstring(dom.XMLDesc(0)))
        except libvirt.libvirtError:
            return not dom.isActive()  # it stopped meanwhile: nothing is attached any more

    ctx.progress(None, f"{what}: waiting for the guest to release it")
    if ctx.wait(gone, timeout, interval=0.5):
        where = "from the running guest" + config_note
        return f"detached {what} {where}"
    config_done = (
        "; it is gone from its config, so it is not there at the next boot" if flags & CONFIG else ""
    )
    raise ActionError(
        f"{what} is still attached to the running guest after {timeout:.0f} s: the guest has not "
        f"acknowledged the unplug (it may still, or never: no hotplug support, busy or hung){config_done}"
    )


# -- the actions --------------------------------------------------------------------------------------


def _needs(*names: str) -> Callable[[VmState, dict[str, Any], FleetState], str | None]:
    def check(vm: VmState, args: dict[str, Any], state: FleetState) -> str | None:
        missing = [n for n in names if not args.get(n)]
        return f"needs {', '.join(f'{n}=...' for n in missing)}" if missing else None

    return check


def _disk_targets(vm: VmState, _state: FleetState) -> list[Choice]:
    disks = vm.details.disks if vm.details is not None else ()
    return [(f"{d.target} ({d.source or 'no media'})", d.target) for d in disks]


def _nic_macs(vm: VmState, _state: FleetState) -> list[Choice]:
    nics = vm.details.nics if vm.details is not None else ()
    return [(f"{n.mac} ({n.source or '?'})", n.mac) for n in nics if n.mac]


ACTIONS: tuple[VmAction, ...] = (
    VmAction(
        "attach-disk",
        "Attach disk",
        "Attach a storage volume (POOL/VOLUME or its path) as the next free vdX, live and in the config",
        attach_disk,
        needs="admin",
        params=(
            Param("source", "path", "POOL/VOLUME, or a path of a volume on the host", required=True),
            Param("target", "text", "device name in the guest (default: the next free one)"),
            Param("bus", "choice", "the disk's bus", default="virtio", choices=[(b, b) for b in BUS_PREFIX]),
            Param("device", "choice", "disk, cdrom ...", default="disk", choices=[(d, d) for d in DEVICES]),
            Param("readonly", "bool", "read-only (a CD-ROM always is)"),
        ),
        check=check_disk,
        bulk=False,
    ),
    VmAction(
        "detach-disk",
        "Detach disk",
        "Detach a disk by its target (vdb): from the running guest and the config (the volume stays)",
        detach_disk,
        needs="admin",
        params=(
            Param("target", "choice", "disk (vdb)", required=True, from_state=_disk_targets, label="disk"),
        ),
        check=_needs("target"),
        destructive=True,
        bulk=False,
    ),
    VmAction(
        "attach-nic",
        "Attach NIC",
        "Attach a NIC on a network (default: default) or a bridge, live and in the config",
        attach_nic,
        needs="admin",
        params=(
            Param("network", "text", "libvirt network (default: default)"),
            Param("bridge", "text", "host bridge instead of a network"),
            Param("model", "text", "the NIC model", default="virtio"),
            Param("mac", "text", "MAC address (default: a new one)"),
        ),
        check=check_nic,
        bulk=False,
    ),
    VmAction(
        "detach-nic",
        "Detach NIC",
        "Detach a NIC by its MAC: from the running guest and the config",
        detach_nic,
        needs="admin",
        params=(
            Param("mac", "choice", "the NIC's MAC address", required=True, from_state=_nic_macs, label="NIC"),
        ),
        check=_needs("mac"),
        destructive=True,
        bulk=False,
    ),
)
