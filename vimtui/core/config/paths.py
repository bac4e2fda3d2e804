"""Where vimtui keeps its files: the config (XDG config dir), the data (history, audit), the runtime dir
(sockets), as the XDG base directory spec says."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from vimtui.core.config.model import APP


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME")
    return Path(home) if home else Path.home()


def _xdg_base(env: Mapping[str, str], var: str, fallback: str) -> Path:
    # The XDG spec says a relative path in these variables is invalid and must be ignored.
    value = env.get(var, "")
    if value and os.path.isabs(value):
        return Path(value)
    return _home(env) / fallback


def default_config_path(env: Mapping[str, str] = os.environ) -> Path:
    """`$VIMTUI_CONFIG`, else `$XDG_CONFIG_HOME/vimtui/config.toml`, else `~/.config/vimtui/config.toml`."""
    explicit = env.get("VIMTUI_CONFIG", "")
    if explicit:
        if explicit == "~" or explicit.startswith("~/"):
            return _home(env) / explicit[2:]
        return Path(explicit)
    return _xdg_base(env, "XDG_CONFIG_HOME", ".config") / APP / "config.toml"


def data_dir(env: Mapping[str, str] = os.environ) -> Path:
    """`$XDG_DATA_HOME/vimtui`, else `~/.local/share/vimtui` (not created here)."""
    return _xdg_base(env, "XDG_DATA_HOME", ".local/share") / APP


def runtime_dir(env: Mapping[str, str] = os.environ) -> Path:
    """`$XDG_RUNTIME_DIR/vimtui`, else `/tmp/vimtui-<uid>`; created 0700.

    Sockets live here, so an existing directory must be a real directory (not a symlink), owned by us and
    not accessible to group or others: otherwise RuntimeError, since another user could be waiting there.
    """
    base = env.get("XDG_RUNTIME_DIR", "")
    uid = os.geteuid()
    path = Path(base) / APP if base and os.path.isabs(base) else Path("/tmp") / f"{APP}-{uid}"
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RuntimeError(f"cannot create runtime directory {path}: {exc.strerror or exc}") from exc
    else:
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeError(f"runtime directory {path} is not a directory (or is a symlink)")
    if st.st_uid != uid:
        raise RuntimeError(f"runtime directory {path} is owned by uid {st.st_uid}, not by us (uid {uid})")
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        raise RuntimeError(f"runtime directory {path} is accessible to others (mode {mode:04o}); want 0700")
    return path
