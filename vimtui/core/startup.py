"""Build the core from config and --connect: one factory shared by the CLI, the TUI and the tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from vimtui.core.config import Config, Defaults, load_config, runtime_dir
from vimtui.core.fleet import Fleet
from vimtui.core.host import SessionSettings
from vimtui.core.inventory import HostSpec, build_inventory


def settings_from(defaults: Defaults) -> SessionSettings:
    return SessionSettings(
        interval=defaults.interval,
        call_timeout=defaults.call_timeout,
        connect_timeout=defaults.connect_timeout,
        keepalive_interval=defaults.keepalive_interval,
        keepalive_count_max=defaults.keepalive_count_max,
    )


def load_inventory(
    config_path: str | None, connect: Sequence[str], env: Mapping[str, str] = os.environ
) -> tuple[Config, tuple[HostSpec, ...]]:
    """Config and hosts; raises ConfigError (config) or InventoryError (a bad --connect)."""
    config = load_config(Path(config_path) if config_path else None, env=env)
    return config, build_inventory(config, connect)


def make_fleet(
    config: Config,
    specs: Sequence[HostSpec],
    env: Mapping[str, str] = os.environ,
    clock: Callable[[], float] = time.time,
) -> Fleet:
    return Fleet(specs, settings_from(config.defaults), runtime_dir(env), clock=clock)
