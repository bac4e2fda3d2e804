"""The checks of a device action's arguments that need no host: made when the action is planned (so a dry
run refuses what the task would, with the same words), and again by the action itself on the host's lane."""

from __future__ import annotations

import re
from typing import Any

from vimtui.core.model import FleetState, VmState

BUS_PREFIX = {"virtio": "vd", "scsi": "sd", "sata": "sd", "usb": "sd", "ide": "hd", "fdc": "fd"}
DEVICES = ("disk", "cdrom", "lun", "floppy")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def disk_args_problem(source: str | None, target: str | None, bus: str, device: str, host: str) -> str | None:
    if bus not in BUS_PREFIX:
        return f"bus {bus!r}: one of {', '.join(BUS_PREFIX)}"
    if device not in DEVICES:
        return f"device {device!r}: one of {', '.join(DEVICES)}"
    if target is not None and not re.fullmatch(r"[a-z]+[a-z0-9]*", target):
        return f"target {target!r}: a device name such as vdb or sdc"
    if source and not source.startswith("/"):
        pool_name, sep, vol_name = source.partition("/")
        if not sep or not pool_name or not vol_name:
            return f"disk source {source!r}: say POOL/VOLUME or an absolute path on {host}"
    return None


def nic_args_problem(
    network: str | None, bridge: str | None, model: str | None, mac: str | None
) -> str | None:
    if network and bridge:
        return "a NIC goes on a network or a bridge, not both"
    if model is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", model):
        return f"NIC model {model!r}: virtio, e1000, rtl8139 ..."
    if mac is not None:
        mac = mac.strip().lower()
        if not MAC_RE.match(mac):
            return f"MAC {mac!r}: six hex pairs such as 52:54:00:12:34:56"
        if int(mac[:2], 16) & 1:
            return f"MAC {mac}: a multicast address cannot be a NIC's"
    return None


def check_disk(vm: VmState, args: dict[str, Any], state: FleetState) -> str | None:
    if not args.get("source"):
        return "needs source=..."
    target = args.get("target")
    why = disk_args_problem(
        args["source"], target, args.get("bus") or "virtio", args.get("device") or "disk", vm.host
    )
    if why is None and target and vm.details is not None and target in {d.target for d in vm.details.disks}:
        why = f"target {target} is already used on {vm.name}"
    return why


def check_nic(vm: VmState, args: dict[str, Any], state: FleetState) -> str | None:
    mac = args.get("mac")
    why = nic_args_problem(args.get("network"), args.get("bridge"), args.get("model"), mac)
    if why is None and mac and vm.details is not None:
        if mac.strip().lower() in {(n.mac or "").lower() for n in vm.details.nics}:
            why = f"MAC {mac.strip().lower()} is already used by a NIC of {vm.name}"
    return why
