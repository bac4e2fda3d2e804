"""KeyBar: the key hints along the bottom of a screen, as one widget drawing one line.

Textual's Footer is a container with a widget per binding, recomposed whenever the screen's bindings change
(every change of selection greys some out): with our ~25 keys that was a third of the start-up's main-thread
time in styling alone. KeyBar renders the same hints (the screen's active bindings with show=True, greyed
when check_action says they do not apply) as one Text, and redraws only when that text changes. A click on
a hint presses its key, as with the Footer.

The view's actions come first (as k9s shows them): those of the selection's actions that apply, in the
registry's order; then the screen's own keys, then the app's. When the line is too narrow whole hints are
left out, least needed first: the palette's reminder, then the screen's keys from the right, then the
actions from the right; the app's keys (quit, help, command) stay.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget

Hint = tuple[str, str, str, bool]
"""(key, key as shown, description, enabled)"""

ACTION, SCREEN, APP = 2, 1, 3
"""How much a hint is needed: what stays when the line is too narrow."""


class KeyBar(Widget, can_focus=False):
    """One line of `key description` hints, docked at the bottom."""

    COMPONENT_CLASSES = {"key-bar--key", "key-bar--description", "key-bar--disabled"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
    }
    KeyBar > .key-bar--key {
        color: $footer-key-foreground;
        background: $footer-key-background;
        text-style: bold;
    }
    KeyBar > .key-bar--description { color: $footer-description-foreground; }
    KeyBar > .key-bar--disabled { color: $text-disabled; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._hints: tuple[Hint, ...] = ()
        """per hint, in order"""
        self._needs: tuple[int, ...] = ()
        """how much each hint is needed (ACTION, SCREEN, APP)"""
        self._palette: Hint | None = None
        """the command palette's hint, drawn at the right end as the Footer does"""
        self._spans: list[tuple[int, int, str]] = []
        """(start, end, key) of each hint as last drawn: what a click presses"""

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if not self.is_attached or screen is not self.screen:
            return
        groups: dict[int, list[Hint]] = {ACTION: [], SCREEN: [], APP: []}
        seen: set[str] = set()
        active = screen.active_bindings
        for node, binding, enabled, _tooltip in active.values():
            if not binding.show or binding.action in seen:  # one hint per action, as the Footer does
                continue
            is_action = binding.group is not None and binding.group.description == "actions"
            if is_action and not enabled:
                continue  # the actions shown are those that apply to the selection
            seen.add(binding.action)
            need = ACTION if is_action else APP if node is self.app else SCREEN
            groups[need].append(
                (binding.key, self.app.get_key_display(binding), binding.description, enabled)
            )
        hints = groups[ACTION] + groups[SCREEN] + groups[APP]
        needs = tuple(
            [ACTION] * len(groups[ACTION]) + [SCREEN] * len(groups[SCREEN]) + [APP] * len(groups[APP])
        )
        palette: Hint | None = None
        if self.app.ENABLE_COMMAND_PALETTE and self.app.COMMAND_PALETTE_BINDING in active:
            _node, binding, enabled, _tooltip = active[self.app.COMMAND_PALETTE_BINDING]
            palette = (binding.key, self.app.get_key_display(binding), binding.description, enabled)
        if tuple(hints) != self._hints or palette != self._palette:
            self._hints, self._needs, self._palette = tuple(hints), needs, palette
            self.refresh()

    def _fitting(self, width: int) -> list[Hint]:
        """The hints that fit in `width`, leaving out whole ones, least needed and rightmost first."""
        kept = list(range(len(self._hints)))
        total = sum(_width(h) for h in self._hints)
        for need in (SCREEN, ACTION):
            for i in reversed(range(len(self._hints))):
                if total <= width:
                    break
                if self._needs[i] == need:
                    kept.remove(i)
                    total -= _width(self._hints[i])
        return [self._hints[i] for i in kept]

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-bar--key", partial=True)
        desc_style = self.get_component_rich_style("key-bar--description", partial=True)
        off_style = self.get_component_rich_style("key-bar--disabled", partial=True)
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        spans: list[tuple[int, int, str]] = []

        def add(hint: Hint) -> None:
            key, shown, description, enabled = hint
            start = len(text)
            text.append(f" {shown} ", key_style if enabled else off_style)
            if description:
                text.append(f"{description} ", desc_style if enabled else off_style)
            spans.append((start, len(text), key))

        for hint in self._fitting(self.size.width):
            add(hint)
        if self._palette is not None:
            right = len(self._palette[1]) + len(self._palette[2]) + 3
            room = self.size.width - len(text) - right
            if room > 0:  # else the keys take the line: they matter more than the palette's reminder
                text.append(" " * room)
                add(self._palette)
        self._spans = spans
        return text

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                event.stop()
                self.app.simulate_key(key)
                return

    @property
    def hints(self) -> tuple[Hint, ...]:
        """What the bar shows: (key, key as shown, description, enabled)."""
        return self._hints


def _width(hint: Hint) -> int:
    _key, shown, description, _enabled = hint
    return len(shown) + 2 + (len(description) + 1 if description else 0)
