"""Import-time savings for libraries that do work at import that vimtui never uses (start-up counts: the
first full paint is measured by bench/startup.py). `prime()` runs first thing in `vimtui/__init__.py`.

- plotext builds its documentation object when imported (`plotext.doc`, most of its import time); vimtui
  never reads it, so a placeholder module stands in for `plotext._doc.doc`.
- asyncssh looks for liboqs with `ctypes.util.find_library`, which runs `ldconfig -p` (and gcc where
  installed) for each of two names; a look at the usual library directories answers the same question.
  Only those two names are answered that way, and a liboqs that is found still goes through the real
  look-up, so post-quantum key exchange stays available where it was.
"""

from __future__ import annotations

import ctypes.util
import glob
import sys
import types

_LIB_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")
_QUICK = frozenset({"oqs", "liboqs"})


def _no_docs() -> None:
    doc = types.ModuleType("plotext._doc.doc")
    doc.docs = None  # type: ignore[attr-defined]
    sys.modules.setdefault("plotext._doc.doc", doc)


def _quick_find_library() -> None:
    real = ctypes.util.find_library
    if getattr(real, "vimtui_quick", False):
        return

    def find_library(name: str) -> str | None:
        if name in _QUICK:
            stem = name.removeprefix("lib")
            dirs = [*_LIB_DIRS, *glob.glob("/lib/*-linux-gnu"), *glob.glob("/usr/lib/*-linux-gnu")]
            if not any(glob.glob(f"{d}/lib{stem}.so*") for d in dirs):
                return None
        return real(name)

    find_library.vimtui_quick = True  # type: ignore[attr-defined]
    ctypes.util.find_library = find_library


def prime() -> None:
    _no_docs()
    _quick_find_library()
