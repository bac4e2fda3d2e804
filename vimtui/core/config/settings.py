"""The config file: TOML in (tomllib), TOML out atomically (tomli-w).

Typed and strict: an unknown key, a wrong type or an out-of-range value is a `ConfigError` that names the
file, the line and the dotted key, so a typo is reported instead of silently ignored. Only the first error
in file order is reported, which keeps messages stable from one run to the next.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import os
import re
import stat
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from vimtui.core import metrics
from vimtui.core.monitor.alerts import (
    DEFAULT_RULES,
    Rule,
    RuleError,
    Severity,
    alert_metric_names,
    effective_rules,
    parse_duration,
    parse_rate,
)
from vimtui.core.text import CONTROL_CHARS

__all__ = [
    "AlertsConfig",
    "Config",
    "ConfigError",
    "Defaults",
    "HistoryConfig",
    "HostConfig",
    "data_dir",
    "default_config_path",
    "load_config",
    "parse_config",
    "runtime_dir",
    "save_config",
]

APP = "vimtui"

# --------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Defaults:
    """Settings that apply to every host (the `[defaults]` table)."""

    interval: float = 2.0
    """Seconds between two polls of a host; must be > 0."""
    call_timeout: float = 10.0
    """Deadline of one libvirt call, in seconds; a host that misses it is marked degraded."""
    connect_timeout: float = 10.0
    """Deadline for reaching a host (SSH handshake plus libvirt open), in seconds."""
    keepalive_interval: float = 3.0
    """Seconds between SSH keepalive probes."""
    keepalive_count_max: int = 2
    """Unanswered keepalive probes after which the SSH connection is considered dead."""
    host_stats_every: int = 10
    """Read the hosts' own CPU and memory counters every Nth poll (1 = every poll). They are two calls on
    top of the one bulk call for all VMs, and each costs this process about a third of what the bulk call
    for 100 VMs costs (the SSH round trip, not the data); every 10th poll is every 20 s at the default
    interval: vCenter's real-time charts' interval. The VMs' own figures are read at every poll."""
    theme: str = "dark"
    """Name of the UI theme (shipped: dark, light, high-contrast, ansi16; or one in <config dir>/themes)."""
    max_fps: int = 30
    """Frame cap of the screen; lower it on slow links (e.g. 5)."""
    wall_cycle: float = 10.0
    """Seconds each group stays on screen in wall mode."""


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    """The `[history]` table: the lasting history (SQLite in the data dir) that graphs beyond 15 minutes
    and reports read, and that a restart keeps."""

    enabled: bool = True
    """Keep it at all (false: graphs show what this run saw, reports have nothing)."""
    fine_step: int = 10
    """Seconds per fine sample (average and peak of the polls in it)."""
    fine_keep: int = 86400
    """Seconds fine samples are kept (24 h)."""
    coarse_step: int = 300
    """Seconds per coarse sample, a multiple of fine_step (5 min)."""
    coarse_keep: int = 30 * 86400
    """Seconds coarse samples are kept (30 days): the retention of the history."""
    max_mb: int = 256
    """Size bound of the database in MiB: past it, the oldest fine samples go first, then coarse ones."""


@dataclass(frozen=True, slots=True)
class HostConfig:
    """One hypervisor host (one `[[hosts]]` entry)."""

    name: str
    """Display name; required, non-empty, unique across hosts, no "/" and no control characters."""
    address: str = ""
    """SSH address (host name or IP). Without one, `uri` (then required) is opened directly: local or any
    libvirt URI."""
    user: str | None = None
    """SSH user; None lets SSH decide (ssh config, then the local user)."""
    port: int = 22
    """SSH port, 1..65535."""
    identity: str | None = None
    """Path of an SSH private key; `~` is expanded when used, not when loaded."""
    known_hosts: str | None = None
    """Path of a known_hosts file to check the host key against, instead of the usual ones."""
    uri: str = "qemu:///system"
    """libvirt URI: on the remote host when reached over SSH, opened as is when `address` is empty."""
    group: str = ""
    """Slash-separated place in the host tree, e.g. "dc1/rack3"; empty for the top level."""
    read_only: bool = False
    """Open libvirt read-only: nothing that changes the host is offered."""
    migration_address: str = ""
    """Address other hosts send a live migration's memory and disks to (e.g. an address on a storage or
    migration network); empty: libvirt's choice (the host's `migration_host`, else its host name)."""


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """The `[alerts]` table and its `[[alerts.rules]]` entries (see vimtui.core.monitor.alerts)."""

    defaults: bool = True
    """Use the shipped rules (host unreachable, VM crashed, VM paused on I/O error, host memory > 90%);
    a rule below with the same name replaces one (and may give only the keys it changes)."""
    hook: str | tuple[str, ...] = ""
    """Command run for each alert that fires or resolves, with the alert as JSON on stdin: an array is
    run as is (["notify-send-alert", "--urgent"]), a string through /bin/sh. Empty: no hook."""
    hook_timeout: float = 10.0
    """Seconds a hook may run before it is killed (and the kill reported)."""
    rules: tuple[Rule, ...] = ()
    """The `[[alerts.rules]]` entries, in file order."""

    def effective_rules(self) -> tuple[Rule, ...]:
        """The rules in force: defaults (unless disabled) with replacements, then the others."""
        return effective_rules(self.rules, defaults=self.defaults)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole config file."""

    defaults: Defaults = field(default_factory=Defaults)
    """The `[defaults]` table."""
    hosts: tuple[HostConfig, ...] = ()
    """The `[[hosts]]` entries, in file order."""
    path: Path | None = None
    """Where the config was read from; None when no file was read."""
    keys: tuple[tuple[str, str], ...] = ()
    """The `[keys]` table: binding id -> keys (e.g. "vm_table.cursor_down" = "down,j,n"), in file order."""
    key_lines: tuple[int | None, ...] = field(default=(), compare=False)
    """The line of each entry of `keys`, so the screen can name it when it does not know a binding id."""
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    """The `[alerts]` table."""


class ConfigError(Exception):
    """A config file that cannot be used, located as precisely as possible."""

    def __init__(self, file: str, line: int | None, key: str, message: str) -> None:
        super().__init__(file, line, key, message)
        self.file = file
        """The file, as given or resolved."""
        self.line = line
        """1-based line number, or None when it is not known."""
        self.key = key
        """Dotted key such as `hosts[1].port` or `defaults.interval`; empty when about the whole file."""
        self.message = message
        """What is wrong, for a human."""

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = f"{self.key}: {self.message}" if self.key else self.message
        return f"{where}: {what}"


# ------------------------------------------------------------------------------------------------- XDG


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME")
    return Path(home) if home else Path.home()


def _xdg_base(env: Mapping[str, str], var: str, fallback: str) -> Path:
    # The XDG spec says a relative path in these variables is invalid and must be ignored.
    value = env.get(var, "")
    if value and os.path.isabs(value):
        return Path(value)
    return _home(env) / fallback


def default_config_path(env: Mapping[str, str] = os.environ) -> Path:
    """`$VIMTUI_CONFIG`, else `$XDG_CONFIG_HOME/vimtui/config.toml`, else `~/.config/vimtui/config.toml`."""
    explicit = env.get("VIMTUI_CONFIG", "")
    if explicit:
        if explicit == "~" or explicit.startswith("~/"):
            return _home(env) / explicit[2:]
        return Path(explicit)
    return _xdg_base(env, "XDG_CONFIG_HOME", ".config") / APP / "config.toml"


def data_dir(env: Mapping[str, str] = os.environ) -> Path:
    """`$XDG_DATA_HOME/vimtui`, else `~/.local/share/vimtui` (not created here)."""
    return _xdg_base(env, "XDG_DATA_HOME", ".local/share") / APP


def runtime_dir(env: Mapping[str, str] = os.environ) -> Path:
    """`$XDG_RUNTIME_DIR/vimtui`, else `/tmp/vimtui-<uid>`; created 0700.

    Sockets live here, so an existing directory must be a real directory (not a symlink), owned by us and
    not accessible to group or others: otherwise RuntimeError, since another user could be waiting there.
    """
    base = env.get("XDG_RUNTIME_DIR", "")
    uid = os.geteuid()
    path = Path(base) / APP if base and os.path.isabs(base) else Path("/tmp") / f"{APP}-{uid}"
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RuntimeError(f"cannot create runtime directory {path}: {exc.strerror or exc}") from exc
    else:
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeError(f"runtime directory {path} is not a directory (or is a symlink)")
    if st.st_uid != uid:
        raise RuntimeError(f"runtime directory {path} is owned by uid {st.st_uid}, not by us (uid {uid})")
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        raise RuntimeError(f"runtime directory {path} is accessible to others (mode {mode:04o}); want 0700")
    return path


# --------------------------------------------------------------------------------------- line locator

PathElem = str | int
KeyPath = tuple[PathElem, ...]

_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART})*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_DOTTED})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_DOTTED})\s*=")
_KEY_PART_RE = re.compile(_KEY_PART)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _split_key(dotted: str) -> list[str]:
    parts: list[str] = []
    for raw in _KEY_PART_RE.findall(dotted):
        if raw.startswith('"'):
            parts.append(str(tomllib.loads(f"k = {raw}")["k"]))  # let tomllib decode the escapes
        elif raw.startswith("'"):
            parts.append(raw[1:-1])
        else:
            parts.append(raw)
    return parts


def _locate_keys(text: str) -> dict[KeyPath, int]:
    """Map each key path written in `text` to the line where it first appears.

    tomllib gives no positions, so this scans line by line: table headers (each `[[array]]` occurrence
    gets the next index) and `key =` lines within them. Best effort: it skips the bodies of multi-line
    strings but does not parse values; keys inside inline tables are located at their parent's line by
    the caller's fallback to the longest known prefix.
    """
    lines: dict[KeyPath, int] = {}
    last_index: dict[KeyPath, int] = {}  # resolved path of an array of tables -> its latest index
    current: KeyPath = ()
    open_string: str | None = None

    def resolve(names: list[str]) -> KeyPath:
        path: KeyPath = ()
        for name in names:
            path = (*path, name)
            if path in last_index:
                path = (*path, last_index[path])
        return path

    for lineno, line in enumerate(text.splitlines(), start=1):
        if open_string is not None:
            if open_string in line:
                open_string = None
            continue
        if m := _ARRAY_HEADER.match(line):
            names = _split_key(m.group(1))
            array = (*resolve(names[:-1]), names[-1])
            index = last_index.get(array, -1) + 1
            last_index[array] = index
            current = (*array, index)
            lines.setdefault(array, lineno)
            lines.setdefault(current, lineno)
            continue
        if m := _TABLE_HEADER.match(line):
            current = resolve(_split_key(m.group(1)))
            lines.setdefault(current, lineno)
            continue
        if m := _KEY_LINE.match(line):
            path = current
            for name in _split_key(m.group(1)):
                path = (*path, name)
                lines.setdefault(path, lineno)
            value = line[m.end() :]
            for quote in ('"""', "'''"):
                start = value.find(quote)
                if start != -1 and value.count(quote, start) % 2 == 1:
                    open_string = quote
                    break
    return lines


def _line_for(lines: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    """The line of `path`, else of its longest located prefix (a missing key points at its table)."""
    for end in range(len(path), 0, -1):
        if (found := lines.get(path[:end])) is not None:
            return found
    return None


def _format_key(path: KeyPath) -> str:
    out = ""
    for elem in path:
        if isinstance(elem, int):
            out += f"[{elem}]"
        else:
            name = elem if _BARE_KEY.fullmatch(elem) else tomli_w.dumps({"k": elem})[4:].strip()
            out += f".{name}" if out else name
    return out


# ------------------------------------------------------------------------------------------ validation

_TOML_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (dict, "a table"),
    (list, "an array"),
    (datetime, "a datetime"),
    (date, "a date"),
    (time, "a time"),
)

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S*")


def _toml_type(value: object) -> str:
    for typ, name in _TOML_TYPE_NAMES:
        if isinstance(value, typ):
            return name
    return type(value).__name__


def _positive(value: Any) -> str | None:
    return None if math.isfinite(value) and value > 0 else "must be a finite number > 0"


def _at_least(low: int) -> Callable[[Any], str | None]:
    return lambda value: None if value >= low else f"must be >= {low}"


def _port(value: Any) -> str | None:
    return None if 1 <= value <= 65535 else "must be between 1 and 65535"


def _non_empty(value: Any) -> str | None:
    return None if value else "must not be empty"


def _name(value: Any) -> str | None:
    if not value.strip():
        return "must not be empty"
    if value != value.strip():
        return "must not start or end with whitespace"
    if CONTROL_CHARS.search(value):
        return "must not contain control characters"
    if "/" in value:  # "/" separates groups in the host tree, and names end up in socket file names
        return 'must not contain "/" (put the host in a group instead)'
    return None


def _uri(value: Any) -> str | None:
    return None if _URI.fullmatch(value) else "must be a libvirt URI such as qemu:///system"


def _migration_address(value: Any) -> str | None:
    if value != value.strip() or any(c.isspace() or c in "/@" for c in value):
        return "must be a host name or IP address (no spaces, '/' or '@'), or empty"
    return None


def _group(value: Any) -> str | None:
    if not value:
        return None
    if CONTROL_CHARS.search(value):
        return "must not contain control characters"
    if any(not part.strip() for part in value.split("/")):
        return 'must be slash-separated non-empty names, e.g. "dc1/rack3" (no leading, trailing or double /)'
    return None


_CHECKS: dict[type, dict[str, Callable[[Any], str | None]]] = {
    Defaults: {
        "interval": _positive,
        "call_timeout": _positive,
        "connect_timeout": _positive,
        "keepalive_interval": _positive,
        "keepalive_count_max": _at_least(1),
        "host_stats_every": _at_least(1),
        "theme": _non_empty,
        "max_fps": lambda v: None if 1 <= v <= 120 else "must be between 1 and 120",
        "wall_cycle": _positive,
    },
    HistoryConfig: {
        "fine_step": _at_least(1),
        "fine_keep": _at_least(60),
        "coarse_step": _at_least(1),
        "coarse_keep": _at_least(3600),
        "max_mb": _at_least(1),
    },
    HostConfig: {
        "name": _name,
        "address": lambda v: None if v == v.strip() else "must not start or end with whitespace",
        "user": _non_empty,
        "port": _port,
        "identity": _non_empty,
        "known_hosts": _non_empty,
        "uri": _uri,
        "group": _group,
        "migration_address": _migration_address,
    },
}


_Section = TypeVar("_Section", Defaults, HostConfig, HistoryConfig)


class _Checker:
    """Collects every problem with its location, so the first one in file order can be reported."""

    def __init__(self, file: str, lines: Mapping[KeyPath, int]) -> None:
        self.file = file
        self.lines = lines
        self.errors: list[ConfigError] = []

    def error(self, path: KeyPath, message: str) -> None:
        self.errors.append(ConfigError(self.file, _line_for(self.lines, path), _format_key(path), message))

    def first(self) -> ConfigError | None:
        # Sort by line (unknown lines last); ties keep discovery order, which follows the file.
        ordered = sorted(self.errors, key=lambda e: (e.line is None, e.line or 0))
        return ordered[0] if ordered else None

    def unknown(self, path: KeyPath, allowed: list[str]) -> None:
        key = str(path[-1])
        if len(path) == 1 and key in _field_names(Defaults):
            self.error(path, f"unknown top-level key; {key} belongs in [defaults]")
            return
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "allowed: " + ", ".join(allowed)
        self.error(path, f"unknown key ({hint})")

    def convert(self, path: KeyPath, annotation: str, value: object) -> tuple[bool, object]:
        """Check `value` against a field's annotation; int is accepted for float, bool never for int."""
        if annotation == "float":
            if isinstance(value, int | float) and not isinstance(value, bool):
                return True, float(value)
            expected = "a number"
        elif annotation == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return True, value
            expected = "an integer"
        elif annotation == "bool":
            if isinstance(value, bool):
                return True, value
            expected = "a boolean"
        elif annotation in ("str", "str | None"):
            if isinstance(value, str):
                return True, value
            expected = "a string"
        else:  # pragma: no cover - a field type this loader does not know yet
            raise TypeError(f"unsupported config field type {annotation!r}")
        self.error(path, f"expected {expected}, got {_toml_type(value)}")
        return False, value

    def build(self, cls: type[_Section], table: Mapping[str, Any], base: KeyPath) -> _Section | None:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        checks = _CHECKS.get(cls, {})
        values: dict[str, Any] = {}
        ok = True
        for key, value in table.items():
            path = (*base, key)
            if key not in fields:
                self.unknown(path, list(fields))
                ok = False
                continue
            good, converted = self.convert(path, str(fields[key].type), value)
            if good and (check := checks.get(key)) and (problem := check(converted)):
                self.error(path, problem)
                good = False
            ok = ok and good
            values[key] = converted
        for name, f in fields.items():
            if (
                name not in table
                and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
            ):
                self.error((*base, name), "missing required key")
                ok = False
        return cls(**values) if ok else None


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _from_document(
    doc: Mapping[str, Any], file: str, lines: Mapping[KeyPath, int], path: Path | None
) -> Config:
    check = _Checker(file, lines)
    defaults: Defaults | None = Defaults()
    hosts: list[HostConfig] = []
    keys: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    alerts: AlertsConfig | None = AlertsConfig()
    history: HistoryConfig | None = HistoryConfig()
    for key, value in doc.items():
        if key == "defaults":
            if isinstance(value, dict):
                defaults = check.build(Defaults, value, ("defaults",))
            else:
                check.error(("defaults",), f"expected a table, got {_toml_type(value)}")
        elif key == "hosts":
            if not isinstance(value, list):
                check.error(("hosts",), f"expected an array of tables ([[hosts]]), got {_toml_type(value)}")
                continue
            for index, entry in enumerate(value):
                base: KeyPath = ("hosts", index)
                if not isinstance(entry, dict):
                    check.error(base, f"expected a table, got {_toml_type(entry)}")
                    continue
                host = check.build(HostConfig, entry, base)
                if "address" not in entry and "uri" not in entry:
                    check.error(
                        (*base, "address"),
                        "required: the host's SSH address (or a `uri` to open directly, e.g. qemu:///system)",
                    )
                name = entry.get("name")
                if isinstance(name, str) and name in seen:
                    check.error((*base, "name"), f"duplicate host name {name!r} (also hosts[{seen[name]}])")
                elif isinstance(name, str):
                    seen[name] = index
                if host is not None:
                    hosts.append(host)
        elif key == "keys":
            if not isinstance(value, dict):
                check.error(("keys",), f"expected a table, got {_toml_type(value)}")
                continue
            for binding, keyspec in value.items():
                if not isinstance(keyspec, str) or not keyspec.strip():
                    check.error(("keys", binding), 'expected keys as a string, e.g. "down,j"')
                else:
                    keys.append((binding, keyspec))
        elif key == "alerts":
            alerts = _alerts_from_table(check, value)
        elif key == "history":
            if isinstance(value, dict):
                history = check.build(HistoryConfig, value, ("history",))
                if history is not None:
                    _check_history(check, history)
            else:
                check.error(("history",), f"expected a table, got {_toml_type(value)}")
        else:
            check.unknown((key,), ["defaults", "hosts", "keys", "alerts", "history"])
    if (error := check.first()) is not None:
        raise error
    assert defaults is not None and alerts is not None and history is not None  # no error: all built
    key_lines = tuple(_line_for(lines, ("keys", binding)) for binding, _ in keys)
    return Config(
        defaults=defaults,
        hosts=tuple(hosts),
        path=path,
        keys=tuple(keys),
        key_lines=key_lines,
        alerts=alerts,
        history=history,
    )


def _check_history(check: _Checker, h: HistoryConfig) -> None:
    """What the steps and retentions must be to each other (each is checked on its own before)."""
    if h.coarse_step % h.fine_step:
        check.error(("history", "coarse_step"), f"must be a multiple of fine_step ({h.fine_step})")
    elif h.fine_keep < h.fine_step:
        check.error(("history", "fine_keep"), f"must be at least fine_step ({h.fine_step})")
    elif h.coarse_keep < max(h.fine_keep, h.coarse_step):
        check.error(("history", "coarse_keep"), "must be at least fine_keep and coarse_step")


# ----------------------------------------------------------------------------------------------- alerts

_ALERT_KEYS = ("defaults", "hook", "hook_timeout", "rules")
_DEFAULT_RULES = {r.name: r for r in DEFAULT_RULES}
_DURATION_HINT = 'expected a duration such as "60s", "5m", "1h30m" or a number of seconds'


def _alerts_from_table(check: _Checker, table: object) -> AlertsConfig | None:
    """`[alerts]`: its own keys, then each `[[alerts.rules]]` entry as a Rule."""
    if not isinstance(table, dict):
        check.error(("alerts",), f"expected a table, got {_toml_type(table)}")
        return None
    values: dict[str, Any] = {}
    ok = True
    for key, value in table.items():
        path: KeyPath = ("alerts", key)
        if key == "defaults":
            good, values[key] = check.convert(path, "bool", value)
        elif key == "hook_timeout":
            good, values[key] = check.convert(path, "float", value)
            if good and (problem := _positive(values[key])):
                check.error(path, problem)
                good = False
        elif key == "hook":
            good = _hook_ok(value)
            if good:
                values[key] = value if isinstance(value, str) else tuple(value)
            else:
                check.error(path, 'expected a command: a string (run by /bin/sh) or an array ["cmd", "arg"]')
        elif key == "rules":
            rules = _rules_from_array(check, value)
            good = rules is not None
            values[key] = rules
        else:
            check.unknown(path, list(_ALERT_KEYS))
            good = False
        ok = ok and good
    return AlertsConfig(**values) if ok else None


def _hook_ok(value: object) -> bool:
    if isinstance(value, str):
        return value == "" or bool(value.strip())  # "" means no hook
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(a, str) for a in value)
        and bool(value[0].strip())
    )


def _rules_from_array(check: _Checker, value: object) -> tuple[Rule, ...] | None:
    if not isinstance(value, list):
        check.error(
            ("alerts", "rules"), f"expected an array of tables ([[alerts.rules]]), got {_toml_type(value)}"
        )
        return None
    rules: list[Rule] = []
    names: dict[str, int] = {}
    ok = True
    for index, entry in enumerate(value):
        base: KeyPath = ("alerts", "rules", index)
        if not isinstance(entry, dict):
            check.error(base, f"expected a table, got {_toml_type(entry)}")
            ok = False
            continue
        rule = _rule_from_table(check, entry, base)
        name = entry.get("name")
        if isinstance(name, str) and name in names:
            check.error((*base, "name"), f"duplicate rule name {name!r} (also alerts.rules[{names[name]}])")
            ok = False
        elif isinstance(name, str):
            names[name] = index
        if rule is None:
            ok = False
        else:
            rules.append(rule)
    return tuple(rules) if ok else None


# TOML key -> Rule field
_RULE_FIELDS = {
    "name": "name",
    "metric": "metric",
    "op": "op",
    "threshold": "threshold",
    "for": "for_seconds",
    "clear": "clear",
    "clear_for": "clear_for_seconds",
    "severity": "severity",
    "vms": "vms",
    "hosts": "hosts",
    "group": "group",
    "tags": "tags",
    "enabled": "enabled",
}


def _rule_from_table(check: _Checker, table: Mapping[str, Any], base: KeyPath) -> Rule | None:
    """One `[[alerts.rules]]` entry. An entry named like a default rule and without a `metric` changes
    only the keys it gives (e.g. `name = "host-memory"` with `threshold = 95`)."""
    given: dict[str, Any] = {}
    ok = True
    metric = table.get("metric")
    spec = metrics.get(metric) if isinstance(metric, str) else None
    rate = spec is not None and spec.unit == "B/s"
    for key, value in table.items():
        path: KeyPath = (*base, key)
        target = _RULE_FIELDS.get(key)
        if target is None:
            check.unknown(path, list(_RULE_FIELDS))
            ok = False
            continue
        converted, problem = _rule_value(key, value, rate)
        if problem is not None:
            check.error(path, problem)
            ok = False
        else:
            given[target] = converted
    if "name" not in table:
        check.error((*base, "name"), "missing required key")
        return None
    default = _DEFAULT_RULES.get(table["name"]) if isinstance(table["name"], str) else None
    if "metric" not in table and default is None:
        allowed = ", ".join(alert_metric_names())
        check.error((*base, "metric"), f"missing required key (one of {allowed})")
        return None
    if not ok:
        return None
    try:
        return dataclasses.replace(default, **given) if "metric" not in table and default else Rule(**given)
    except RuleError as exc:
        check.error((*base, exc.key), exc.message)
        return None


def _rule_value(key: str, value: object, rate: bool) -> tuple[Any, str | None]:
    """A rule key's value converted, or the problem with it."""
    if key in ("name", "op", "group", "metric", "severity"):  # metric and severity: checked by Rule
        if not isinstance(value, str):
            return value, f"expected a string, got {_toml_type(value)}"
        if key == "group":
            return value, _group(value)
        return value, None
    if key == "enabled":
        if isinstance(value, bool):
            return value, None
        return value, f"expected a boolean, got {_toml_type(value)}"
    if key in ("vms", "hosts", "tags"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return value, f'expected an array of strings, e.g. ["web*"], got {_toml_type(value)}'
        return tuple(value), None
    if key in ("for", "clear_for"):
        seconds = (
            None
            if isinstance(value, bool) or not isinstance(value, int | float | str)
            else parse_duration(value)
        )
        return (seconds, None) if seconds is not None else (value, _DURATION_HINT)
    # threshold, clear: a number; for a rate metric also "10M", "10 MiB/s"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), None
    if rate and isinstance(value, str) and (bps := parse_rate(value)) is not None:
        return bps, None
    if rate:
        return value, 'expected bytes/s: a number or a rate such as "10M" or "10 MiB/s"'
    return value, f"expected a number, got {_toml_type(value)}"


def _alerts_to_document(alerts: AlertsConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not alerts.defaults:
        out["defaults"] = False
    if alerts.hook:
        out["hook"] = alerts.hook if isinstance(alerts.hook, str) else list(alerts.hook)
    if alerts.hook_timeout != AlertsConfig().hook_timeout:
        out["hook_timeout"] = alerts.hook_timeout
    if alerts.rules:
        out["rules"] = [_rule_to_table(r) for r in alerts.rules]
    return out


def _rule_to_table(rule: Rule) -> dict[str, Any]:
    """A rule as people write it: durations as "60s", whole numbers without ".0", rates in MiB/s."""
    out: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(Rule)}
    for key, name in _RULE_FIELDS.items():
        value = getattr(rule, name)
        f = fields[name]
        if name not in ("name", "metric") and (value is None or value == f.default):
            continue
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Severity):
            value = value.value
        elif key in ("for", "clear_for"):
            text = f"{value:g}"  # "60s", but a plain number where :g would write an exponent ("1e+06")
            value = f"{text}s" if "e" not in text and float(text) == value else value
        elif key in ("threshold", "clear") and rule.spec.unit == "B/s" and value and value % 2**20 == 0:
            text = f"{value / 2**20:g}"
            value = f"{text} MiB/s" if "e" not in text and float(text) * 2**20 == value else value
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------------- loading

_TOML_POSITION = re.compile(
    r"^(?P<msg>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)


def parse_config(text: str, *, file: str = "<string>", path: Path | None = None) -> Config:
    """Parse and validate the text of a config file; `file` is what error messages call it."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POSITION.match(str(exc))
        if m is None:
            raise ConfigError(file, None, "", f"invalid TOML: {exc}") from exc
        if m["line"] is not None:
            line, message = int(m["line"]), f"invalid TOML: {m['msg']} (column {m['col']})"
        else:
            line, message = max(1, len(text.splitlines())), f"invalid TOML: {m['msg']} (at end of file)"
        raise ConfigError(file, line, "", message) from exc
    return _from_document(doc, file, _locate_keys(text), path)


def load_config(
    path: Path | None = None, *, env: Mapping[str, str] = os.environ, must_exist: bool | None = None
) -> Config:
    """Read and validate the config file.

    `path` None means `default_config_path(env)`. A missing file gives an empty Config unless it was asked
    for explicitly (a `path`, or `$VIMTUI_CONFIG`), in which case it is a ConfigError; `must_exist`
    overrides that choice.
    """
    if path is None:
        explicit = bool(env.get("VIMTUI_CONFIG"))
        path = default_config_path(env)
    else:
        explicit = True
    if must_exist is None:
        must_exist = explicit
    file = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        if must_exist:
            raise ConfigError(file, None, "", "no such file") from exc
        return Config()
    except OSError as exc:
        raise ConfigError(file, None, "", f"cannot read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(file, line, "", "not valid UTF-8") from exc
    return parse_config(text, file=file, path=path)


# ----------------------------------------------------------------------------------------------- saving


def _non_default(obj: Defaults | HostConfig | HistoryConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None or (f.default is not dataclasses.MISSING and value == f.default):
            continue
        out[f.name] = value
    if isinstance(obj, HostConfig) and not obj.address:
        out["uri"] = obj.uri  # a host without an address must say which URI it opens
    return out


def _to_document(config: Config) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if defaults := _non_default(config.defaults):
        doc["defaults"] = defaults
    if config.hosts:
        doc["hosts"] = [_non_default(host) for host in config.hosts]
    if config.keys:
        doc["keys"] = dict(config.keys)
    if alerts := _alerts_to_document(config.alerts):
        doc["alerts"] = alerts
    if history := _non_default(config.history):
        doc["history"] = history
    return doc


def _dumps(doc: Mapping[str, Any]) -> str:
    # tomli_w would write short arrays of tables inline (hosts = [{ ... }]); people edit this file, so
    # write one [[hosts]] table per host. Every section is flat, so tomli_w writes it as key = value lines.
    sections = []
    if "defaults" in doc:
        sections.append("[defaults]\n" + tomli_w.dumps(doc["defaults"]))
    sections.extend("[[hosts]]\n" + tomli_w.dumps(host) for host in doc.get("hosts", ()))
    if "keys" in doc:
        sections.append("[keys]\n" + tomli_w.dumps(doc["keys"]))
    if "alerts" in doc:
        alerts = dict(doc["alerts"])
        rules = alerts.pop("rules", ())
        if alerts:
            sections.append("[alerts]\n" + tomli_w.dumps(alerts))
        sections.extend("[[alerts.rules]]\n" + tomli_w.dumps(rule) for rule in rules)
    if "history" in doc:
        sections.append("[history]\n" + tomli_w.dumps(doc["history"]))
    return "\n".join(sections)


def save_config(config: Config, path: Path) -> None:
    """Write `config` to `path` atomically, omitting values equal to their defaults.

    Written to a temp file in the same directory, fsynced, then renamed over the target, so a crash or an
    error leaves either the old file or the new one, never a mix and never a stray temp file. A new file
    is 0600; an existing one keeps its mode. A symlinked config is written through to its target. A
    config that would not load back is refused with a ConfigError before anything is written.
    """
    target = Path(os.path.realpath(path))
    doc = _to_document(config)
    _from_document(doc, str(path), {}, None)  # refuse to write what load_config would reject
    data = _dumps(doc).encode("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o600
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable. Some filesystems refuse to fsync a directory; the data is written.
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
