"""The alert engine and its hook: pure logic over hand-built and recorded FleetStates at explicit times
(no sleeps, no clock), and hooks that are real processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import MappingProxyType

import libvirt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import domain_details
from tests.test_stats import host_cpus, poll, sample
from vimtui.core import metrics
from vimtui.core.fleet.activity import ActivityLog
from vimtui.core.metrics import values as metric_values
from vimtui.core.model import FleetState, HostState, HostStatus, VmState, state_name
from vimtui.core.monitor import alerts as alerts_mod
from vimtui.core.monitor import hook as alert_hook
from vimtui.core.monitor.alerts import (
    DEFAULT_RULES,
    MIN_CLEAR_FOR,
    Alert,
    AlertEngine,
    Rule,
    RuleError,
    Severity,
    effective_rules,
    parse_duration,
    parse_rate,
    record_alert,
)
from vimtui.core.monitor.hook import HookRunner
from vimtui.core.poll.domxml import DomainDetails
from vimtui.core.poll.session import HostEvent
from vimtui.core.poll.stats import DomainSample, HostRates, VmRates, vm_rates

# ----------------------------------------------------------------------------------------- builders


def host(
    name: str = "kvm01",
    *,
    group: str = "",
    status: HostStatus = HostStatus.UP,
    mem: float | None = None,
    cpu: float | None = None,
    message: str = "",
) -> HostState:
    return HostState(
        name=name,
        group=group,
        address=name,
        uri="qemu:///system",
        transport="ssh",
        status=status,
        message=message,
        status_since=0.0,
        rates=HostRates(cpu_pct=cpu, mem_used_kib=None, mem_pct=mem),
    )


def domain_sample(uuid: str, name: str, state: int, reason: int) -> DomainSample:
    return DomainSample(uuid, name, 0.0, state, reason, None, None, None, None, None, None, None, None, None)


def details(name: str, tags: Iterable[str]) -> DomainDetails:
    return domain_details(name, uuid=f"uuid-{name}", memory_kib=1024, tags=tuple(tags), has_agent=True)


def vm(
    name: str = "web1",
    host: str = "kvm01",
    *,
    cpu: float | None = None,
    mem: float | None = None,
    write_bps: float | None = None,
    state: str = "running",
    polled: tuple[int, int] | None = None,
    tags: Iterable[str] | None = None,
    stale: bool = False,
    uuid: str | None = None,
) -> VmState:
    """A VM; `polled` is the (state, reason) of its last poll's sample (default: its state, reason 1)."""
    uuid = uuid or f"uuid-{name}"
    code = polled or (alerts_mod._PAUSED if state == "paused" else 1 if state == "running" else 5, 1)
    rates = VmRates(cpu, None, None, mem, None, write_bps, None, None, None, None)
    return VmState(
        uuid=uuid,
        name=name,
        host=host,
        state=state,
        reason=1,
        vcpus=1,
        mem_max_kib=None,
        mem_current_kib=None,
        sample=domain_sample(uuid, name, *code),
        rates=rates if state == "running" else None,
        details=None if tags is None else details(name, tags),
        stale=stale,
    )


def fleet(hosts: Iterable[HostState] = (), vms: Iterable[VmState] = ()) -> FleetState:
    hs = tuple(hosts) or (host(),)
    return FleetState(version=1, time=0.0, hosts=hs, vms=MappingProxyType({v.key: v for v in vms}))


def cpu_rule(**kw: object) -> Rule:
    fields: dict[str, object] = {
        "name": "cpu",
        "metric": "vm.cpu_pct",
        "threshold": 90.0,
        "for_seconds": 10.0,
    }
    return Rule(**(fields | kw))  # type: ignore[arg-type]


def run(engine: AlertEngine, states: Iterable[tuple[float, FleetState]]) -> list[tuple[float, Alert]]:
    return [(t, a) for t, s in states for a in engine.evaluate(s, t)]


def event(kind: str, detail: str = "", *, t: float = 0.0, name: str = "web1", on: str = "kvm01") -> HostEvent:
    return HostEvent(t, on, name, f"uuid-{name}", kind, detail)


# ------------------------------------------------------------------------------------------- rules


def test_libvirt_codes_copied_by_value_match_libvirt() -> None:
    assert metric_values._SHUTOFF == libvirt.VIR_DOMAIN_SHUTOFF
    assert metric_values._PAUSED == libvirt.VIR_DOMAIN_PAUSED
    assert metric_values._PAUSED_IOERROR == libvirt.VIR_DOMAIN_PAUSED_IOERROR
    assert metric_values._PAUSED_CRASHED == libvirt.VIR_DOMAIN_PAUSED_CRASHED
    assert metric_values._SHUTOFF_CRASHED == libvirt.VIR_DOMAIN_SHUTOFF_CRASHED
    assert alerts_mod._STOPPED_CRASHED == str(libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED)
    assert alerts_mod._STOPPED_FAILED == str(libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED)
    assert alerts_mod._SUSPENDED_IOERROR == str(libvirt.VIR_DOMAIN_EVENT_SUSPENDED_IOERROR)
    assert alerts_mod._CRASHED_PANICKED == str(libvirt.VIR_DOMAIN_EVENT_CRASHED_PANICKED)


def test_every_rate_metric_reads_the_vmrates_field_it_names() -> None:
    r = VmRates(1.0, 2.0, 3, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)
    got = {m.name: r[m.rates_index] for m in metrics.alert_metrics() if m.rates_index >= 0}
    assert got == {
        "vm.cpu_pct": r.cpu_pct,
        "vm.mem_pct": r.mem_pct,
        "vm.disk_read_bps": r.disk_rd_bps,
        "vm.disk_write_bps": r.disk_wr_bps,
        "vm.net_rx_bps": r.net_rx_bps,
        "vm.net_tx_bps": r.net_tx_bps,
    }


def test_rule_defaults_and_hysteresis_defaults() -> None:
    r = cpu_rule()
    assert (r.op, r.severity, r.enabled, r.clear, r.clear_for_seconds) == (
        ">",
        Severity.WARNING,
        True,
        None,
        None,
    )
    assert r.clear_at == 81.0  # the threshold less 10% of it
    assert r.clear_after == 10.0  # for_seconds
    assert cpu_rule(for_seconds=0).clear_after == MIN_CLEAR_FOR
    assert cpu_rule(for_seconds=120).clear_after == 120
    assert cpu_rule(op="<", threshold=10).clear_at == 11.0
    assert cpu_rule(clear=50, clear_for_seconds=0).clear_after == 0
    assert Rule("c", "vm.crashed").trigger == 0.5


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"metric": "vm.cpu"}, "metric"),
        ({"threshold": None}, "threshold"),
        ({"threshold": 120}, "threshold"),
        ({"clear": 95}, "clear"),
        ({"op": ">="}, "op"),
        ({"severity": "fatal"}, "severity"),
        ({"for_seconds": -1}, "for"),
        ({"clear_for_seconds": float("nan")}, "clear_for"),
        ({"metric": "host.cpu_pct", "vms": ("web*",)}, "vms"),
        ({"metric": "vm.crashed", "threshold": 1}, "threshold"),
        ({"group": "dc1/"}, "group"),
        ({"vms": "web*"}, "vms"),
        ({"name": " cpu"}, "name"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_key(fields: dict[str, object], key: str) -> None:
    with pytest.raises(RuleError) as info:
        cpu_rule(**fields)
    assert info.value.key == key


def test_defaults_ship_and_a_rule_of_the_same_name_replaces_one() -> None:
    names = [r.name for r in DEFAULT_RULES]
    assert names == ["host-unreachable", "vm-crashed", "vm-io-error", "host-memory"]
    by_name = {r.name: r for r in DEFAULT_RULES}
    assert by_name["host-memory"].threshold == 90 and by_name["host-memory"].for_seconds == 60
    assert all(by_name[n].severity == Severity.CRITICAL for n in names[:3])
    mine = Rule("host-memory", "host.mem_pct", threshold=95.0)
    extra = cpu_rule()
    got = effective_rules([extra, mine])
    assert [r.name for r in got] == [*names, "cpu"]
    assert got[3] is mine
    assert effective_rules([extra], defaults=False) == (extra,)


def test_parse_duration_and_rate() -> None:
    assert [parse_duration(v) for v in ("60", "60s", "60 s", "5m", "1h30m", "500ms", "2 min", 90, 1.5)] == [
        60,
        60,
        60,
        300,
        5400,
        0.5,
        120,
        90,
        1.5,
    ]
    assert [parse_duration(v) for v in ("", "s", "1m 30", "-5s", "soon", -1, True, float("inf"))] == [
        None
    ] * 8
    assert parse_rate("10M") == parse_rate("10 MiB/s") == parse_rate("10MB/s") == 10 * 2**20
    assert parse_rate("500 B/s") == 500 and parse_rate(2048) == 2048
    assert parse_rate("fast") is None and parse_rate(-1) is None


# ----------------------------------------------------------------------------- numbers: for and clear


def test_fires_only_after_its_for_time_with_a_message() -> None:
    e = AlertEngine([cpu_rule()])
    assert e.evaluate(fleet(vms=[vm(cpu=97)]), 100.0) == []
    assert e.pending() == [("cpu", "kvm01/uuid-web1", 100.0)]
    assert e.evaluate(fleet(vms=[vm(cpu=95)]), 105.0) == []
    [a] = e.evaluate(fleet(vms=[vm(cpu=97)]), 110.0)
    assert (a.state, a.rule, a.kind, a.host, a.vm, a.vm_uuid) == (
        "firing",
        "cpu",
        "vm",
        "kvm01",
        "web1",
        "uuid-web1",
    )
    assert (a.since, a.fired_at, a.value, a.threshold, a.resolved_at) == (100.0, 110.0, 97, 90, None)
    assert a.message == "kvm01/web1 CPU 97% > 90% for 10s"
    assert e.active == [a]
    assert e.evaluate(fleet(vms=[vm(cpu=99)]), 112.0) == []  # firing stays firing: no new transition


def test_a_spike_shorter_than_for_does_not_fire() -> None:
    e = AlertEngine([cpu_rule()])
    values = [97, 97, 50, 97, 97, 97, 10, 97]  # 2 s apart: no run of 10 s above 90
    assert run(e, ((i * 2.0, fleet(vms=[vm(cpu=v)])) for i, v in enumerate(values))) == []
    assert e.active == []


def test_for_zero_fires_at_the_first_sample() -> None:
    e = AlertEngine([cpu_rule(for_seconds=0)])
    [a] = e.evaluate(fleet(vms=[vm(cpu=91)]), 5.0)
    assert a.message == "kvm01/web1 CPU 91% > 90%"


def test_resolves_only_after_clear_for_below_clear() -> None:
    e = AlertEngine([cpu_rule(clear=80, clear_for_seconds=6)])
    [(_, a)] = run(e, [(0, fleet(vms=[vm(cpu=95)])), (10, fleet(vms=[vm(cpu=95)]))])
    assert e.active == [a]
    # between clear (80) and the threshold (90): nothing changes, however long
    assert run(e, ((t, fleet(vms=[vm(cpu=85)])) for t in range(12, 200, 2))) == []
    # below clear, but not for 6 s
    assert run(e, [(200, fleet(vms=[vm(cpu=70)])), (204, fleet(vms=[vm(cpu=82)]))]) == []
    assert run(e, [(206, fleet(vms=[vm(cpu=70)])), (210, fleet(vms=[vm(cpu=70)]))]) == []
    [(t, r)] = run(e, [(212, fleet(vms=[vm(cpu=60)]))])
    assert (r.state, r.resolved_at, r.reason, r.value) == ("resolved", 212, "cleared", 60)
    assert (r.id, r.since, r.fired_at) == (a.id, a.since, a.fired_at)  # one occurrence, one id
    assert r.message == "kvm01/web1 CPU back to 60% (<= 80% for 6s)"
    assert e.active == []


def test_a_below_rule_and_a_rate_metric() -> None:
    idle = Rule("idle", "vm.cpu_pct", op="<", threshold=1.0, for_seconds=0.0, clear_for_seconds=0.0)
    writes = Rule("writes", "vm.disk_write_bps", threshold=50 * 2**20, for_seconds=0.0)
    e = AlertEngine([idle, writes])
    fired = e.evaluate(fleet(vms=[vm(cpu=0.5, write_bps=80 * 2**20)]), 0.0)
    assert [a.rule for a in fired] == ["idle", "writes"]
    assert fired[1].message == "kvm01/web1 disk write 80M/s > 50M/s"
    [r] = e.evaluate(fleet(vms=[vm(cpu=5, write_bps=80 * 2**20)]), 1.0)
    assert (r.rule, r.state) == ("idle", "resolved")


def test_an_unknown_rate_counts_as_quiet_so_a_stopped_vms_alert_resolves() -> None:
    e = AlertEngine([cpu_rule(for_seconds=0, clear_for_seconds=4)])
    e.evaluate(fleet(vms=[vm(cpu=99)]), 0.0)
    assert e.evaluate(fleet(vms=[vm(state="shutoff")]), 2.0) == []
    [r] = e.evaluate(fleet(vms=[vm(state="shutoff")]), 6.0)
    assert r.value is None and r.message.startswith("kvm01/web1 CPU no longer reported")


def test_a_stale_vm_holds_its_alert_while_its_host_is_not_answering() -> None:
    e = AlertEngine([cpu_rule(for_seconds=0, clear_for_seconds=0)])
    e.evaluate(fleet(vms=[vm(cpu=99)]), 0.0)
    down = [host(status=HostStatus.UNREACHABLE)]
    assert run(e, ((t, fleet(down, [vm(cpu=10, stale=True)])) for t in range(1, 100))) == []
    assert len(e.active) == 1
    [r] = e.evaluate(fleet(vms=[vm(cpu=10)]), 100.0)
    assert r.reason == "cleared"


@settings(max_examples=300)
@given(
    values=st.lists(
        st.sampled_from([0.0, 50.0, 79.0, 80.0, 81.0, 89.0, 90.0, 91.0, 99.0, 100.0]), max_size=80
    ),
    for_s=st.sampled_from([0.0, 2.0, 6.0]),
    clear_for=st.sampled_from([0.0, 2.0, 6.0]),
)
def test_no_flapping_over_random_sequences(values: list[float], for_s: float, clear_for: float) -> None:
    """Each firing needs an excursion above the threshold that started after the value was last at or
    below `clear` (hovering between the two counts once); fire and resolve alternate; each transition
    is backed by its `for` / `clear_for` time of samples on the right side."""
    rule = cpu_rule(clear=80.0, for_seconds=for_s, clear_for_seconds=clear_for)
    e = AlertEngine([rule])
    times = [2.0 * i for i in range(len(values))]
    got = run(e, zip(times, (fleet(vms=[vm(cpu=v)]) for v in values), strict=True))

    excursions, armed = 0, True
    for v in values:
        if v > 90 and armed:
            excursions, armed = excursions + 1, False
        elif v <= 80:
            armed = True
    states = [a.state for _, a in got]
    assert states.count("firing") <= excursions
    assert states == ["firing", "resolved"] * (len(states) // 2) + ["firing"] * (len(states) % 2)
    for (_, fired), (_, resolved) in zip(got[::2], got[1::2], strict=False):
        assert fired.id == resolved.id
    index = {t: i for i, t in enumerate(times)}
    for t, a in got:
        if a.state == "firing":
            window = [v for tt, v in zip(times, values, strict=True) if a.since <= tt <= t]
            assert t - a.since >= for_s and all(v > 90 for v in window)
            start = index[a.since]  # since: where the run above the threshold began
            assert start == 0 or values[start - 1] <= 90
        else:
            assert all(v <= 80 for tt, v in zip(times, values, strict=True) if t - clear_for <= tt <= t)
    assert (len(e.active) == 1) == (len(states) % 2 == 1)


# ------------------------------------------------------------------------------------------------ scope


def test_scope_by_vm_pattern_host_pattern_group_prefix_and_tags() -> None:
    hosts = [host("kvm01", group="dc1/rack3"), host("kvm02", group="dc10"), host("kvm03", group="dc1")]
    vms = [
        vm("web1", "kvm01", cpu=99, tags=["prod", "web"]),
        vm("db1", "kvm01", cpu=99, tags=["prod"]),
        vm("web2", "kvm02", cpu=99, tags=[]),
        vm("web3", "kvm03", cpu=99),
    ]
    state = fleet(hosts, vms)

    def fired(**scope: object) -> set[str]:
        e = AlertEngine([cpu_rule(for_seconds=0, **scope)])
        return {f"{a.host}/{a.vm}" for a in e.evaluate(state, 0.0)}

    everything = {"kvm01/web1", "kvm01/db1", "kvm02/web2", "kvm03/web3"}
    assert fired() == everything
    assert fired(vms=("web*",)) == {"kvm01/web1", "kvm02/web2", "kvm03/web3"}
    assert fired(vms=("db?", "web2")) == {"kvm01/db1", "kvm02/web2"}
    assert fired(vms=("WEB*",)) == set()  # case-sensitive, as libvirt's names are
    assert fired(hosts=("kvm0[13]",)) == {"kvm01/web1", "kvm01/db1", "kvm03/web3"}
    assert fired(group="dc1") == {"kvm01/web1", "kvm01/db1", "kvm03/web3"}  # not dc10
    assert fired(group="dc1/rack3") == {"kvm01/web1", "kvm01/db1"}
    assert fired(tags=("web", "none")) == {"kvm01/web1"}
    assert fired(tags=("prod",), vms=("db*",)) == {"kvm01/db1"}
    assert fired(tags=("prod",), hosts=("kvm02",)) == set()


def test_host_rules_scope_by_host_and_group() -> None:
    hosts = [host("kvm01", group="dc1", mem=95), host("kvm02", group="dc2", mem=95)]
    e = AlertEngine([Rule("mem", "host.mem_pct", threshold=90.0, group="dc2")])
    [a] = e.evaluate(fleet(hosts), 0.0)
    assert (a.kind, a.host, a.vm, a.message) == ("host", "kvm02", "", "kvm02 memory 95% > 90%")


def test_a_vm_leaving_the_scope_resolves_its_alert() -> None:
    e = AlertEngine([cpu_rule(for_seconds=0, vms=("web*",))])
    e.evaluate(fleet(vms=[vm("web1", cpu=99)]), 0.0)
    [r] = e.evaluate(fleet(vms=[vm("db1", uuid="uuid-web1", cpu=99)]), 1.0)  # renamed
    assert r.reason == "VM out of the rule's scope"


# ------------------------------------------------------------------------------------------------ hosts


def test_host_unreachable_from_host_status_with_the_default_rule() -> None:
    e = AlertEngine(DEFAULT_RULES)
    down = host(status=HostStatus.UNREACHABLE, message="SSH connection lost")
    assert e.evaluate(fleet([down]), 0.0) == []
    assert e.evaluate(fleet([host(status=HostStatus.CONNECTING)]), 15.0) == []  # unknown: holds
    [a] = e.evaluate(fleet([down]), 30.0)
    assert (a.rule, a.severity, a.kind) == ("host-unreachable", Severity.CRITICAL, "host")
    assert a.message == "kvm01 unreachable for 30s: SSH connection lost"
    assert e.evaluate(fleet([host(status=HostStatus.AUTH_FAILED)]), 40.0) == []  # still unreachable
    assert e.evaluate(fleet([host(status=HostStatus.UP)]), 50.0) == []
    [r] = e.evaluate(fleet([host(status=HostStatus.DEGRADED)]), 80.0)
    assert (r.state, r.message) == ("resolved", "kvm01 reachable again")


def test_default_host_memory_rule_and_a_blip_that_reconnects_is_not_an_alert() -> None:
    e = AlertEngine(DEFAULT_RULES)
    assert run(e, [(0, fleet([host(mem=95)])), (59, fleet([host(mem=95)]))]) == []
    [(_, a)] = run(e, [(60, fleet([host(mem=92)]))])
    assert (a.rule, a.severity, a.message) == (
        "host-memory",
        Severity.WARNING,
        "kvm01 memory 92% > 90% for 1m",
    )
    assert run(e, [(61, fleet([host(status=HostStatus.UNREACHABLE)])), (65, fleet([host(mem=92)]))]) == []


def test_a_host_removed_from_the_inventory_resolves_its_alerts_and_its_vms() -> None:
    e = AlertEngine([Rule("hcpu", "host.cpu_pct", threshold=50.0), cpu_rule(for_seconds=0)])
    fired = e.evaluate(fleet([host("kvm01", cpu=90), host("kvm02")], [vm(cpu=99)]), 0.0)
    assert len(fired) == 2
    resolved = e.evaluate(fleet([host("kvm02")]), 1.0)
    assert {(a.kind, a.reason) for a in resolved} == {("host", "host removed"), ("vm", "host removed")}
    assert e.active == []


# -------------------------------------------------------------------------------------------------- vms


def test_vm_deleted_or_migrated_away_resolves_with_a_reason() -> None:
    e = AlertEngine([cpu_rule(for_seconds=0)])
    hosts = [host("kvm01"), host("kvm02")]
    e.evaluate(fleet(hosts, [vm("web1", cpu=99), vm("web2", cpu=99)]), 0.0)
    resolved = e.evaluate(fleet(hosts, [vm("web2", "kvm02", cpu=10)]), 1.0)
    assert {(a.vm, a.reason) for a in resolved} == {
        ("web1", "VM no longer exists"),
        ("web2", "VM moved to kvm02"),
    }
    assert resolved[0].message.endswith(": resolved, " + resolved[0].reason)
    assert e.active == []


def test_crash_event_fires_at_once_and_holds_until_the_vm_runs_again() -> None:
    e = AlertEngine(DEFAULT_RULES)
    assert e.evaluate(fleet(vms=[vm()]), 0.0) == []
    [a] = e.on_event(event("crashed", "0", t=3.0))
    assert (a.rule, a.state, a.fired_at) == ("vm-crashed", "firing", 3.0)
    assert a.message == "kvm01/web1 crashed: guest panicked"
    assert e.on_event(event("crashed", "0", t=3.5)) == []  # already firing
    # the event says shutoff; the sample is from before it (running): unknown, held however long
    after = vm(state="shutoff", polled=(1, 1))
    assert run(e, ((t, fleet(vms=[after])) for t in range(4, 60))) == []
    # the next poll agrees: shut off, reason crashed (what libvirt sets when QEMU dies)
    crashed = vm(state="shutoff", polled=(libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED))
    assert run(e, ((t, fleet(vms=[crashed])) for t in range(60, 120))) == []
    assert [x.rule for x in e.active] == ["vm-crashed"]
    # started again: resolves once it has run for the quiet time
    assert e.evaluate(fleet(vms=[vm()]), 120.0) == []
    [r] = e.evaluate(fleet(vms=[vm()]), 120.0 + MIN_CLEAR_FOR)
    assert (r.id, r.state, r.message) == (a.id, "resolved", "kvm01/web1 no longer crashed")


@pytest.mark.parametrize(
    ("kind", "detail", "rule"),
    [
        ("crashed", "0", "vm-crashed"),
        ("stopped", str(libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED), "vm-crashed"),
        ("stopped", str(libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED), "vm-crashed"),
        ("suspended", str(libvirt.VIR_DOMAIN_EVENT_SUSPENDED_IOERROR), "vm-io-error"),
        ("stopped", str(libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED), None),
        ("stopped", str(libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED), None),
        ("suspended", str(libvirt.VIR_DOMAIN_EVENT_SUSPENDED_PAUSED), None),
        ("reboot", "", None),
    ],
)
def test_which_events_fire(kind: str, detail: str, rule: str | None) -> None:
    e = AlertEngine(DEFAULT_RULES)
    got = e.on_event(event(kind, detail))
    assert [a.rule for a in got] == ([rule] if rule else [])


def test_crash_and_io_error_seen_by_polls_alone() -> None:
    e = AlertEngine(DEFAULT_RULES)
    vms = [
        vm("a", state="crashed", polled=(libvirt.VIR_DOMAIN_CRASHED, libvirt.VIR_DOMAIN_CRASHED_PANICKED)),
        vm("b", state="paused", polled=(libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_IOERROR)),
        vm("c", state="paused", polled=(libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_USER)),
        vm("d", state="shutoff", polled=(libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED)),
        vm("e", state="paused", polled=(libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_CRASHED)),
        # an event said shutoff with detail 3 (migrated); vm.reason is then an event detail, not a state
        # reason (3 would read "crashed"): the engine never reads vm.reason, and the sample is older
        vm("f", state="shutoff", polled=(libvirt.VIR_DOMAIN_RUNNING, 1)),
    ]
    got = e.evaluate(fleet(vms=vms), 0.0)
    assert sorted((a.vm, a.rule) for a in got) == [
        ("a", "vm-crashed"),
        ("b", "vm-io-error"),
        ("e", "vm-crashed"),
    ]
    io = next(a for a in got if a.rule == "vm-io-error")
    assert io.message == "kvm01/b paused on I/O error"


def test_io_error_resolves_when_resumed() -> None:
    e = AlertEngine(DEFAULT_RULES)
    [a] = e.on_event(event("suspended", "2", t=1.0))
    paused = vm(state="paused", polled=(libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_IOERROR))
    assert run(e, [(2.0, fleet(vms=[paused])), (50.0, fleet(vms=[paused]))]) == []
    assert run(e, [(51.0, fleet(vms=[vm()]))]) == []
    [(_, r)] = run(e, [(61.0, fleet(vms=[vm()]))])
    assert (r.id, r.rule, r.reason) == (a.id, "vm-io-error", "cleared")


def test_a_crash_event_of_a_vm_that_then_disappears_resolves() -> None:
    e = AlertEngine(DEFAULT_RULES)
    e.evaluate(fleet(vms=[vm()]), 0.0)
    [a] = e.on_event(event("stopped", "5", t=1.0))  # a transient VM: gone with its QEMU
    assert a.message == "kvm01/web1 crashed: its QEMU process ended unexpectedly"
    [r] = e.evaluate(fleet(vms=[]), 2.0)
    assert (r.id, r.reason) == (a.id, "VM no longer exists")


def test_events_respect_scope_and_for() -> None:
    slow = Rule("crash", "vm.crashed", for_seconds=5.0, vms=("web*",), severity="info")
    e = AlertEngine([slow])
    assert e.on_event(event("crashed", name="db1")) == []
    assert e.on_event(event("crashed", t=10.0)) == []  # pending for 5 s
    crashed = vm(state="crashed", polled=(libvirt.VIR_DOMAIN_CRASHED, 0))
    [a] = e.evaluate(fleet(vms=[crashed]), 15.0)
    assert (a.since, a.fired_at, a.severity) == (10.0, 15.0, Severity.INFO)


def test_guest_agent_gone_from_agent_events() -> None:
    e = AlertEngine([Rule("agent", "vm.agent_gone", for_seconds=60.0)])
    assert run(e, ((t, fleet(vms=[vm()])) for t in range(0, 200, 10))) == []  # never heard: nothing
    e.on_event(event("agent-disconnected", t=200.0))
    assert e.evaluate(fleet(vms=[vm()]), 200.0) == []
    [a] = e.evaluate(fleet(vms=[vm()]), 260.0)
    assert a.message == "kvm01/web1 guest agent gone for 1m"
    e.on_event(event("agent-connected", t=270.0))
    assert e.evaluate(fleet(vms=[vm()]), 270.0) == []
    [r] = e.evaluate(fleet(vms=[vm()]), 330.0)
    assert r.reason == "cleared"


def test_recorded_stats_drive_a_cpu_rule() -> None:
    """Real rates from the lab recording: web01's CPU between two steady polls, and db01 destroyed (a
    shutoff with reason destroyed is not a crash)."""
    rates = vm_rates(sample("steady-0", "web01"), sample("steady-1", "web01"), host_cpus())
    assert rates.cpu_pct is not None

    def state_at(label: str, prev: str | None) -> FleetState:
        vms = []
        for d in poll(label)["domains"]:
            s = sample(label, d["name"])
            r = vm_rates(sample(prev, d["name"]) if prev else None, s, host_cpus())
            vms.append(
                VmState(
                    d["uuid"],
                    d["name"],
                    "kvm01",
                    state_name(s.state),
                    s.reason,
                    s.vcpus,
                    None,
                    None,
                    s,
                    r,
                    None,
                )
            )
        return fleet(vms=vms)

    below = Rule("busy", "vm.cpu_pct", threshold=rates.cpu_pct * 0.5, vms=("web01",))
    e = AlertEngine([below, *DEFAULT_RULES])
    [a] = e.evaluate(state_at("steady-1", "steady-0"), poll("steady-1")["t"])
    assert (a.vm, a.value) == ("web01", pytest.approx(rates.cpu_pct))
    assert e.evaluate(state_at("db01-shutoff", "steady-2"), poll("db01-shutoff")["t"]) == []


# ------------------------------------------------------------------------------------ rules and the log


def test_set_rules_keeps_unchanged_rules_and_resolves_changed_ones() -> None:
    keep, change = cpu_rule(for_seconds=0), Rule("mem", "vm.mem_pct", threshold=50.0)
    e = AlertEngine([keep, change])
    assert len(e.evaluate(fleet(vms=[vm(cpu=99, mem=99)]), 0.0)) == 2
    [r] = e.set_rules([keep, Rule("mem", "vm.mem_pct", threshold=60.0)], now=1.0)
    assert (r.rule, r.reason) == ("mem", "rule changed")
    assert [a.rule for a in e.active] == ["cpu"]
    assert [a.rule for a in e.evaluate(fleet(vms=[vm(cpu=99, mem=99)]), 2.0)] == ["mem"]
    with pytest.raises(RuleError):
        e.set_rules([keep, keep])
    assert [r.name for r in AlertEngine([keep, cpu_rule(name="off", enabled=False)]).rules] == ["cpu"]


def test_active_is_most_severe_first_and_alerts_serialise() -> None:
    e = AlertEngine([cpu_rule(for_seconds=0), Rule("mem", "vm.mem_pct", threshold=50.0, severity="critical")])
    e.evaluate(fleet(vms=[vm(cpu=99, mem=99)]), 0.0)
    assert [a.rule for a in e.active] == ["mem", "cpu"]
    d = json.loads(e.active[0].to_json())
    assert d["severity"] == "critical" and d["metric"] == "vm.mem_pct" and d["subject"] == "kvm01/web1"
    assert d["state"] == "firing" and d["resolved_at"] is None


def test_record_alert_writes_the_activity_log() -> None:
    log = ActivityLog()
    e = AlertEngine([cpu_rule(for_seconds=0, clear_for_seconds=0)])
    [a] = e.evaluate(fleet(vms=[vm(cpu=99)]), 10.0)
    [r] = e.evaluate(fleet(vms=[vm(cpu=1)]), 20.0)
    fired, resolved = record_alert(log, a), record_alert(log, r)
    assert (fired.state, fired.action, fired.host, fired.vm, fired.time) == (
        "failed",
        "alert cpu",
        "kvm01",
        "web1",
        10,
    )
    assert fired.error == a.message
    assert (resolved.state, resolved.action, resolved.time) == ("event", "resolved cpu", 20)


# ------------------------------------------------------------------------------------------------ hooks

WRITE_STDIN = (
    "import json, os, pathlib, sys\n"
    "data = sys.stdin.buffer.read()\n"
    "a = json.loads(data)\n"
    "pathlib.Path(sys.argv[1], f\"{a['id']}-{a['state']}.json\").write_bytes(data)\n"
    "pathlib.Path(sys.argv[1], f\"{a['id']}-env\").write_text(os.environ['VIMTUI_ALERT_MESSAGE'])\n"
)


def an_alert(state: str = "firing", **kw: object) -> Alert:
    fields: dict[str, object] = {
        "id": 7,
        "rule": "cpu",
        "severity": Severity.WARNING,
        "kind": "vm",
        "host": "kvm01",
        "vm": "web1",
        "vm_uuid": "uuid-web1",
        "metric": "vm.cpu_pct",
        "value": 97.0,
        "threshold": 90.0,
        "op": ">",
        "state": state,
        "since": 100.0,
        "fired_at": 110.0,
        "message": "kvm01/web1 CPU 97% > 90% for 10s",
    }
    return Alert(**(fields | kw))  # type: ignore[arg-type]


async def test_hook_gets_the_alert_as_json_on_stdin(tmp_path: Path) -> None:
    problems: list[str] = []
    hook = HookRunner(
        [sys.executable, "-c", WRITE_STDIN, str(tmp_path)], on_problem=lambda _a, p: problems.append(p)
    )
    firing = an_alert()
    resolved = an_alert("resolved", resolved_at=130.0, value=50.0, reason="cleared")
    hook.submit_all([firing, resolved])
    await hook.drain()
    assert problems == []
    got = json.loads((tmp_path / "7-firing.json").read_text())
    assert got == firing.as_dict()
    assert got["subject"] == "kvm01/web1" and got["metric"] == "vm.cpu_pct" and got["severity"] == "warning"
    assert json.loads((tmp_path / "7-resolved.json").read_text())["reason"] == "cleared"
    assert (tmp_path / "7-env").read_text() == firing.message


async def test_a_shell_hook_string(tmp_path: Path) -> None:
    out = tmp_path / "out"
    hook = HookRunner(f'{{ cat; echo; echo "$VIMTUI_ALERT_STATE"; }} > "{out}"')
    hook.submit(an_alert())
    await hook.drain()
    first, state = out.read_text().splitlines()
    assert json.loads(first)["id"] == 7 and state == "firing"


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> bool:
    """Whether `predicate` holds within `within` seconds: for what other processes do (a file they
    write, their exit), which nothing here can be notified of."""
    for _ in range(int(within / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


def gone(pid: int) -> bool:
    """Exited (a zombie counts: an orphan is reaped by init, not by us)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_a_hook_past_its_timeout_is_killed_with_what_it_started(tmp_path: Path) -> None:
    problems: list[tuple[Alert, str]] = []
    pids = tmp_path / "pids"
    hook = HookRunner(
        f'sleep 30 & echo $$ $! > "{pids}"; wait',
        timeout=0.5,
        on_problem=lambda a, p: problems.append((a, p)),
    )
    started = time.monotonic()
    hook.submit(an_alert())
    await hook.drain()
    assert time.monotonic() - started < 10
    [(alert, problem)] = problems
    assert alert.id == 7 and problem == "alert hook still running after 0.5 s: killed"
    shell, child = (int(p) for p in pids.read_text().split())
    assert await eventually(lambda: gone(shell) and gone(child))


async def test_a_failing_hook_reports_its_exit_status_and_stderr() -> None:
    problems: list[str] = []
    code = "import sys; sys.stdin.read(); print('line 1\\nsmtp: refused', file=sys.stderr); sys.exit(3)"
    hook = HookRunner([sys.executable, "-c", code], on_problem=lambda _a, p: problems.append(p))
    hook.submit(an_alert())
    await hook.drain()
    assert problems == ["alert hook exited 3: line 1 | smtp: refused"]


async def test_a_hook_that_cannot_start_is_reported(tmp_path: Path) -> None:
    problems: list[str] = []
    hook = HookRunner([str(tmp_path / "no-such-hook")], on_problem=lambda _a, p: problems.append(p))
    hook.submit(an_alert())
    await hook.drain()
    [problem] = problems
    assert problem.startswith("alert hook cannot start: ")


async def test_hooks_run_a_few_at_a_time_and_drop_beyond_the_queue() -> None:
    problems: list[str] = []
    hook = HookRunner(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        max_running=2,
        max_queued=1,
        on_problem=lambda _a, p: problems.append(p),
    )
    accepted = [hook.submit(an_alert(id=i)) for i in range(4)]
    assert accepted == [True, True, True, False]
    assert hook.busy == 3
    assert problems == ["alert hook not run: 1 alerts already waiting for it"]
    await hook.drain()
    assert hook.runs == 3 and hook.busy == 0 and len(problems) == 1


async def test_close_kills_running_hooks_and_refuses_more(tmp_path: Path) -> None:
    problems: list[str] = []
    pid = tmp_path / "pid"
    hook = HookRunner(f'echo $$ > "{pid}.tmp"; mv "{pid}.tmp" "{pid}"; sleep 30', timeout=60)
    hook.on_problem = lambda _a, p: problems.append(p)
    hook.submit(an_alert())
    hook.submit(an_alert(id=8))
    hook.submit(an_alert(id=9))
    assert await eventually(pid.exists)  # one has started (the kill must reach it)
    started = time.monotonic()
    await hook.close()
    assert time.monotonic() - started < 5
    assert hook.busy == 0 and problems == []
    assert hook.submit(an_alert(id=10)) is False
    assert problems == ["alert hook not run: vimtui is shutting down"]
    shell = int(pid.read_text())
    assert await eventually(lambda: gone(shell))


def test_a_problem_handler_that_raises_does_not_escape() -> None:
    def bad(_a: Alert, _p: str) -> None:
        raise RuntimeError("oops")

    hook = HookRunner(["true"], on_problem=bad)
    assert hook.submit(an_alert()) is False  # no running loop: reported (to a handler that fails)


def test_a_hook_command_must_not_be_empty() -> None:
    with pytest.raises(ValueError):
        HookRunner([])
    with pytest.raises(ValueError):
        HookRunner("  ")


async def test_a_hook_that_leaves_a_daemon_holding_its_stderr_frees_its_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alert_hook, "REAP_WITHIN", 0.2)
    problems: list[str] = []
    pid = tmp_path / "pid"
    # the daemon: its own session (out of reach of the kill), stderr inherited
    hook = HookRunner(
        f"setsid sh -c 'echo $$ > \"{pid}\"; exec sleep 30' & exit 0",
        timeout=0.5,
        on_problem=lambda _a, p: problems.append(p),
    )
    hook.submit(an_alert())
    try:
        await hook.drain()
        assert problems == ["alert hook exited 0, but its stderr stayed open past 0.5 s"]
    finally:
        if await eventually(pid.exists):
            os.kill(int(pid.read_text()), 9)


def test_a_stopped_vm_found_quiet_is_not_read_again_until_its_state_or_its_host_group_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stopped VM's VmState stays the same object from poll to poll: where every rule of its host reads
    the VmState alone, a VM found quiet is skipped while it stays that object. A new VmState (it crashed)
    is read and fires; its host moved into a group with another rule is read again and fires."""
    reads: list[str] = []
    value_fn = AlertEngine._value_fn

    def counted(self: AlertEngine, metric: object) -> object:
        fn = value_fn(self, metric)  # type: ignore[arg-type]
        if fn is None:
            return None

        def read(v: VmState, now: float) -> float | None:
            reads.append(v.name)
            return fn(v, now)

        return read

    monkeypatch.setattr(AlertEngine, "_value_fn", counted)
    rules = [
        Rule("io", "vm.io_error", severity=Severity.WARNING),
        Rule("crashed-dc2", "vm.crashed", severity=Severity.CRITICAL, group="dc2"),
    ]
    e = AlertEngine(rules)
    off = vm("a", state="shutoff", polled=(libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED))
    quiet = vm("b", state="shutoff")
    dc1 = [host("kvm01", group="dc1")]
    assert e.evaluate(fleet(dc1, [off, quiet]), 0.0) == []
    assert sorted(reads) == ["a", "b"]
    reads.clear()
    assert e.evaluate(fleet(dc1, [off, quiet]), 1.0) == []
    assert reads == []  # the same objects, quiet last time: skipped
    crashed = vm("b", state="crashed", polled=(libvirt.VIR_DOMAIN_CRASHED, 0))
    assert e.evaluate(fleet(dc1, [off, crashed]), 2.0) == []  # io_error only in dc1: crashed is not it
    assert reads == ["b"]
    reads.clear()
    got = e.evaluate(fleet([host("kvm01", group="dc2")], [off, crashed]), 3.0)
    assert sorted((a.rule, a.vm) for a in got) == [("crashed-dc2", "a"), ("crashed-dc2", "b")]
    assert sorted(reads) == ["a", "a", "b", "b"]  # both rules, both VMs
