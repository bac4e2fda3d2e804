"""Argument types shared by the commands: numbers that are finite and within bounds, durations parsed one
way (core/units.py). Each is an argparse `type=`: a bad value is a usage error naming the option, exit 2."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

from vimtui.core.units import parse_duration

T = TypeVar("T")


def parsed_by(parse: Callable[[str], T], name: str) -> Callable[[str], T]:
    """An argparse `type=` from a parser that raises ValueError with the message to show."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name  # argparse names the type in its error when the message is empty
    return convert


def number(
    low: float | None = None,
    high: float | None = None,
    *,
    above: float | None = None,
    whole: bool = False,
) -> Callable[[str], float]:
    """A finite number with `low <= x <= high` (`above`: strictly greater); `whole`: an integer (then the
    type returns an int). NaN and infinities are refused whatever the bounds."""

    def parse(text: str) -> float:
        try:
            value = int(text, 10) if whole else float(text)
        except ValueError:
            kind = "a whole number" if whole else "a number"
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number: {text!r}")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"must be more than {above:g}: {text!r}")
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:g}: {text!r}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:g}: {text!r}")
        return value

    return parse


def whole(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """A whole number within [low, high]."""
    check = number(low, high, whole=True)
    return lambda text: int(check(text))


def seconds(*, above: float | None = 0.0, high: float = 7 * 86400.0) -> Callable[[str], float]:
    """A length of time: seconds ("90", "2.5") or a duration ("90s", "5m", "1h30m"), finite, more than
    `above` (0 by default: a timeout or an interval of 0 waits forever or spins) and at most `high`."""

    def parse(text: str) -> float:
        try:
            value: float | None = float(text)
        except ValueError:
            value = parse_duration(text)  # "90s", "5m", "1h30m"
        if value is not None and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number of seconds: {text!r}")
        if value is None:
            raise argparse.ArgumentTypeError(f"not a duration (90, 90s, 5m, 1h30m): {text!r}")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"must be more than {above:g} seconds: {text!r}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:g} seconds: {text!r}")
        return value

    return parse
