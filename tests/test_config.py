"""Config file (load, validate, save) and the inventory built from it: pure, no hosts, no network."""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from vimtui.core.config import settings as config_mod
from vimtui.core.config.settings import (
    Config,
    ConfigError,
    Defaults,
    GroupConfig,
    HostConfig,
    data_dir,
    default_config_path,
    load_config,
    parse_config,
    runtime_dir,
    save_config,
)
from vimtui.core.fleet.inventory import HostSpec, InventoryError, build_inventory, parse_connect
from vimtui.core.profiles import PROFILES


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)
    return info.value


FULL = Config(
    defaults=Defaults(interval=0.5, call_timeout=3.0, keepalive_count_max=7, theme="light"),
    hosts=(
        HostConfig(name="kvm01", address="10.0.0.1", user="root", port=2222, group="dc1/rack3"),
        HostConfig(
            name="kvm02",
            address="kvm02.example",
            identity="~/.ssh/id_ed25519",
            known_hosts="~/.ssh/lab_known_hosts",
            read_only=True,
        ),
        HostConfig(name="local", uri="test:///default"),
    ),
)


# ------------------------------------------------------------------------------------------- defaults


def test_defaults_have_the_documented_values() -> None:
    d = Defaults()
    assert (d.interval, d.call_timeout, d.connect_timeout) == (2.0, 10.0, 10.0)
    assert (d.keepalive_interval, d.keepalive_count_max, d.theme) == (3.0, 2, "dark")
    h = HostConfig(name="h")
    assert (h.address, h.user, h.port, h.identity, h.known_hosts) == ("", None, 22, None, None)
    assert (h.uri, h.group, h.read_only) == ("qemu:///system", "", False)


def test_missing_default_file_is_an_empty_config(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert load_config(env=env) == Config(defaults=Defaults(), hosts=(), path=None)


def test_empty_file_gives_defaults_and_records_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing yet\n")
    assert load_config(path) == Config(path=path)


def test_int_is_accepted_for_a_float(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[defaults]\ninterval = 3\n"))
    assert cfg.defaults.interval == 3.0
    assert isinstance(cfg.defaults.interval, float)


# ------------------------------------------------------------------------------------------------- XDG


def test_config_path_prefers_vimtui_config() -> None:
    env = {"VIMTUI_CONFIG": "/etc/vimtui.toml", "XDG_CONFIG_HOME": "/x", "HOME": "/home/u"}
    assert default_config_path(env) == Path("/etc/vimtui.toml")
    assert default_config_path({"VIMTUI_CONFIG": "~/v.toml", "HOME": "/home/u"}) == Path("/home/u/v.toml")


def test_config_path_uses_xdg_config_home_then_home() -> None:
    assert default_config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path("/x/vimtui/config.toml")
    assert default_config_path({"HOME": "/h"}) == Path("/h/.config/vimtui/config.toml")
    # the XDG spec says a relative value is invalid and must be ignored
    assert default_config_path({"XDG_CONFIG_HOME": "rel", "HOME": "/h"}) == Path(
        "/h/.config/vimtui/config.toml"
    )


def test_data_dir() -> None:
    assert data_dir({"XDG_DATA_HOME": "/d", "HOME": "/h"}) == Path("/d/vimtui")
    assert data_dir({"HOME": "/h"}) == Path("/h/.local/share/vimtui")


def test_load_uses_the_default_path(tmp_path: Path) -> None:
    path = tmp_path / "xdg" / "vimtui" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('[[hosts]]\nname = "a"\naddress = "a.example"\n')
    cfg = load_config(env={"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": "/nonexistent"})
    assert cfg.path == path
    assert [h.name for h in cfg.hosts] == ["a"]


def test_runtime_dir_is_created_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path)})
    finally:
        os.umask(old)
    assert path == tmp_path / "vimtui"
    st_ = os.lstat(path)
    assert stat.S_ISDIR(st_.st_mode)
    assert stat.S_IMODE(st_.st_mode) == 0o700
    assert runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path)}) == path  # existing and fine: accepted


def test_runtime_dir_refuses_a_group_accessible_dir(tmp_path: Path) -> None:
    (tmp_path / "vimtui").mkdir()
    os.chmod(tmp_path / "vimtui", 0o750)
    with pytest.raises(RuntimeError, match="accessible to others"):
        runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path)})


def test_runtime_dir_refuses_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "vimtui").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RuntimeError, match="not a directory"):
        runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path)})


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_runtime_dir_refuses_a_dir_owned_by_someone_else(tmp_path: Path) -> None:
    (tmp_path / "vimtui").mkdir(mode=0o700)
    os.chown(tmp_path / "vimtui", 54321, -1)
    with pytest.raises(RuntimeError, match="owned by uid 54321"):
        runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path)})


# ------------------------------------------------------------------------------------------ round trip


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "config.toml"  # parents are created
    save_config(FULL, path)
    assert load_config(path) == replace(FULL, path=path)


def test_save_omits_values_equal_to_their_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    save_config(Config(hosts=(HostConfig(name="a", address="a.example"),)), path)
    assert path.read_text() == '[[hosts]]\nname = "a"\naddress = "a.example"\n'
    save_config(Config(), path)
    assert path.read_text() == ""


def test_save_refuses_a_config_that_would_not_load(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigError, match=r"hosts\[0\]\.port: must be between 1 and 65535"):
        save_config(Config(hosts=(HostConfig(name="a", port=0),)), path)
    assert not path.exists()


def test_new_file_is_0600_and_an_existing_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    old = os.umask(0)
    try:
        save_config(FULL, path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        os.chmod(path, 0o640)
        save_config(Config(), path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_save_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "vimtui.toml"
    real.parent.mkdir()
    real.write_text("")
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    save_config(FULL, link)
    assert link.is_symlink()
    assert load_config(real).hosts == FULL.hosts


@pytest.mark.parametrize("where", ["dumps", "replace", "fsync"])
def test_a_failed_save_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    path = tmp_path / "config.toml"
    save_config(FULL, path)
    before = path.read_bytes()

    def boom(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    if where == "dumps":
        monkeypatch.setattr(tomli_w, "dumps", boom)
    else:
        monkeypatch.setattr(os, where, boom)
    with pytest.raises(OSError, match="No space left"):
        save_config(replace(FULL, hosts=FULL.hosts[:1]), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def valid_text(*, exclude: str = "") -> st.SearchStrategy[str]:
    # tomli_w writes any str except lone surrogates (not UTF-8); names reject control characters
    return st.text(st.characters(exclude_categories=("Cs", "Cc"), exclude_characters=exclude), min_size=1)


host_configs = st.builds(
    HostConfig,
    name=valid_text(exclude="/").filter(lambda s: s == s.strip()),
    address=st.one_of(st.just(""), valid_text().filter(lambda s: s == s.strip())),
    user=st.none() | valid_text(),
    port=st.integers(1, 65535),
    identity=st.none() | valid_text(),
    known_hosts=st.none() | valid_text(),
    uri=st.sampled_from(["qemu:///system", "test:///default", "qemu+ssh://h/system", "lxc:///"]),
    group=st.lists(valid_text(exclude="/").filter(lambda s: s.strip() != ""), max_size=3).map("/".join),
    read_only=st.booleans(),
    profile=st.none() | st.sampled_from(PROFILES),
).filter(lambda h: not h.read_only or h.profile in (None, "viewer"))
positive = st.floats(min_value=1e-6, max_value=3600, allow_nan=False, allow_infinity=False)
"""Within every bound of the [defaults] durations (the shortest: call and connect timeouts, an hour)."""
configs = st.builds(
    Config,
    defaults=st.builds(
        Defaults,
        interval=positive,
        call_timeout=positive,
        connect_timeout=positive,
        keepalive_interval=positive,
        keepalive_count_max=st.integers(1, 1000),
        theme=valid_text(),
    ),
    hosts=st.lists(host_configs, max_size=5, unique_by=lambda h: h.name).map(tuple),
    profile=st.none() | st.sampled_from(PROFILES),
).flatmap(
    lambda c: st.dictionaries(
        st.sampled_from(sorted({h.group for h in c.hosts if h.group} or {"adhoc"})),
        st.builds(GroupConfig, profile=st.sampled_from(PROFILES)),
        max_size=2,
    ).map(lambda groups: replace(c, groups=groups))
)


@settings(max_examples=60, deadline=None)
@given(configs)
def test_any_valid_config_round_trips(cfg: Config) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        save_config(cfg, path)
        assert load_config(path) == replace(cfg, path=path)


# --------------------------------------------------------------------------------------------- errors


def test_error_string_format() -> None:
    assert str(ConfigError("c.toml", 3, "hosts[1].port", "bad")) == "c.toml:3: hosts[1].port: bad"
    assert str(ConfigError("c.toml", None, "defaults.interval", "bad")) == "c.toml: defaults.interval: bad"
    assert str(ConfigError("c.toml", None, "", "no such file")) == "c.toml: no such file"


def test_syntax_error_reports_the_toml_line(tmp_path: Path) -> None:
    err = load_error(tmp_path, '[defaults]\ninterval = 2\n\n[[hosts]]\nname = "a\n')
    assert err.line == 5
    assert err.key == ""
    assert "invalid TOML" in err.message


def test_syntax_error_at_end_of_file(tmp_path: Path) -> None:
    err = load_error(tmp_path, '[[hosts]]\nname = """never closed\n')
    assert err.line == 2
    assert "invalid TOML" in err.message


def test_unknown_key_in_defaults(tmp_path: Path) -> None:
    err = load_error(tmp_path, '# vimtui\n[defaults]\ninterval = 2\nintervall = 3\ntheme = "dark"\n')
    assert (err.line, err.key) == (4, "defaults.intervall")
    assert "unknown key" in err.message
    assert "'interval'" in err.message  # suggests the near miss


def test_unknown_key_in_the_second_host_entry(tmp_path: Path) -> None:
    text = (
        "[[hosts]]\n"  # 1
        'name = "a"\n'  # 2
        'address = "a.example"\n'  # 3
        "\n"  # 4
        "[[hosts]]\n"  # 5
        'name = "b"\n'  # 6
        'uri = "test:///default"\n'  # 7
        'adress = "b.example"\n'  # 8
    )
    err = load_error(tmp_path, text)
    assert (err.line, err.key) == (8, "hosts[1].adress")
    assert "did you mean 'address'" in err.message
    assert str(err).endswith(":8: hosts[1].adress: " + err.message)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    err = load_error(tmp_path, '[[hosts]]\nname = "a"\naddress = "x"\ntheme = "light"\n')
    assert (err.line, err.key) == (4, "hosts[0].theme")  # inside [[hosts]]: a host key
    err = load_error(tmp_path, 'theme = "light"\n[[hosts]]\nname = "a"\n')
    assert (err.line, err.key) == (1, "theme")
    assert "[defaults]" in err.message


def test_bool_is_not_an_int(tmp_path: Path) -> None:
    err = load_error(tmp_path, '[[hosts]]\nname = "a"\nport = true\naddress = "x"\n')
    assert (err.line, err.key) == (3, "hosts[0].port")
    assert err.message == "expected an integer, got a boolean"


def test_bool_is_not_a_float_and_a_float_is_not_an_int(tmp_path: Path) -> None:
    assert (
        load_error(tmp_path, "[defaults]\ninterval = false\n").message == "expected a number, got a boolean"
    )
    err = load_error(tmp_path, "[defaults]\nkeepalive_count_max = 3.0\n")
    assert (err.key, err.message) == ("defaults.keepalive_count_max", "expected an integer, got a float")


def test_strings_must_be_strings(tmp_path: Path) -> None:
    err = load_error(tmp_path, '[[hosts]]\nname = 7\naddress = "x"\n')
    assert (err.line, err.key, err.message) == (2, "hosts[0].name", "expected a string, got an integer")


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_port_out_of_range(tmp_path: Path, port: int) -> None:
    err = load_error(tmp_path, f'[[hosts]]\nname = "a"\naddress = "x"\nport = {port}\n')
    assert (err.line, err.key) == (4, "hosts[0].port")
    assert "between 1 and 65535" in err.message


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan"])
def test_interval_must_be_positive_and_finite(tmp_path: Path, value: str) -> None:
    err = load_error(tmp_path, f"[defaults]\ninterval = {value}\n")
    assert (err.line, err.key) == (2, "defaults.interval")


def test_a_host_needs_an_address_or_a_uri(tmp_path: Path) -> None:
    err = load_error(tmp_path, '# fleet\n[[hosts]]\nname = "a"\nport = 22\n')
    assert (err.line, err.key) == (2, "hosts[0].address")
    assert err.message.startswith("required")
    assert parse_config('[[hosts]]\nname = "a"\nuri = "test:///default"\n').hosts[0].address == ""


def test_missing_name_points_at_the_entry_header(tmp_path: Path) -> None:
    text = '[[hosts]]\nname = "a"\naddress = "a.example"\n[[hosts]]\naddress = "b.example"\n'
    err = load_error(tmp_path, text)
    assert (err.line, err.key, err.message) == (4, "hosts[1].name", "missing required key")


def test_duplicate_names(tmp_path: Path) -> None:
    text = (
        '[[hosts]]\nname = "a"\naddress = "x"\n[[hosts]]\nname = "b"\naddress = "y"\n'
        '[[hosts]]\naddress = "x"\nname = "a"\n'
    )
    err = load_error(tmp_path, text)
    assert (err.line, err.key) == (9, "hosts[2].name")
    assert "duplicate host name 'a'" in err.message


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "must not be empty"), (" a", "whitespace"), ("dc1/a", '"/"'), ("a\\u001b[2J", "control")],
)
def test_bad_host_names(tmp_path: Path, name: str, message: str) -> None:
    err = load_error(tmp_path, f'[[hosts]]\nname = "{name}"\naddress = "x"\n')
    assert (err.line, err.key) == (2, "hosts[0].name")
    assert message in err.message


@pytest.mark.parametrize("group", ["/dc1", "dc1/", "dc1//rack3", " "])
def test_bad_group_paths(tmp_path: Path, group: str) -> None:
    err = load_error(tmp_path, f'[[hosts]]\nname = "a"\ngroup = "{group}"\naddress = "x"\n')
    assert (err.line, err.key) == (3, "hosts[0].group")


def test_the_first_error_in_file_order_is_reported(tmp_path: Path) -> None:
    # tomllib groups all [[hosts]] before [defaults] (first appearance), so the validator meets the
    # hosts[1] errors first; the report must still be the earliest line.
    text = (
        "[[hosts]]\n"  # 1
        'name = "a"\n'  # 2
        'address = "x"\n'  # 3
        "[defaults]\n"  # 4
        "interval = 0\n"  # 5
        "[[hosts]]\n"  # 6
        "port = 0\n"  # 7
    )
    err = load_error(tmp_path, text)
    assert (err.line, err.key) == (5, "defaults.interval")
    # and with that fixed, the missing name (header line) comes before the bad port
    err = load_error(tmp_path, text.replace("interval = 0", "interval = 1"))
    assert (err.line, err.key) == (6, "hosts[1].name")


def test_locator_handles_quoted_keys_dotted_keys_and_multiline_strings(tmp_path: Path) -> None:
    text = (
        "[[hosts]]\n"  # 1
        'name = "a"\n'  # 2
        'user = """\n'  # 3
        "port = 1\n"  # 4: inside a string, not a key
        'x"""\n'  # 5
        '"port" = 0\n'  # 6
        'address = "x"\n'  # 7
    )
    err = load_error(tmp_path, text)
    assert (err.line, err.key) == (6, "hosts[0].port")
    err = load_error(tmp_path, "defaults.interval = 1\ndefaults.call_timeout = -1\n")
    assert (err.line, err.key) == (2, "defaults.call_timeout")


def test_error_inside_an_inline_table_points_at_its_line(tmp_path: Path) -> None:
    err = load_error(tmp_path, '\nhosts = [\n  { name = "a", port = 0 },\n]\n')
    assert err.key == "hosts[0].port"
    assert err.line == 2  # best effort: the line where `hosts` starts


def test_wrong_shapes_for_defaults_and_hosts(tmp_path: Path) -> None:
    assert load_error(tmp_path, "defaults = 3\n").key == "defaults"
    assert load_error(tmp_path, 'hosts = "a"\n').key == "hosts"
    assert load_error(tmp_path, "hosts = [1]\n").key == "hosts[0]"


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="no such file") as info:
        load_config(missing)
    assert (info.value.file, info.value.line) == (str(missing), None)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(env={"VIMTUI_CONFIG": str(missing), "HOME": str(tmp_path)})
    assert load_config(missing, must_exist=False) == Config()


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)  # a directory
    path = tmp_path / "bad.toml"
    path.write_bytes(b'[[hosts]]\nname = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.line, info.value.message) == (2, "not valid UTF-8")


def test_parse_config_names_the_source() -> None:
    with pytest.raises(ConfigError, match=r"^<string>:1: bogus: unknown key"):
        parse_config("bogus = 1\n")
    assert config_mod.parse_config('[[hosts]]\nname = "a"\nuri = "qemu:///system"\n').hosts == (
        HostConfig(name="a"),
    )


# ------------------------------------------------------------------------------------------ inventory


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ssh://kvm01", HostSpec("kvm01", "ssh", "qemu:///system", "kvm01", None, 22, group="adhoc")),
        (
            "ssh://root@kvm01:2222",
            HostSpec("kvm01", "ssh", "qemu:///system", "kvm01", "root", 2222, group="adhoc"),
        ),
        (
            "ssh://root@kvm01/system",
            HostSpec("kvm01", "ssh", "qemu:///system", "kvm01", "root", group="adhoc"),
        ),
        (
            "ssh://u@[fd00::1]:23/",
            HostSpec("fd00::1", "ssh", "qemu:///system", "fd00::1", "u", 23, group="adhoc"),
        ),
        ("qemu:///system", HostSpec("local", "direct", "qemu:///system", group="adhoc")),
        ("qemu:///session", HostSpec("local", "direct", "qemu:///session", group="adhoc")),
        ("test:///default", HostSpec("test-default", "direct", "test:///default", group="adhoc")),
        ("test:///tmp/fleet.xml", HostSpec("test-fleet", "direct", "test:///tmp/fleet.xml", group="adhoc")),
        # through vimtui's own tunnel (strict host keys), never libvirt's ssh transport
        ("qemu+ssh://root@h1/system", HostSpec("h1", "ssh", "qemu:///system", "h1", "root", group="adhoc")),
        (
            "qemu+libssh://h1:2222/system?keyfile=/k&known_hosts=/kh",
            HostSpec("h1", "ssh", "qemu:///system", "h1", None, 2222, "/k", "/kh", group="adhoc"),
        ),
        (
            "qemu+tcp://10.1.2.3:16509/system",
            HostSpec("10.1.2.3", "direct", "qemu+tcp://10.1.2.3:16509/system", group="adhoc"),
        ),
        ("lxc:///", HostSpec("lxc", "direct", "lxc:///", group="adhoc")),
    ],
)
def test_parse_connect_forms(text: str, expected: HostSpec) -> None:
    assert parse_connect(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("kvm01", r"not a URI \(did you mean ssh://kvm01\?\).*ssh://\[user@\]host\[:port\]"),
        ("", "not a URI"),
        ("/var/run/libvirt/libvirt-sock", "not a URI"),
        ("ssh://kvm01/session", "only the system"),
        ("qemu+ssh://h1/system?no_verify=1", "no_verify is not honoured: vimtui checks host keys strictly"),
        ("qemu+ssh://h1/system?command=/bin/x", r"\?command= is not supported"),
        ("qemu+ssh://h1/session", r"only qemu\+ssh://host/system is supported"),
        ("ssh://kvm01/other", "unknown path"),
        ("ssh://", "no host"),
        ("ssh://u:secret@kvm01", "password"),
        ("ssh://kvm01:0", "port"),
        ("ssh://kvm01:65536", "port"),
        ("ssh://kvm01:ssh", "port"),
        ("ssh://kvm01?keyfile=x", "query"),
        ("qemu+tcp://h:99999/system", "h:99999"),
    ],
)
def test_parse_connect_errors(text: str, match: str) -> None:
    with pytest.raises(InventoryError, match=match):
        parse_connect(text)
    assert issubclass(InventoryError, ValueError)


def test_build_inventory_orders_groups_and_suffixes_clashes() -> None:
    cfg = Config(
        hosts=(
            HostConfig(name="kvm01", address="10.0.0.1", group="dc1"),
            HostConfig(name="kvm01-2", address="10.0.0.2"),
            HostConfig(name="local", uri="qemu:///system"),
        )
    )
    inv = build_inventory(
        cfg, ["ssh://kvm01", "ssh://root@kvm01:2222", "qemu:///system", "qemu:///session", "ssh://new"]
    )
    assert [s.name for s in inv] == [
        "kvm01",
        "kvm01-2",
        "local",
        "kvm01-3",
        "kvm01-4",
        "local-2",
        "local-3",
        "new",
    ]
    assert [s.group for s in inv] == ["dc1", "", "", "adhoc", "adhoc", "adhoc", "adhoc", "adhoc"]
    assert [s.transport for s in inv] == ["ssh", "ssh", "direct", "ssh", "ssh", "direct", "direct", "ssh"]
    assert inv[2].uri == "qemu:///system" and inv[2].address == ""
    assert (inv[4].address, inv[4].user, inv[4].port) == ("kvm01", "root", 2222)


def test_build_inventory_carries_every_config_field() -> None:
    host = HostConfig(
        name="h",
        address="h.example",
        user="ops",
        port=2200,
        identity="~/.ssh/k",
        known_hosts="/etc/kh",
        uri="qemu:///system",
        group="a/b",
        read_only=True,
    )
    assert build_inventory(Config(hosts=(host,))) == (
        HostSpec(
            "h", "ssh", "qemu:///system", "h.example", "ops", 2200, "~/.ssh/k", "/etc/kh", "a/b", "viewer"
        ),
    )


def test_build_inventory_rejects_a_bad_connect_argument() -> None:
    with pytest.raises(InventoryError, match="not a URI"):
        build_inventory(Config(), ["kvm01"])


def test_a_migration_address_is_a_name_or_an_address(tmp_path: Path) -> None:
    ok = parse_config('[[hosts]]\nname = "a"\naddress = "a"\nmigration_address = "10.0.0.5"\n')
    assert ok.hosts[0].migration_address == "10.0.0.5"
    err = load_error(tmp_path, '[[hosts]]\nname = "a"\naddress = "a"\nmigration_address = "root@b"\n')
    assert (err.line, err.key) == (4, "hosts[0].migration_address")
    assert "host name or IP address" in err.message
