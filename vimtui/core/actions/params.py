"""An action's parameters as typed data, and the one function that turns what an operator gave (text from a
`:` line, a form or a CLI option, or values already typed) into checked arguments.

Every face (form, `:` command, CLI verb) builds itself from these declarations and checks values with
`check_args`, so a bad value is refused with the same message wherever it was typed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vimtui.core.model import FleetState

Kind = Literal["text", "int", "float", "size", "bool", "choice", "path", "list"]
"""text, path: a string; int, float: numbers; size: MiB as an int, written 2048, 512M, 2G or 1T;
bool: yes/no; choice: one of the choices; list: several strings (each one of the choices when strict)."""

Choice = tuple[str, str]
"""(label shown, value given to the action)."""

FromState = Callable[[Any, FleetState], Sequence[Choice]]
"""Choices computed from the fleet state for one target (destination hosts, a VM's disks)."""

FromHost = Callable[[Any, str], Sequence[Choice]]
"""Choices asked of the target's host on its lane: fn(conn, uuid) (a VM's snapshots)."""

Suggest = Callable[[Any, FleetState, float], Any]
"""The value a form proposes (and a key uses when the parameter is not asked): fn(target, state, now)."""

TRUE = ("yes", "y", "true", "on", "1")
FALSE = ("no", "n", "false", "off", "0")
SIZE_UNITS = {"": 1, "m": 1, "mib": 1, "g": 1024, "gib": 1024, "t": 1024**2, "tib": 1024**2}


class BadArgument(ValueError):
    """A value refused by its parameter's declaration; the message names the parameter."""


@dataclass(frozen=True)
class Param:
    name: str
    """Keyword of the action function; `name=value` on the `:` line; --name-with-dashes in the CLI."""
    kind: Kind = "text"
    help: str = ""
    default: Any = None
    """The value when none is given (None: the function's own default; a bool's is False)."""
    required: bool = False
    low: float | None = None
    high: float | None = None
    """Bounds of a number (inclusive)."""
    choices: Sequence[Choice] = ()
    """Fixed choices."""
    from_state: FromState | None = None
    from_host: FromHost | None = None
    strict: bool = True
    """Values outside the choices are refused (False: the choices are suggestions, the host judges)."""
    suggest: Suggest | None = None
    asked: bool = True
    """Shown in the form (False: the key acts at once with the default or the suggestion)."""
    label: str = ""
    flag: str = ""
    """The CLI option when not --name-with-dashes (migrate's `dest` is --to)."""
    metavar: str = ""
    positional: bool = False
    """Also taken in order after the VM's name on the CLI (`vm resize-disk NAME vda +10G`); one VM only,
    or, for an action on several VMs, as the last word after their names (`vm tenant NAME... TENANT`)."""

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    @property
    def option(self) -> str:
        return "--" + (self.flag or self.name.replace("_", "-"))

    @property
    def computed(self) -> bool:
        return self.from_state is not None or self.from_host is not None

    def describe(self) -> str:
        """The help text with the bounds, choices and default spelt out (CLI --help, `?`, the form)."""
        parts = [self.help] if self.help else []
        if self.low is not None or self.high is not None:
            low = _num(self.low) if self.low is not None else ""
            high = _num(self.high) if self.high is not None else ""
            parts.append(f"{low}..{high}")
        if self.choices:
            parts.append("one of " + ", ".join(v for _, v in self.choices))
        if self.default not in (None, "", (), False) and self.kind != "bool":
            parts.append(f"default {self.default}")
        return "; ".join(parts)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def convert(p: Param, value: Any, choices: Sequence[Choice] | None = None) -> Any:
    """One value of `p`, typed and checked: text is parsed, numbers are bounded, choices are checked.
    Raises BadArgument with the message every face shows."""
    if p.kind == "list":
        items = (
            value if isinstance(value, list | tuple) else [x for x in re.split(r"[,\s]+", str(value)) if x]
        )
        out = tuple(str(x) for x in items)
        for item in out:
            _in_choices(p, item, choices)
        return out
    if p.kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise BadArgument(f"{p.name}: yes or no, not {value!r}")
    if p.kind in ("int", "float", "size"):
        number = _number(p, value)
        if p.low is not None and number < p.low or p.high is not None and number > p.high:
            low = _num(p.low) if p.low is not None else "-inf"
            high = _num(p.high) if p.high is not None else "inf"
            raise BadArgument(f"{p.name}: between {low} and {high}, not {_num(number)}")
        return number
    text = value if isinstance(value, str) else str(value)
    if p.kind == "choice":
        _in_choices(p, text, choices)
    return text


def _number(p: Param, value: Any) -> int | float:
    if isinstance(value, bool):
        raise BadArgument(f"{p.name}: a number, not {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        number: float = value
    else:
        text = str(value).strip().lower().replace("_", "")
        m = re.fullmatch(r"(-?[0-9]+(?:\.[0-9]+)?)\s*([a-z]*)", text) if p.kind == "size" else None
        try:
            if m is not None and m.group(2) in SIZE_UNITS:
                number = float(m.group(1)) * SIZE_UNITS[m.group(2)]
            else:
                number = float(text) if p.kind == "float" else int(text, 10)
        except ValueError:
            what = {"int": "a whole number", "float": "a number", "size": "a size in MiB (512, 2G)"}[p.kind]
            raise BadArgument(f"{p.name}: {what}, not {value!r}") from None
    if not math.isfinite(number):  # nan passes every bound; an infinite timeout waits forever
        raise BadArgument(f"{p.name}: a finite number, not {value!r}")
    if p.kind != "float":
        if not float(number).is_integer():
            raise BadArgument(f"{p.name}: a whole number, not {value!r}")
        return int(number)
    return float(number)


def _in_choices(p: Param, value: str, choices: Sequence[Choice] | None) -> None:
    if not p.strict or (choices is None and not p.choices):
        return  # computed choices not asked for (a dry check): the task checks again
    known = list(p.choices) if choices is None else list(choices)
    if value not in {v for _, v in known}:
        if not known:
            raise BadArgument(f"{p.name}: none to choose from, not {value!r}")
        raise BadArgument(f"{p.name}: one of {', '.join(v for _, v in known)}, not {value!r}")


def check_args(
    params: Sequence[Param],
    given: Mapping[str, Any],
    choices: Mapping[str, Sequence[Choice]] | None = None,
    *,
    partial: bool = False,
) -> dict[str, Any]:
    """The arguments of an action from what was given: unknown names refused, each value converted and
    checked, required ones insisted on, the rest left to their defaults. `choices` holds the computed
    choices per parameter (asked of the fleet state or the host); without them only fixed ones are checked.
    `partial`: only what was given is checked (a form asks for the rest).
    """
    by_name = {p.name: p for p in params}
    unknown = [k for k in given if k not in by_name]
    if unknown:
        known = ", ".join(by_name) or "none"
        raise BadArgument(f"{unknown[0]}: no such parameter (parameters: {known})")
    out: dict[str, Any] = {}
    for p in params:
        value = given.get(p.name)
        if isinstance(value, str) and not value.strip():
            value = None
        if value is None:
            if partial:
                continue
            if p.required:
                raise BadArgument(f"{p.name}: required")
            if p.default is not None or p.kind == "bool":
                out[p.name] = p.default if p.default is not None else False
            continue
        out[p.name] = convert(p, value, (choices or {}).get(p.name))
    return out


def parse_words(params: Sequence[Param], words: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Split a `:` line's words into target names and `name=value` arguments (a bool given bare, as
    `force`, is yes)."""
    by_name = {p.name: p for p in params}
    names: list[str] = []
    given: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        key = key.replace("-", "_")
        if sep:
            given[key] = value
        elif key in by_name and by_name[key].kind == "bool":
            given[key] = "yes"
        else:
            names.append(word)
    return names, given
