"""History's ring buffers: the 2-byte codes and their tolerance, resolution choice, gaps, wrap-around,
minute averages, memory (lazy, chunked coarse ring), and the rates of the recorded lab polls
(tests/data/domstats-lab.json) going through it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vimtui.core.monitor.rings import (
    MAX_CODE,
    NO_VALUE,
    PCT_MAX,
    PCT_TOLERANCE,
    RATE_MAX,
    RATE_TOLERANCE,
    History,
    decode,
    encode,
    is_percent_name,
)
from vimtui.core.poll.stats import parse_domain_stats, vm_rates

METRICS = ("cpu", "mem", "rd")
"""Two percent metrics (by the naming rule) and a byte rate."""
EPS = 1e-9
"""Float rounding on top of the stated tolerances."""


def pct_close(got: float | None, want: float) -> bool:
    return got is not None and abs(got - want) <= PCT_TOLERANCE + EPS


def rate_close(got: float | None, want: float) -> bool:
    return got is not None and abs(got - want) <= (1.0 + want) * RATE_TOLERANCE + EPS


def fill(h: History, key: str, times: range, **fixed: float | None) -> None:
    """One sample per second in `times`, cpu = t / 100 (on the 0.01 grid, so stored exactly), mem =
    t / 50, other metrics as given."""
    for t in times:
        h.record(key, float(t), {"cpu": t / 100, "mem": t / 50, **fixed})


# ---------------------------------------------------------------------------------------------- codes


def test_the_naming_rule_and_an_explicit_percent_set_choose_the_encoding() -> None:
    assert [is_percent_name(m) for m in ("cpu", "mem", "io_pct", "disk_rd", "net_rx", "mem_kib")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    h = History(metrics=("cpu", "mem", "io_pct", "net_rx"))
    assert h.percent == {"cpu", "mem", "io_pct"}
    h.record("vm", 0.0, {"cpu": 1000.0, "mem": 12.344, "io_pct": 0.004, "net_rx": 1000.0})
    assert h.latest("vm", "cpu") == PCT_MAX  # a percent metric tops out at 655.34
    assert h.latest("vm", "mem") == 12.34 and h.latest("vm", "io_pct") == 0.0  # 0.01 % steps
    assert rate_close(h.latest("vm", "net_rx"), 1000.0) and h.latest("vm", "net_rx") != 1000.0
    # the same names, with the set given: "cpu" gets the log code, "net_rx" the percent one
    h = History(metrics=("cpu", "net_rx"), percent=("net_rx",))
    assert h.percent == {"net_rx"}
    h.record("vm", 0.0, {"cpu": 1000.0, "net_rx": 1000.0})
    assert rate_close(h.latest("vm", "cpu"), 1000.0) and h.latest("vm", "net_rx") == PCT_MAX
    with pytest.raises(ValueError):
        History(metrics=("cpu",), percent=("mem",))


def test_codes_at_the_edges_of_the_ranges() -> None:
    assert encode(None, True) == encode(math.nan, False) == NO_VALUE
    assert decode(NO_VALUE, True) is None and decode(NO_VALUE, False) is None
    assert encode(0.0, True) == encode(0.0, False) == 0 and decode(0, True) == decode(0, False) == 0.0
    assert encode(-3.0, True) == encode(-1e9, False) == encode(-math.inf, False) == 0  # below: 0
    assert encode(PCT_MAX, True) == encode(1e6, True) == encode(math.inf, True) == MAX_CODE
    assert encode(RATE_MAX, False) == encode(1e20, False) == encode(math.inf, False) == MAX_CODE
    assert decode(MAX_CODE, True) == PCT_MAX and decode(MAX_CODE, False) == pytest.approx(RATE_MAX)
    assert 1e13 < RATE_MAX < 1e14  # a 10 TB/s rate is stored as itself
    assert rate_close(decode(encode(1e13, False), False), 1e13)
    assert decode(encode(12.5, True), True) == 12.5 and decode(encode(99.994, True), True) == 99.99
    # the log code's step is 0.049 %: two rates 0.1 % apart get different codes, and so do 0 and 1 B/s
    assert encode(2e6, False) < encode(2.002e6, False) and encode(0.0, False) < encode(1.0, False)


@given(st.floats(min_value=0.0, max_value=PCT_MAX))
def test_a_percent_decodes_within_half_a_step(x: float) -> None:
    code = encode(x, True)
    assert 0 <= code <= MAX_CODE
    assert pct_close(decode(code, True), x)


@given(st.floats(min_value=0.0, max_value=RATE_MAX))
def test_a_rate_decodes_within_a_quarter_per_mille(x: float) -> None:
    code = encode(x, False)
    assert 0 <= code <= MAX_CODE
    assert rate_close(decode(code, False), x)


@given(st.sampled_from([None, math.nan]), st.booleans())
def test_none_and_nan_round_trip_as_missing(value: float | None, percent: bool) -> None:
    assert decode(encode(value, percent), percent) is None
    h = History(metrics=("p", "b"), percent=("p",))
    h.record("k", 5.0, {"p": 1.0, "b": 1.0})
    h.record("k", 6.0, {"p": value, "b": value})
    assert h.latest("k", "p") is None and h.latest("k", "b") is None
    assert h.series("k", "p", 60, 6.0) == ([5.0], [1.0]) and h.series("k", "b", 60, 6.0)[0] == [5.0]


@given(
    st.floats(min_value=-1e3, max_value=2e3, allow_nan=False),
    st.floats(min_value=-1e3, max_value=1e15, allow_nan=False),
)
def test_recorded_values_come_back_within_tolerance_or_clamped(p: float, b: float) -> None:
    h = History(metrics=("p", "b"), percent=("p",))
    h.record("k", 30.0, {"p": p, "b": b})
    assert pct_close(h.latest("k", "p"), min(max(p, 0.0), PCT_MAX))
    assert rate_close(h.latest("k", "b"), min(max(b, 0.0), RATE_MAX))
    # the open minute's mean goes through the same code
    [minute_p] = h.series("k", "p", 3600, 30.0)[1]
    [minute_b] = h.series("k", "b", 3600, 30.0)[1]
    assert minute_p == h.latest("k", "p") and minute_b == h.latest("k", "b")


# ---------------------------------------------------------------------------------------------- memory


def test_memory_is_the_fine_ring_at_first_record_and_the_coarse_ring_an_hour_at_a_time() -> None:
    n = len(METRICS)
    h = History(metrics=METRICS)
    assert h.memory_bytes() == 0
    h.record("kvm01/a", 0.0, {"cpu": 1.0})
    fine = 2 * n * 900  # 2 bytes a slot, per metric, for 15 minutes of seconds
    acc = 2 * 8 * n  # the open minute's sum and count, a double each per metric
    assert h.memory_bytes() == fine + acc  # no minute closed yet: no coarse ring
    h.record("kvm01/b", 0.0, {"cpu": 1.0})
    assert h.memory_bytes() == 2 * (fine + acc)
    chunk = 2 * n * 60  # an hour of minutes
    fill(h, "kvm01/a", range(1, 3600))  # minutes 0..59: the first chunk
    assert h.memory_bytes() == 2 * (fine + acc) + chunk
    fill(h, "kvm01/a", range(3600, 3720))  # minute 60 starts the second hour
    assert h.memory_bytes() == 2 * (fine + acc) + 2 * chunk
    h.drop("kvm01/b")
    assert h.memory_bytes() == fine + acc + 2 * chunk and h.keys() == ["kvm01/a"]
    for minute in range(62, 3000):  # past 24 hours: the coarse ring stops at 1440 slots
        h.record("kvm01/a", minute * 60.0, {"cpu": 1.0})
    assert h.memory_bytes() == fine + acc + 2 * n * 1440


def test_15_minutes_of_history_cost_the_fine_ring_and_one_coarse_chunk() -> None:
    """The benchmark's case: 6 metrics, 905 s of samples (16 minutes started)."""
    metrics = ("cpu", "mem", "disk_rd", "disk_wr", "net_rx", "net_tx")
    h = History(metrics=metrics)
    for s in range(905):
        h.record("vm", 1.8e9 + 10 + s, dict.fromkeys(metrics, 1.0))
    assert h.memory_bytes() == 2 * 6 * (900 + 60) + 16 * 6  # 11,616 B, was 112,368 B with doubles


def test_a_chunked_fine_ring_grows_to_its_size_and_no_further() -> None:
    h = History(metrics=METRICS, fine_chunk=60, coarse_chunk=10)
    n = len(METRICS)
    h.record("vm", 0.0, {"cpu": 1.0})
    assert h.memory_bytes() == 2 * n * 60 + 16 * n
    fill(h, "vm", range(1, 61))  # second 60 needs a second chunk, minute 1 the first coarse chunk
    assert h.memory_bytes() == 2 * n * (120 + 10) + 16 * n
    fill(h, "vm", range(61, 2000))  # wrapped twice: the whole ring, no more
    assert h.memory_bytes() == 2 * n * (900 + 40) + 16 * n
    times, values = h.series("vm", "cpu", 900, now=1999.0)
    assert times == [float(t) for t in range(1100, 2000)] and values == [t / 100 for t in range(1100, 2000)]


def test_a_jump_past_a_short_ring_keeps_its_size() -> None:
    """A key off for longer than the ring starts over at the new slot without growing."""
    h = History(metrics=METRICS, fine_chunk=60)
    fill(h, "vm", range(0, 10))
    h.record("vm", 5000.0, {"cpu": 7.0})
    n = len(METRICS)
    # the fine ring stays at one chunk; minute 83 of the coarse ring is in its second chunk
    assert h.memory_bytes() == 2 * n * (60 + 120) + 16 * n
    assert h.series("vm", "cpu", 900, now=5000.0) == ([5000.0], [7.0])
    fill(h, "vm", range(5001, 5061))
    times, values = h.series("vm", "cpu", 900, now=5060.0)
    assert times == [float(t) for t in range(5000, 5061)] and values == [7.0, *(t / 100 for t in times[1:])]


# ---------------------------------------------------------------------------------------------- rings


def test_a_window_up_to_15_minutes_reads_seconds_and_longer_reads_minutes() -> None:
    h = History(metrics=METRICS)
    fill(h, "vm", range(0, 1200))
    times, values = h.series("vm", "cpu", 300, now=1199.0)
    assert times == [float(t) for t in range(900, 1200)] and values == [t / 100 for t in range(900, 1200)]
    times, values = h.series("vm", "cpu", 900, now=1199.0)
    assert len(times) == 900 and times[0] == 300.0
    times, values = h.series("vm", "cpu", 901, now=1199.0)
    # minute slots (start times), each the mean of its 60 one-second samples; minute 19 is still open
    assert times == [60.0 * m for m in range(5, 20)]
    assert all(pct_close(v, (60.0 * m + 29.5) / 100) for v, m in zip(values, range(5, 20), strict=True))
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
    h.record("vm", 62.0, {"cpu": 1.0})  # mean of 1, 3, 8, 1 = 3.25
    h.record("vm", 120.0, {"cpu": 10.0})  # a new minute starts its own mean
    assert h.series("vm", "cpu", 3600, now=120.0) == ([60.0, 120.0], [3.25, 10.0])
    assert h.series("vm", "mem", 3600, now=120.0) == ([60.0], [5.0])


def test_a_minute_reads_the_same_while_open_and_once_closed() -> None:
    h = History(metrics=METRICS)
    for t, v in ((0.0, 1.0), (1.0, 2.0), (2.0, 2.0)):  # mean 1.6666..: not on the 0.01 grid
        h.record("vm", t, {"cpu": v, "rd": 1e6 * v})
    open_cpu, open_rd = h.series("vm", "cpu", 3600, 2.0), h.series("vm", "rd", 3600, 2.0)
    assert open_cpu == ([0.0], [1.67]) and rate_close(open_rd[1][0], 1e6 * 5 / 3)
    h.record("vm", 60.0, {"cpu": 9.0})
    assert h.series("vm", "cpu", 3600, 59.0) == open_cpu and h.series("vm", "rd", 3600, 59.0) == open_rd


def test_gaps_stay_empty_and_are_left_out_of_series() -> None:
    h = History(metrics=METRICS)
    fill(h, "vm", range(0, 10))
    fill(h, "vm", range(20, 30))  # the host did not answer for 10 s
    times, values = h.series("vm", "cpu", 60, now=29.0)
    assert times == [float(t) for t in [*range(0, 10), *range(20, 30)]]
    assert values == [t / 100 for t in times]
    h.record("vm", 30.0, {"cpu": 1.0, "mem": None})  # this sample had no memory figure
    assert h.series("vm", "mem", 60, now=30.0)[0][-1] == 29.0
    assert h.series("vm", "cpu", 60, now=30.0)[0][-1] == 30.0
    assert h.series("vm", "rd", 60, now=30.0) == ([], [])  # never recorded
    assert h.series("vm", "rd", 3600, now=30.0) == ([], [])


def test_the_fine_ring_wraps_after_900_seconds_without_stale_values() -> None:
    h = History(metrics=METRICS)
    fill(h, "vm", range(0, 2000))
    times, values = h.series("vm", "cpu", 900, now=1999.0)
    assert times == [float(t) for t in range(1100, 2000)] and values == [t / 100 for t in times]
    # a jump shorter than the ring clears exactly the skipped slots (they held the previous lap)
    h2 = History(metrics=METRICS)
    fill(h2, "vm", range(0, 900))
    h2.record("vm", 1000.0, {"cpu": 99.0})
    times, values = h2.series("vm", "cpu", 900, now=1000.0)
    assert times == [*(float(t) for t in range(101, 900)), 1000.0]
    assert values[-1] == 99.0 and values[:-1] == [t / 100 for t in times[:-1]]
    # a jump longer than the ring leaves only the new sample
    h2.record("vm", 5000.5, {"cpu": 7.0})
    assert h2.series("vm", "cpu", 900, now=5001.0) == ([5000.0], [7.0])


def test_the_coarse_ring_keeps_24_hours() -> None:
    h = History(metrics=METRICS)
    for minute in range(1500):
        h.record("vm", minute * 60.0 + 5, {"cpu": minute / 10, "rd": minute * 1e6})
    now = 1499 * 60.0 + 5
    times, values = h.series("vm", "cpu", 24 * 3600, now=now)
    assert len(times) == 1440 and values == [m / 10 for m in range(60, 1500)]
    times, values = h.series("vm", "rd", 24 * 3600, now=now)
    assert len(times) == 1440
    assert all(rate_close(v, m * 1e6) for v, m in zip(values, range(60, 1500), strict=True))
    times, values = h.series("vm", "cpu", 3600, now=now)
    assert values == [m / 10 for m in range(1440, 1500)]
    # a day off: the old minutes are gone, and the ring does not grow
    size = h.memory_bytes()
    h.record("vm", now + 2 * 24 * 3600, {"cpu": 1.0})
    assert h.series("vm", "cpu", 24 * 3600, now + 2 * 24 * 3600) == ([(1499 + 2 * 1440) * 60.0], [1.0])
    assert h.memory_bytes() == size


def test_series_stops_at_now() -> None:
    h = History(metrics=METRICS)
    fill(h, "vm", range(0, 100))
    times, _ = h.series("vm", "cpu", 30, now=50.5)
    assert times == [float(t) for t in range(21, 51)]
    times, _ = h.series("vm", "cpu", 3600, now=30.0)  # minute 0, still open at 99 s, is read
    assert times == [0.0]


def test_latest_keys_drop_and_unknowns() -> None:
    h = History(metrics=METRICS)
    assert h.latest("vm", "cpu") is None and h.series("vm", "cpu", 60, 0.0) == ([], [])
    h.record("vm", 10.0, {"cpu": 1.0, "mem": 2.0})
    h.record("vm", 11.0, {"cpu": 3.0, "mem": None})
    assert h.latest("vm", "cpu") == 3.0
    assert h.latest("vm", "mem") is None  # the newest sample did not have it
    h.record("host", 11.0, {"rd": 0.0})
    assert sorted(h.keys()) == ["host", "vm"] and h.latest("host", "rd") == 0.0
    assert "host" in h and len(h) == 2
    h.drop("vm")
    h.drop("never")
    assert h.keys() == ["host"] and h.latest("vm", "cpu") is None and "vm" not in h
    h.record("vm2", 12.0, {"cpu": 1.0})
    h.drop_missing(["vm2", "gone"])
    assert h.keys() == ["vm2"]
    with pytest.raises(KeyError):
        h.record("vm", 12.0, {"cpuu": 1.0})
    with pytest.raises(KeyError):
        h.series("vm2", "cpuu", 60, 12.0)


def test_a_sample_from_the_past_is_ignored() -> None:
    h = History(metrics=METRICS)
    h.record("vm", 100.0, {"cpu": 1.0})
    h.record("vm", 50.0, {"cpu": 9.0})  # a wall clock stepped back
    assert h.latest("vm", "cpu") == 1.0
    assert h.series("vm", "cpu", 900, 100.0) == ([100.0], [1.0])
    assert h.series("vm", "cpu", 3600, 100.0) == ([60.0], [1.0])


def test_metrics_slots_and_chunks_must_make_sense() -> None:
    with pytest.raises(ValueError):
        History(metrics=("cpu", "cpu"))
    with pytest.raises(ValueError):
        History(metrics=())
    with pytest.raises(ValueError):
        History(metrics=("cpu",), fine_slots=0)
    with pytest.raises(ValueError):
        History(metrics=("cpu",), coarse_chunk=0)


def test_recorded_lab_rates_go_through_history() -> None:
    data = json.loads((Path(__file__).parent / "data" / "domstats-lab.json").read_text())
    h = History(metrics=("cpu", "mem_kib", "net_rx"))
    prev = None
    recorded: list[tuple[float, float | None]] = []
    rx: list[float | None] = []
    for p in data["polls"]:
        d = next(d for d in p["domains"] if d["name"] == "web01")
        cur = parse_domain_stats(d["uuid"], d["name"], d["stats"], p["t"])
        r = vm_rates(prev, cur, p["info"][2])
        h.record("kvm01/web01", cur.t, {"cpu": r.cpu_pct, "mem_kib": r.mem_used_kib, "net_rx": r.net_rx_bps})
        recorded.append((cur.t, r.cpu_pct))
        rx.append(r.net_rx_bps)
        prev = cur
    now = data["polls"][-1]["t"]
    times, values = h.series("kvm01/web01", "cpu", 900, now)
    # the first poll has no rate (no previous sample): a gap; every other poll has its own second
    want = [v for _, v in recorded[1:] if v is not None]
    assert len(values) == len(want) == len(recorded) - 1
    assert all(pct_close(g, w) for g, w in zip(values, want, strict=True))
    assert times == [float(math.floor(t)) for t, _ in recorded[1:]]
    assert pct_close(h.latest("kvm01/web01", "cpu"), recorded[-1][1] or 0.0)
    assert len(h.series("kvm01/web01", "mem_kib", 900, now)[1]) == len(recorded)
    got_rx = h.series("kvm01/web01", "net_rx", 900, now)[1]
    want_rx = [v for v in rx if v is not None]
    assert len(got_rx) == len(want_rx) > 0
    assert all(rate_close(g, w) for g, w in zip(got_rx, want_rx, strict=True))


# ---------------------------------------------------------------------------------------------- model


@given(
    samples=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=40, allow_nan=False),
            st.one_of(st.none(), st.just(math.nan), st.floats(min_value=0, max_value=PCT_MAX)),
            st.one_of(st.none(), st.floats(min_value=0, max_value=1e12)),
        ),
        max_size=60,
    ),
    window=st.floats(min_value=0, max_value=200),
    ahead=st.floats(min_value=0, max_value=30),
)
def test_small_rings_agree_with_a_plain_model(
    samples: list[tuple[float, float | None, float | None]], window: float, ahead: float
) -> None:
    """Rings of 10 one-second and 5 ten-second slots, grown 3 and 2 slots at a time, against dicts of
    every sample ever recorded: same slots, values within the codes' tolerance."""
    h = History(
        metrics=("p", "b"),
        percent=("p",),
        fine_slots=10,
        fine_step=1.0,
        coarse_slots=5,
        coarse_step=10.0,
        fine_chunk=3,
        coarse_chunk=2,
    )
    t = 0.0
    last: dict[str, dict[int, float]] = {"p": {}, "b": {}}
    sums: dict[str, dict[int, list[float]]] = {"p": {}, "b": {}}
    fine_head = coarse_head = -1
    for gap, p, b in samples:
        t += gap
        h.record("k", t, {"p": p, "b": b})
        fine_head, coarse_head = math.floor(t), math.floor(t / 10)
        for name, value in (("p", p), ("b", b)):
            if value is not None and not math.isnan(value):
                last[name][math.floor(t)] = value
                sums[name].setdefault(math.floor(t / 10), []).append(value)
    now = t + ahead
    for name, close in (("p", pct_close), ("b", rate_close)):
        if window <= 10:
            want = [
                (s * 1.0, v)
                for s, v in sorted(last[name].items())
                if s > fine_head - 10 and now - window < s <= now
            ]
        else:
            want = [
                (s * 10.0, sum(vs) / len(vs))
                for s, vs in sorted(sums[name].items())
                if s > coarse_head - 5 and now - window < s * 10 <= now
            ]
        times, values = h.series("k", name, window, now)
        assert times == [w[0] for w in want]
        assert all(close(g, w[1]) for g, w in zip(values, want, strict=True))


# ---------------------------------------------------------------------------------------------- record_many

_MANY_VALUES = st.one_of(
    st.none(),
    st.just(math.nan),
    st.sampled_from([-1.0, 0.0, 0.004, 1.5, 99.99, PCT_MAX, 1e6, RATE_MAX, 1e20, math.inf]),
    st.floats(min_value=0, max_value=1e9),
)


@settings(max_examples=300)
@given(
    rings=st.sampled_from(
        [
            {},  # the defaults: whole rings, 1-second and 1-minute slots
            {"fine_slots": 10, "coarse_slots": 5, "coarse_step": 7.0},
            {"fine_slots": 20, "fine_chunk": 3, "coarse_chunk": 2, "coarse_slots": 9, "coarse_step": 4.0},
            {"fine_slots": 3, "coarse_slots": 2, "fine_step": 0.5, "coarse_step": 2.0},
        ]
    ),
    start=st.floats(min_value=0, max_value=1e9),
    steps=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.3, 1.0, 2.0, 2.0, 3.0, 17.0, 100.0, 2000.0, -1.0, -50.0]),
            st.lists(
                st.tuples(st.sampled_from("abcdef"), st.tuples(_MANY_VALUES, _MANY_VALUES, _MANY_VALUES)),
                max_size=6,
                unique_by=lambda row: row[0],
            ),
        ),
        max_size=40,
    ),
)
def test_record_many_is_record_for_each_row(
    rings: dict[str, Any], start: float, steps: list[tuple[float, list[tuple[str, tuple[Any, ...]]]]]
) -> None:
    """A poll's VMs in one call (record_many: the usual ring move worked out once, inline) give what a
    record() per VM gives: same slots, codes and minute means, same memory, after every step."""
    one, many = History(metrics=METRICS, **rings), History(metrics=METRICS, **rings)
    t = start
    for gap, rows in steps:
        t += gap
        for key, values in rows:
            one.record(key, t, dict(zip(METRICS, values, strict=True)))
        many.record_many(t, rows)
        assert one.keys() == many.keys() and one.memory_bytes() == many.memory_bytes()
        for key in one.keys():
            for metric in METRICS:
                assert one.latest(key, metric) == many.latest(key, metric)
                for window in (one.fine_span, 24 * 3600.0):
                    assert one.series(key, metric, window, t) == many.series(key, metric, window, t)


def test_keys_recorded_together_share_ring_moves_across_the_end_of_the_ring() -> None:
    """record_many works a ring move out once for the keys that share it: moves of 3 and 4 slots round
    a 10-slot ring clear the skipped slots on both sides of its end, for every key, as record() does."""
    rings: dict[str, Any] = {"fine_slots": 10, "coarse_slots": 5, "coarse_step": 7.0}
    one, many = History(metrics=METRICS, **rings), History(metrics=METRICS, **rings)
    t = 0.0
    for step in range(40):
        t += (1.0, 3.0, 4.0)[step % 3]
        rows = [(key, (t / 10, None if step % 5 else 1.0, t * 1000)) for key in ("a", "b", "c")]
        for key, values in rows:
            one.record(key, t, dict(zip(METRICS, values, strict=True)))
        many.record_many(t, rows)
        for key in ("a", "b", "c"):
            for metric in METRICS:
                assert one.series(key, metric, 10, t) == many.series(key, metric, 10, t)
                assert one.series(key, metric, 3600, t) == many.series(key, metric, 3600, t)
