"""Files only their owner may read: the data dir (audit log, history) is 0700, the files in it 0600.

What vimtui keeps says which VMs exist, what operators did to them and how busy each one was: nothing for
the other users of the machine to read. New directories and files are made private, and ones an older
vimtui (or a loose umask) left readable are tightened when they are opened.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Make `path` (and its missing parents) and make it 0700; OSError when it cannot be made."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid == os.geteuid() and st.st_mode & 0o777 != DIR_MODE:
        os.chmod(path, DIR_MODE)


def private_files(*paths: Path) -> None:
    """Make those of `paths` that exist (and are ours) 0600; quiet about the rest."""
    for p in paths:
        with contextlib.suppress(OSError):
            st = p.stat()
            if st.st_uid == os.geteuid() and st.st_mode & 0o777 != FILE_MODE:
                os.chmod(p, FILE_MODE)


def create_private(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists (so that SQLite, which gives its -wal and -shm files
    the database's mode, makes those private too)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))
