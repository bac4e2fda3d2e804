"""Checking a parsed config document and building the `Config`: every problem located by file, line and
dotted key, the first in file order reported. Sections' shapes and bounds are msgspec's (config/model.py);
what their strings may be, and how fields relate, is checked here."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, TypeVar

import msgspec
import msgspec.inspect

from vimtui.core.config.locate import KeyPath, format_key, line_for
from vimtui.core.config.model import (
    ConfigError,
    Defaults,
    GroupConfig,
    HistoryConfig,
    HostConfig,
    LintConfig,
    TenantConfig,
)
from vimtui.core.profiles import PROFILES
from vimtui.core.text import CONTROL_CHARS

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


def toml_type(value: object) -> str:
    for typ, name in _TOML_TYPE_NAMES:
        if isinstance(value, typ):
            return name
    return type(value).__name__


def positive(value: Any) -> str | None:
    return None if math.isfinite(value) and value > 0 else "must be a finite number > 0"


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


def profile_problem(value: Any) -> str | None:
    return None if value in PROFILES else f"must be one of {', '.join(map(repr, PROFILES))}"


def group_problem(value: Any) -> str | None:
    if not value:
        return None
    if CONTROL_CHARS.search(value):
        return "must not contain control characters"
    if any(not part.strip() for part in value.split("/")):
        return 'must be slash-separated non-empty names, e.g. "dc1/rack3" (no leading, trailing or double /)'
    return None


_CHECKS: dict[type, dict[str, Callable[[Any], str | None]]] = {
    Defaults: {"theme": _non_empty},
    HostConfig: {
        "name": _name,
        "address": lambda v: None if v == v.strip() else "must not start or end with whitespace",
        "user": _non_empty,
        "identity": _non_empty,
        "known_hosts": _non_empty,
        "uri": _uri,
        "group": group_problem,
        "migration_address": _migration_address,
        "profile": profile_problem,
    },
    GroupConfig: {"profile": profile_problem},
}
"""What msgspec cannot say of a string field: checked once its type is right."""


_Section = TypeVar("_Section", Defaults, HostConfig, HistoryConfig, GroupConfig, LintConfig, TenantConfig)


class Checker:
    """Collects every problem with its location, so the first one in file order can be reported."""

    def __init__(self, file: str, lines: Mapping[KeyPath, int]) -> None:
        self.file = file
        self.lines = lines
        self.errors: list[ConfigError] = []

    def error(self, path: KeyPath, message: str) -> None:
        self.errors.append(ConfigError(self.file, line_for(self.lines, path), format_key(path), message))

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
        self.error(path, f"expected {expected}, got {toml_type(value)}")
        return False, value

    def build(self, cls: type[_Section], table: Mapping[str, Any], base: KeyPath) -> _Section | None:
        """A section from its table. msgspec checks its shape and bounds and stops at the first problem:
        each one found is said in our words, its key set aside (or, missing, given a stand-in) and the
        rest checked again, so that every problem is known and the first in file order is the one
        reported; then the string checks msgspec cannot make."""
        rest = dict(table)
        ok = True
        for _ in range(len(table) + len(cls.__struct_fields__) + 1):
            try:
                built = msgspec.convert(rest, cls)
                break
            except msgspec.ValidationError as exc:
                ok = False
                if not self._explain(cls, rest, base, str(exc)):
                    return None
        else:  # pragma: no cover - each round sets one key aside
            return None
        for key, check in _CHECKS.get(cls, {}).items():
            value = table.get(key)
            if key in rest and isinstance(value, str) and (problem := check(value)):
                self.error((*base, key), problem)
                ok = False
        return built if ok else None

    def _explain(self, cls: type[_Section], rest: dict[str, Any], base: KeyPath, message: str) -> bool:
        """Record msgspec's `message` about `rest` as our error; False when it names no key to set aside."""
        m = _MSGSPEC_ERROR.match(message)
        if m is None:  # pragma: no cover - a message this code does not know
            self.error(base, message)
            return False
        key = m["unknown"] or m["missing"] or m["at"]
        if key is None:
            self.error(base, message)
            return False
        path = (*base, key)
        info = _FIELD_TYPES[cls].get(key)
        if m["unknown"]:
            self.unknown(path, list(cls.__struct_fields__))
            del rest[key]
        elif m["missing"]:
            self.error(path, "missing required key")
            rest[key] = _STAND_IN.get(type(info.type) if info else str, "")
        elif m["op"] and info is not None:
            self.error(path, _bound_message(info, m["op"]))
            del rest[key]
        else:
            annotation = type(info.type) if info is not None else str
            expected = _EXPECTED.get(annotation, "a string")
            self.error(path, f"expected {expected}, got {toml_type(rest[key])}")
            del rest[key]
        return True


_MSGSPEC_ERROR = re.compile(
    r"(?:Object contains unknown field `(?P<unknown>[^`]+)`"
    r"|Object missing required field `(?P<missing>[^`]+)`"
    r"|Expected `[^`]+`(?: (?P<op>[<>]=?) \S+)?(?:, got `[^`]+`)?)"
    r"(?: - at `\$\.(?P<at>[^`\[]+)`)?$"
)
_EXPECTED: dict[type, str] = {
    msgspec.inspect.FloatType: "a number",
    msgspec.inspect.IntType: "an integer",
    msgspec.inspect.BoolType: "a boolean",
    msgspec.inspect.StrType: "a string",
}
_STAND_IN: dict[type, Any] = {msgspec.inspect.StrType: "", msgspec.inspect.IntType: 1}


@dataclass(frozen=True)
class _FieldType:
    type: Any
    extra: Mapping[str, Any]


def _field_types(cls: type) -> dict[str, _FieldType]:
    """Each field's msgspec type (with its bounds) and the `extra` of its Meta."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    out = {}
    for f in info.fields:
        t: Any = f.type
        extra: Mapping[str, Any] = {}
        if isinstance(t, msgspec.inspect.Metadata):
            extra = t.extra or {}
            t = t.type
        if isinstance(t, msgspec.inspect.UnionType):  # str | None
            t = next(x for x in t.types if not isinstance(x, msgspec.inspect.NoneType))
        if isinstance(t, msgspec.inspect.Metadata):  # Annotated[int, Meta(...)] | None
            extra = t.extra or {}
            t = t.type
        out[f.name] = _FieldType(t, extra)
    return out


_FIELD_TYPES = {
    cls: _field_types(cls)
    for cls in (Defaults, HistoryConfig, HostConfig, GroupConfig, LintConfig, TenantConfig)
}


def _n(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _bound_message(info: _FieldType, op: str) -> str:
    """A breached bound in the words the config has always used ("must be a finite number > 0")."""
    t = info.type
    low = t.gt if t.gt is not None else t.ge
    high = t.le if t.le is not None else t.lt
    if info.extra.get("message") == "between":
        return f"must be between {_n(low)} and {_n(high)}"
    if op.startswith(">"):
        if isinstance(t, msgspec.inspect.FloatType) and t.gt is not None:
            return f"must be a finite number > {_n(t.gt)}"
        return f"must be >= {_n(low)}"
    return f"must be <= {_n(high)}"


def _field_names(cls: type[_Section]) -> list[str]:
    return list(cls.__struct_fields__)


def check_history(check: Checker, h: HistoryConfig) -> None:
    """What the steps and retentions must be to each other (each is checked on its own before)."""
    if h.coarse_step % h.fine_step:
        check.error(("history", "coarse_step"), f"must be a multiple of fine_step ({h.fine_step})")
    elif h.fine_keep < h.fine_step:
        check.error(("history", "fine_keep"), f"must be at least fine_step ({h.fine_step})")
    elif h.coarse_keep < max(h.fine_keep, h.coarse_step):
        check.error(("history", "coarse_keep"), "must be at least fine_keep and coarse_step")
