"""Reading and writing the config file: TOML in (tomllib), TOML out atomically (tomli-w).

Typed and strict: an unknown key, a wrong type or an out-of-range value is a `ConfigError` that names the
file, the line and the dotted key, so a typo is reported instead of silently ignored. Only the first error
in file order is reported, which keeps messages stable from one run to the next.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import tomli_w

from vimtui.core.config import profiles_table
from vimtui.core.config.alerts_table import alerts_from_table, alerts_to_document
from vimtui.core.config.checks import Checker, check_history, toml_type
from vimtui.core.config.lint_table import lint_from_table, lint_to_document
from vimtui.core.config.locate import KeyPath, line_for, locate_keys
from vimtui.core.config.model import (
    AlertsConfig,
    Config,
    ConfigError,
    Defaults,
    GroupConfig,
    HistoryConfig,
    HostConfig,
    LintConfig,
    TenantConfig,
)
from vimtui.core.config.paths import default_config_path
from vimtui.core.profiles import Profile


def from_document(
    doc: Mapping[str, Any], file: str, lines: Mapping[KeyPath, int], path: Path | None
) -> Config:
    check = Checker(file, lines)
    defaults: Defaults | None = Defaults()
    hosts: list[HostConfig] = []
    keys: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    alerts: AlertsConfig | None = AlertsConfig()
    history: HistoryConfig | None = HistoryConfig()
    profile: Profile | None = None
    groups: dict[str, GroupConfig] = {}
    lint: LintConfig | None = LintConfig()
    tenant: str | None = None
    tenants: list[tuple[str, TenantConfig]] = []
    for key, value in doc.items():
        if key == "defaults":
            if isinstance(value, dict):
                defaults = check.build(Defaults, value, ("defaults",))
            else:
                check.error(("defaults",), f"expected a table, got {toml_type(value)}")
        elif key == "hosts":
            if not isinstance(value, list):
                check.error(("hosts",), f"expected an array of tables ([[hosts]]), got {toml_type(value)}")
                continue
            for index, entry in enumerate(value):
                base: KeyPath = ("hosts", index)
                if not isinstance(entry, dict):
                    check.error(base, f"expected a table, got {toml_type(entry)}")
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
                    profiles_table.check_host(check, host, index)
                    hosts.append(host)
        elif key == "keys":
            if not isinstance(value, dict):
                check.error(("keys",), f"expected a table, got {toml_type(value)}")
                continue
            for binding, keyspec in value.items():
                if not isinstance(keyspec, str) or not keyspec.strip():
                    check.error(("keys", binding), 'expected keys as a string, e.g. "down,j"')
                else:
                    keys.append((binding, keyspec))
        elif key == "alerts":
            alerts = alerts_from_table(check, value)
        elif key == "history":
            if isinstance(value, dict):
                history = check.build(HistoryConfig, value, ("history",))
                if history is not None:
                    check_history(check, history)
            else:
                check.error(("history",), f"expected a table, got {toml_type(value)}")
        elif key == "profile":
            profile = profiles_table.top_profile(check, value)
        elif key == "groups":
            host_tables = doc.get("hosts")
            entries = [h for h in host_tables if isinstance(h, dict)] if isinstance(host_tables, list) else []
            groups = profiles_table.groups_from(check, value, entries)
        elif key == "lint":
            lint = lint_from_table(check, value)
        elif key == "tenant":
            tenant = _tenant_name(check, value, ("tenant",))
        elif key == "tenants":
            tenants = _tenants(check, value)
        else:
            check.unknown(
                (key,),
                [
                    "defaults",
                    "hosts",
                    "keys",
                    "alerts",
                    "history",
                    "lint",
                    *profiles_table.KEYS,
                    "tenant",
                    "tenants",
                ],
            )
    if (error := check.first()) is not None:
        raise error
    assert defaults is not None and alerts is not None and history is not None  # no error: all built
    assert lint is not None
    key_lines = tuple(line_for(lines, ("keys", binding)) for binding, _ in keys)
    return Config(
        defaults=defaults,
        hosts=tuple(hosts),
        path=path,
        keys=tuple(keys),
        key_lines=key_lines,
        alerts=alerts,
        history=history,
        profile=profile,
        groups=groups,
        lint=lint,
        tenant=tenant,
        tenants=tuple(tenants),
    )


def valid_tenant(name: str) -> str | None:
    """Why `name` cannot be a tenant's name (None: it can): what the metadata, the filter and the
    exporter's labels carry."""
    if not name.strip() or name != name.strip():
        return "a tenant name: not empty, no spaces around it"
    if any(not c.isprintable() or c in ",/" for c in name):
        return "a tenant name has no control characters, commas or slashes"
    return None


def _tenant_name(check: Checker, value: Any, where: KeyPath) -> str | None:
    if not isinstance(value, str):
        check.error(where, f"expected a tenant's name (a string), got {toml_type(value)}")
        return None
    if (why := valid_tenant(value)) is not None:
        check.error(where, why)
        return None
    return value


def _tenants(check: Checker, value: Any) -> list[tuple[str, TenantConfig]]:
    if not isinstance(value, dict):
        check.error(("tenants",), f"expected a table of tenants ([tenants.NAME]), got {toml_type(value)}")
        return []
    out = []
    for name, table in value.items():
        if _tenant_name(check, name, ("tenants", name)) is None:
            continue
        if not isinstance(table, dict):
            check.error(("tenants", name), f"expected a table, got {toml_type(table)}")
            continue
        built = check.build(TenantConfig, table, ("tenants", name))
        if built is not None:
            out.append((name, built))
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
    return from_document(doc, file, locate_keys(text), path)


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


def _non_default(obj: Defaults | HostConfig | HistoryConfig | TenantConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in msgspec.structs.fields(obj):
        value = getattr(obj, f.name)
        if value is None or (f.default is not msgspec.NODEFAULT and value == f.default):
            continue
        out[f.name] = value
    if isinstance(obj, HostConfig) and not obj.address:
        out["uri"] = obj.uri  # a host without an address must say which URI it opens
    return out


def _to_document(config: Config) -> dict[str, Any]:
    doc: dict[str, Any] = profiles_table.to_document(config.profile, config.groups)
    if defaults := _non_default(config.defaults):
        doc["defaults"] = defaults
    if config.hosts:
        doc["hosts"] = [_non_default(host) for host in config.hosts]
    if config.keys:
        doc["keys"] = dict(config.keys)
    if alerts := alerts_to_document(config.alerts):
        doc["alerts"] = alerts
    if history := _non_default(config.history):
        doc["history"] = history
    if lint := lint_to_document(config.lint):
        doc["lint"] = lint
    if config.tenant is not None:
        doc["tenant"] = config.tenant
    if config.tenants:
        doc["tenants"] = {name: _non_default(t) for name, t in config.tenants}
    return doc


def _dumps(doc: Mapping[str, Any]) -> str:
    # tomli_w would write short arrays of tables inline (hosts = [{ ... }]); people edit this file, so
    # write one [[hosts]] table per host. Every section is flat, so tomli_w writes it as key = value lines.
    sections = []
    if "profile" in doc:  # a top-level key comes before every table
        sections.append(tomli_w.dumps({"profile": doc["profile"]}))
    if "tenant" in doc:
        sections.append(tomli_w.dumps({"tenant": doc["tenant"]}))
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
    groups = doc.get("groups", {})
    sections.extend(f"[groups.{_key(path)}]\n" + tomli_w.dumps(g) for path, g in groups.items())
    if "lint" in doc:
        lint = dict(doc["lint"])
        severity = lint.pop("severity", None)
        if lint:
            sections.append("[lint]\n" + tomli_w.dumps(lint))
        if severity:
            sections.append("[lint.severity]\n" + tomli_w.dumps(severity))
    for name, table in doc.get("tenants", {}).items():
        sections.append(tomli_w.dumps({"tenants": {name: table}}).strip() + "\n")
    return "\n".join(sections)


def _key(text: str) -> str:
    """A TOML key: bare when it can be, else quoted as tomli_w quotes a string."""
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else tomli_w.dumps({"k": text})[4:].strip()


def save_config(config: Config, path: Path) -> None:
    """Write `config` to `path` atomically, omitting values equal to their defaults.

    Written to a temp file in the same directory, fsynced, then renamed over the target, so a crash or an
    error leaves either the old file or the new one, never a mix and never a stray temp file. A new file
    is 0600; an existing one keeps its mode. A symlinked config is written through to its target. A
    config that would not load back is refused with a ConfigError before anything is written.
    """
    target = Path(os.path.realpath(path))
    doc = _to_document(config)
    from_document(doc, str(path), {}, None)  # refuse to write what load_config would reject
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
