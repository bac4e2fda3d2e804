"""Actions on pools, volumes and networks on the screen, made from the action registry like the VM and host
actions: the form built from the action's parameters (and the new one's name for a define or a create),
the confirmation of a destructive one showing what goes (its preview, asked of the host), and the task.

A step the host refuses (a volume in use, a pool holding disks) is not confirmed: its task fails at once
with the reason, which a notification shows, and it is in the task log and the audit like any refusal.
Nothing here calls libvirt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from vimtui.core.actions import Action, operations, targets
from vimtui.core.actions.params import BadArgument, Choice, check_args
from vimtui.core.fleet.fleet import QueryFailed
from vimtui.core.fleet.tasks import Task
from vimtui.ui.screens.prompt import Field, PromptScreen
from vimtui.ui.vm_actions import field_for

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp

NAME_FIELD = "new_name"


def target_why_not(app: VimApp, act: Action, host: str | None, selected: str | None) -> str | None:
    """None when `act` may run here (a create needs the host, or the pool a volume goes in; the others
    the selected target), else the reason (greys its key and palette entry)."""
    if host is None:
        return "no host selected"
    h = app.fleet.state.host(host)
    if h is None:
        return f"no host {host!r} in the inventory"
    if not act.creates or act.target == "volume":
        if not selected:
            return f"no {'pool' if act.creates else act.target} selected"
    return act.host_state_refusal(h, app.fleet.state)


def _new_ref(act: Action, host: str, selected: str, name: str) -> targets.Ref:
    """The target a define or create makes: `POOL` on the host, or `POOL/VOL` in the selected pool."""
    if act.target == "volume":
        return targets.Ref("volume", host, f"{selected.split('/')[0]}/{name}")
    return targets.Ref(act.target, host, name)


async def _choices(app: VimApp, act: Action, host: str, where: str) -> dict[str, list[Choice]]:
    out: dict[str, list[Choice]] = {}
    for p in act.params:
        if p.from_host is not None:
            try:
                out[p.name] = list(await app.fleet.ask(host, p.from_host, where))
            except QueryFailed:
                out[p.name] = []
    return out


async def run_target_action(
    app: VimApp,
    act: Action,
    host: str,
    selected: str,
    row: Any = None,
    given: Mapping[str, Any] | None = None,
    done: Callable[[Task], None] | None = None,
) -> list[Task]:
    """`act` on the target `selected` of `host` (for a create: in it), its form first (preset from the
    suggestions for `row`, the listed pool or volume), then its confirmation when destructive; `done` is
    called when the task has ended (the list reloads)."""
    why = target_why_not(app, act, host, selected)
    if why is not None:
        app.notify(f"{act.title}: {why}", severity="warning", timeout=5, markup=False)
        return []
    asked = await _ask(app, act, host, selected, row, dict(given or {}))
    if asked is None:
        return []
    ref, args = asked
    steps = operations.plan_targets(app.fleet.state, act, [ref], args)
    if act.destructive and steps[0].refusal is None:
        lines = await operations.preview(app.fleet, steps)
        cannot = any(line.strip().startswith(operations.CANNOT) for line in lines)
        if not cannot:  # (refused by the host: no question, the task says why)
            answer = await app.push_screen_wait(
                PromptScreen(
                    f"{act.title}: {ref.where}", [], ok=act.title, detail="\n".join(lines), danger=True
                )
            )
            if answer is None:
                return []
    tasks = operations.submit(app.fleet, steps)
    for t in tasks:
        await t.done.wait()
        if t.ok:
            app.notify(f"{act.title} {ref.where}: {t.result}", timeout=5, markup=False)
        else:
            app.notify(f"{act.title} {ref.where}: {t.error}", severity="error", timeout=12, markup=False)
        if done is not None:
            done(t)
    return tasks


async def _ask(
    app: VimApp, act: Action, host: str, selected: str, row: Any, given: dict[str, Any]
) -> tuple[targets.Ref, dict[str, Any]] | None:
    state, now = app.fleet.state, app.clock()
    preset = {
        p.name: given.get(p.name, p.suggest(row, state, now) if p.suggest is not None else p.default)
        for p in act.params
    }
    asked = [p for p in act.params if p.asked]
    fixed = {k: v for k, v in preset.items() if k not in {p.name for p in asked}}
    name = str(given.get(NAME_FIELD, ""))

    def check(raw: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(raw)
        new = str(values.pop(NAME_FIELD, name) or "").strip()
        if act.creates and not new:
            raise BadArgument(f"{NAME_FIELD}: the new {act.target}'s name is required")
        args = check_args(act.params, {**fixed, **values})
        ref = _new_ref(act, host, selected, new) if act.creates else targets.Ref(act.target, host, selected)
        why = targets.refusal(act, ref, args, app.fleet.state)
        if why is not None:
            raise BadArgument(why)
        return {**args, NAME_FIELD: new}

    def split(values: dict[str, Any]) -> tuple[targets.Ref, dict[str, Any]]:
        new = values.pop(NAME_FIELD, "")
        ref = _new_ref(act, host, selected, new) if act.creates else targets.Ref(act.target, host, selected)
        return ref, values

    if (not asked and not act.creates) or (given and (name or not act.creates)):
        try:
            return split(check({k: v for k, v in preset.items() if k in {p.name for p in asked}}))
        except BadArgument as exc:
            if not asked:
                app.notify(f"{act.title}: {exc}", severity="error", timeout=6, markup=False)
                return None
    choices = await _choices(app, act, host, selected)
    fields = [field_for(p, preset.get(p.name), choices.get(p.name, ())) for p in asked]
    if act.creates:
        label = "name" + (f" (in pool {selected.split('/')[0]})" if act.target == "volume" else "")
        fields.insert(0, Field(NAME_FIELD, label, "text", name, (), True, f"the new {act.target}'s name"))
        where = f"in pool {selected.split('/')[0]} on {host}" if act.target == "volume" else f"on {host}"
    else:
        where = f"{selected} on {host}"
    values = await app.push_screen_wait(
        PromptScreen(
            f"{act.title}: {where}",
            fields,
            ok=act.ok or act.title,
            detail=act.note or act.help,
            danger=act.destructive,
            check=check,
        )
    )
    return None if values is None else split(dict(values))
