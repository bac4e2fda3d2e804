"""Alerts on the lab: a CPU alert for a guest that works, a host that is cut, and the hook told of each.

The guest's workload reads /tmp/load (busy, idle, or varying); the test writes it through the guest's
serial console over a direct libvirt connection, and reads what fired from the fleet and from the JSON
lines the hook (a small Python script) appended to a file.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import libvirt
import pytest

from tests.lab.gates import cpu_share
from tests.lab.lab import Lab
from tests.lab.support import booted_times, eventually, port_answers, seen, started, until
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.model import FleetState
from vimtui.core.monitor.alerts import DEFAULT_RULES, Alert, Rule, Severity
from vimtui.core.monitor.hook import HookRunner

pytestmark = pytest.mark.lab

HOST = "kvm01"
CUT = "kvm03"
HOOK = "import sys; open(sys.argv[1], 'a').write(sys.stdin.read().strip() + '\\n')"


def rules(name: str, threshold: float = 25.0, clear: float = 10.0) -> list[Rule]:
    busy = Rule(
        name="guest-busy",
        metric="vm.cpu_pct",
        op=">",
        threshold=threshold,
        for_seconds=10.0,
        clear=clear,
        clear_for_seconds=5.0,
        severity=Severity.WARNING,
        vms=(name,),
    )
    unreachable = next(r for r in DEFAULT_RULES if r.name == "host-unreachable")
    return [busy, replace(unreachable, for_seconds=0.0, clear_for_seconds=5.0)]


# The guest's own workload varies its load on a schedule of its own: it is stopped (busybox init starts a
# sleep in its place), and the test's busy loop is the only load, started and stopped at once.
NO_WORKLOAD = (
    "printf '#!/bin/sh\\nexec sleep 100000\\n' > /etc/workload; "
    "for f in $(grep -l /etc/workload /proc/[0-9]*/cmdline 2>/dev/null); "
    "do f=${f#/proc/}; kill ${f%/cmdline} 2>/dev/null; done"
)
BUSY = "[ -f /tmp/busy.pid ] || { while :; do :; done & echo $! > /tmp/busy.pid; }"
IDLE = "[ -f /tmp/busy.pid ] && kill $(cat /tmp/busy.pid) && rm /tmp/busy.pid; true"
# (typed on the serial console, where a line may be typed twice: each is a no-op the second time)


def cpu_levels(lab: Lab, host: str, name: str, windows: int = 3, seconds: float = 2.0) -> list[float]:
    """The guest's CPU % (of its vCPUs) over `windows` consecutive windows as long as vimtui's polls, from
    libvirt's cpu.time read directly."""
    with lab.connect(host) as conn:
        dom = conn.lookupByName(name)
        vcpus = dom.info()[3]

        def read() -> tuple[float, int]:
            ((_, stats),) = conn.domainListGetStats([dom], libvirt.VIR_DOMAIN_STATS_CPU_TOTAL)
            return time.monotonic(), int(stats["cpu.time"])

        out, prev = [], read()
        for _ in range(windows):
            time.sleep(seconds)  # the measuring window itself
            cur = read()
            out.append((cur[1] - prev[1]) * 100.0 / ((cur[0] - prev[0]) * 1e9 * vcpus))
            prev = cur
        return out


@pytest.fixture
def guest(lab: Lab) -> Iterator[str]:
    name = f"a-{uuid.uuid4().hex[:6]}"
    lab.add_guest(HOST, name)
    yield name
    lab.remove_guest(HOST, name)


@pytest.fixture
async def fleet(lab: Lab, tmp_path: Path, guest: str) -> AsyncIterator[Fleet]:
    hook = HookRunner([sys.executable, "-c", HOOK, str(tmp_path / "hook.jsonl")], timeout=20)
    # 2-s polls: a TCG guest's CPU share over 1 s swings with the machine's load
    f = await started(
        lab, tmp_path / "run", alert_rules=rules(guest), hook=hook, call_timeout=8.0, interval=2.0
    )
    yield f
    await f.stop()


async def run_on_console(lab: Lab, host: str, name: str, command: str, within: float = 120) -> None:
    if not await asyncio.to_thread(lab.on_console, host, name, command, within):
        pytest.fail(f"{command!r} did not run on {name}'s console within {within} s")


def hooked(tmp_path: Path, rule: str) -> list[dict[str, Any]]:
    """The alerts of `rule` the hook was given, in order."""
    path = tmp_path / "hook.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [a for a in lines if a["rule"] == rule]


def firing(state: FleetState, rule: str) -> list[Alert]:
    return [a for a in state.alerts if a.rule == rule]


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
async def test_a_busy_guest_fires_a_cpu_alert_that_resolves_when_it_stops_and_the_hook_hears_both(
    lab: Lab, guest: str, tmp_path: Path
) -> None:
    """What a busy TCG guest reaches depends on the machine and its load: the host's cgroup is given a large
    CPU share for the test, and the threshold is set between what this guest reaches idle and busy here and
    now (libvirt's counters), not at a fixed figure."""
    await eventually(f"{guest} booted", lambda: booted_times(lab, HOST, guest) >= 1, 180)
    with cpu_share(lab, HOST):
        await run_on_console(lab, HOST, guest, NO_WORKLOAD)
        idle = await asyncio.to_thread(cpu_levels, lab, HOST, guest)
        await run_on_console(lab, HOST, guest, BUSY)
        busy = await asyncio.to_thread(cpu_levels, lab, HOST, guest)
        await run_on_console(lab, HOST, guest, IDLE)
        await alert_fires_and_resolves(lab, guest, tmp_path, max(idle), min(busy))


async def alert_fires_and_resolves(lab: Lab, guest: str, tmp_path: Path, low: float, high: float) -> None:
    assert high > 1.5 * low + 0.5, f"busy {high} and idle {low} CPU % are too close to tell apart"
    threshold, clear = low + 0.35 * (high - low), low + 0.2 * (high - low)
    hook = HookRunner([sys.executable, "-c", HOOK, str(tmp_path / "hook.jsonl")], timeout=20)
    fleet = await started(
        lab,
        tmp_path / "run",
        alert_rules=rules(guest, threshold, clear),
        hook=hook,
        call_timeout=8.0,
        interval=2.0,  # the calibration's window
    )
    try:
        await seen(fleet, HOST, guest)
        await run_on_console(lab, HOST, guest, BUSY)
        t0 = time.monotonic()
        state = await until(fleet, "the CPU alert firing", lambda s: firing(s, "guest-busy"), 180)
        [alert] = firing(state, "guest-busy")
        took = time.monotonic() - t0
        assert alert.vm == guest and alert.host == HOST and alert.severity == Severity.WARNING
        assert alert.value is not None and alert.value > threshold, alert
        assert alert.fired_at - alert.since >= 10.0, alert  # "for 10 s": not before
        # in the task log as a failure, and to the hook as JSON on stdin
        assert any(e.action == "alert guest-busy" and e.vm == guest for e in fleet.activity.entries())
        await eventually("the hook's firing line", lambda: hooked(tmp_path, "guest-busy"), 60)
        fired = hooked(tmp_path, "guest-busy")
        assert fired[0]["state"] == "firing" and fired[0]["vm"] == guest and fired[0]["id"] == alert.id
        await run_on_console(lab, HOST, guest, IDLE)
        await until(fleet, "the CPU alert resolved", lambda s: not firing(s, "guest-busy"), 180)
        await eventually("the hook's resolved line", lambda: len(hooked(tmp_path, "guest-busy")) > 1, 60)
        both = hooked(tmp_path, "guest-busy")
        assert [h["state"] for h in both] == ["firing", "resolved"]
        assert both[1]["id"] == alert.id and both[1]["resolved_at"] >= both[1]["fired_at"]
        assert both[1]["value"] is None or both[1]["value"] < clear, both[1]
    finally:
        await fleet.stop()
    print(
        f"\nidle {low:.1f} %, busy {high:.1f} %: threshold {threshold:.1f} %; "
        f"fired {took:.1f} s after the guest went busy, at {alert.value:.1f} %"
    )


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
async def test_a_cut_host_raises_host_unreachable_and_it_resolves_on_heal(
    lab: Lab, fleet: Fleet, tmp_path: Path
) -> None:
    lab.cut(CUT)
    try:
        state = await until(fleet, f"{CUT} unreachable alert", lambda s: firing(s, "host-unreachable"), 30)
        [alert] = firing(state, "host-unreachable")
        assert alert.host == CUT and alert.kind == "host" and alert.severity == Severity.CRITICAL
        assert not any(a.host != CUT for a in state.alerts if a.rule == "host-unreachable")
    finally:
        lab.heal(CUT)
    await port_answers(lab.host(CUT).address, 22, 30)
    await until(fleet, "the unreachable alert resolved", lambda s: not firing(s, "host-unreachable"), 60)
    await eventually("the hook's two lines", lambda: len(hooked(tmp_path, "host-unreachable")) > 1, 30)
    lines = hooked(tmp_path, "host-unreachable")
    assert [(h["state"], h["host"]) for h in lines] == [("firing", CUT), ("resolved", CUT)]
