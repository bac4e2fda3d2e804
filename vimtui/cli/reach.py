"""Waiting for the hosts of a headless command: a host that does not answer in time is named, and the
command exits 3 (instead of a traceback from the wait)."""

from __future__ import annotations

from vimtui.core.config.settings import Config
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.model import FleetState


class Unreachable(Exception):
    """Hosts that did not answer within the command's window: exit status 3."""

    def __init__(self, hosts: list[str], within: float) -> None:
        super().__init__(f"{', '.join(hosts)}: no answer within {within:g} s")
        self.hosts = hosts
        self.within = within


def connect_window(config: Config) -> float:
    """Seconds a command waits for its hosts to connect (or fail with a reason)."""
    d = config.defaults
    return d.connect_timeout + d.call_timeout + 5


async def connected(fleet: Fleet, config: Config, within: float | None = None) -> FleetState:
    """Wait until every host has connected or failed; Unreachable names those still connecting after
    `within` seconds (default: `connect_window`)."""
    window = connect_window(config) if within is None else within
    try:
        return await fleet.connected(within=window)
    except TimeoutError:
        late = [h.name for h in fleet.state.hosts if h.status == "connecting"]
        raise Unreachable(late or [h.name for h in fleet.state.hosts], window) from None
