"""The lasting history archive on real SQLite files: bucket averages and peaks, the coarse roll-up, retention,
the size bound, restarts, a damaged or locked file, and random add sequences (hypothesis). Time is given
explicitly and writes are awaited with flush(), never with sleeps."""

from __future__ import annotations

import math
import sqlite3
import struct
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vimtui.core.monitor.archive import SCHEMA_VERSION, Archive

T0 = 1_699_999_800
"""A start time on a coarse (and so fine) bucket boundary: a multiple of 300."""
VM = "kvm01/6a1e0c9e-0000-4000-8000-000000000001"
HOST = "kvm01"


def f32(x: float) -> float:
    """x as the archive stores it (float32)."""
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def close_to(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6)


@pytest.fixture
def problems() -> list[str]:
    return []


@pytest.fixture
def archive(tmp_path: Path, problems: list[str]) -> Iterator[Archive]:
    a = Archive(tmp_path / "history.sqlite", on_problem=problems.append)
    yield a
    a.close()


def test_bucket_averages_and_peaks_round_trip(archive: Archive, problems: list[str]) -> None:
    """Samples every 2 s into 10-second buckets: each bucket's average is the mean of its samples and its
    peak their maximum, read back from the database, and also before it is written."""
    samples = [
        (T0 + 2 * i, {"cpu": (i * 7) % 13 + 0.25, "mem": 40.0 + i % 3, "net_rx": None}) for i in range(30)
    ]
    for t, values in samples:
        archive.add(VM, t, values)
    expected: dict[int, list[float]] = defaultdict(list)
    for t, values in samples:
        expected[t // 10 * 10].append(values["cpu"])  # type: ignore[arg-type]
    want_times = sorted(expected)
    want_avgs = [sum(expected[t]) / len(expected[t]) for t in want_times]

    before = archive.series(VM, "cpu", T0, T0 + 60)  # all in memory still
    archive.flush()
    after = archive.series(VM, "cpu", T0, T0 + 60)
    for times, avgs in (before, after):
        assert times == want_times
        assert all(close_to(g, w) for g, w in zip(avgs, want_avgs, strict=True))
    assert archive.series(VM, "net_rx", T0, T0 + 60) == ([], [])  # None is no sample, not a zero

    summary = archive.summary([VM], T0, T0 + 59)
    cpu = [v["cpu"] for _t, v in samples]
    avg, peak, n = summary[VM]["cpu"]
    assert close_to(avg, sum(cpu) / len(cpu)) and peak == f32(max(cpu)) and n == len(cpu)
    assert set(summary[VM]) == {"cpu", "mem"}
    assert problems == []


def test_a_bucket_written_in_parts_adds_up(archive: Archive) -> None:
    """flush() writes the open bucket; later samples of the same bucket are merged with it in the file."""
    archive.add(VM, T0 + 1, {"cpu": 10.0})
    archive.flush()
    archive.add(VM, T0 + 3, {"cpu": 20.0})
    archive.add(VM, T0 + 5, {"cpu": 60.0})
    archive.flush()
    assert archive.series(VM, "cpu", T0, T0 + 9) == ([T0], [30.0])
    assert archive.summary(None, T0, T0 + 9) == {VM: {"cpu": (30.0, 60.0, 3)}}


def test_coarse_roll_up_keeps_averages_and_peaks(tmp_path: Path) -> None:
    """With the fine tier kept for a minute only, an older window is read from 1-minute buckets, whose
    averages weigh every sample (not every fine bucket) alike."""
    a = Archive(tmp_path / "h.sqlite", fine_step=10, fine_keep=60, coarse_step=60, coarse_keep=3600)
    inputs: dict[int, list[float]] = defaultdict(list)
    for i in range(300):  # 10 minutes, a sample a second, more of them late in each minute
        t = T0 + 2 * i if i < 150 else T0 + 300 + (i - 150) * 2
        value = float((i * 37) % 101)
        a.add(VM, t, {"cpu": value})
        if i % 5 == 0:
            a.add(VM, t + 1, {"cpu": value / 2})
            inputs[(t + 1) // 60 * 60].append(value / 2)
        inputs[t // 60 * 60].append(value)
        if i % 50 == 49:
            a.flush()
    a.flush()
    times, avgs = a.series(VM, "cpu", T0, T0 + 600)
    assert times == sorted(inputs)  # 60-second buckets: the fine tier no longer reaches back to T0
    for t, avg in zip(times, avgs, strict=True):
        assert close_to(avg, sum(inputs[t]) / len(inputs[t]))
    everything = [v for vs in inputs.values() for v in vs]
    avg, peak, n = a.summary([VM], T0, T0 + 600)[VM]["cpu"]
    assert (
        close_to(avg, sum(everything) / len(everything)) and peak == max(everything) and n == len(everything)
    )
    # the last minute is still in the fine tier, 10-second buckets
    fine_times, _ = a.series(VM, "cpu", T0 + 560, T0 + 600)
    assert fine_times == [T0 + 560, T0 + 570, T0 + 580, T0 + 590]
    a.close()


def test_retention_prunes_both_tiers_and_events(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    a = Archive(path, fine_keep=3600, coarse_keep=86400)
    a.add(VM, T0, {"cpu": 1.0})
    a.note(VM, T0, "state", "running")
    a.flush()
    assert a.series(VM, "cpu", T0 - 10, T0 + 10) == ([T0], [1.0])
    a.add(VM, T0 + 7200, {"cpu": 2.0})  # past the fine tier's retention of the first sample
    a.flush()
    assert a.series(VM, "cpu", T0 - 10, T0 + 10) == ([T0], [1.0])  # from the coarse tier
    assert rows(path, "fine") == 1 and rows(path, "coarse") == 2
    a.add(HOST, T0 + 10 * 86400, {"cpu": 3.0})  # past everything's retention
    a.flush()
    assert a.series(VM, "cpu", T0 - 10, T0 + 10) == ([], [])
    assert a.events(0, T0 + 20 * 86400) == []
    assert a.keys(0) == [HOST]
    assert rows(path, "fine") == 1 and rows(path, "coarse") == 1 and rows(path, "keys") == 1
    a.close()


def rows(path: Path, table: str) -> int:
    with closing(sqlite3.connect(path)) as db:
        count: int = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return count


def test_the_file_stays_under_max_bytes_dropping_the_oldest_fine_rows_first(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    limit = 256 * 1024
    a = Archive(path, max_bytes=limit)
    values = {"cpu": 12.5, "mem": 50.0, "disk_rd": 1e6, "disk_wr": 2e6, "net_rx": 3e3, "net_tx": 4e3}
    for b in range(400):  # 400 buckets x 50 VMs, about 1.7 MB unbounded
        for k in range(50):
            a.add(f"h/{k}", T0 + 10 * b, values)
        if b % 20 == 19:
            a.flush()
            assert a.stats().db_bytes <= limit
    a.flush()
    with closing(sqlite3.connect(path)) as db:
        fine0 = db.execute("SELECT min(t) FROM fine").fetchone()[0]
        assert T0 + 3000 < fine0 < T0 + 3990  # the oldest fine rows went first
        assert db.execute("SELECT min(t) FROM coarse").fetchone()[0] == T0  # coarse ones are still there
    times, _ = a.series("h/7", "cpu", fine0, T0 + 4000)
    assert times == list(range(fine0, T0 + 4000, 10))
    coarse_times, _ = a.series("h/7", "cpu", T0, T0 + 4000)
    assert coarse_times == list(range(T0, T0 + 4000, 300))
    a.close()
    assert path.stat().st_size <= limit
    assert not Path(f"{path}-wal").exists()


def test_a_restart_keeps_samples_and_events(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    with Archive(path) as a:
        for i in range(20):
            a.add(VM, T0 + 3 * i, {"cpu": float(i)})
        a.add(HOST, T0, {"cpu": 5.0, "mem": 6.0})
        a.note(VM, T0 + 5, "state", "running")
        a.flush()
        before = a.series(VM, "cpu", T0, T0 + 100)
    with Archive(path) as b:
        assert b.series(VM, "cpu", T0, T0 + 100) == before
        assert b.events(T0, T0 + 10) == [(T0 + 5, VM, "state", "running")]
        assert b.keys(T0) == sorted([VM, HOST])
        assert b.summary([HOST], T0, T0 + 10) == {HOST: {"cpu": (5.0, 5.0, 1), "mem": (6.0, 6.0, 1)}}
        b.add(VM, T0 + 61, {"cpu": 100.0})  # the bucket of the last sample before the restart: merged
        b.add(VM, T0 + 57, {"cpu": 100.0})
        b.flush()
        times, avgs = b.series(VM, "cpu", T0 + 50, T0 + 69)
        assert times == [T0 + 50, T0 + 60] and close_to(avgs[0], (17 + 18 + 19 + 100) / 4)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental


def test_a_file_that_is_not_a_database_is_moved_aside_and_replaced(
    tmp_path: Path, problems: list[str]
) -> None:
    path = tmp_path / "h.sqlite"
    garbage = b"this is not sqlite\x00\xff" * 300
    path.write_bytes(garbage)
    Path(f"{path}-wal").write_bytes(b"stale wal")
    a = Archive(path, on_problem=problems.append)
    a.add(VM, T0, {"cpu": 1.0})
    a.flush()
    assert a.series(VM, "cpu", T0, T0 + 10) == ([T0], [1.0])
    a.close()
    [moved] = tmp_path.glob("h.sqlite.corrupt-*[0-9]Z")
    assert moved.read_bytes() == garbage
    assert Path(f"{moved}-wal").read_bytes() == b"stale wal"
    assert len(problems) == 1 and str(path) in problems[0] and str(moved) in problems[0]
    with Archive(path) as b:
        assert b.series(VM, "cpu", T0, T0 + 10) == ([T0], [1.0])


def test_another_programs_database_is_moved_aside_and_a_newer_archive_left_alone(
    tmp_path: Path, problems: list[str]
) -> None:
    other = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE notes (x)")
        db.commit()
    with Archive(other, on_problem=problems.append) as a:
        a.add(VM, T0, {"cpu": 1.0})
        a.flush()
        assert a.enabled
    assert len(list(tmp_path.glob("other.sqlite.corrupt-*"))) == 1 and "moved it to" in problems[-1]

    newer = tmp_path / "newer.sqlite"
    with closing(sqlite3.connect(newer)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = newer.read_bytes()
    with Archive(newer, on_problem=problems.append) as b:
        b.flush()
        assert not b.enabled and "newer vimtui" in problems[-1]
        b.add(VM, T0, {"cpu": 1.0})
    assert newer.read_bytes() == before


def test_a_series_across_a_clock_jump_scans_instead_of_looking_up_each_bucket(tmp_path: Path) -> None:
    with Archive(tmp_path / "h.sqlite", fine_keep=10**7, coarse_keep=10**7) as a:
        a.add(VM, T0, {"cpu": 1.0})
        a.add(VM, T0 + 10 * 60_000, {"cpu": 2.0})
        a.flush()
        assert a.series(VM, "cpu", T0, T0 + 10 * 60_000) == ([T0, T0 + 600_000], [1.0, 2.0])


def damage(path: Path) -> None:
    """Overwrite every page but the first (the header and schema) with garbage."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xa5" * (len(data) - page)
    path.write_bytes(bytes(data))


def filled(path: Path) -> None:
    with Archive(path) as a:
        for b in range(300):
            for k in range(20):
                a.add(f"h/{k}", T0 + 10 * b, {"cpu": 1.0})


def test_damaged_pages_behind_a_valid_header_are_found_at_open(tmp_path: Path, problems: list[str]) -> None:
    path = tmp_path / "h.sqlite"
    filled(path)
    damage(path)
    a = Archive(path, on_problem=problems.append)
    a.add(VM, T0 + 5000, {"cpu": 7.0})
    a.flush()
    assert a.enabled and a.series(VM, "cpu", T0 + 5000, T0 + 5010) == ([T0 + 5000], [7.0])
    a.close()
    assert len(list(tmp_path.glob("h.sqlite.corrupt-*"))) == 1
    assert len(problems) == 1 and "moved it to" in problems[0]


def test_damage_found_while_writing_moves_the_file_aside_and_writes_into_a_new_one(
    tmp_path: Path, problems: list[str]
) -> None:
    """The file is damaged under a running archive (and another connection's write makes it drop its page
    cache): the next pass fails, the file is moved aside, and the pass is written into a new file."""
    path = tmp_path / "h.sqlite"
    filled(path)
    a = Archive(path, on_problem=problems.append)
    a.flush()  # opened
    damage(path)
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    a.add(VM, T0 + 5000, {"cpu": 7.0})
    a.flush()
    assert a.enabled and a.series(VM, "cpu", T0 + 5000, T0 + 5010) == ([T0 + 5000], [7.0])
    a.close()
    assert len(list(tmp_path.glob("h.sqlite.corrupt-*[0-9]Z"))) == 1
    assert len(problems) == 1 and "moved it to" in problems[0], problems


def test_a_second_archive_on_the_same_file_is_reported_and_stays_off(
    archive: Archive, problems: list[str]
) -> None:
    archive.add(VM, T0, {"cpu": 1.0})
    archive.flush()
    seen: list[str] = []
    second = Archive(archive.path, on_problem=seen.append)
    second.flush()
    assert len(seen) == 1 and "in use by another vimtui" in seen[0] and str(archive.path) in seen[0]
    assert not second.enabled
    second.add(VM, T0 + 10, {"cpu": 2.0})
    second.note(VM, T0 + 10, "state", "paused")
    assert second.series(VM, "cpu", T0, T0 + 20) == ([], [])
    assert (
        second.summary(None, T0, T0 + 20) == {} and second.events(T0, T0 + 20) == [] and second.keys(0) == []
    )
    second.close()
    archive.add(VM, T0 + 10, {"cpu": 3.0})  # the first one is unaffected
    archive.flush()
    assert archive.series(VM, "cpu", T0, T0 + 20) == ([T0, T0 + 10], [1.0, 3.0])
    assert problems == []


def test_a_read_only_archive_reads_while_the_writer_runs(archive: Archive) -> None:
    archive.add(VM, T0, {"cpu": 4.0})
    archive.note(VM, T0, "alert", "cpu high fired")
    archive.flush()
    with Archive(archive.path, read_only=True) as ro:
        assert ro.series(VM, "cpu", T0, T0 + 10) == ([T0], [4.0])
        assert ro.events(T0, T0 + 1, keys=[VM]) == [(T0, VM, "alert", "cpu high fired")]
        ro.add(VM, T0 + 10, {"cpu": 1.0})  # ignored
        ro.note(VM, T0 + 10, "alert", "written by a reader")  # ignored
        ro.flush()
        assert ro.series(VM, "cpu", T0, T0 + 20) == ([T0], [4.0])
    # the file itself has nothing of the reader's: the writer (and a fresh reader) see only its own
    archive.flush()
    assert archive.series(VM, "cpu", T0, T0 + 20) == ([T0], [4.0])
    assert archive.events(T0, T0 + 20, keys=[VM]) == [(T0, VM, "alert", "cpu high fired")]
    with Archive(archive.path, read_only=True) as again:
        assert again.series(VM, "cpu", T0, T0 + 20) == ([T0], [4.0])


def test_after_close_nothing_raises(archive: Archive) -> None:
    archive.add(VM, T0, {"cpu": 1.0})
    archive.close()
    archive.add(VM, T0 + 10, {"cpu": 1.0})
    archive.note(VM, T0, "state", "shutoff")
    archive.flush()
    archive.close()
    assert archive.series(VM, "cpu", T0, T0 + 20) == ([], [])
    assert not archive.enabled


def test_odd_inputs_are_ignored_not_raised(archive: Archive, problems: list[str]) -> None:
    archive.add(VM, math.nan, {"cpu": 1.0})
    archive.add(VM, 1e300, {"cpu": 1.0})
    archive.add(VM, T0, {"cpu": math.inf, "mem": math.nan, "disk_rd": None})
    archive.add(VM, T0, {"cpu": "fast"})  # type: ignore[dict-item]
    archive.add(VM, T0, {"cpu": 1e39})  # beyond float32: stored as its largest value
    archive.flush()
    assert archive.enabled
    _times, [avg] = archive.series(VM, "cpu", T0, T0)
    assert avg == pytest.approx(3.4028234663852886e38)
    assert len(problems) == 1  # the string, once


def test_events_and_keys(archive: Archive) -> None:
    archive.note(VM, T0 + 2, "state", "running")
    archive.note(HOST, T0 + 1, "alert", "host cpu fired")
    archive.add("kvm02/x", T0 + 400, {"cpu": 1.0})
    archive.flush()
    archive.note(VM, T0 + 3, "state", "paused")  # still in memory
    assert archive.events(T0, T0 + 10) == [
        (T0 + 1, HOST, "alert", "host cpu fired"),
        (T0 + 2, VM, "state", "running"),
        (T0 + 3, VM, "state", "paused"),
    ]
    assert archive.events(T0, T0 + 10, keys=[VM])[0] == (T0 + 2, VM, "state", "running")
    assert archive.keys(T0) == sorted([VM, HOST, "kvm02/x"])
    assert archive.keys(T0 + 1000) == []


def bounds(inputs: list[float]) -> tuple[float, float]:
    """[min, max] of the inputs, widened by their float32 roundings and float64 rounding in the sums."""
    lo, hi = min(min(inputs), f32(min(inputs))), max(max(inputs), f32(max(inputs)))
    return lo - 1e-9 * max(1.0, abs(lo)), hi + 1e-9 * max(1.0, abs(hi))


samples = st.lists(
    st.tuples(
        st.sampled_from(["a", "b/1", "ü/2"]),
        st.one_of(st.floats(0, 200_000), st.sampled_from([math.nan, math.inf, -1e30, 1e300])),
        st.dictionaries(
            st.sampled_from(["cpu", "mem", "x"]),
            st.one_of(st.none(), st.floats(-1e12, 1e12), st.sampled_from([math.nan, math.inf, -math.inf])),
        ),
    ),
    max_size=60,
)


@settings(max_examples=30)
@given(samples, st.sets(st.integers(0, 59), max_size=3))
def test_random_adds_never_raise_and_averages_stay_within_the_inputs(
    seq: list[tuple[str, float, dict[str, float | None]]], flush_at: set[int]
) -> None:
    seen: dict[tuple[str, str], list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        problems: list[str] = []
        a = Archive(Path(tmp) / "h.sqlite", fine_keep=3600, coarse_keep=7200, on_problem=problems.append)
        for i, (key, t, values) in enumerate(seq):
            a.add(key, t, values)
            if 0 <= t < 1e6:
                for m, v in values.items():
                    if v is not None and math.isfinite(v):
                        seen[key, m].append(v)
            if i in flush_at:
                a.flush()
        a.flush()
        for (key, m), inputs in seen.items():
            for tier_since in (0.0, 190_000.0):
                _times, avgs = a.series(key, m, tier_since, 1e6)
                lo, hi = bounds(inputs)
                assert all(lo <= avg <= hi for avg in avgs), (avgs, inputs)
        for key, per in a.summary(None, 0, 1e6).items():
            for m, (avg, peak, n) in per.items():
                lo, hi = bounds(seen[key, m])
                assert lo <= avg <= hi and lo <= peak <= hi and 1 <= n <= len(seen[key, m])
        assert a.enabled and problems == []
        a.close()
