"""The package's shape: layering, entry points, version."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import vimtui

ROOT = Path(vimtui.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_never_imports_textual() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.split(".")[0] == "textual")
        for p in (ROOT / "core").rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_the_layer_check_catches_a_textual_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from textual.app import App\nimport os\n")
    assert "textual.app" in imported_modules(bad)


def test_core_imports_without_textual_loaded() -> None:
    code = (
        "import sys, importlib, pkgutil, vimtui.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'vimtui.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(any(k == 'textual' or k.startswith('textual.') for k in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_version_from_console_script_and_module() -> None:
    exe = Path(sys.executable).parent / "vimtui"
    for argv in ([str(exe), "--version"], [sys.executable, "-m", "vimtui", "--version"]):
        out = subprocess.run(argv, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == f"vimtui {vimtui.__version__}"


def test_import_savings_keep_what_vimtui_uses() -> None:
    """plotext without its documentation still draws; the quick find_library answers as the real one does
    (asked in a fresh interpreter that never imported vimtui) for the names it answers and for others."""
    import ctypes.util
    import json

    import vimtui  # noqa: F401  (primes the savings)
    from vimtui.ui.widgets.metric_graph import plotext_terminal

    names = ["c", "m", "oqs", "liboqs", "no-such-library-here"]
    code = f"import ctypes.util, json; print(json.dumps([ctypes.util.find_library(n) for n in {names!r}]))"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True)
    real = json.loads(out.stdout)
    assert getattr(ctypes.util.find_library, "vimtui_quick", False)  # the saving is in place
    assert [ctypes.util.find_library(n) for n in names] == real
    assert real[0] is not None  # a name that exists is found
    assert plotext_terminal() is not None  # plotext imports and makes a figure (tests/ui/test_graphs draws)
    assert sys.modules["plotext._doc.doc"].docs is None  # without building its documentation
