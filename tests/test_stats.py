"""Parsing and rates on stats recorded from a real lab host (tests/data/domstats-lab.json).

The recording: lab host kvm01 with web01 (qcow2 disk vda + NIC) and db01 (NIC only, 2 vCPUs), their
workload running; three polls 3 s apart, then db01 destroyed (a poll), started (a poll at once, before its
balloon driver reported anything), and two more polls 3 s apart. Expected values are computed here from
the raw dicts with their own arithmetic, not with the module's helpers.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import libvirt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vimtui.core.poll import stats as stats_module
from vimtui.core.poll.stats import (
    RUNNING,
    DomainSample,
    NodeSample,
    VmRates,
    _parse_general,
    host_rates,
    parse_domain_stats,
    parse_node,
    vm_rates,
)

DATA = Path(__file__).parent / "data" / "domstats-lab.json"
STEADY = ("steady-0", "steady-1", "steady-2")


@cache
def recording() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA.read_text())
    return data


def polls() -> list[dict[str, Any]]:
    return list(recording()["polls"])


def poll(label: str) -> dict[str, Any]:
    return next(p for p in polls() if p["label"] == label)


def raw(label: str, vm: str) -> dict[str, Any]:
    return dict(next(d for d in poll(label)["domains"] if d["name"] == vm)["stats"])


def sample(label: str, vm: str, stats: Mapping[str, Any] | None = None) -> DomainSample:
    p = poll(label)
    d = next(d for d in p["domains"] if d["name"] == vm)
    return parse_domain_stats(d["uuid"], d["name"], d["stats"] if stats is None else stats, p["t"])


def node(label: str) -> NodeSample:
    p = poll(label)
    return parse_node(p["info"], p["cpu_stats"], p["mem_stats"], p["t"])


def host_cpus() -> int:
    cpus: int = polls()[0]["info"][2]
    return cpus


def rate_values(r: VmRates) -> list[float | None]:
    values = [
        r.cpu_pct,
        r.cpu_host_pct,
        r.disk_rd_bps,
        r.disk_wr_bps,
        r.disk_rd_iops,
        r.disk_wr_iops,
        r.net_rx_bps,
        r.net_tx_bps,
    ]
    for d in r.disks:
        values += [d.rd_bps, d.wr_bps, d.rd_iops, d.wr_iops]
    for n in r.nics:
        values += [n.rx_bps, n.tx_bps, n.rx_pps, n.tx_pps]
    return values


# ---------------------------------------------------------------------------------------------- recording


def test_the_recording_is_what_the_tests_assume() -> None:
    labels = [p["label"] for p in polls()]
    assert labels == [*STEADY, "db01-shutoff", "db01-booting", "db01-restarted", "db01-restarted-2"]
    times = [p["t"] for p in polls()]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert raw("steady-0", "web01")["block.0.name"] == "vda"
    assert raw("steady-0", "db01")["block.count"] == 0
    assert raw("db01-shutoff", "db01")["state.state"] == libvirt.VIR_DOMAIN_SHUTOFF
    assert "balloon.available" not in raw("db01-booting", "db01")
    assert raw("db01-booting", "db01")["cpu.time"] < raw("steady-2", "db01")["cpu.time"]


def test_constants_match_libvirt() -> None:
    assert RUNNING == libvirt.VIR_DOMAIN_RUNNING


# ---------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("label", [p["label"] for p in json.loads(DATA.read_text())["polls"]])
def test_every_recorded_record_parses_to_its_raw_values(label: str) -> None:
    p = poll(label)
    for d in p["domains"]:
        s = d["stats"]
        got = parse_domain_stats(d["uuid"], d["name"], s, p["t"])
        assert (got.uuid, got.name, got.t) == (d["uuid"], d["name"], p["t"])
        assert (got.state, got.reason) == (s["state.state"], s["state.reason"])
        assert got.cpu_time_ns == s.get("cpu.time")
        assert (got.vcpus, got.vcpus_max) == (s.get("vcpu.current"), s.get("vcpu.maximum"))
        assert got.mem_max_kib == s.get("balloon.maximum")
        assert got.mem_current_kib == s.get("balloon.current")
        assert got.mem_available_kib == s.get("balloon.available")
        assert got.mem_unused_kib == s.get("balloon.unused")
        assert got.mem_usable_kib == s.get("balloon.usable")
        assert got.rss_kib == s.get("balloon.rss")
        n_disks = s.get("block.count", 0)
        assert [x.name for x in got.disks] == [s[f"block.{i}.name"] for i in range(n_disks)]
        for i, disk in enumerate(got.disks):
            assert disk.path == s.get(f"block.{i}.path")
            assert disk.rd_bytes == s[f"block.{i}.rd.bytes"]
            assert disk.wr_bytes == s[f"block.{i}.wr.bytes"]
            assert disk.rd_reqs == s[f"block.{i}.rd.reqs"]
            assert disk.wr_reqs == s[f"block.{i}.wr.reqs"]
            assert disk.capacity == s[f"block.{i}.capacity"]
            assert disk.allocation == s[f"block.{i}.allocation"]
        n_nics = s.get("net.count", 0)
        assert [x.name for x in got.nics] == [s[f"net.{i}.name"] for i in range(n_nics)]
        for i, nic in enumerate(got.nics):
            assert (nic.rx_bytes, nic.tx_bytes) == (s[f"net.{i}.rx.bytes"], s[f"net.{i}.tx.bytes"])
            assert (nic.rx_pkts, nic.tx_pkts) == (s[f"net.{i}.rx.pkts"], s[f"net.{i}.tx.pkts"])
        assert got.disk_rd_bytes == sum(s[f"block.{i}.rd.bytes"] for i in range(n_disks))
        assert got.disk_wr_bytes == sum(s[f"block.{i}.wr.bytes"] for i in range(n_disks))
        assert got.disk_rd_reqs == sum(s[f"block.{i}.rd.reqs"] for i in range(n_disks))
        assert got.disk_wr_reqs == sum(s[f"block.{i}.wr.reqs"] for i in range(n_disks))
        assert got.net_rx_bytes == sum(s[f"net.{i}.rx.bytes"] for i in range(n_nics))
        assert got.net_tx_bytes == sum(s[f"net.{i}.tx.bytes"] for i in range(n_nics))


def test_web01_has_its_qcow2_disk_and_db01_none() -> None:
    web = sample("steady-0", "web01")
    assert len(web.disks) == 1 and web.disks[0].name == "vda"
    assert web.disks[0].path == "/var/lib/libvirt/images/web01.qcow2"
    assert web.disks[0].capacity == 64 * 1024 * 1024
    db = sample("steady-0", "db01")
    assert db.disks == () and len(db.nics) == 1
    assert (db.vcpus, web.vcpus) == (2, 1)


class ItemsOnly(Mapping[str, Any]):
    """A stats dict that allows one walk over its items and nothing else: no lookups by key."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.walks = 0

    def __getitem__(self, key: str) -> Any:
        raise AssertionError(f"looked up {key!r}: the parser must walk the items once")

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("iterated the keys: the parser must walk the items once")

    def __len__(self) -> int:
        return len(self.data)

    def items(self) -> Any:
        self.walks += 1
        return self.data.items()


def test_parsing_is_one_walk_over_the_items() -> None:
    stats = ItemsOnly(raw("steady-1", "web01"))
    got = sample("steady-1", "web01", stats)
    assert stats.walks == 1
    assert got == sample("steady-1", "web01")


def test_backing_chain_entries_do_not_make_a_second_disk() -> None:
    s = raw("steady-1", "web01")
    # what VIR_CONNECT_GET_ALL_DOMAINS_STATS_BACKING adds: the backing image under the same device name
    s |= {
        "block.count": 2,
        "block.1.name": "vda",
        "block.1.path": "/var/lib/libvirt/images/base.qcow2",
        "block.1.backingIndex": 2,
        "block.1.rd.bytes": 1,
        "block.1.wr.bytes": 1,
        "block.1.rd.reqs": 1,
        "block.1.wr.reqs": 1,
    }
    got = sample("steady-1", "web01", s)
    assert [(d.name, d.path) for d in got.disks] == [("vda", "/var/lib/libvirt/images/web01.qcow2")]


# ---------------------------------------------------------------------------------------------- rates


def by_hand(label0: str, label1: str, vm: str) -> dict[str, float]:
    """The expected rates between two recorded polls, from the raw dicts (one disk vda, one NIC at most)."""
    a, b = raw(label0, vm), raw(label1, vm)
    dt = poll(label1)["t"] - poll(label0)["t"]
    cpu_s = (b["cpu.time"] - a["cpu.time"]) / 1e9
    out = {
        "cpu_pct": min(100.0, 100.0 * cpu_s / dt / b["vcpu.current"]),
        "cpu_host_pct": min(100.0, 100.0 * cpu_s / dt / poll(label1)["info"][2]),
        "net_rx_bps": (b["net.0.rx.bytes"] - a["net.0.rx.bytes"]) / dt,
        "net_tx_bps": (b["net.0.tx.bytes"] - a["net.0.tx.bytes"]) / dt,
        "net_rx_pps": (b["net.0.rx.pkts"] - a["net.0.rx.pkts"]) / dt,
        "disk_rd_bps": 0.0,
        "disk_wr_bps": 0.0,
        "disk_rd_iops": 0.0,
        "disk_wr_iops": 0.0,
    }
    if b["block.count"]:
        assert a["block.0.name"] == b["block.0.name"] == "vda"
        out["disk_rd_bps"] = (b["block.0.rd.bytes"] - a["block.0.rd.bytes"]) / dt
        out["disk_wr_bps"] = (b["block.0.wr.bytes"] - a["block.0.wr.bytes"]) / dt
        out["disk_rd_iops"] = (b["block.0.rd.reqs"] - a["block.0.rd.reqs"]) / dt
        out["disk_wr_iops"] = (b["block.0.wr.reqs"] - a["block.0.wr.reqs"]) / dt
    return out


# intervals where the VM ran throughout in one QEMU process
CONTINUOUS = [
    ("steady-0", "steady-1", "web01"),
    ("steady-1", "steady-2", "web01"),
    ("steady-2", "db01-shutoff", "web01"),
    ("db01-shutoff", "db01-booting", "web01"),
    ("db01-booting", "db01-restarted", "web01"),
    ("db01-restarted", "db01-restarted-2", "web01"),
    ("steady-0", "steady-1", "db01"),
    ("steady-1", "steady-2", "db01"),
    ("db01-booting", "db01-restarted", "db01"),
    ("db01-restarted", "db01-restarted-2", "db01"),
]


@pytest.mark.parametrize(("label0", "label1", "vm"), CONTINUOUS)
def test_rates_between_recorded_polls_match_the_hand_computed_ones(label0: str, label1: str, vm: str) -> None:
    want = by_hand(label0, label1, vm)
    got = vm_rates(sample(label0, vm), sample(label1, vm), host_cpus())
    for field in ("cpu_pct", "cpu_host_pct", "net_rx_bps", "net_tx_bps", *(k for k in want if "disk" in k)):
        assert getattr(got, field) == pytest.approx(want[field], rel=1e-12), field
    nic = got.nics[0]
    assert nic.name == raw(label1, vm)["net.0.name"]
    assert nic.rx_bps == pytest.approx(want["net_rx_bps"]) and nic.rx_pps == pytest.approx(want["net_rx_pps"])
    assert 0 < want["cpu_pct"] <= 100  # the workload ran: the numbers are not trivially zero


def test_cpu_percentages_are_capped_at_100() -> None:
    # the recorded CPU time over a hundredth of the interval: what a late poll timestamp would give
    prev, cur = sample("steady-0", "db01"), sample("steady-1", "db01")
    early = cur._replace(t=prev.t + (cur.t - prev.t) / 100)
    assert by_hand("steady-0", "steady-1", "db01")["cpu_pct"] * 100 > 100
    got = vm_rates(prev, early, host_cpus())
    assert got.cpu_pct == 100.0 and got.cpu_host_pct == 100.0
    assert got.net_rx_bps == pytest.approx(by_hand("steady-0", "steady-1", "db01")["net_rx_bps"] * 100)


def test_the_workload_moved_the_disk_and_network() -> None:
    wr = [by_hand(a, b, vm)["disk_wr_bps"] for a, b, vm in CONTINUOUS if vm == "web01"]
    rx = [by_hand(a, b, vm)["net_rx_bps"] for a, b, vm in CONTINUOUS]
    assert max(wr) > 0 and max(rx) > 0
    rates = vm_rates(sample("steady-1", "web01"), sample("steady-2", "web01"), host_cpus())
    vda = rates.disk("vda")
    assert vda is not None and vda.wr_bps == pytest.approx(
        by_hand("steady-1", "steady-2", "web01")["disk_wr_bps"]
    )
    assert vda.wr_bps is not None and vda.wr_bps > 0


def test_memory_use_comes_from_the_balloon_driver() -> None:
    s = raw("steady-1", "web01")
    got = vm_rates(None, sample("steady-1", "web01"), host_cpus())
    used = s["balloon.available"] - s["balloon.usable"]
    assert got.mem_used_kib == used
    assert got.mem_pct == pytest.approx(100.0 * used / s["balloon.current"])


def test_memory_use_falls_back_to_unused_without_usable() -> None:
    s = raw("steady-1", "db01")
    del s["balloon.usable"]
    got = vm_rates(None, sample("steady-1", "db01", s), host_cpus())
    assert got.mem_used_kib == s["balloon.available"] - s["balloon.unused"]


def test_a_vm_without_balloon_stats_has_unknown_memory_use() -> None:
    # recorded: db01 polled right after its start, before its balloon driver reported
    booting = sample("db01-booting", "db01")
    assert booting.mem_current_kib is not None and booting.mem_available_kib is None
    got = vm_rates(sample("db01-shutoff", "db01"), booting, host_cpus())
    assert got.mem_used_kib is None and got.mem_pct is None
    # available alone (neither usable nor unused) is not enough either
    s = raw("steady-1", "db01")
    del s["balloon.usable"], s["balloon.unused"]
    got = vm_rates(None, sample("steady-1", "db01", s), host_cpus())
    assert got.mem_used_kib is None and got.mem_pct is None


def test_without_a_previous_sample_every_rate_is_none() -> None:
    got = vm_rates(None, sample("steady-2", "web01"), host_cpus())
    assert rate_values(got) == [None] * 8
    assert got.mem_used_kib is not None  # memory needs no interval


def test_no_rates_without_time_passing() -> None:
    s = sample("steady-2", "web01")
    assert rate_values(vm_rates(s, s, host_cpus())) == [None] * 8
    earlier = vm_rates(sample("steady-2", "web01"), sample("steady-1", "web01"), host_cpus())
    assert all(v is None for v in rate_values(earlier))


def test_a_vm_not_running_has_no_rates() -> None:
    stopping = vm_rates(sample("steady-2", "db01"), sample("db01-shutoff", "db01"), host_cpus())
    starting = vm_rates(sample("db01-shutoff", "db01"), sample("db01-booting", "db01"), host_cpus())
    for got in (stopping, starting):
        assert all(v is None for v in rate_values(got))
    assert stopping.mem_used_kib is None


def test_a_vm_started_since_the_last_poll_has_no_rates_even_with_counters_ahead() -> None:
    # recorded: db01 off at one poll, running at a later one, its new CPU time above the stopped one's
    prev, cur = sample("db01-shutoff", "db01"), sample("db01-restarted", "db01")
    assert prev.cpu_time_ns is not None and cur.cpu_time_ns is not None and cur.cpu_time_ns > prev.cpu_time_ns
    assert all(v is None for v in rate_values(vm_rates(prev, cur, host_cpus())))


def test_a_restarted_vm_gives_none_not_a_negative() -> None:
    # recorded: db01 destroyed and started between these polls; its CPU time and NIC (a new tap) reset
    got = vm_rates(sample("steady-2", "db01"), sample("db01-booting", "db01"), host_cpus())
    assert raw("db01-booting", "db01")["net.0.name"] != raw("steady-2", "db01")["net.0.name"]
    assert all(v is None for v in rate_values(got))


def test_a_counter_that_went_backwards_gives_none_for_that_rate_only() -> None:
    s = raw("steady-2", "web01")
    s["block.0.wr.bytes"] = raw("steady-1", "web01")["block.0.wr.bytes"] - 4096  # the disk was replaced
    got = vm_rates(sample("steady-1", "web01"), sample("steady-2", "web01", s), host_cpus())
    want = by_hand("steady-1", "steady-2", "web01")
    assert got.disk_wr_bps is None and got.disks[0].wr_bps is None
    assert got.disk_rd_bps == pytest.approx(want["disk_rd_bps"])
    assert got.cpu_pct == pytest.approx(want["cpu_pct"])
    assert got.net_rx_bps == pytest.approx(want["net_rx_bps"])


def test_a_hot_plugged_device_has_no_rate_yet() -> None:
    s = raw("steady-2", "web01")
    s |= {"net.count": 2, "net.1.name": "vnet9", "net.1.rx.bytes": 10**9, "net.1.tx.bytes": 10**9}
    s |= {"net.1.rx.pkts": 10**6, "net.1.tx.pkts": 10**6}
    got = vm_rates(sample("steady-1", "web01"), sample("steady-2", "web01", s), host_cpus())
    new = got.nic("vnet9")
    assert new is not None and (new.rx_bps, new.tx_bps, new.rx_pps, new.tx_pps) == (None, None, None, None)
    old = got.nic(raw("steady-2", "web01")["net.0.name"])
    assert old is not None and old.rx_bps == pytest.approx(
        by_hand("steady-1", "steady-2", "web01")["net_rx_bps"]
    )
    assert got.net_rx_bps is None  # the total would be a spike or an undercount: unknown instead
    assert got.cpu_pct is not None


def test_a_hot_unplugged_device_makes_the_total_unknown() -> None:
    s = raw("steady-1", "web01")
    s |= {"net.count": 2, "net.1.name": "vnet9", "net.1.rx.bytes": 5, "net.1.tx.bytes": 5}
    s |= {"net.1.rx.pkts": 1, "net.1.tx.pkts": 1}
    got = vm_rates(sample("steady-1", "web01", s), sample("steady-2", "web01"), host_cpus())
    assert [n.name for n in got.nics] == [raw("steady-2", "web01")["net.0.name"]]
    assert got.nics[0].rx_bps == pytest.approx(by_hand("steady-1", "steady-2", "web01")["net_rx_bps"])
    assert got.net_rx_bps is None and got.net_tx_bps is None
    assert got.disk_wr_bps == pytest.approx(by_hand("steady-1", "steady-2", "web01")["disk_wr_bps"])


def test_no_recorded_pair_gives_a_negative_rate() -> None:
    labels = [p["label"] for p in polls()]
    seen = 0
    for a in labels:
        for b in labels:
            for vm in ("web01", "db01"):
                for v in rate_values(vm_rates(sample(a, vm), sample(b, vm), host_cpus())):
                    assert v is None or v >= 0
                    seen += v is not None
    assert seen > 0


# ---------------------------------------------------------------------------------------------- host


@pytest.mark.parametrize("label", [p["label"] for p in json.loads(DATA.read_text())["polls"]])
def test_node_parses_its_raw_values(label: str) -> None:
    p = poll(label)
    got = node(label)
    info, cpu, mem = p["info"], p["cpu_stats"], p["mem_stats"]
    assert (got.cpu_model, got.cpus, got.cpu_mhz) == (info[0], info[2], info[3])
    assert (got.mem_total_kib, got.mem_free_kib) == (mem["total"], mem["free"])
    assert (got.mem_buffers_kib, got.mem_cached_kib) == (mem["buffers"], mem["cached"])
    assert (got.cpu_kernel_ns, got.cpu_user_ns) == (cpu["kernel"], cpu["user"])
    assert (got.cpu_idle_ns, got.cpu_iowait_ns) == (cpu["idle"], cpu["iowait"])


@pytest.mark.parametrize("i", range(len(json.loads(DATA.read_text())["polls"]) - 1))
def test_host_rates_match_the_hand_computed_ones(i: int) -> None:
    a, b = polls()[i], polls()[i + 1]
    d = {k: b["cpu_stats"][k] - a["cpu_stats"][k] for k in ("kernel", "user", "idle", "iowait")}
    busy = d["kernel"] + d["user"]
    m = b["mem_stats"]
    used = m["total"] - m["free"] - m["buffers"] - m["cached"]
    got = host_rates(node(a["label"]), node(b["label"]))
    assert got.cpu_pct == pytest.approx(100.0 * busy / (busy + d["idle"] + d["iowait"]))
    assert got.cpu_pct is not None and 0 < got.cpu_pct <= 100
    assert got.mem_used_kib == used
    assert got.mem_pct == pytest.approx(100.0 * used / m["total"])


def test_host_cpu_counts_iowait_as_not_busy() -> None:
    # the recorded host hardly waited on I/O; this one waits 10 % of the time
    base = node("steady-1")
    later = dataclasses.replace(
        base,
        t=base.t + 1,
        cpu_kernel_ns=(base.cpu_kernel_ns or 0) + 10,
        cpu_user_ns=(base.cpu_user_ns or 0) + 20,
        cpu_idle_ns=(base.cpu_idle_ns or 0) + 60,
        cpu_iowait_ns=(base.cpu_iowait_ns or 0) + 10,
    )
    assert host_rates(base, later).cpu_pct == pytest.approx(30.0)


def test_host_cpu_needs_a_previous_sample_and_no_reset() -> None:
    assert host_rates(None, node("steady-1")).cpu_pct is None
    assert host_rates(None, node("steady-1")).mem_used_kib is not None
    assert host_rates(node("steady-2"), node("steady-1")).cpu_pct is None  # counters went backwards
    assert host_rates(node("steady-1"), node("steady-1")).cpu_pct is None  # nothing elapsed


# ---------------------------------------------------------------------------------------------- properties

counters = st.integers(min_value=0, max_value=2**63 - 1)


@st.composite
def stats_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A getAllDomainStats record with random counters, in libvirt's key layout."""
    s: dict[str, Any] = {
        "state.state": draw(st.sampled_from([RUNNING, RUNNING, 3, 5])),
        "state.reason": 1,
        "cpu.time": draw(counters),
        "vcpu.current": draw(st.integers(min_value=0, max_value=64)),
        "vcpu.maximum": 64,
        "balloon.current": draw(st.integers(0, 2**40)),
        "balloon.available": draw(st.integers(0, 2**40)),
        "balloon.usable": draw(st.integers(0, 2**40)),
    }
    disks = draw(st.lists(st.sampled_from(["vda", "vdb", "sda"]), unique=True, max_size=3))
    s["block.count"] = len(disks)
    for i, name in enumerate(disks):
        s[f"block.{i}.name"] = name
        for f in ("rd.bytes", "wr.bytes", "rd.reqs", "wr.reqs"):
            s[f"block.{i}.{f}"] = draw(counters)
    nics = draw(st.lists(st.sampled_from(["vnet0", "vnet1"]), unique=True, max_size=2))
    s["net.count"] = len(nics)
    for i, name in enumerate(nics):
        s[f"net.{i}.name"] = name
        for f in ("rx.bytes", "tx.bytes", "rx.pkts", "tx.pkts"):
            s[f"net.{i}.{f}"] = draw(counters)
    return s


@st.composite
def stats_pairs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two records of one VM: each counter of the second is either unrelated to the first or the first's
    value moved by a delta that may be negative (a reset) or large (a burst)."""
    a, b = draw(stats_dicts()), draw(stats_dicts())
    for key in sorted(b.keys() & a.keys()):
        if isinstance(b[key], int) and key.rsplit(".", 1)[-1] in ("time", "bytes", "reqs", "pkts"):
            if draw(st.booleans()):
                b[key] = a[key] + draw(st.integers(min_value=-a[key], max_value=10**13))
    return a, b


@given(
    pair=stats_pairs(),
    t0=st.floats(min_value=0, max_value=1e6),
    dt=st.floats(min_value=-10, max_value=1e4),
    host_cpus=st.integers(min_value=0, max_value=512),
)
def test_rates_are_never_negative_and_cpu_never_above_100(
    pair: tuple[dict[str, Any], dict[str, Any]], t0: float, dt: float, host_cpus: int
) -> None:
    a, b = pair
    prev = parse_domain_stats("u", "vm", a, t0)
    cur = parse_domain_stats("u", "vm", b, t0 + dt)
    got = vm_rates(prev, cur, host_cpus)
    for v in rate_values(got):
        assert v is None or v >= 0
    assert got.cpu_pct is None or got.cpu_pct <= 100.0
    assert got.cpu_host_pct is None or got.cpu_host_pct <= 100.0
    assert got.mem_used_kib is None or got.mem_used_kib >= 0


# the parser's learnt key layout against the plain algorithm it stands for, on records of any shape: keys
# in any order, devices at any index (gaps, "01", names), fields missing or None, keys it does not read

_indexes = st.sampled_from(["0", "1", "2", "3", "10", "01", "00", "", "x", "1073741824"])
_record_keys = st.one_of(
    st.builds(
        "block.{}.{}".format, _indexes, st.sampled_from(["name", "path", "rd.bytes", "wr.reqs", "fl.reqs"])
    ),
    st.builds(
        "net.{}.{}".format, _indexes, st.sampled_from(["name", "rx.bytes", "tx.pkts", "rx.errs", "x.y"])
    ),
    st.sampled_from(
        ["state.state", "state.reason", "cpu.time", "cpu.user", "vcpu.current", "vcpu.maximum", "vcpu.0.time"]
        + ["vcpu.1.time", "vcpu.9.time", "vcpu.0.wait", "balloon.current", "balloon.available"]
        + ["balloon.usable", "balloon.rss", "balloon.swap_in", "block.count", "net.count", "block.0", "other"]
    ),
)


@st.composite
def any_records(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(_record_keys, max_size=40, unique=True))
    values = st.one_of(st.integers(0, 2**40), st.none(), st.sampled_from(["vda", "vdb", "vnet0", ""]))
    # vcpu.N.time is summed by the plain parser whether needed or not: a number, as libvirt sends
    return {k: draw(st.integers(0, 2**40) if k.endswith(".time") else values) for k in keys}


@settings(max_examples=300)
@given(records=st.lists(any_records(), min_size=1, max_size=4))
def test_the_parser_gives_what_the_plain_algorithm_gives(records: list[dict[str, Any]]) -> None:
    for stats in records:
        assert parse_domain_stats("u", "vm", stats, 1.0) == _parse_general("u", "vm", stats, 1.0)


@settings(max_examples=300)
@given(records=st.lists(any_records(), min_size=1, max_size=4))
def test_a_planned_parse_gives_what_the_plain_algorithm_gives(records: list[dict[str, Any]]) -> None:
    """A record's keys seen before take their plan (values gathered by position, no key looked up): the
    first parse of each record compiles it (when its keys fit the layout), the next ones use it, also
    with other values under the same keys."""
    with mock.patch.object(stats_module, "_plans", {}):
        for stats_dict in records:
            for again in range(3):
                record = {k: (v if again < 2 or v is None else _other(v)) for k, v in stats_dict.items()}
                assert parse_domain_stats("u", "vm", record, 1.0) == _parse_general("u", "vm", record, 1.0)


def _other(value: Any) -> Any:
    """Another value of the same kind (a counter moved on, a name changed or cleared)."""
    if isinstance(value, int):
        return value + 1
    return {"": "vdb", "vda": "", "vdb": None}.get(value, "vnet1")


def test_a_planned_record_with_no_cpu_time_sums_its_vcpus_like_the_plain_parser() -> None:
    with mock.patch.object(stats_module, "_plans", {}):
        record = {"state.state": RUNNING, "cpu.time": 10, "vcpu.0.time": 3, "vcpu.1.time": 4}
        assert parse_domain_stats("u", "vm", record, 1.0).cpu_time_ns == 10  # compiles the plan
        assert stats_module._plans[tuple(record)] is not None
        record["cpu.time"] = None  # the same keys: the plan, which hands this record to the slot path
        assert parse_domain_stats("u", "vm", record, 1.0).cpu_time_ns == 7
        assert parse_domain_stats("u", "vm", record, 1.0) == _parse_general("u", "vm", record, 1.0)


def test_every_recorded_record_has_a_plan_that_parses_it_as_the_slots_do() -> None:
    with mock.patch.object(stats_module, "_plans", {}):
        for p in recording()["polls"]:
            for d in p["domains"]:
                first = parse_domain_stats(d["uuid"], d["name"], d["stats"], 1.0)
                assert stats_module._plans[tuple(d["stats"])] is not None
                assert parse_domain_stats(d["uuid"], d["name"], d["stats"], 1.0) == first
