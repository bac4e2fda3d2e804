"""Archive.add_many (every VM of a host at each poll, in one call) keeps what add() keeps, to the sample."""

from __future__ import annotations

import math
import random
from pathlib import Path

from vimtui.core.monitor.archive import Archive

T0 = 1_699_999_800
NAMES = ("cpu", "mem", "net_rx")
ROWS = [
    (
        f"kvm01/vm{i}",
        (float(i % 7) + 0.5 * t, None if i % 3 == 0 else 30.0 + i, float("nan") if t % 2 else 1e3 * i),
    )
    for t in range(25)
    for i in range(5)
]


def test_add_many_keeps_what_add_keeps(tmp_path: Path) -> None:
    one, many = Archive(tmp_path / "one.sqlite"), Archive(tmp_path / "many.sqlite")
    try:
        for t in range(25):
            at = ROWS[t * 5 : t * 5 + 5]
            for key, row in at:
                one.add(key, T0 + t, dict(zip(NAMES, row, strict=True)))
            many.add_many(T0 + t, NAMES, at)
        for archive in (one, many):
            archive.flush()
        keys = sorted({key for key, _ in ROWS})
        for metric in NAMES:
            for key in keys:
                assert many.series(key, metric, T0, T0 + 30) == one.series(key, metric, T0, T0 + 30)
        summary = one.summary(keys, T0, T0 + 29)
        assert summary == many.summary(keys, T0, T0 + 29)
        # None and NaN are no samples: "mem" of vm0 and vm3 and the odd seconds' "net_rx" are absent
        assert "mem" not in summary["kvm01/vm0"] and summary["kvm01/vm1"]["net_rx"][2] == 13
    finally:
        one.close()
        many.close()


def assert_same(a: object, b: object) -> None:
    """Equal, but for the last bits of sums: a bucket read part way is summed in two parts."""
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-12), (a, b)
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


def test_rows_held_back_are_kept_as_add_keeps_them_through_reads_and_new_metrics(tmp_path: Path) -> None:
    """add_many holds a key's rows until its bucket closes or is read (Acc.fold, a column at a time):
    infinities, NaN and None among numbers, whole ints, a read in the middle of a bucket, and other
    names (a metric first seen, the order changed) part way through a bucket all end as add()'s do."""
    rng = random.Random(7)
    odd = [None, math.nan, math.inf, -math.inf, 0, 3, -2.5]
    names_later = ("disk", "cpu", "mem", "net_rx")
    one, many = Archive(tmp_path / "one.sqlite"), Archive(tmp_path / "many.sqlite")
    keys = [f"kvm02/vm{i}" for i in range(6)]
    try:
        for t in range(47):
            names = NAMES if t < 23 else names_later
            rows = []
            for key in keys:
                row = tuple(rng.choice(odd) if rng.random() < 0.3 else rng.uniform(0, 1e4) for _ in names)
                rows.append((key, row))
                one.add(key, T0 + t, dict(zip(names, row, strict=True)))
            many.add_many(T0 + t, names, rows)
            if t in (12, 23, 35):  # a read in the middle of a bucket folds what is held
                assert_same(many.summary(keys, T0, T0 + t), one.summary(keys, T0, T0 + t))
        for archive in (one, many):
            archive.flush()
        for metric in names_later:
            for key in keys:
                assert_same(many.series(key, metric, T0, T0 + 50), one.series(key, metric, T0, T0 + 50))
        summary = many.summary(keys, T0, T0 + 46)
        assert_same(summary, one.summary(keys, T0, T0 + 46))
        assert all("disk" in s and "cpu" in s for s in summary.values())
    finally:
        one.close()
        many.close()


def test_a_row_of_the_wrong_length_is_refused_and_said(tmp_path: Path) -> None:
    said: list[str] = []
    archive = Archive(tmp_path / "a.sqlite", on_problem=said.append)
    try:
        archive.add_many(T0, NAMES, [("kvm01/vm0", (1.0, 2.0))])
        archive.flush()
        assert said and "2 values for 3 metrics" in said[0]
        assert archive.summary(["kvm01/vm0"], T0, T0 + 10) in ({}, {"kvm01/vm0": {}})
    finally:
        archive.close()


def test_a_value_that_is_not_a_number_is_left_out_and_the_archive_goes_on(tmp_path: Path) -> None:
    """Rows are summed later, on the archive's thread and under reads (Acc.fold): something that is not a
    number among them is left out there, as None is, and never stops the writer."""
    said: list[str] = []
    archive = Archive(tmp_path / "a.sqlite", on_problem=said.append)
    try:
        for t in range(3):
            archive.add_many(T0 + t, NAMES, [("kvm01/vm0", (1.0 + t, "x", None))])
        archive.flush()
        assert archive.summary(["kvm01/vm0"], T0, T0 + 10)["kvm01/vm0"]["cpu"][2] == 3
        archive.add_many(T0 + 20, NAMES, [("kvm01/vm0", (5.0, 1.0, 2.0))])
        archive.flush()
        assert archive.summary(["kvm01/vm0"], T0 + 20, T0 + 29)["kvm01/vm0"]["mem"][2] == 1
        assert not said
    finally:
        archive.close()
