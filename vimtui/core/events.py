"""libvirt's event loop on asyncio (libvirtaio), made safe for calls from the hosts' lane threads.

libvirt registers file handles and timers from whichever thread calls its API: with us, the lane threads
that open connections and turn keepalive on. Stock libvirtaio then touches the asyncio loop from that thread
(`add_reader`, `ensure_future`), which asyncio does not allow. Here the id is allocated at once in the
calling thread (libvirt needs it back synchronously) and every change to the loop is handed to the loop
with `call_soon_threadsafe`, in call order; nothing blocks the caller and nothing waits on the loop, so a
lane thread holding a libvirt lock can never deadlock against a callback on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import libvirt
import libvirtaio


class ThreadSafeEventImpl(libvirtaio.virEventAsyncIOImpl):  # type: ignore[misc]
    def _soon(self, fn: Callable[..., Any], *args: Any) -> None:
        def guarded() -> None:
            with contextlib.suppress(KeyError):  # a handle removed before a queued update reached it
                fn(*args)

        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to update
            self.loop.call_soon_threadsafe(guarded)

    def _add_handle(self, fd: int, event: int, cb: Any, opaque: Any) -> int:
        callback = libvirtaio.FDCallback(self, cb, opaque, descriptor=None, event=event)
        self._soon(self._register_handle, callback, fd)
        return int(callback.iden)

    def _register_handle(self, callback: Any, fd: int) -> None:
        callback.descriptor = self.descriptors[fd]
        self.callbacks[callback.iden] = callback
        callback.descriptor.add_handle(callback)
        self._pending_inc()

    def _update_handle(self, watch: int, event: int) -> None:
        self._soon(super()._update_handle, watch, event)

    def _remove_handle(self, watch: int) -> int:
        self._soon(super()._remove_handle, watch)
        return 0

    def _add_timeout(self, timeout: int, cb: Any, opaque: Any) -> int:
        callback = libvirtaio.TimeoutCallback(self, cb, opaque)
        self._soon(self._register_timeout, callback, timeout)
        return int(callback.iden)

    def _register_timeout(self, callback: Any, timeout: int) -> None:
        self.callbacks[callback.iden] = callback
        callback.update(timeout=timeout)
        self._pending_inc()

    def _update_timeout(self, timer: int, timeout: int) -> None:
        self._soon(super()._update_timeout, timer, timeout)

    def _remove_timeout(self, timer: int) -> int:
        self._soon(super()._remove_timeout, timer)
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
    return _impl


def silence_libvirt_errors() -> None:
    """libvirt raises its errors as exceptions; by default it also prints each to stderr. Stop that."""
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
