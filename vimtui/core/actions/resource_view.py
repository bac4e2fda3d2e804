"""What a VM has, live and in its config, side by side: vCPUs and memory (current and maximum), disks
(capacity, I/O limits), pinning, CPU shares and quota, NIC bandwidth. Asked of the host on its lane when
the resources tab (or `vm resources`) shows it; what the host cannot say (no cgroups, an old libvirt) is
shown as libvirt's words, never as a made-up value.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import libvirt

from vimtui.core.actions.resources import side_sizing
from vimtui.core.actions.side_changes import FLAG, libvirt_words
from vimtui.core.actions.sizing import Side, Sizing, size_text
from vimtui.core.actions.tuning import BANDWIDTH, IOTUNE, SCHED, cpus_text

SIDES: tuple[Side, ...] = ("live", "config")


@dataclass(frozen=True)
class Row:
    """One line of the table: what, then its value live and in the config ("" where a side has none)."""

    what: str
    live: str
    config: str

    @property
    def differs(self) -> bool:
        return bool(self.live and self.config and self.live != self.config)


@dataclass(frozen=True)
class Resources:
    running: bool
    sections: dict[str, list[Row]] = field(default_factory=dict)
    """Title -> rows, in the order shown: sizes, disks, pinning, CPU tuning, network."""


def _ask(fn: Callable[[], Any]) -> tuple[Any, str | None]:
    try:
        return fn(), None
    except libvirt.libvirtError as exc:
        return None, f"not available: {libvirt_words(exc)}"


def _per_side(sides: tuple[Side, ...], fn: Callable[[Side], Any]) -> dict[Side, tuple[Any, str | None]]:
    return {s: _ask(lambda s=s: fn(s)) for s in sides}  # type: ignore[misc]


def read(conn: Any, uuid: str) -> Resources:
    dom = conn.lookupByUUIDString(uuid)
    running = bool(dom.isActive())
    sides: tuple[Side, ...] = tuple(
        s for s in SIDES if (s == "live" and running) or (s == "config" and dom.isPersistent())
    )
    out: dict[str, list[Row]] = {}
    sizing = _per_side(sides, lambda s: side_sizing(dom, s))
    out["vCPUs and memory"] = [
        _row(what, sizing, partial(_fmt, f, mem))
        for what, f, mem in (
            ("vCPUs", "vcpus", False),
            ("max vCPUs", "max_vcpus", False),
            ("memory", "memory_kib", True),
            ("max memory", "max_memory_kib", True),
        )
    ]
    root = ET.fromstring(dom.XMLDesc(0))
    disks = [
        t.get("dev", "")
        for d in root.iterfind("./devices/disk")
        if d.get("device", "disk") == "disk" and (t := d.find("target")) is not None
    ]
    out["Disks"] = []
    for disk in disks:
        info, err = _ask(lambda disk=disk: dom.blockInfo(disk))  # type: ignore[misc]
        cap = err or f"{size_text(int(info[0]) / 1024)} ({size_text(int(info[1]) / 1024)} used)"
        out["Disks"].append(Row(f"{disk} capacity", cap if running else "", "" if running else cap))
        tune = _per_side(sides, lambda s, disk=disk: dom.blockIoTune(disk, FLAG[s]))  # type: ignore[misc]
        out["Disks"].append(_row(f"{disk} I/O limits", tune, _limits))
    pins = _per_side(sides, lambda s: dom.vcpuPinInfo(FLAG[s]))
    count = max((len(v) for v, e in pins.values() if v is not None), default=0)
    out["Pinning"] = [
        _row(f"vCPU {i}", pins, lambda v, i=i: cpus_text(tuple(v[i])) if i < len(v) else "-")  # type: ignore[misc]
        for i in range(count)
    ]
    emulator = _per_side(sides, lambda s: dom.emulatorPinInfo(FLAG[s]))
    out["Pinning"].append(_row("emulator", emulator, lambda v: cpus_text(tuple(v))))
    sched = _per_side(sides, lambda s: dom.schedulerParametersFlags(FLAG[s]))
    out["CPU tuning"] = [_row(key, sched, partial(_sched, key)) for key in SCHED.values()]
    macs = [m.get("address", "") for m in root.iterfind("./devices/interface/mac")]
    out["Network"] = [
        _row(
            f"{mac} KiB/s",
            _per_side(sides, lambda s, mac=mac: dom.interfaceParameters(mac, FLAG[s])),  # type: ignore[misc]
            _bandwidth,
        )
        for mac in macs
    ]
    return Resources(running, out)


def _row(what: str, got: dict[Side, tuple[Any, str | None]], fmt: Callable[[Any], str]) -> Row:
    cells = {s: (err if err is not None else fmt(value)) for s, (value, err) in got.items()}
    return Row(what, cells.get("live", ""), cells.get("config", ""))


def _fmt(attr: str, memory: bool, sizing: Sizing) -> str:
    value = getattr(sizing, attr)
    if value is None:
        return "-"
    return size_text(value) if memory else str(value)


def _sched(key: str, params: dict[str, Any]) -> str:
    value = params.get(key)
    return "-" if value is None else ("default" if value == 0 else str(value))  # 0 in a config: not set


def _limits(tune: dict[str, Any]) -> str:
    set_ = [f"{k.removesuffix('_sec').replace('_', ' ')} {tune[k]}" for k in IOTUNE if tune.get(k)]
    return ", ".join(set_) or "none"


def _bandwidth(params: dict[str, Any]) -> str:
    set_ = [f"{ours} {params[k]}" for ours, k in BANDWIDTH.items() if params.get(k)]
    return ", ".join(set_) or "none"


__all__ = ["Resources", "Row", "Sizing", "read"]
