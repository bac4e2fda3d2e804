"""libvirt's event loop on asyncio (libvirtaio), made safe for calls from the hosts' lane threads.

libvirt registers file handles and timers from whichever thread calls its API: with us, the lane threads
that open connections and turn keepalive on. Stock libvirtaio then touches the asyncio loop from that thread
(`add_reader`, `ensure_future`), which asyncio does not allow. Here the id is allocated at once in the
calling thread (libvirt needs it back synchronously) and every change to the loop is handed to the loop
in call order, a batch per `call_soon_threadsafe`; nothing blocks the caller and nothing waits on the
loop, so a lane thread holding a libvirt lock can never deadlock against a callback on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

import libvirt
import libvirtaio


class ThreadSafeEventImpl(libvirtaio.virEventAsyncIOImpl):  # type: ignore[misc]
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(loop=loop)
        self._lock = threading.Lock()
        self._ops: list[list[Any]] = []
        """Changes waiting for the loop, in call order: [function, watch or timer id, argument]."""
        self._last_update: dict[int, list[Any]] = {}
        """The queued update of each id, while no add or remove of it follows: updates fold into it."""

    def _queue(self, fn: Callable[..., Any], iden: int, arg: Any, update: bool = False) -> None:
        """Hand a change to the loop. Every libvirt call toggles its connection's handle and keepalive
        timer off and on again (10 updates per RPC): consecutive updates of one id fold into the last
        one, and the loop is woken once per batch, not once per update."""
        with self._lock:
            if update and (queued := self._last_update.get(iden)) is not None:
                queued[2] = arg
                return
            op = [fn, iden, arg]
            self._ops.append(op)
            if update:
                self._last_update[iden] = op
            else:
                self._last_update.pop(iden, None)
            if len(self._ops) > 1:
                return  # the flush already asked for takes this one too
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to update
            self.loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._lock:
            ops, self._ops = self._ops, []
            self._last_update.clear()
        for fn, iden, arg in ops:
            with contextlib.suppress(KeyError):  # a handle removed before a queued update reached it
                fn(iden, arg)

    def _add_handle(self, fd: int, event: int, cb: Any, opaque: Any) -> int:
        callback = libvirtaio.FDCallback(self, cb, opaque, descriptor=None, event=event)
        self._queue(self._register_handle, callback.iden, (callback, fd))
        return int(callback.iden)

    def _register_handle(self, _iden: int, arg: tuple[Any, int]) -> None:
        callback, fd = arg
        callback.descriptor = self.descriptors[fd]
        self.callbacks[callback.iden] = callback
        callback.descriptor.add_handle(callback)
        self._pending_inc()

    def _update_handle(self, watch: int, event: int) -> None:
        self._queue(self._apply_handle, watch, event, update=True)

    def _apply_handle(self, watch: int, event: int) -> None:
        if self.callbacks[watch].event != event:  # off and on again in one batch: nothing to change
            super()._update_handle(watch, event)

    def _remove_handle(self, watch: int) -> int:
        self._queue(lambda w, _: super(ThreadSafeEventImpl, self)._remove_handle(w), watch, None)
        return 0

    def _add_timeout(self, timeout: int, cb: Any, opaque: Any) -> int:
        callback = libvirtaio.TimeoutCallback(self, cb, opaque)
        self._queue(self._register_timeout, callback.iden, (callback, timeout))
        return int(callback.iden)

    def _register_timeout(self, _iden: int, arg: tuple[Any, int]) -> None:
        callback, timeout = arg
        self.callbacks[callback.iden] = callback
        callback.update(timeout=timeout)
        self._pending_inc()

    def _update_timeout(self, timer: int, timeout: int) -> None:
        self._queue(self._apply_timeout, timer, timeout, update=True)

    def _apply_timeout(self, timer: int, timeout: int) -> None:
        if self.callbacks[timer].timeout != timeout:
            super()._update_timeout(timer, timeout)

    def _remove_timeout(self, timer: int) -> int:
        self._queue(lambda t, _: super(ThreadSafeEventImpl, self)._remove_timeout(t), timer, None)
        return 0


_impl: ThreadSafeEventImpl | None = None


def ensure_event_impl(loop: asyncio.AbstractEventLoop | None = None) -> ThreadSafeEventImpl:
    """Register the event implementation (before opening connections).

    libvirt takes one implementation per process, for good. When the loop it was bound to is no longer
    running (a second `asyncio.run` in the same process), it is moved to the new loop: the old loop's
    handles died with their connections, or can no longer be served anyway."""
    global _impl
    loop = loop or asyncio.get_running_loop()
    if _impl is None:
        _impl = ThreadSafeEventImpl(loop=loop).register()
        libvirtaio._current_impl = _impl
    elif _impl.loop is not loop:
        if _impl.loop.is_running():  # another thread's loop: its connections still need it
            raise RuntimeError("libvirt events are bound to another event loop that is running")
        _impl.loop = loop
        _impl.callbacks.clear()
        _impl.descriptors.clear()
        _impl._pending = 0
        _impl._finished = None
        with _impl._lock:
            _impl._ops.clear()
            _impl._last_update.clear()
    return _impl


def silence_libvirt_errors() -> None:
    """libvirt raises its errors as exceptions; by default it also prints each to stderr. Stop that."""
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
