"""The config: its model (model.py), reading and writing it (loading.py), locating an error's line
(locate.py), the XDG paths (paths.py); what the rest of vimtui imports, from one place."""

from __future__ import annotations

from vimtui.core.config.loading import load_config, parse_config, save_config
from vimtui.core.config.model import (
    AlertsConfig,
    Config,
    ConfigError,
    Defaults,
    GroupConfig,
    HistoryConfig,
    HostConfig,
)
from vimtui.core.config.paths import data_dir, default_config_path, runtime_dir

__all__ = [
    "AlertsConfig",
    "Config",
    "ConfigError",
    "Defaults",
    "GroupConfig",
    "HistoryConfig",
    "HostConfig",
    "data_dir",
    "default_config_path",
    "load_config",
    "parse_config",
    "runtime_dir",
    "save_config",
]
