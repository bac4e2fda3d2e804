"""Undoing a creation that failed or was cancelled: each step made is undone by name or UUID, in reverse,
over a fresh connection if the old one broke, so a VM that could not be created leaves nothing behind."""

from __future__ import annotations

import threading
import time
import uuid as uuid_module
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import libvirt

from vimtui.core.actions.base import ActionError
from vimtui.core.fleet.tasks import TaskContext

UNDEFINE_ALL = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
)


RECONNECT_WAIT = 60.0
"""Seconds a rollback waits for its host's connection to come back when it broke mid-creation."""

Undo = Callable[[Any], object]
"""Undoes one step, given a libvirt connection to the host (by name or UUID, never by a stale object)."""


def undo_volume(pool: str, name: str) -> Undo:
    """Deletes volume `name` of `pool` if it is there."""

    def undo(conn: Any) -> None:
        try:
            vol = conn.storagePoolLookupByName(pool).storageVolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return
            raise
        vol.delete(0)

    return undo


def undo_domain(uuid: str) -> Undo:
    """Stops and undefines the domain with this UUID if it is there."""

    def undo(conn: Any) -> None:
        try:
            dom = conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return
            raise
        with suppress(libvirt.libvirtError):
            if dom.isActive():
                dom.destroy()
        dom.undefineFlags(UNDEFINE_ALL)

    return undo


def _alive(conn: Any) -> bool:
    if conn is None:
        return False
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


class Rollback:
    """What to undo if creation fails, run in reverse order. When the host's connection broke (which may be
    why creation failed), it waits for the session to reconnect and undoes the rest over the new one; what
    could still not be undone is reported."""

    def __init__(self, ctx: TaskContext, reconnect_wait: float = RECONNECT_WAIT, host: str = "") -> None:
        self._ctx = ctx
        self._host = host or ctx.host
        """The host whose steps these are (a cold migration's destination is not the task's host)."""
        self._reconnect_wait = reconnect_wait
        self._steps: list[tuple[str, Undo]] = []

    def add(self, what: str, undo: Undo) -> None:
        self._steps.append((what, undo))

    def run(self) -> list[str]:
        steps, self._steps = list(reversed(self._steps)), []
        conn = self._ctx.conn if self._host == self._ctx.host else self._connection()
        left = self._attempt(conn, steps)
        if left and not _alive(conn):
            fresh = self._reconnected(conn)
            if fresh is not None:
                left = self._attempt(fresh, left)
        return [what for what, _undo in left]

    def _connection(self) -> Any:
        try:
            return self._ctx.peer(self._host)
        except Exception:  # NotConnected: _reconnected waits for it
            return None

    @staticmethod
    def _attempt(conn: Any, steps: list[tuple[str, Undo]]) -> list[tuple[str, Undo]]:
        left = []
        for what, undo in steps:
            try:
                undo(conn)
            except Exception:
                left.append((what, undo))
        return left

    def _reconnected(self, old: Any) -> Any:
        """The host's connection once the session has a new, working one; None at the deadline. (Not
        ctx.wait: a cancelled task rolls back too.)"""
        deadline = time.monotonic() + self._reconnect_wait
        pause = threading.Event()
        while time.monotonic() < deadline:
            try:
                conn = self._ctx.peer(self._host)
            except Exception:  # NotConnected while the session reconnects
                conn = None
            if conn is not None and conn is not old and _alive(conn):
                return conn
            pause.wait(0.5)
        return None


def undone(exc: BaseException, rollback: Rollback) -> None:
    left = rollback.run()
    if left:
        raise ActionError(f"{exc}; and it could not remove: {', '.join(left)}") from exc


def with_fresh_uuid(xml: str) -> tuple[str, str]:
    """The XML with a fresh UUID of our own: the rollback can name the VM before libvirt answers."""
    root = ET.fromstring(xml)
    for el in root.findall("uuid"):
        root.remove(el)
    new = str(uuid_module.uuid4())
    name_el = root.find("name")
    index = list(root).index(name_el) + 1 if name_el is not None else 0
    uuid_el = ET.Element("uuid")
    uuid_el.text = new
    root.insert(index, uuid_el)
    return ET.tostring(root, encoding="unicode"), new


# -- create from a template ------------------------------------------------------------------------------


def no_abort(_conn: Any, _uuid: str) -> None:
    """Creation stops at its next step once cancelled (the copy under way finishes), removing what it made."""
