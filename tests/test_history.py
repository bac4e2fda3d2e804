"""History's ring buffers: resolution choice, gaps, wrap-around, minute averages, memory, and the rates of
the recorded lab polls (tests/data/domstats-lab.json) going through it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vimtui.core.history import History
from vimtui.core.stats import parse_domain_stats, vm_rates

METRICS = ("cpu", "mem", "rd")


def fill(h: History, key: str, times: range, **fixed: float | None) -> None:
    """One sample per second in `times`, cpu = t, mem = 2 t, other metrics as given."""
    for t in times:
        h.record(key, float(t), {"cpu": float(t), "mem": 2.0 * t, **fixed})


def test_memory_is_arrays_of_doubles_sized_by_slots_metrics_and_resolutions() -> None:
    h = History(metrics=METRICS)
    assert h.memory_bytes() == 0
    h.record("kvm01/a", 0.0, {"cpu": 1.0})
    per_key = 8 * len(METRICS) * (900 + 1440)  # one double a slot, per metric, in both rings
    per_key += 8 * len(METRICS)  # the open minute's sample count, per metric
    assert h.memory_bytes() == per_key
    h.record("kvm01/b", 0.0, {"cpu": 1.0})
    assert h.memory_bytes() == 2 * per_key
    fill(h, "kvm01/a", range(1, 5000))  # no growth with samples: nothing is kept per sample
    assert h.memory_bytes() == 2 * per_key
    h.drop("kvm01/b")
    assert h.memory_bytes() == per_key and h.keys() == ["kvm01/a"]


def test_a_window_up_to_15_minutes_reads_seconds_and_longer_reads_minutes() -> None:
    h = History(metrics=METRICS)
    fill(h, "vm", range(0, 1200))
    times, values = h.series("vm", "cpu", 300, now=1199.0)
    assert times == [float(t) for t in range(900, 1200)] and values == times
    times, values = h.series("vm", "cpu", 900, now=1199.0)
    assert len(times) == 900 and times[0] == 300.0
    times, values = h.series("vm", "cpu", 901, now=1199.0)
    # minute slots (start times), each the mean of its 60 one-second samples; minute 19 is still open
    assert times == [60.0 * m for m in range(5, 20)]
    assert values == [60.0 * m + 29.5 for m in range(5, 20)]
    times, values = h.series("vm", "cpu", 24 * 3600, now=1199.0)
    assert times == [60.0 * m for m in range(20)]


def test_several_samples_in_a_slot_keep_the_last_second_and_average_the_minute() -> None:
    h = History(metrics=METRICS)
    h.record("vm", 60.0, {"cpu": 1.0})
    h.record("vm", 60.5, {"cpu": 3.0})
    h.record("vm", 61.2, {"cpu": 8.0, "mem": None})
    h.record("vm", 62.0, {"cpu": math.nan, "mem": 5.0})  # NaN is "no value": not in the mean
    assert h.series("vm", "cpu", 60, now=62.0) == ([60.0, 61.0], [3.0, 8.0])
    assert h.series("vm", "cpu", 3600, now=62.0) == ([60.0], [4.0])
    assert h.series("vm", "mem", 3600, now=62.0) == ([60.0], [5.0])
    h.record("vm", 120.0, {"cpu": 10.0})  # a new minute starts its own mean
    assert h.series("vm", "cpu", 3600, now=120.0) == ([60.0, 120.0], [4.0, 10.0])


def test_gaps_stay_nan_and_are_left_out_of_series() -> None:
    h = History(metrics=METRICS)
    fill(h, "vm", range(0, 10))
    fill(h, "vm", range(20, 30))  # the host did not answer for 10 s
    times, values = h.series("vm", "cpu", 60, now=29.0)
    assert times == [float(t) for t in [*range(0, 10), *range(20, 30)]] and values == times
    h.record("vm", 30.0, {"cpu": 1.0, "mem": None})  # this sample had no memory figure
    assert h.series("vm", "mem", 60, now=30.0)[0][-1] == 29.0
    assert h.series("vm", "cpu", 60, now=30.0)[0][-1] == 30.0
    assert h.series("vm", "rd", 60, now=30.0) == ([], [])  # never recorded


def test_the_fine_ring_wraps_after_900_seconds_without_stale_values() -> None:
    h = History(metrics=METRICS)
    fill(h, "vm", range(0, 2000))
    times, values = h.series("vm", "cpu", 900, now=1999.0)
    assert times == [float(t) for t in range(1100, 2000)] and values == times
    # a jump shorter than the ring clears exactly the skipped slots (they held the previous lap)
    h2 = History(metrics=METRICS)
    fill(h2, "vm", range(0, 900))
    h2.record("vm", 1000.0, {"cpu": -1.0})
    times, values = h2.series("vm", "cpu", 900, now=1000.0)
    assert times == [*(float(t) for t in range(101, 900)), 1000.0]
    assert values[-1] == -1.0 and values[:-1] == times[:-1]
    # a jump longer than the ring leaves only the new sample
    h2.record("vm", 5000.5, {"cpu": 7.0})
    assert h2.series("vm", "cpu", 900, now=5001.0) == ([5000.0], [7.0])


def test_the_coarse_ring_keeps_24_hours() -> None:
    h = History(metrics=METRICS)
    for minute in range(1500):
        h.record("vm", minute * 60.0 + 5, {"cpu": float(minute)})
    times, values = h.series("vm", "cpu", 24 * 3600, now=1499 * 60.0 + 5)
    assert len(times) == 1440 and values == [float(m) for m in range(60, 1500)]
    times, values = h.series("vm", "cpu", 3600, now=1499 * 60.0 + 5)
    assert values == [float(m) for m in range(1440, 1500)]


def test_series_stops_at_now() -> None:
    h = History(metrics=METRICS)
    fill(h, "vm", range(0, 100))
    times, _ = h.series("vm", "cpu", 30, now=50.5)
    assert times == [float(t) for t in range(21, 51)]


def test_latest_keys_drop_and_unknowns() -> None:
    h = History(metrics=METRICS)
    assert h.latest("vm", "cpu") is None and h.series("vm", "cpu", 60, 0.0) == ([], [])
    h.record("vm", 10.0, {"cpu": 1.0, "mem": 2.0})
    h.record("vm", 11.0, {"cpu": 3.0, "mem": None})
    assert h.latest("vm", "cpu") == 3.0
    assert h.latest("vm", "mem") is None  # the newest sample did not have it
    h.record("host", 11.0, {"rd": 0.0})
    assert sorted(h.keys()) == ["host", "vm"] and h.latest("host", "rd") == 0.0
    h.drop("vm")
    h.drop("never")
    assert h.keys() == ["host"] and h.latest("vm", "cpu") is None
    with pytest.raises(KeyError):
        h.record("vm", 12.0, {"cpuu": 1.0})
    with pytest.raises(KeyError):
        h.series("host", "cpuu", 60, 12.0)


def test_a_sample_from_the_past_is_ignored() -> None:
    h = History(metrics=METRICS)
    h.record("vm", 100.0, {"cpu": 1.0})
    h.record("vm", 50.0, {"cpu": 9.0})  # a wall clock stepped back
    assert h.latest("vm", "cpu") == 1.0
    assert h.series("vm", "cpu", 900, 100.0) == ([100.0], [1.0])
    assert h.series("vm", "cpu", 3600, 100.0) == ([60.0], [1.0])


def test_metrics_must_be_distinct() -> None:
    with pytest.raises(ValueError):
        History(metrics=("cpu", "cpu"))
    with pytest.raises(ValueError):
        History(metrics=())


def test_recorded_lab_rates_go_through_history() -> None:
    data = json.loads((Path(__file__).parent / "data" / "domstats-lab.json").read_text())
    h = History(metrics=("cpu", "mem", "net_rx"))
    prev = None
    recorded: list[tuple[float, float | None]] = []
    for p in data["polls"]:
        d = next(d for d in p["domains"] if d["name"] == "web01")
        cur = parse_domain_stats(d["uuid"], d["name"], d["stats"], p["t"])
        r = vm_rates(prev, cur, p["info"][2])
        h.record("kvm01/web01", cur.t, {"cpu": r.cpu_pct, "mem": r.mem_used_kib, "net_rx": r.net_rx_bps})
        recorded.append((cur.t, r.cpu_pct))
        prev = cur
    now = data["polls"][-1]["t"]
    times, values = h.series("kvm01/web01", "cpu", 900, now)
    # the first poll has no rate (no previous sample): a gap; every other poll has its own second
    assert values == [v for _, v in recorded[1:]]
    assert times == [float(math.floor(t)) for t, _ in recorded[1:]]
    assert h.latest("kvm01/web01", "cpu") == recorded[-1][1]
    assert len(h.series("kvm01/web01", "mem", 900, now)[1]) == len(recorded)


# ---------------------------------------------------------------------------------------------- model


@given(
    samples=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=40, allow_nan=False),
            st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6)),
        ),
        max_size=60,
    ),
    window=st.floats(min_value=0, max_value=200),
    ahead=st.floats(min_value=0, max_value=30),
)
def test_small_rings_agree_with_a_plain_model(
    samples: list[tuple[float, float | None]], window: float, ahead: float
) -> None:
    """Rings of 10 one-second and 5 ten-second slots against dicts of every sample ever recorded."""
    h = History(metrics=("x",), fine_slots=10, fine_step=1.0, coarse_slots=5, coarse_step=10.0)
    t = 0.0
    last: dict[int, float] = {}
    sums: dict[int, list[float]] = {}
    fine_head = coarse_head = -1
    for gap, value in samples:
        t += gap
        h.record("k", t, {"x": value})
        fine_head, coarse_head = math.floor(t), math.floor(t / 10)
        if value is not None and not math.isnan(value):
            last[math.floor(t)] = value
            sums.setdefault(math.floor(t / 10), []).append(value)
    now = t + ahead
    if window <= 10:
        want = [
            (s * 1.0, v) for s, v in sorted(last.items()) if s > fine_head - 10 and now - window < s <= now
        ]
    else:
        want = [
            (s * 10.0, sum(vs) / len(vs))
            for s, vs in sorted(sums.items())
            if s > coarse_head - 5 and now - window < s * 10 <= now
        ]
    times, values = h.series("k", "x", window, now)
    assert times == [w[0] for w in want]
    assert values == pytest.approx([w[1] for w in want], rel=1e-9, abs=1e-6)
