"""Archive.add_many (every VM of a host at each poll, in one call) keeps what add() keeps, to the sample."""

from __future__ import annotations

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
