"""Create a VM from a cloud image: a disk volume copied for the new VM, plus a cloud-init NoCloud seed ISO
uploaded beside it, all through libvirt (storage pools, streams). Bad input is refused before anything is
made; a failure part way removes what was made."""

from __future__ import annotations

import inspect
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import libvirt

from vimtui.core.actions import cloudinit
from vimtui.core.actions.base import ActionError
from vimtui.core.actions.create import CREATE
from vimtui.core.actions.disk_copy import (
    DiskCopy,
    copy_disks,
    find_pool,
    find_volume,
    volume_exists,
    volume_format,
    volume_xml,
)
from vimtui.core.actions.rollback import Rollback, no_abort, undo_domain, undo_volume, undone, with_fresh_uuid
from vimtui.core.actions.vm_spec import (
    AGENT_CHANNEL,
    CREATE_TIMEOUT,
    GIB,
    MAX_DISK_GIB,
    UPLOAD_CHUNK,
    HostLimits,
    check_limits,
    domain_skeleton,
    host_limits,
    int_refusal,
    name_refusal,
    refuse_clash,
    size_refusal,
)
from vimtui.core.fleet import quotas
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.profiles import refusal

if TYPE_CHECKING:
    from vimtui.core.fleet.fleet import Fleet
    from vimtui.core.fleet.tasks import Task


def _upload(conn: Any, pool: Any, name: str, data: bytes) -> Any:
    """A new raw volume holding `data`, sent through a libvirt stream."""
    vol = pool.createXML(volume_xml(name, len(data), "raw", allocation=len(data)), 0)
    try:
        stream = conn.newStream(0)
        try:
            vol.upload(stream, 0, len(data), 0)
            view = memoryview(data)
            sent = 0
            while sent < len(data):
                n = stream.send(bytes(view[sent : sent + UPLOAD_CHUNK]))
                if n <= 0:
                    raise ActionError(f"upload of {name} stalled at {sent} of {len(data)} bytes")
                sent += n
            stream.finish()
        except BaseException:
            with suppress(libvirt.libvirtError):
                stream.abort()
            raise
    except BaseException:
        with suppress(libvirt.libvirtError):
            vol.delete(0)
        raise
    return vol


def image_domain_xml(
    *,
    name: str,
    limits: HostLimits,
    vcpus: int,
    memory_mib: int,
    pool: str,
    disk_volume: str,
    seed_volume: str,
    network: str,
    tenant: str | None = None,
) -> str:
    """A new cloud VM: virtio disk, the seed as a read-only CD-ROM, a virtio NIC on `network` (or a bridge,
    as 'bridge:NAME'), a serial console, the guest agent channel, a balloon and an RNG."""
    dom, dev = domain_skeleton(
        name, limits, vcpus, memory_mib, tenant, ("hd",), pool, disk_volume, "vda", "virtio"
    )
    bus = next((b for b in ("sata", "ide", "scsi") if b in limits.disk_buses), "sata")
    cdrom = ET.SubElement(dev, "disk", type="volume", device="cdrom")
    ET.SubElement(cdrom, "driver", name="qemu", type="raw")
    ET.SubElement(cdrom, "source", pool=pool, volume=seed_volume)
    ET.SubElement(cdrom, "target", dev="hda" if bus == "ide" else "sda", bus=bus)
    ET.SubElement(cdrom, "readonly")
    if network.startswith("bridge:"):
        iface = ET.SubElement(dev, "interface", type="bridge")
        ET.SubElement(iface, "source", bridge=network.removeprefix("bridge:"))
    else:
        iface = ET.SubElement(dev, "interface", type="network")
        ET.SubElement(iface, "source", network=network)
    ET.SubElement(iface, "model", type="virtio")
    serial = ET.SubElement(dev, "serial", type="pty")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(dev, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    channel = ET.SubElement(dev, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name=AGENT_CHANNEL)
    balloon = ET.SubElement(dev, "memballoon", model="virtio")
    ET.SubElement(balloon, "stats", period="5")
    rng = ET.SubElement(dev, "rng", model="virtio")
    ET.SubElement(rng, "backend", model="random").text = "/dev/urandom"
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")


def seed_volume_name(name: str) -> str:
    return f"{name}-seed.iso"


def disk_volume_name(name: str) -> str:
    return f"{name}.qcow2"


def _split_image(image: str, pool: str) -> tuple[str, str]:
    if "/" in image:
        p, _, v = image.partition("/")
        return p, v
    return pool, image


def image_refusal(
    *,
    name: object,
    image: object,
    pool: object = "default",
    vcpus: object = 1,
    memory_mib: object = 512,
    disk_gib: object = None,
    network: object = "default",
    hostname: object = None,
    user: object = None,
    ssh_keys: object = (),
    user_data: object = None,
    start: object = True,
    domain_type: object = None,
    packages: object = (),
) -> str | None:
    """Why these arguments cannot make a VM, read without the host (None: they may). Touches nothing."""
    why = name_refusal(name) or size_refusal(vcpus, memory_mib)
    if why is not None:
        return why
    if not isinstance(image, str) or not image.strip("/") or image.count("/") > 1:
        return f"image {image!r}: give a volume name, or POOL/VOLUME"
    if not isinstance(pool, str) or not pool:
        return "a storage pool name is needed"
    if disk_gib is not None and (why := int_refusal("disk (GiB)", disk_gib, 1, MAX_DISK_GIB)):
        return why
    if not isinstance(network, str) or not network or network == "bridge:":
        return "a network is needed (a libvirt network name, or bridge:NAME)"
    if domain_type not in (None, "kvm", "qemu"):
        return f"domain type {domain_type!r}: kvm or qemu"
    if not isinstance(start, bool):
        return f"start must be true or false, not {start!r}"
    if isinstance(ssh_keys, str):
        return "ssh_keys is a list of public keys"
    try:
        _seed(str(name), hostname, user, ssh_keys, user_data, packages)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def _seed(
    name: str, hostname: object, user: object, ssh_keys: object, user_data: object, packages: object = ()
) -> bytes:
    if hostname is None:
        try:
            cloudinit.check_hostname(name)
        except ValueError:
            raise ValueError(
                f"the VM name {name!r} is not a valid host name for the guest: give a hostname"
            ) from None
        hostname = name
    if not isinstance(hostname, str):
        raise ValueError(f"hostname {hostname!r}: a host name is text")
    if user is not None and not isinstance(user, str):
        raise ValueError(f"user {user!r}: a user name is text")
    if user_data is not None and not isinstance(user_data, str):
        raise ValueError("user-data is text")
    keys = list(ssh_keys) if isinstance(ssh_keys, (list, tuple)) else None
    if keys is None or not all(isinstance(k, str) for k in keys):
        raise ValueError("ssh_keys is a list of public keys")
    wanted = list(packages) if isinstance(packages, (list, tuple)) else None
    if wanted is None:
        raise ValueError("packages is a list of package names")
    return cloudinit.build_seed(
        hostname=hostname, user=user, ssh_keys=keys, user_data=user_data, packages=wanted
    )


def create_from_image(
    ctx: TaskContext,
    *,
    name: str,
    image: str,
    pool: str = "default",
    vcpus: int = 1,
    memory_mib: int = 512,
    disk_gib: int | None = None,
    network: str = "default",
    hostname: str | None = None,
    user: str | None = None,
    ssh_keys: Sequence[str] = (),
    user_data: str | None = None,
    start: bool = True,
    domain_type: str | None = None,
    tenant: str | None = None,
    packages: Sequence[str] = (),
) -> str:
    """A new VM from a cloud image: the image ("POOL/VOLUME", or a volume of `pool`) copied to a qcow2 volume
    `<name>.qcow2` in `pool` (grown to `disk_gib` when bigger), a cloud-init NoCloud seed `<name>-seed.iso`
    beside it (host name, default the VM's name; user; SSH keys; or a user-data of your own), the VM defined
    (kvm when the host offers it, else qemu; or `domain_type`) and started when asked. Refuses before making
    anything; removes what it made when a later step fails."""
    conn, host = ctx.conn, ctx.host
    why = image_refusal(
        name=name,
        image=image,
        pool=pool,
        vcpus=vcpus,
        memory_mib=memory_mib,
        disk_gib=disk_gib,
        network=network,
        hostname=hostname,
        user=user,
        ssh_keys=ssh_keys,
        user_data=user_data,
        start=start,
        domain_type=domain_type,
        packages=packages,
    )
    if why is not None:
        raise ActionError(why)
    seed = _seed(name, hostname, user, list(ssh_keys), user_data, list(packages))
    refuse_clash(conn, name, host)
    target_pool = find_pool(conn, pool, host)
    image_pool_name, image_name = _split_image(image, pool)
    image_pool = target_pool if image_pool_name == pool else find_pool(conn, image_pool_name, host)
    source = find_volume(image_pool, image_name, host)
    fmt = volume_format(source)
    if fmt == "iso":
        raise ActionError(f"{image_pool_name}/{image_name} is an ISO image: give a disk image (qcow2)")
    _kind, capacity, allocation = (int(x) for x in source.info())
    size = capacity
    if disk_gib is not None:
        size = disk_gib * GIB
        if size < capacity:
            raise ActionError(
                f"disk {disk_gib} GiB is smaller than the image ({capacity / GIB:.1f} GiB): "
                "give at least its size, or none"
            )
    disk_name, seed_name = disk_volume_name(name), seed_volume_name(name)
    for vol_name in (disk_name, seed_name):
        if volume_exists(target_pool, vol_name):
            raise ActionError(f"volume {vol_name!r} already exists in storage pool {pool!r} on {host}")
    if not network.startswith("bridge:"):
        try:
            net = conn.networkLookupByName(network)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                raise ActionError(f"no network {network!r} on {host}") from exc
            raise
        if start and not net.isActive():
            raise ActionError(f"network {network!r} on {host} is not active: the VM could not start")
    limits = host_limits(conn, domain_type)
    check_limits(limits, host, vcpus, memory_mib)

    disk = DiskCopy(
        target="vda",
        pool=target_pool,
        source=source,
        source_path=source.path(),
        source_format=fmt,
        capacity=capacity,
        allocation=allocation,
        name=disk_name,
        format="qcow2",
    )
    rollback = Rollback(ctx)
    try:
        copy_disks(ctx, [disk], (0.0, 80.0), rollback)
        if size > capacity:
            ctx.check_cancelled()
            ctx.progress(82.0, f"growing {disk_name} to {size / GIB:.0f} GiB")
            disk.volume.resize(size, 0)
        ctx.check_cancelled()
        ctx.progress(85.0, f"uploading the cloud-init seed {seed_name} ({len(seed) // 1024} KiB)")
        rollback.add(f"volume {pool}/{seed_name}", undo_volume(pool, seed_name))
        _upload(conn, target_pool, seed_name, seed)
        xml, new_uuid = with_fresh_uuid(
            image_domain_xml(
                name=name,
                limits=limits,
                vcpus=vcpus,
                memory_mib=memory_mib,
                pool=pool,
                disk_volume=disk_name,
                seed_volume=seed_name,
                network=network,
                tenant=tenant,
            )
        )
        ctx.check_cancelled()
        ctx.progress(90.0, f"defining {name} ({limits.virt_type})")
        rollback.add(f"VM {name}", undo_domain(new_uuid))
        dom = conn.defineXML(xml)
        if start:
            ctx.check_cancelled()
            ctx.progress(95.0, f"starting {name}")
            dom.create()
    except BaseException as exc:
        undone(exc, rollback)
        raise
    return (
        f"created {name} from {image_pool_name}/{image_name}: {vcpus} vCPU, {memory_mib} MiB, "
        f"{size / GIB:.1f} GiB disk {pool}/{disk_name}, seed {pool}/{seed_name}"
        f"{'; started' if start else ''}"
    )


_IMAGE_PARAMS = frozenset(inspect.signature(create_from_image).parameters) - {"ctx"}


def image_task_args(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments as the task log and the audit log keep them: the user-data's size, not its text (it
    may hold secrets); the SSH keys by their comment."""
    args = {k: v for k, v in kwargs.items() if k not in ("user_data", "ssh_keys")}
    if kwargs.get("user_data") is not None:
        args["user_data"] = f"{len(str(kwargs['user_data']).encode())} bytes"
    keys = kwargs.get("ssh_keys") or ()
    if keys and not isinstance(keys, str):
        with suppress(ValueError, TypeError, AttributeError):
            lines = cloudinit.ssh_key_lines(keys)
            args["ssh_keys"] = [" ".join(k.split()[2:]) or k.split()[0] for k in lines]
    return args


def submit_create_from_image(fleet: Fleet, host: str, **kwargs: Any) -> Task:
    """Create a VM from a cloud image on `host` as a task (see create_from_image for the arguments): refused
    at once (a failed task saying why, nothing touched) for an unknown, unhealthy or read-only host, a name
    already on the host, or arguments that cannot work."""
    name = str(kwargs.get("name") or "")
    args = image_task_args(kwargs)
    unknown = sorted(set(kwargs) - _IMAGE_PARAMS)
    missing = sorted(p for p in ("name", "image") if p not in kwargs)
    hs = fleet.state.host(host)
    why: str | None = None
    if unknown:
        why = f"unknown argument(s) for create: {', '.join(unknown)}"
    elif missing:
        why = f"create from an image needs {' and '.join(missing)}"
    elif hs is None:
        why = f"no host {host!r} in the inventory"
    elif not hs.status.healthy:
        why = f"host {host} is {hs.status}"
    elif (refused := refusal(hs.profile, CREATE.needs, host, CREATE.title)) is not None:
        why = refused
    else:
        why = image_refusal(**kwargs)
        if why is None and fleet.state.find_vm(name, host):
            why = f"a VM named {name!r} already exists on {host}"
        if fleet.state.tenant is not None:  # made for the tenant in scope, or it would not be seen
            kwargs["tenant"] = args["tenant"] = fleet.state.tenant
        if why is None and (tenant := kwargs.get("tenant")):
            vcpus, memory = int(kwargs.get("vcpus") or 1), int(kwargs.get("memory_mib") or 512)
            asked = quotas.Use(vcpus, memory, 1, kwargs.get("disk_gib") or 0)
            why = quotas.tenant_refusal(str(tenant), asked, fleet.state)
    if why is not None:
        return fleet.tasks.refuse(host, "create", why, vm=name, args=args)

    def run(ctx: TaskContext) -> str:
        return create_from_image(ctx, **kwargs)

    def abort(_conn: Any) -> None:
        no_abort(_conn, "")

    return fleet.tasks.submit(host, "create", run, vm=name, args=args, abort=abort, timeout=CREATE_TIMEOUT)
