"""What lab tests of the core share: a host's spec over SSH, fast settings, a fleet over the lab, waiting on
published states, and running actions as tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.lab.lab import Lab
from vimtui.core.actions import operations
from vimtui.core.fleet.audit import AuditLog
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.fleet.tasks import Task
from vimtui.core.model import FleetState
from vimtui.core.monitor.alerts import DEFAULT_RULES, Rule
from vimtui.core.monitor.archive import Archive
from vimtui.core.monitor.hook import HookRunner
from vimtui.core.poll.session import SessionSettings

FAST = SessionSettings(
    interval=1.0,
    call_timeout=4.0,
    connect_timeout=4.0,
    keepalive_interval=1.0,
    keepalive_count_max=2,
    backoff_max=2.0,
)


def spec(lab: Lab, host: str, **kw: object) -> HostSpec:
    h = lab.host(host)
    base = HostSpec(
        name=h.name,
        transport="ssh",
        uri="qemu:///system",
        address=h.address,
        user="root",
        identity=str(lab.key_file),
        known_hosts=str(lab.known_hosts),
        group="lab",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


async def started(
    lab: Lab,
    runtime: Path,
    *,
    tick: bool = True,
    audit: AuditLog | None = None,
    alert_rules: Iterable[Rule] = DEFAULT_RULES,
    hook: HookRunner | None = None,
    archive: Archive | None = None,
    **over: object,
) -> Fleet:
    """A fleet of the lab's hosts over SSH, connected; `over` changes its SessionSettings (FAST)."""
    settings = replace(FAST, **over)  # type: ignore[arg-type]
    fleet = Fleet(
        [spec(lab, h.name) for h in lab.hosts],
        settings,
        runtime,
        audit=audit,
        alert_rules=alert_rules,
        hook=hook,
        archive=archive,
    )
    await fleet.start(tick=tick)
    await fleet.connected(within=30)
    return fleet


async def until(
    fleet: Fleet, what: str, pred: Callable[[FleetState], object], within: float = 30
) -> FleetState:
    try:
        return await fleet.wait_for(pred, within)
    except TimeoutError:
        pytest.fail(
            f"timed out after {within} s waiting for {what}; last state: "
            f"{[(h.name, str(h.status), h.message) for h in fleet.state.hosts]}"
        )


async def seen(fleet: Fleet, host: str, vm: str, within: float = 30) -> FleetState:
    """Until the fleet shows `vm` on `host` (a guest the test just defined)."""
    return await until(fleet, f"{vm} on {host}", lambda s: s.find_vm(vm, host), within)


async def act(
    fleet: Fleet,
    action: str,
    vms: Sequence[str],
    /,
    *,
    host: str | None = None,
    within: float = 120,
    **args: Any,
) -> list[Task]:
    """Run one action on VMs by name through the same path as the screen and the CLI; wait for the end.
    `args` are the action's own (a snapshot's `name` ...)."""
    found, errors = operations.resolve(fleet.state, vms, host)
    tasks = operations.refuse_unresolved(fleet, action, errors, host)
    tasks += operations.submit(fleet, operations.plan(fleet.state, action, found, args))
    if not await fleet.tasks.wait(tasks, within=within):
        pytest.fail(f"{action} {list(vms)}: not done after {within} s: {[t.as_dict() for t in tasks]}")
    return tasks


def dom_state(lab: Lab, host: str, name: str) -> str:
    """A guest's state as libvirt says it, over a direct connection (not through vimtui)."""
    from vimtui.core.model import state_name

    with lab.connect(host) as conn:
        return state_name(conn.lookupByName(name).state()[0])


def serial_log(lab: Lab, host: str, guest: str) -> str:
    """What a guest wrote on its serial console (its log file, read from the host's directory)."""
    return lab.serial_log(host, guest)


def booted_times(lab: Lab, host: str, guest: str) -> int:
    """How many times the guest reached the end of its start-up (its serial log is appended to)."""
    return serial_log(lab, host, guest).count(f"vimtui-guest {guest} up")


async def eventually(what: str, pred: Callable[[], object], within: float = 30) -> object:
    """Ask `pred` (quick, blocking) until it holds, without holding up the event loop (the fleet under test
    keeps polling); fail naming `what` at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await asyncio.to_thread(pred)
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.2)


def acpi_ready(lab: Lab, host: str, guest: str) -> bool:
    """The guest watches its power button (an ACPI shutdown pressed before that is lost)."""
    return "power button watched" in serial_log(lab, host, guest).rsplit(f"vimtui-guest {guest} up", 1)[-1]


async def port_answers(address: str, port: int, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        try:
            _r, w = await asyncio.wait_for(asyncio.open_connection(address, port), 1)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.1)
            continue
        w.close()
        return
    pytest.fail(f"{address}:{port} did not answer within {within} s")


FILL_MIB = 64
"""What `fill_memory` writes: at a 16 MiB/s cap, 4 s of migration at least, whatever the machine's speed."""


def fill_memory(lab: Lab, host: str, guest: str, mib: int = FILL_MIB, within: float = 300) -> None:
    """Make `mib` MiB of the guest's memory non-zero (a file in its RAM-backed root): a freshly booted guest's
    memory is mostly zero pages, which a live migration sends without counting them against its cap, so it
    ends at once whatever the cap. The guest needs room: `mib` plus about 90 MiB. Typed on the serial
    console, where a line may be typed again: the guard makes a second run a no-op."""
    command = (
        "[ -f /tmp/fill ] || { dd if=/dev/urandom of=/tmp/seed bs=1M count=1 2>/dev/null; "
        f"for i in $(seq {mib}); do cat /tmp/seed; done > /tmp/fill.part && mv /tmp/fill.part /tmp/fill; }}"
    )
    if not lab.on_console(host, guest, command, within):
        pytest.fail(f"{guest}: its memory was not filled within {within} s")
