"""Idle guests for benchmarks: many small real QEMU domains that cost the host almost nothing.

Each guest is diskless, 32 MiB, 1 vCPU, with no kernel: SeaBIOS finds nothing to boot, says so and waits
for interrupts forever (`rebootTimeout='-1'`: no reboot loop). Its NIC has no option ROM, so SeaBIOS does
not try to PXE-boot either. What libvirt reports for it is still a full record: state, CPU and vCPU
times, balloon (no guest driver: current and maximum only), and the interface counters of its tap on the
host's `default` network. About 0.5 % of a core and ~45 MiB of RSS each under TCG.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import libvirt
import psutil

IDLE_MIB = 32
MIN_FREE_BYTES = 1 << 30
"""Start no further guest once the machine has less than this available (other labs live here too)."""

_IDLE_XML = """\
<domain type='{virt}'>
  <name>{name}</name>
  <memory unit='MiB'>{mib}</memory>
  <currentMemory unit='MiB'>{mib}</currentMemory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <bios rebootTimeout='-1'/>
  </os>
  <features><acpi/>{tcg}</features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <controller type='usb' model='none'/>
    <interface type='network'>
      <source network='default'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>
    <memballoon model='virtio'><stats period='2'/></memballoon>
  </devices>
</domain>
"""


def idle_xml(name: str, virt: str, mib: int = IDLE_MIB) -> str:
    """The domain XML of one idle guest; `virt` is the domain type, "kvm" or "qemu" (TCG)."""
    # TCG reserves a 1 GiB translation cache per guest by default; an idle BIOS needs a sliver of it
    tcg = "<tcg><tb-cache unit='MiB'>16</tb-cache></tcg>" if virt == "qemu" else ""
    return _IDLE_XML.format(virt=virt, name=name, mib=mib, tcg=tcg)


@dataclass
class Started:
    names: list[str]
    """The guests that run (defined and started by us)."""
    asked: int
    stopped_because: str = ""
    """Why fewer than asked were started ("" when all were)."""
    seconds: float = 0.0


def start_idle_guests(
    conn: Any,
    n: int,
    virt: str,
    *,
    prefix: str = "idle",
    parallel: int = 4,
    progress: Callable[[str], None] = print,
) -> Started:
    """Define and start n idle guests, `parallel` at a time, and wait until they all run.

    The first failure (out of memory, typically) stops further starts; the guests that run are kept and
    the result says why it stopped. A guest that failed to start is undefined again."""
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # raised, not also printed
    began = time.monotonic()
    stop = threading.Event()
    reasons: list[str] = []
    lock = threading.Lock()
    done: list[str] = []

    def one(i: int) -> None:
        if stop.is_set():
            return
        available = psutil.virtual_memory().available
        if available < MIN_FREE_BYTES:
            with lock:
                reasons.append(f"only {available / 2**20:.0f} MiB of memory left available")
            stop.set()
            return
        name = f"{prefix}{i:03d}"
        dom = conn.defineXML(idle_xml(name, virt))
        try:
            dom.create()
        except libvirt.libvirtError as exc:
            with lock:
                reasons.append(f"{name}: {exc.get_error_message() or exc}")
            stop.set()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefine()
            return
        with lock:
            done.append(name)
            count = len(done)
        if count % 20 == 0 or count == n:
            progress(f"  {count}/{n} idle guests started")

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="idle-start") as pool:
        for fut in [pool.submit(one, i) for i in range(1, n + 1)]:
            try:
                fut.result()
            except libvirt.libvirtError as exc:  # defineXML itself failed
                reasons.append(str(exc))
                stop.set()

    wanted = set(done)

    def all_running() -> bool:
        running = {
            d.name()
            for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
            if d.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        }
        return wanted <= running

    deadline = time.monotonic() + 60
    while not all_running():
        if time.monotonic() > deadline:
            raise RuntimeError("idle guests did not all reach `running` within 60 s")
        time.sleep(0.5)
    return Started(
        names=sorted(done),
        asked=n,
        stopped_because="; ".join(reasons[:2]),
        seconds=time.monotonic() - began,
    )


def remove_idle_guests(conn: Any, names: list[str]) -> None:
    """Destroy and undefine the given guests; ones already gone are fine."""
    for name in names:
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            continue
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            dom.undefine()
