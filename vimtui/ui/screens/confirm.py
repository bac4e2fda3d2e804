"""A yes/no question as a modal screen. The default is No; `y` answers yes, `n`/esc no. The question is
shown as text (it may name a VM)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from vimtui.ui.format import literal


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 70; max-width: 95%; height: auto; padding: 1 2;
        background: $panel; border: thick $primary; }
    ConfirmScreen.-danger > Vertical { border: thick $error; }
    ConfirmScreen #question { margin-bottom: 1; }
    ConfirmScreen Horizontal { height: auto; align-horizontal: right; }
    ConfirmScreen Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, yes: str = "Yes", *, danger: bool = False) -> None:
        super().__init__(classes="-danger" if danger else "")
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(literal(self.question, keep="\n"), id="question")
            with Horizontal():
                yield Button("No", id="no", variant="default")
                yield Button(self.yes, id="yes", variant="error" if self.has_class("-danger") else "primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
