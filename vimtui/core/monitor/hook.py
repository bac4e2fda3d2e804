"""The alert hook: a command run for each alert that fires or resolves, with the alert as JSON on stdin, off
the event loop, bounded, killed at its timeout; its failures are reported, never raised into the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from vimtui.core.monitor.alerts import Alert
from vimtui.core.text import CONTROL_CHARS

log = logging.getLogger(__name__)

Problem = Callable[[Alert, str], None]
REAP_WITHIN = 5.0
"""Seconds to wait for a killed hook to be gone before its slot is freed anyway."""


class HookRunner:
    """Runs a command for each alert transition with `Alert.to_json()` on its stdin.

    `command` as a list is run as is (no shell); as a string it goes through /bin/sh (`sh -c`), so pipes
    and redirections work there, and the alert is also in the environment: VIMTUI_ALERT_STATE,
    _SEVERITY, _RULE, _HOST, _VM, _MESSAGE (quote them: they hold VM names). One process per alert, in
    its own session (so a timeout kills all it started), at most `max_running` at once; up to
    `max_queued` more wait their turn, beyond that an alert's hook is dropped and reported. A hook still
    running after `timeout` seconds is killed and reported; a non-zero exit is reported with the end of
    its stderr. Problems go to `on_problem(alert, text)` (else the log); nothing here raises into the
    caller, and nothing blocks the event loop. `submit` needs the running loop (call it from the loop).
    """

    def __init__(
        self,
        command: Sequence[str] | str,
        *,
        timeout: float = 10.0,
        on_problem: Problem | None = None,
        max_running: int = 4,
        max_queued: int = 64,
    ) -> None:
        if isinstance(command, str):
            if not command.strip():
                raise ValueError("empty hook command")
            self.command: str | tuple[str, ...] = command
        else:
            if not command or not all(isinstance(a, str) for a in command) or not command[0]:
                raise ValueError("a hook command is a non-empty list of strings")
            self.command = tuple(command)
        self.timeout = timeout
        self.on_problem = on_problem
        self.max_running = max(1, max_running)
        self.max_queued = max(0, max_queued)
        self._queue: deque[Alert] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._procs: set[asyncio.subprocess.Process] = set()
        self._closed = False
        self.runs = 0
        """Hooks started so far."""

    @property
    def busy(self) -> int:
        """Hooks running or waiting."""
        return len(self._running) + len(self._queue)

    def submit(self, alert: Alert) -> bool:
        """Run the hook for this alert (now, or when one of the running ones ends); False if dropped."""
        try:
            if self._closed:
                self._report(alert, "alert hook not run: vimtui is shutting down")
                return False
            if len(self._running) < self.max_running:
                self._start(alert)
            elif len(self._queue) < self.max_queued:
                self._queue.append(alert)
            else:
                self._report(alert, f"alert hook not run: {len(self._queue)} alerts already waiting for it")
                return False
            return True
        except Exception as exc:  # e.g. no running loop: report, never raise into the app
            self._report(alert, f"alert hook not run: {exc}")
            return False

    def submit_all(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            self.submit(alert)

    async def drain(self) -> None:
        """Wait until nothing is running or waiting (tests; a clean exit)."""
        while self._running or self._queue:
            await asyncio.wait(set(self._running))

    async def close(self) -> None:
        """Drop what waits, kill what runs (their session, with what they started), wait for them."""
        self._closed = True
        self._queue.clear()
        for proc in list(self._procs):
            _kill(proc)  # one still starting its process is killed as soon as it has one (_exec)
        if self._running:
            await asyncio.wait(set(self._running))

    def _start(self, alert: Alert) -> None:
        task = asyncio.get_running_loop().create_task(self._run(alert), name=f"alert-hook-{alert.id}")
        self.runs += 1
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        while self._queue and not self._closed and len(self._running) < self.max_running:
            self._start(self._queue.popleft())

    async def _run(self, alert: Alert) -> None:
        try:
            await self._exec(alert)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # anything unforeseen: reported, the runner carries on
            self._report(alert, f"alert hook failed: {exc!r}")

    async def _exec(self, alert: Alert) -> None:
        data = alert.to_json().encode()
        env = {
            **os.environ,
            "VIMTUI_ALERT_STATE": alert.state,
            "VIMTUI_ALERT_SEVERITY": str(alert.severity),
            "VIMTUI_ALERT_RULE": alert.rule,
            "VIMTUI_ALERT_HOST": alert.host,
            "VIMTUI_ALERT_VM": alert.vm,
            "VIMTUI_ALERT_MESSAGE": alert.message,
        }
        pipes: dict[str, Any] = {
            "stdin": asyncio.subprocess.PIPE,
            "stdout": asyncio.subprocess.DEVNULL,
            "stderr": asyncio.subprocess.PIPE,
            "env": env,
            "start_new_session": True,
        }
        try:
            if isinstance(self.command, str):
                proc = await asyncio.create_subprocess_shell(self.command, **pipes)
            else:
                proc = await asyncio.create_subprocess_exec(*self.command, **pipes)
        except OSError as exc:
            self._report(alert, f"alert hook cannot start: {exc.strerror or exc}")
            return
        self._procs.add(proc)
        if self._closed:
            _kill(proc)
        try:
            try:
                _, err = await asyncio.wait_for(proc.communicate(data), self.timeout)
            except TimeoutError:
                exited = proc.returncode
                _kill(proc)
                await _reap(proc)
                if exited is None or self._closed:
                    problem = f"alert hook still running after {self.timeout:g} s: killed"
                else:  # e.g. a daemon it started (in a session of its own) holds the pipe
                    problem = (
                        f"alert hook exited {exited}, but its stderr stayed open past {self.timeout:g} s"
                    )
                self._report(alert, problem)
                return
        except asyncio.CancelledError:
            _kill(proc)
            with contextlib.suppress(asyncio.CancelledError):
                await _reap(proc)
            raise
        finally:
            self._procs.discard(proc)
        if self._closed:
            return  # killed by close(): not a problem of the hook
        if proc.returncode:
            status = (
                f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exited {proc.returncode}"
            )
            tail = _tail(err)
            self._report(alert, f"alert hook {status}" + (f": {tail}" if tail else ""))

    def _report(self, alert: Alert, problem: str) -> None:
        if self.on_problem is None:
            log.warning("%s (alert %s on %s)", problem, alert.rule, alert.subject)
            return
        try:
            self.on_problem(alert, problem)
        except Exception:
            log.exception("alert hook problem handler failed")


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Wait for a killed hook, a little: asyncio's wait also waits for its pipes to close, which a
    process it started in another session could hold open for ever."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), REAP_WITHIN)


def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the hook's whole session (a shell's children too)."""
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


def _tail(err: bytes | None, limit: int = 400) -> str:
    """The last lines of a stderr, printable and short."""
    if not err:
        return ""
    text = err[-4 * limit :].decode("utf-8", "replace")
    lines = [CONTROL_CHARS.sub("?", line).strip() for line in text.splitlines()]
    out = " | ".join(line for line in lines[-5:] if line)
    return out[-limit:]
