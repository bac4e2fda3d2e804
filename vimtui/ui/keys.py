"""Key bindings: every binding has a stable id, and the config's [keys] table remaps them by id.

[keys]
"vm_table.cursor_down" = "down,j,n"
"app.quit" = "ctrl+q"
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from textual.binding import Binding, BindingType

from vimtui.core.config.settings import Config, ConfigError

if TYPE_CHECKING:
    from textual.app import App


def _binding_owners(app: type) -> list[type]:
    """The classes whose BINDINGS [keys] may remap: the app's (given: keys is imported by the app) and
    those of the screens and widgets it shows."""
    from vimtui.ui.screens.main import MainScreen
    from vimtui.ui.widgets.graphs import GraphPanel
    from vimtui.ui.widgets.host_tree import HostTree
    from vimtui.ui.widgets.task_log import TaskLog
    from vimtui.ui.widgets.vm_table import VmTable

    return [app, MainScreen, VmTable, HostTree, TaskLog, GraphPanel]


def known_bindings(app: type) -> dict[str, Binding]:
    """Every binding id the screen of `app` (a class) knows, with its binding (for `?` help and for
    checking [keys])."""
    out: dict[str, Binding] = {}
    for owner in _binding_owners(app):
        for b in getattr(owner, "BINDINGS", []):
            binding = _as_binding(b)
            if binding is not None and binding.id:
                out[binding.id] = binding
    return out


def _as_binding(b: BindingType) -> Binding | None:
    return b if isinstance(b, Binding) else None


def apply_keymap(app: App[None], config: Config) -> None:
    """Remap bindings from [keys]; an id nobody declares is a config error naming file, line and key."""
    if not config.keys:
        return
    known = known_bindings(type(app))
    file = str(config.path) if config.path else "<config>"
    lines = config.key_lines or (None,) * len(config.keys)
    for (binding_id, _keys), line in zip(config.keys, lines, strict=True):
        if binding_id not in known:
            close = difflib.get_close_matches(binding_id, list(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "see `?` in the app for the ids"
            raise ConfigError(file, line, f"keys.{binding_id}", f"unknown binding id ({hint})")
    app.set_keymap(dict(config.keys))
