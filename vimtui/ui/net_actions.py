"""Network actions on the screen, made from the action registry like the VM and host actions: a binding per
network action with a key (id `network.<name>`, remappable from [keys]), greyed out when it does not apply
to the selected network, the form of a define, the confirmation of a stop or a delete with what it takes
away, and the task.

A delete refused because running VMs use the network is not a dead end: the refusal names them and asks
whether to delete it anyway (force), listing them again; only an explicit yes forces it. A define refused
by the host (its subnet overlapping another network) says why and opens the form again with what was
typed, to be corrected. Nothing here calls libvirt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.binding import Binding

from vimtui.core.actions import Action, of_kind, operations, targets
from vimtui.core.actions.networks import view_refusal
from vimtui.core.actions.params import BadArgument, check_args
from vimtui.core.actions.targets import Ref
from vimtui.core.fleet.tasks import Task
from vimtui.core.poll.host_networks import NetworkView
from vimtui.ui.screens.prompt import Field, PromptScreen
from vimtui.ui.vm_actions import ACTIONS_GROUP, field_for

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp

FORCE_HINT = "running VMs use network"
"""How the host's refusal of a delete begins its reason (then the forced confirmation is offered)."""


def network_bindings() -> list[Binding]:
    """One binding per network action that has a key, id `network.<name>`."""
    return [
        Binding(a.key, f"net_action('{a.name}')", a.title, id=a.id, show=a.bar, group=ACTIONS_GROUP)
        for a in of_kind("network")
        if a.key
    ]


def net_why_not(app: VimApp, name: str, host: str | None, view: NetworkView | None) -> str | None:
    """None when the network action applies to the selected network of `host`, else the reason."""
    if host is None:
        return "no host selected"
    try:
        act = operations.target_action("network", name)
    except operations.UnknownAction as exc:
        return str(exc)
    h = app.fleet.state.host(host)
    if h is None:
        return f"no host {host!r} in the inventory"
    return act.host_state_refusal(h, app.fleet.state) or view_refusal(name, view)


async def run_net_action(
    app: VimApp, name: str, host: str, view: NetworkView | None, given: Mapping[str, Any] | None = None
) -> Task | None:
    """The form or the confirmation the action needs, then the task; returns it once it has ended (None
    when the operator said no)."""
    act = operations.target_action("network", name)
    given = dict(given or {})
    if name == "define":
        return await _define(app, act, host, given)
    assert view is not None
    if name == "autostart" and "enable" not in given:
        given["enable"] = not view.autostart  # the key toggles it
    step = _step(app, act, host, view.name, given)
    if step is None:
        return None
    if act.destructive and step.refusal is None:
        step = await _confirm(app, act, step)
        if step is None:
            return None
    return await _submit(app, act, step)


def _step(app: VimApp, act: Action, host: str, name: str, given: Mapping[str, Any]) -> operations.Step | None:
    try:
        args = check_args(act.params, given)
    except BadArgument as exc:
        app.notify(f"{act.title}: {exc}", severity="error", timeout=6, markup=False)
        return None
    [step] = operations.plan_targets(app.fleet.state, act, [Ref("network", host, name)], args)
    return step


async def _confirm(app: VimApp, act: Action, step: operations.Step) -> operations.Step | None:
    """Ask before a stop or a delete, listing what goes; a delete the host refuses for its running VMs
    asks whether to force it, naming them. Returns the step to run (forced or not), None for no."""
    lines = await operations.preview(app.fleet, [step])
    cannot = next((line for line in lines if operations.CANNOT in line), None)
    if cannot is not None and FORCE_HINT in cannot and act.param("force") is not None:
        forced = replace(step, args={**step.args, "force": True})
        forced_lines = await operations.preview(app.fleet, [forced])
        why = cannot.split(operations.CANNOT, 1)[1].removeprefix("refused: ").split(";")[0]
        detail = "\n".join(
            [why, "", "Delete it anyway? Their interfaces stay, on a network that is gone:", *forced_lines]
        )
        answer = await app.push_screen_wait(
            PromptScreen(
                f"{act.title}: {step.where} is in use", [], ok="Force delete", detail=detail, danger=True
            )
        )
        if answer is None:
            return _said_no(app)
        return forced
    if cannot is not None:  # the task refuses it with the same reason, recorded
        return step
    answer = await app.push_screen_wait(
        PromptScreen(f"{act.title}: {step.where}", [], ok=act.title, detail="\n".join(lines), danger=True)
    )
    if answer is None:
        return _said_no(app)
    return step


def _said_no(app: VimApp) -> operations.Step | None:
    app.notify("nothing done", timeout=3)
    return None


async def _submit(app: VimApp, act: Action, step: operations.Step) -> Task:
    [task] = operations.submit(app.fleet, [step])
    await app.fleet.tasks.wait([task])
    if task.ok:
        app.notify(f"{step.where}: {task.result}", title=act.title, timeout=5, markup=False)
    else:
        app.notify(f"{step.where}: {task.error}", title=act.title, severity="error", timeout=12, markup=False)
    return task


async def _define(app: VimApp, act: Action, host: str, given: dict[str, Any]) -> Task | None:
    """The define form (the network's name first), again with what was typed while the host refuses it."""
    values: dict[str, Any] = {"name": given.pop("name", ""), **given}
    refused = ""
    while True:
        raw = await app.push_screen_wait(_define_form(app, act, host, values, refused))
        if raw is None:
            return None
        values = dict(raw)
        args = {k: v for k, v in raw.items() if k != "name"}
        step = _step(app, act, host, str(raw["name"]), args)
        if step is None:
            return None
        task = await _submit(app, act, step)
        if task.ok or "refused" not in task.error:
            return task
        refused = task.error


def _define_form(
    app: VimApp, act: Action, host: str, values: Mapping[str, Any], refused: str = ""
) -> PromptScreen:
    fields = [Field("name", "name", "text", values.get("name", ""), required=True, help="the network's name")]
    fields += [field_for(p, values.get(p.name, p.default), ()) for p in act.params if p.asked]

    def check(raw: Mapping[str, Any]) -> dict[str, Any]:
        name = str(raw.get("name") or "").strip()
        if not name:
            raise BadArgument("name: a network needs a name")
        args = check_args(act.params, {k: v for k, v in raw.items() if k != "name" and v not in ("", None)})
        why = targets.refusal(act, Ref("network", host, name), args, app.fleet.state)
        if why is not None:
            raise BadArgument(why)
        return {"name": name, **args}

    detail = act.note or (
        f"on {host}: nat, isolated, routed and open need a subnet; bridge mode joins a bridge of the host. "
        "A subnet overlapping another network of the host is refused, naming it."
    )
    if refused:
        why = refused.removeprefix("refused: ")
        detail = f"{host} refused it: {why}\nCorrect it and define again (esc: give up)."
    return PromptScreen(f"{act.title} on {host}", fields, ok=act.ok or act.title, detail=detail, check=check)


def network_commands(
    app: VimApp, host: str, view: NetworkView | None, run: Callable[[str], object], unavailable: str
) -> list[tuple[str, str, Callable[[], object]]]:
    """The palette's entries: every network action on the selected network (define on the host); those that
    do not apply are listed as such (their title ends with `unavailable`), and say why. `run(name)` starts
    one."""
    out: list[tuple[str, str, Callable[[], object]]] = []
    keymap = app._keymap
    for act in of_kind("network"):
        what = host if act.name == "define" else f"{host}/{view.name if view else '?'}"
        key = keymap.get(act.id, act.key)
        hint = f":net {act.name} {what}" + (f"  ({key} in the networks table)" if key else "")
        reason = net_why_not(app, act.name, host, view)
        if reason:
            title = f"Network: {act.title} {what}{unavailable}"
            out.append((title, f"{hint}: {reason}", partial(app.notify, reason, markup=False)))
        else:
            out.append((f"Network: {act.title} {what}", f"{hint}: {act.help}", partial(run, act.name)))
    return out
