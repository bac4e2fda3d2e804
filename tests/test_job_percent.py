"""Progress of a libvirt job from its stats, as virDomainGetJobStats gives them."""

from vimtui.core.actions.base import job_percent

MiB = 2**20


def test_no_totals_no_percent() -> None:
    assert job_percent({"type": 2}) == (None, "")


def test_done_is_total_less_remaining_and_capped_below_100() -> None:
    stats = {"data_total": 200 * MiB, "data_remaining": 50 * MiB, "data_processed": 150 * MiB}
    pct, text = job_percent(stats)
    assert pct == 75.0
    assert text == "150 of 200 MiB, 50 MiB left"
    pct, _ = job_percent({"data_total": 200 * MiB, "data_remaining": 0})
    assert pct == 99.0  # 100 is for the task's end, not the job's last byte


def test_a_second_pass_over_dirtied_memory_is_named() -> None:
    first = job_percent({"data_total": 113 * MiB, "data_remaining": 3 * MiB, "memory_iteration": 1})
    second = job_percent({"data_total": 113 * MiB, "data_remaining": 73 * MiB, "memory_iteration": 2})
    assert not first[1].startswith("pass")
    assert second[1] == "pass 2: 40 of 113 MiB, 73 MiB left"
