"""A host's serial lane: one thread for its blocking libvirt calls, each awaited with a deadline.

libvirt calls block. Each host gets its own single thread, so a slow or dead host only ever queues work
behind itself: other hosts and the event loop carry on. A call that misses its deadline raises CallTimeout;
the thread may still be stuck in it, so the host's session then drops the connection (which makes the
stuck call return with an error) and starts a fresh lane.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class CallTimeout(TimeoutError):
    """A libvirt call did not return within its deadline."""


class LaneClosed(CallTimeout):
    """The lane was closed (its connection dropped) before the call could run."""


class Lane:
    busy = 0
    """Calls queued or running on all lanes of the process (read on the event loop: a poll's records
    are read holding the interpreter lock while other lanes want it, see domain_refs.py)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"lane-{name}")
        self.pending = 0
        """Calls queued or running."""

    async def call(self, limit: float, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        except RuntimeError as exc:  # shut down
            raise LaneClosed(f"{self.name}: not connected") from exc
        self.pending += 1
        Lane.busy += 1
        try:
            # shield: on timeout the thread keeps running the call; we stop waiting, we do not pretend
            return await asyncio.wait_for(asyncio.shield(future), limit)
        except TimeoutError as exc:
            # the call goes on in its thread; whatever it ends with is of no interest any more
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            name = getattr(fn, "__name__", "call")
            raise CallTimeout(f"{self.name}: {name} took longer than {limit:.1f} s") from exc
        finally:
            self.pending -= 1
            Lane.busy -= 1

    def close(self) -> None:
        """Stop taking work; queued calls are dropped, a running one is left to finish on its own."""
        self._pool.shutdown(wait=False, cancel_futures=True)
