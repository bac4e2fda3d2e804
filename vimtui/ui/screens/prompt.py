"""A small form as a modal screen: the arguments of an action, one field per parameter (a snapshot's name,
a destination host, which disks to remove), or a bare confirmation. Returns the values by field name, or
None when cancelled. Title, detail, labels and choices name VMs, disks and snapshots: all are shown as
text (`literal`), never as markup.

Enter moves to the next field and submits from the last; ctrl+s submits from anywhere; escape cancels.
The values are checked by the `check` given (the action's own, the same as the `:` line's and the CLI's);
what it refuses is shown under the fields, and the focus goes to the field it names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from vimtui.ui.format import literal

Check = Callable[[Mapping[str, Any]], dict[str, Any]]
"""Turns the form's raw values into checked ones; raises ValueError with the message to show."""


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"
    """text, number, bool, choice, or list (a box per choice)."""
    default: Any = None
    choices: Sequence[tuple[str, Any]] = field(default_factory=tuple)
    """(label, value) for a choice or a list."""
    required: bool = False
    help: str = ""


def _wid(name: str, value: object | None = None) -> str:
    if value is None:
        return f"f-{name}"
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(value))
    return f"f-{name}-{safe}"


class PromptScreen(ModalScreen[dict[str, Any] | None]):
    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > VerticalScroll { width: 76; max-width: 95%; height: auto; max-height: 90%; padding: 1 2;
        background: $panel; border: thick $primary; }
    PromptScreen.-danger > VerticalScroll { border: thick $error; }
    PromptScreen #title { text-style: bold; margin-bottom: 1; }
    PromptScreen #detail { margin-bottom: 1; color: $text-muted; }
    PromptScreen Label { margin-top: 1; }
    PromptScreen .help { color: $text-muted; }
    PromptScreen #error { color: $error; height: auto; }
    PromptScreen #keys { color: $text-muted; margin-top: 1; }
    PromptScreen Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    PromptScreen Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="prompt.cancel"),
        Binding("ctrl+s", "submit", "Submit", id="prompt.submit", priority=True),
        Binding("enter", "next_or_submit", "Next field", id="prompt.next", priority=True),
    ]

    def __init__(
        self,
        title: str,
        fields: Sequence[Field],
        *,
        ok: str = "OK",
        detail: str = "",
        danger: bool = False,
        check: Check | None = None,
    ) -> None:
        super().__init__(classes="-danger" if danger else "")
        self.title_text = title
        self.fields = list(fields)
        self.ok = ok
        self.detail = detail
        self.check = check

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(literal(self.title_text), id="title")
            if self.detail:
                yield Static(literal(self.detail, keep="\n"), id="detail")
            for f in self.fields:
                if f.kind == "bool":
                    yield Checkbox(literal(f.label), bool(f.default), id=_wid(f.name))
                elif f.kind == "list":
                    yield Label(literal(f.label))
                    ticked = set(f.default or ())
                    for label, value in f.choices:
                        yield Checkbox(literal(label), value in ticked, id=_wid(f.name, value))
                else:
                    yield Label(literal(f.label + (" *" if f.required else "")))
                    if f.kind == "choice":
                        yield Select(
                            [(literal(label), value) for label, value in f.choices],
                            value=f.default if f.default is not None else Select.NULL,
                            id=_wid(f.name),
                        )
                    else:
                        value = "" if f.default is None else str(f.default)
                        yield Input(value, id=_wid(f.name))
                if f.help and f.kind != "bool":
                    yield Static(literal(f.help), classes="help")
            yield Static("", id="error")
            keys = (
                f"enter next field · ctrl+s {self.ok} · esc cancel"
                if self.fields
                else f"enter {self.ok} · esc cancel"
            )
            yield Static(Text(keys), id="keys")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button(self.ok, id="ok", variant="error" if self.has_class("-danger") else "primary")

    def on_mount(self) -> None:
        first = next(iter(self._inputs()), None)
        (first or self.query_one("#ok", Button)).focus()

    def _inputs(self) -> list[Widget]:
        return list(self.query("Input, Select, Checkbox"))

    def values(self) -> dict[str, Any]:
        """The raw values by field name: text as typed, a box's bool, a choice's value, a list's ticks."""
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.kind == "list":
                out[f.name] = tuple(
                    value
                    for _label, value in f.choices
                    if self.query_one(f"#{_wid(f.name, value)}", Checkbox).value
                )
                continue
            widget = self.query_one(f"#{_wid(f.name)}")
            if isinstance(widget, Checkbox):
                out[f.name] = widget.value
            elif isinstance(widget, Select):
                out[f.name] = None if widget.value is Select.NULL else widget.value
            elif isinstance(widget, Input):
                out[f.name] = widget.value.strip()
        return out

    def _checked(self) -> dict[str, Any] | str:
        raw = self.values()
        if self.check is None:
            missing = next((f for f in self.fields if f.required and raw.get(f.name) in (None, "")), None)
            return f"{missing.name}: required" if missing else raw
        try:
            return self.check(raw)
        except ValueError as exc:
            return str(exc)

    def action_submit(self) -> None:
        values = self._checked()
        if isinstance(values, str):
            self.query_one("#error", Static).update(literal(values))
            name = values.partition(":")[0]
            if any(f.name == name for f in self.fields):
                target = self.query(f"#{_wid(name)}")
                if target:
                    target.first().focus()
            return
        self.dismiss(values)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_or_submit":
            focused = self.focused
            # an open select takes enter to pick; a button presses itself
            if isinstance(focused, Button) or (isinstance(focused, Select) and focused.expanded):
                return False
            if focused is not None and isinstance(focused.parent, Select) and focused.parent.expanded:
                return False
        return True

    def action_next_or_submit(self) -> None:
        inputs = self._inputs()
        if not inputs or self.focused not in inputs or self.focused is inputs[-1]:
            self.action_submit()
            return
        inputs[inputs.index(self.focused) + 1].focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
