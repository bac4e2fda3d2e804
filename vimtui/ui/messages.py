"""Messages that carry the core's data up to the screens."""

from __future__ import annotations

from textual.message import Message

from vimtui.core.model import FleetState


class FleetUpdated(Message, bubble=False):
    """A new fleet snapshot. A newer one replaces an older one still waiting in a queue (coalesced), so a
    slow screen skips frames instead of falling behind. It does not bubble: the app hands it to each
    screen, and bubbling back up would hand it out again, forever."""

    def __init__(self, state: FleetState) -> None:
        super().__init__()
        self.state = state

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, FleetUpdated)
