"""The `[alerts]` section of the config file: rules, defaults, hook; errors that name file, line and key;
and the round trip through save_config."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vimtui.core.config.settings import (
    AlertsConfig,
    Config,
    ConfigError,
    HostConfig,
    load_config,
    save_config,
)
from vimtui.core.monitor.alerts import DEFAULT_RULES, Rule, Severity

EXAMPLE = """\
[alerts]
hook = ["notify-send-alert", "--urgent"]
hook_timeout = 5

[[alerts.rules]]
name = "web-cpu"
metric = "vm.cpu_pct"
threshold = 90
for = "60s"
clear = 70
clear_for = "2m"
severity = "critical"
vms = ["web*", "api-?"]
hosts = ["kvm0*"]
group = "dc1"
tags = ["prod"]

[[alerts.rules]]
name = "disk-writes"
metric = "vm.disk_write_bps"
threshold = "200 MiB/s"
for = 30

[[alerts.rules]]
name = "host-memory"      # a default's name and no metric: changes only what it gives
threshold = 95

[[alerts.rules]]
name = "vm-io-error"
enabled = false
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text))
    return path


def error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)
    return info.value


def test_no_alerts_section_means_the_defaults() -> None:
    a = Config().alerts
    assert a == AlertsConfig() and (a.defaults, a.hook, a.hook_timeout, a.rules) == (True, "", 10.0, ())
    assert a.effective_rules() == DEFAULT_RULES


def test_the_example_parses(tmp_path: Path) -> None:
    a = load_config(write(tmp_path, EXAMPLE)).alerts
    assert a.hook == ("notify-send-alert", "--urgent") and a.hook_timeout == 5.0
    web, disk, mem, io = a.rules
    assert web == Rule(
        name="web-cpu",
        metric="vm.cpu_pct",
        threshold=90.0,
        for_seconds=60.0,
        clear=70.0,
        clear_for_seconds=120.0,
        severity=Severity.CRITICAL,
        vms=("web*", "api-?"),
        hosts=("kvm0*",),
        group="dc1",
        tags=("prod",),
    )
    assert (disk.metric, disk.threshold, disk.for_seconds) == ("vm.disk_write_bps", 200 * 2**20, 30.0)
    default_mem = next(r for r in DEFAULT_RULES if r.name == "host-memory")
    assert mem == Rule("host-memory", "host.mem_pct", threshold=95.0, for_seconds=60.0, severity="warning")
    assert mem.for_seconds == default_mem.for_seconds
    assert (io.metric, io.enabled) == ("vm.io_error", False)
    names = [r.name for r in a.effective_rules()]
    assert names == ["host-unreachable", "vm-crashed", "vm-io-error", "host-memory", "web-cpu", "disk-writes"]
    assert not next(r for r in a.effective_rules() if r.name == "vm-io-error").enabled


def test_defaults_off_and_a_shell_hook(tmp_path: Path) -> None:
    a = load_config(write(tmp_path, '[alerts]\ndefaults = false\nhook = "mail -s alert ops"\n')).alerts
    assert a.effective_rules() == () and a.hook == "mail -s alert ops"


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ("[alerts]\ndefault = false\n", 2, "alerts.default", "did you mean 'defaults'?"),
        ("[alerts]\ndefaults = 1\n", 2, "alerts.defaults", "expected a boolean, got an integer"),
        ("[alerts]\nhook = 3\n", 2, "alerts.hook", "expected a command"),
        ("[alerts]\nhook = []\n", 2, "alerts.hook", "expected a command"),
        ("[alerts]\nhook = '  '\n", 2, "alerts.hook", "expected a command"),
        ("[alerts]\nhook_timeout = 0\n", 2, "alerts.hook_timeout", "must be a finite number > 0"),
        ("alerts = 3\n", 1, "alerts", "expected a table, got an integer"),
        ("[alerts.rules]\nname = 'x'\n", 1, "alerts.rules", "expected an array of tables"),
    ],
)
def test_alerts_table_errors(tmp_path: Path, text: str, line: int, key: str, message: str) -> None:
    e = error(tmp_path, text)
    assert (e.line, e.key) == (line, key)
    assert message in e.message


RULE = """\
[[hosts]]
name = "kvm01"
address = "kvm01.example"

[[alerts.rules]]
name = "ok"
metric = "vm.cpu_pct"
threshold = 90

[[alerts.rules]]
name = "bad"
metric = "vm.cpu_pct"
threshold = 90
"""


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        ("thresold = 80", "thresold", "unknown key (did you mean 'threshold'?)"),
        ("severity = 'fatal'", "severity", "unknown severity 'fatal' (allowed: info, warning, critical)"),
        ("severity = 3", "severity", "expected a string, got an integer"),
        ("for = 'a minute'", "for", 'expected a duration such as "60s"'),
        ("for = -5", "for", 'expected a duration such as "60s"'),
        ("for = true", "for", 'expected a duration such as "60s"'),
        ("clear_for = '5 parsecs'", "clear_for", 'expected a duration such as "60s"'),
        ("clear = 95", "clear", "must be <= the threshold (90) for a > rule"),
        ("clear = 'low'", "clear", "expected a number, got a string"),
        ("op = '>='", "op", 'must be ">" or "<"'),
        ("vms = 'web*'", "vms", "expected an array of strings"),
        ("tags = [1]", "tags", "expected an array of strings"),
        ("group = 'dc1/'", "group", "slash-separated non-empty names"),
        ("enabled = 'no'", "enabled", "expected a boolean, got a string"),
    ],
)
def test_a_bad_rule_key_is_named_with_its_line(tmp_path: Path, extra: str, key: str, message: str) -> None:
    e = error(tmp_path, RULE + extra + "\n")
    assert (e.line, e.key) == (14, f"alerts.rules[1].{key}")
    assert message in e.message


@pytest.mark.parametrize(
    ("replace", "by", "line", "key", "message"),
    [
        (
            'metric = "vm.cpu_pct"\nthreshold = 90\n',
            'metric = "vm.cpu"\n',
            12,
            "metric",
            "did you mean 'vm.cpu_pct'?",
        ),
        ("threshold = 90\n", 'threshold = "high"\n', 13, "threshold", "expected a number, got a string"),
        ("threshold = 90\n", "threshold = 120\n", 13, "threshold", "must be a percentage, 0 to 100"),
        ("threshold = 90\n", "", 10, "threshold", "required for vm.cpu_pct"),
        ('metric = "vm.cpu_pct"\n', 'metric = "vm.crashed"\n', 13, "threshold", "takes no threshold"),
        ('metric = "vm.cpu_pct"\n', 'metric = "host.cpu_pct"\nvms = ["a"]\n', 13, "vms", "VM name patterns"),
        ('metric = "vm.cpu_pct"\n', "", 10, "metric", "missing required key"),
        ('name = "bad"\n', 'name = "ok"\n', 11, "name", "duplicate rule name 'ok' (also alerts.rules[0])"),
        ('name = "bad"\n', "", 10, "name", "missing required key"),
        ('name = "bad"\n', 'name = ""\n', 11, "name", "must not be empty"),
    ],
)
def test_rule_errors(tmp_path: Path, replace: str, by: str, line: int, key: str, message: str) -> None:
    head, _, tail = RULE.rpartition('name = "bad"\n')
    second = ('name = "bad"\n' + tail).replace(replace, by, 1)
    e = error(tmp_path, head + second)
    assert (e.line, e.key) == (line, f"alerts.rules[1].{key}")
    assert message in e.message


def test_rates_take_units_but_percentages_do_not(tmp_path: Path) -> None:
    text = "[[alerts.rules]]\nname = 'n'\nmetric = 'vm.net_rx_bps'\nthreshold = '10M'\nclear = '5 MiB/s'\n"
    [r] = load_config(write(tmp_path, text)).alerts.rules
    assert (r.threshold, r.clear) == (10 * 2**20, 5 * 2**20)
    e = error(tmp_path, text.replace("'10M'", "'fast'"))
    assert (e.line, e.key) == (4, "alerts.rules[0].threshold") and "10 MiB/s" in e.message


def test_round_trip_through_save_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, EXAMPLE))
    cfg = Config(hosts=(HostConfig(name="a", address="a.example"),), alerts=cfg.alerts)
    out = tmp_path / "saved.toml"
    save_config(cfg, out)
    text = out.read_text()
    assert "[alerts]\n" in text and text.count("[[alerts.rules]]") == 4
    assert load_config(out).alerts == cfg.alerts
    off = Config(alerts=AlertsConfig(defaults=False, hook="logger -t vimtui", hook_timeout=3.0))
    save_config(off, out)
    assert load_config(out).alerts == off.alerts
    save_config(Config(), out)
    assert "alerts" not in out.read_text()


def test_save_refuses_a_config_with_a_bad_hook(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        save_config(Config(alerts=AlertsConfig(hook=("",))), tmp_path / "c.toml")
    assert info.value.key == "alerts.hook"
    assert not (tmp_path / "c.toml").exists()


@settings(max_examples=60)
@given(
    metric=st.sampled_from(["vm.cpu_pct", "vm.net_rx_bps", "host.mem_pct"]),
    threshold=st.floats(0, 100) | st.integers(0, 100).map(float),
    scale=st.sampled_from([1.0, 2.0**20, 1.5 * 2**20, 1e6]),
    for_s=st.floats(0, 1e7) | st.integers(0, 10_000).map(float),
    clear_for=st.none() | st.floats(0, 1e7),
)
def test_any_rule_round_trips(
    tmp_path_factory: pytest.TempPathFactory,
    metric: str,
    threshold: float,
    scale: float,
    for_s: float,
    clear_for: float | None,
) -> None:
    t = threshold * scale if metric.endswith("_bps") else threshold
    rule = Rule("r", metric, threshold=t, for_seconds=for_s, clear_for_seconds=clear_for, clear=t * 0.5)
    cfg = Config(alerts=AlertsConfig(rules=(rule,)))
    out = tmp_path_factory.mktemp("rt") / "c.toml"
    save_config(cfg, out)
    assert load_config(out).alerts == cfg.alerts
