"""A small form as a modal screen: the arguments of an action (a snapshot's name, a destination host, which
disks to remove). Returns the values by field name, or None when cancelled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"
    """text, number, bool or choice."""
    default: Any = None
    choices: Sequence[tuple[str, Any]] = field(default_factory=tuple)
    """(label, value) for a choice."""
    required: bool = False


class PromptScreen(ModalScreen[dict[str, Any] | None]):
    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > VerticalScroll { width: 76; max-width: 95%; height: auto; max-height: 90%; padding: 1 2;
        background: $panel; border: thick $primary; }
    PromptScreen.-danger > VerticalScroll { border: thick $error; }
    PromptScreen #title { text-style: bold; margin-bottom: 1; }
    PromptScreen #detail { margin-bottom: 1; color: $text-muted; }
    PromptScreen Label { margin-top: 1; }
    PromptScreen #error { color: $error; height: auto; }
    PromptScreen Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    PromptScreen Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt.cancel")]

    def __init__(
        self, title: str, fields: Sequence[Field], *, ok: str = "OK", detail: str = "", danger: bool = False
    ) -> None:
        super().__init__(classes="-danger" if danger else "")
        self.title_text = title
        self.fields = list(fields)
        self.ok = ok
        self.detail = detail

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self.title_text, id="title")
            if self.detail:
                yield Static(self.detail, id="detail")
            for f in self.fields:
                if f.kind == "bool":
                    yield Checkbox(f.label, bool(f.default), id=f"f-{f.name}")
                    continue
                yield Label(f.label)
                if f.kind == "choice":
                    yield Select(
                        list(f.choices),
                        value=f.default if f.default is not None else Select.BLANK,
                        id=f"f-{f.name}",
                    )
                else:
                    value = "" if f.default is None else str(f.default)
                    yield Input(value, id=f"f-{f.name}", type="number" if f.kind == "number" else "text")
            yield Static("", id="error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button(self.ok, id="ok", variant="error" if self.has_class("-danger") else "primary")

    def on_mount(self) -> None:
        first = next(iter(self.query("Input, Select, Checkbox")), None)
        (first or self.query_one("#ok", Button)).focus()

    def values(self) -> dict[str, Any] | str:
        out: dict[str, Any] = {}
        for f in self.fields:
            widget = self.query_one(f"#f-{f.name}")
            if isinstance(widget, Checkbox):
                out[f.name] = widget.value
            elif isinstance(widget, Select):
                if widget.value is Select.BLANK:
                    if f.required:
                        return f"{f.label}: choose one"
                    out[f.name] = None
                else:
                    out[f.name] = widget.value
            elif isinstance(widget, Input):
                text = widget.value.strip()
                if not text and f.required:
                    return f"{f.label}: required"
                if f.kind == "number":
                    try:
                        number = float(text) if text else f.default
                        out[f.name] = (
                            int(number) if isinstance(f.default, int) and number is not None else number
                        )
                    except ValueError:
                        return f"{f.label}: not a number"
                else:
                    out[f.name] = text
        return out

    def _submit(self) -> None:
        values = self.values()
        if isinstance(values, str):
            self.query_one("#error", Static).update(values)
            return
        self.dismiss(values)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self) -> None:
        self._submit()

    def action_cancel(self) -> None:
        self.dismiss(None)
