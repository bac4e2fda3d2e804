"""Checks on text from outside (config files, hook output) shared across the core."""

from __future__ import annotations

import re

CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""C0 and C1 control characters: never in a name, and masked in what is shown of a program's output."""
