"""Key bindings: every binding has a stable id, and the config's [keys] table remaps them by id.

[keys]
"vm_table.cursor_down" = "down,j,n"
"vm.snapshot" = "ctrl+s"
"app.quit" = "ctrl+q"

The ids are the action registry's (`vm.start`: one id for the action on every screen where a VM is
selected) and those of every screen's and widget's BINDINGS, found by walking the ui package, so a new
screen's keys are remappable without being listed anywhere.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from functools import cache
from typing import TYPE_CHECKING

from textual.binding import Binding, BindingType
from textual.dom import DOMNode

from vimtui.core.config.settings import Config, ConfigError

if TYPE_CHECKING:
    from textual.app import App

OLD_SCREENS = ("main", "vm_detail")
"""Screens whose action bindings had ids of their own (`main.start`): read as the action's (`vm.start`)."""


@cache
def binding_owners() -> tuple[type[DOMNode], ...]:
    """Every class of the ui package that declares BINDINGS of its own (app, screens, widgets)."""
    import vimtui.ui as ui

    for mod in pkgutil.walk_packages(ui.__path__, "vimtui.ui."):
        importlib.import_module(mod.name)
    out: list[type[DOMNode]] = []
    todo: list[type[DOMNode]] = [DOMNode]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("vimtui.ui") and "BINDINGS" in cls.__dict__ and cls not in out:
            out.append(cls)
    return tuple(sorted(out, key=lambda c: (c.__module__, c.__qualname__)))


def known_bindings(app: type) -> dict[str, Binding]:
    """Every binding id the app (a class: keys is imported by the app) knows, with its binding: the
    actions' (from the registry) and every screen's and widget's (for `?` help and checking [keys])."""
    from vimtui.ui.host_actions import host_action_bindings
    from vimtui.ui.vm_actions import action_bindings
    from vimtui.ui.widgets.storage_panel import storage_bindings

    out: dict[str, Binding] = {}
    app_bindings = [_as_binding(b) for b in getattr(app, "BINDINGS", [])]
    others = [_as_binding(b) for owner in binding_owners() if owner is not app for b in owner.BINDINGS]
    for binding in (*app_bindings, *action_bindings(), *host_action_bindings(), *storage_bindings(), *others):
        if binding is not None and binding.id:
            out.setdefault(binding.id, binding)
    return out


def _as_binding(b: BindingType) -> Binding | None:
    return b if isinstance(b, Binding) else None


def current_id(binding_id: str, known: dict[str, Binding]) -> str:
    """The id a [keys] entry means: itself, or for the old per-screen action ids (`main.start`,
    `vm_detail.start`) the action's own (`vm.start`)."""
    screen, _, rest = binding_id.partition(".")
    if binding_id not in known and screen in OLD_SCREENS and f"vm.{rest}" in known:
        return f"vm.{rest}"
    return binding_id


def apply_keymap(app: App[None], config: Config) -> None:
    """Remap bindings from [keys]; an id nobody declares is a config error naming file, line and key."""
    if not config.keys:
        return
    known = known_bindings(type(app))
    file = str(config.path) if config.path else "<config>"
    lines = config.key_lines or (None,) * len(config.keys)
    keymap: dict[str, str] = {}
    for (binding_id, keys), line in zip(config.keys, lines, strict=True):
        new_id = current_id(binding_id, known)
        if new_id not in known:
            close = difflib.get_close_matches(binding_id, list(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "see `?` in the app for the ids"
            raise ConfigError(file, line, f"keys.{binding_id}", f"unknown binding id ({hint})")
        keymap[new_id] = keys
    app.set_keymap(keymap)
