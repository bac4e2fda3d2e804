"""When the screen hands the terminal to something else: the serial console and $EDITOR.

The app is suspended (Textual gives the terminal back) while the blocking part runs in a thread, so the
event loop keeps polling every host and running tasks underneath; the screen comes back when it ends.
Whatever the terminal still holds unread when the hand-over ends was typed for the editor or the guest (a
key in the editor's last moment, into an editor that reads none): it is discarded before Textual reads the
terminal again, or a stray `p` would pause the selected guest.
"""

from __future__ import annotations

import asyncio
import sys
import termios
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from vimtui.core.actions import operations
from vimtui.core.model import VmState

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp

T = TypeVar("T")


def discard_typeahead() -> None:
    """Drop what was typed on the terminal and not yet read. Textual stops its input thread and flushes
    on suspend, but on resume its new input thread reads whatever the editor or console left: those keys
    were never meant for the screen."""
    stdin = sys.__stdin__
    if stdin is None:
        return
    try:
        termios.tcflush(stdin.fileno(), termios.TCIFLUSH)
    except (OSError, ValueError, termios.error):
        pass  # not a terminal (piped, closed): nothing typed to drop


async def handed_over(app: VimApp, fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` on a thread while the app steps aside for the terminal; the screen comes back whatever
    happens. Textual's suspend() resumes only when its block ends without an exception: a console that
    would not open left a blank terminal that no key brought back. `fn`'s exception is raised once the
    screen is back. Keys left unread when `fn` ends are dropped before the screen reads again."""
    failed: list[Exception] = []
    result: T | None = None
    with app.suspend():
        try:
            result = await asyncio.to_thread(fn, *args)
        except Exception as exc:
            failed.append(exc)
        finally:
            discard_typeahead()
    if failed:
        raise failed[0]
    return result  # type: ignore[return-value]


async def console(app: VimApp, vm: VmState) -> None:
    from vimtui.core.actions import console as core_console

    refusal = core_console.console_refusal(vm, host=app.fleet.state.host(vm.host))
    if refusal:
        app.notify(refusal, severity="warning")
        return
    try:
        message = await handed_over(app, core_console.attach_vm, app.fleet, vm)
    except Exception as exc:  # SuspendNotSupported, no connection, a console that would not open
        app.notify(f"console of {vm.name}: {exc}", severity="error")
        return
    app.notify(f"console of {vm.name}: {message or 'detached'}", timeout=3)


async def edit_xml(app: VimApp, vm: VmState) -> None:
    from vimtui.core.actions import xmledit
    from vimtui.core.fleet.fleet import QueryFailed

    try:
        # the persistent definition, as `virsh edit` shows it (not the running guest's XML)
        before = await app.fleet.ask(vm.host, xmledit.definition_of, vm.uuid)
    except QueryFailed as exc:
        app.notify(f"{vm.name}: {exc}", severity="error")
        return
    try:
        after = await handed_over(app, xmledit.edit_text, before)
    except Exception as exc:
        app.notify(f"editor: {exc}", severity="error")
        return
    if after is None or after == before:
        app.notify(f"{vm.name}: XML unchanged", timeout=3)
        return
    operations.submit(app.fleet, operations.plan(app.fleet.state, "edit", [vm], {"xml": after}))
