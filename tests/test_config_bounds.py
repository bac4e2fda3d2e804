"""Every number in the config is finite and within its bounds (msgspec's Meta), said with file, line and
key: NaN and infinities (TOML has both), negatives, and values beyond what libvirt takes."""

from __future__ import annotations

from pathlib import Path

import pytest

from vimtui.core.config.model import LIBVIRT_KEEPALIVE_MAX
from vimtui.core.config.settings import ConfigError, load_config, parse_config


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ("[defaults]\ninterval = nan\n", 2, "defaults.interval", "must be a finite number > 0"),
        ("[defaults]\ninterval = inf\n", 2, "defaults.interval", "must be <= 86400"),
        ("[defaults]\ninterval = -inf\n", 2, "defaults.interval", "must be a finite number > 0"),
        ("[defaults]\ncall_timeout = -1\n", 2, "defaults.call_timeout", "must be a finite number > 0"),
        ("[defaults]\nconnect_timeout = 1e9\n", 2, "defaults.connect_timeout", "must be <= 3600"),
        (
            "[defaults]\nkeepalive_interval = 1e10\n",
            2,
            "defaults.keepalive_interval",
            f"must be <= {LIBVIRT_KEEPALIVE_MAX}",
        ),
        (
            "[defaults]\nkeepalive_count_max = 4294967296\n",
            2,
            "defaults.keepalive_count_max",
            "must be <= 1000",
        ),
        ("[defaults]\nmax_fps = 0\n", 2, "defaults.max_fps", "must be between 1 and 120"),
        ("[defaults]\nwall_cycle = nan\n", 2, "defaults.wall_cycle", "must be a finite number > 0"),
        ("[history]\nmax_mb = 0\n", 2, "history.max_mb", "must be >= 1"),
        (
            '[[hosts]]\nname = "a"\naddress = "x"\nport = 70000\n',
            4,
            "hosts[0].port",
            "must be between 1 and 65535",
        ),
    ],
)
def test_numbers_out_of_bounds_are_refused_where_they_are(
    tmp_path: Path, text: str, line: int, key: str, message: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.file, info.value.line, info.value.key, info.value.message) == (
        str(path),
        line,
        key,
        message,
    )


def test_the_first_problem_in_file_order_is_the_one_said() -> None:
    """msgspec stops at its first problem; the others are still found, and the earliest line wins."""
    text = "[defaults]\nintervall = 3\ninterval = nan\n[history]\nmax_mb = -1\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert (info.value.line, info.value.key) == (2, "defaults.intervall")
    with pytest.raises(ConfigError) as info:
        parse_config("[history]\nmax_mb = -1\n[defaults]\ninterval = nan\n")
    assert (info.value.line, info.value.key) == (2, "history.max_mb")


def test_the_largest_values_libvirt_takes_are_accepted() -> None:
    text = f"[defaults]\nkeepalive_interval = {LIBVIRT_KEEPALIVE_MAX}\nkeepalive_count_max = 1000\n"
    config = parse_config(text + "interval = 86400\n")
    assert config.defaults.keepalive_interval == LIBVIRT_KEEPALIVE_MAX
