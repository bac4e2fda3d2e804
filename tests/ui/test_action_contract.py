"""The action contract: an action declared once, in this file, is found in every face (key binding and
[keys], palette, `:` command, form, `?` help, CLI verb with --help, dry run and run, audit record), and
its parameters are checked by the same function in each: a bad value is refused with the same message
everywhere. Breaks when a face stops being made from the registry (a hand-written list, a form guessed
from a signature, a CLI verb written by hand) or checks values its own way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import DATA, fleet_app, loaded, plain, stable_data_dir, typed
from tests.ui.test_actions import SIZE, to_vm, until
from vimtui.cli.main import main
from vimtui.core.actions import RUNNING, Action, Param, register, unregister
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.model import FleetState, VmState
from vimtui.ui.screens.help import HelpScreen
from vimtui.ui.screens.prompt import PromptScreen
from vimtui.ui.screens.vm_detail import VmDetailScreen

BAD_COUNT = "count: between 1 and 5, not 9"
BAD_DEST = "dest: one of kvm-b, not 'nowhere'"


def echo(ctx: TaskContext, dom: Any, count: int, dest: str, loud: bool = False) -> str:
    """Touches nothing: says what it was given, and on which domain (looked up on the host's lane)."""
    return f"echo {dom.name()} x{count} to {dest}" + (" LOUD" if loud else "")


def other_hosts(vm: VmState, state: FleetState) -> list[tuple[str, str]]:
    return [(f"{h.name} ({h.group})", h.name) for h in state.hosts if h.name != vm.host]


ECHO = Action(
    "test-echo",
    "Test echo",
    "A test-only action: says what it was given",
    echo,
    params=(
        Param("count", "int", "how many times", required=True, low=1, high=5),
        Param("dest", "choice", "another host", required=True, from_state=other_hosts),
        Param("loud", "bool", "shout it"),
    ),
    states=RUNNING,
    not_applicable="only a running VM echoes",
    mutates=False,
    key="ctrl+y",
)


@pytest.fixture(autouse=True)
def declared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Action]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    register(ECHO)
    try:
        yield ECHO
    finally:
        unregister(ECHO.id)


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    """The audit log's outcome records (each action also has a "started" one, written before it runs)."""
    log = tmp_path / "vimtui" / "audit.log"
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [r for r in records if r["outcome"] != "started"]


def notified(app: Any, text: str) -> bool:
    return any(text in str(n.message) for n in app._notifications)


async def test_the_palette_the_colon_line_the_form_and_help_come_from_one_declaration(tmp_path: Path) -> None:
    from vimtui.ui.commands import _vm_action_commands

    app = fleet_app('\n[keys]\n"vm.test-echo" = "f7"\n')  # its id is remappable like any other
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        # the palette: offered on a running VM, greyed with the reason on a shut off one
        await to_vm(pilot, "old-app")
        titles = {t: h for t, h, _ in _vm_action_commands(app.screen)}  # type: ignore[arg-type]
        assert "only a running VM echoes" in titles["VM: Test echo old-app — not available"]
        await to_vm(pilot, "web01")
        titles = {t: h for t, h, _ in _vm_action_commands(app.screen)}  # type: ignore[arg-type]
        assert titles["VM: Test echo web01"].startswith(":test-echo  (f7): A test-only action")

        # the `:` line: parameters as name=value, checked before anything runs
        await typed(pilot, "colon", *"test-echo web01 count=9 dest=kvm-b", "enter")
        assert notified(app, BAD_COUNT)
        await typed(pilot, "escape", "colon", *"test-echo web01 count=2 dest=nowhere", "enter")
        assert notified(app, BAD_DEST)
        await typed(pilot, "escape", "colon", *"test-echo web01 count=2 dest=kvm-b loud", "enter")
        await until(
            pilot, "the echo task", lambda s: any(r["action"] == "test-echo" for r in audit(tmp_path))
        )

        # the form, from the remapped key: a field per parameter, the computed choices, the same check
        await typed(pilot, "f7")
        await until(pilot, "the form", lambda s: isinstance(app.screen, PromptScreen))
        form = app.screen
        assert form.query("#f-count") and form.query("#f-dest") and form.query("#f-loud")
        assert [v for _, v in next(f for f in form.fields if f.name == "dest").choices] == ["kvm-b"]
        await pilot.click("#f-count")
        await typed(pilot, "9", "ctrl+s")
        assert isinstance(app.screen, PromptScreen) and BAD_COUNT in plain(form.query_one("#error"))
        await typed(pilot, "backspace", "3", "ctrl+s")
        await until(pilot, "the second echo", lambda s: len(audit(tmp_path)) == 2)

        # the VM detail screen: the same key, the same palette entry
        await typed(pilot, "enter")
        assert isinstance(app.screen, VmDetailScreen)
        titles = {t: h for t, h, _ in _vm_action_commands(app.screen)}
        assert "VM: Test echo web01" in titles
        await typed(pilot, "f7")
        await until(pilot, "the form", lambda s: isinstance(app.screen, PromptScreen))
        await typed(pilot, "escape", "escape")

        # `?` help: its key, its binding id, its `:` command with its parameters
        await typed(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(plain(s) for s in app.screen.query("Static"))
        assert "vm.test-echo" in text and ":test-echo count=... dest=... loud=yes" in text
        assert "count: how many times; 1..5" in text and "f7" in text

    assert [(r["vm"], r["action"], r["outcome"], r["args"]) for r in audit(tmp_path)] == [
        ("web01", "test-echo", "done", {"count": 2, "dest": "kvm-b", "loud": True}),
        ("web01", "test-echo", "done", {"count": 3, "dest": "kvm-b", "loud": False}),
    ]


def cli(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["--config", str(config), *argv])
    except SystemExit as exc:  # --help, and argparse's own usage errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_cli_verb_its_help_its_checks_and_its_dry_run_come_from_the_declaration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text((DATA / "fleet.toml").read_text().replace("@DATA@", str(stable_data_dir())))

    code, out, _ = cli(capsys, config, "vm", "test-echo", "--help")
    assert code == 0 and "A test-only action" in out
    assert "--count COUNT" in out and "1..5" in out and "--dest DEST" in out and "--loud, --no-loud" in out

    code, _, err = cli(capsys, config, "vm", "test-echo", "web01", "--count", "9", "--dest", "kvm-b")
    assert code == 2 and BAD_COUNT in err and not audit(tmp_path)  # refused before any host is asked
    code, _, err = cli(capsys, config, "vm", "test-echo", "web01", "--count", "2", "--dest", "nowhere")
    assert code == 2 and BAD_DEST in err and not audit(tmp_path)
    code, _, err = cli(capsys, config, "vm", "test-echo", "web01", "--count", "2")
    assert code == 2 and "dest: required" in err

    code, out, _ = cli(
        capsys, config, "vm", "test-echo", "web01", "--count", "2", "--dest", "kvm-b", "--dry-run"
    )
    assert (
        code == 0
        and out.strip() == "would test-echo kvm-a/web01 (count=2 dest=kvm-b)"
        and not audit(tmp_path)
    )
    code, out, _ = cli(
        capsys, config, "vm", "test-echo", "old-app", "--count", "2", "--dest", "kvm-b", "--dry-run"
    )
    assert code == 1 and "REFUSED: old-app is shutoff: only a running VM echoes" in out

    code, out, err = cli(
        capsys, config, "vm", "test-echo", "web01", "--count", "4", "--dest", "kvm-b", "--json"
    )
    assert code == 0, err
    (task,) = json.loads(out)
    assert (task["state"], task["result"]) == ("done", "echo web01 x4 to kvm-b")
    (record,) = audit(tmp_path)
    assert (record["outcome"], record["args"]) == ("done", {"count": 4, "dest": "kvm-b", "loud": False})


async def test_what_was_typed_is_quoted_as_text_not_markup() -> None:
    """A `:` line quoting a closing tag ("[/x]") in its error: as markup it would not render (Textual
    raises on an unmatched closing tag while drawing the toast); as text it shows as typed."""
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await typed(pilot, "colon", *"test-echo web01 count=[/x]", "enter")
        await pilot.pause()
        (toast,) = [n for n in app._notifications if "[/x]" in n.message]
        assert toast.message == ":test-echo: count: a whole number, not '[/x]'" and not toast.markup
        assert app.is_running
