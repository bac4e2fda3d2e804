"""Profiles: which one applies to each host (the command line, the host, its group, the top level), the
config's errors located by file:line:key, every action refused to a viewer (and the admin ones to an
operator) with the reason, and a viewer's connection read-only in libvirt itself (the test driver)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import libvirt
import pytest

from vimtui.core.actions import REGISTRY, of_kind
from vimtui.core.actions.console import console_refusal
from vimtui.core.actions.create_image import submit_create_from_image
from vimtui.core.config.settings import ConfigError, parse_config
from vimtui.core.fleet.fleet import QueryFailed
from vimtui.core.fleet.inventory import build_inventory
from vimtui.core.fleet.startup import make_fleet
from vimtui.core.profiles import PROFILES, allows, resolve

DATA = Path(__file__).resolve().parent / "data"

LAYERED = """\
profile = "operator"

[[hosts]]
name = "a"
uri = "test:///default"
group = "dc1/rack1"

[[hosts]]
name = "b"
uri = "test:///default"
group = "dc1"
profile = "admin"

[[hosts]]
name = "c"
uri = "test:///default"
group = "dc1/rack2"
read_only = true

[[hosts]]
name = "d"
uri = "test:///default"
group = "dc2"

[[hosts]]
name = "e"
uri = "test:///default"
group = "dc1/rack2"

[groups.dc1]
profile = "viewer"

[groups."dc1/rack1"]
profile = "admin"
"""


def test_the_order_of_profiles() -> None:
    assert [p for p in PROFILES if allows(p, "operator")] == ["operator", "admin"]
    assert allows("viewer", "viewer") and not allows("operator", "admin")


def test_the_most_specific_profile_applies_and_the_command_line_over_all() -> None:
    kw = {"group": "dc1/rack1", "groups": {"dc1": "viewer", "dc1/rack1": "admin"}}
    assert resolve(given=None, host=None, read_only=False, top=None, **kw) == "admin"  # type: ignore[arg-type]
    assert resolve(given=None, host="operator", read_only=False, top=None, **kw) == "operator"  # type: ignore[arg-type]
    assert resolve(given="viewer", host="admin", read_only=False, top="admin", **kw) == "viewer"  # type: ignore[arg-type]
    assert resolve(given=None, host=None, read_only=True, group="x", groups={}, top="admin") == "viewer"
    assert resolve(
        given=None, host=None, read_only=False, group="x/y", groups={"x": "operator"}, top=None
    ) == ("operator")
    assert resolve(given=None, host=None, read_only=False, group="", groups={}, top=None) == "admin"


def test_the_config_layers_give_each_host_its_profile() -> None:
    config = parse_config(LAYERED)
    assert config.profile == "operator" and set(config.groups) == {"dc1", "dc1/rack1"}
    got = {s.name: s.profile for s in build_inventory(config, ["test:///default"])}
    # a: its deepest group; b: its own; c: read_only; d: the top level; e: dc1 (rack2 says nothing);
    # the --connect host: the top level (the adhoc group says nothing)
    assert got == {
        "a": "admin",
        "b": "admin",
        "c": "viewer",
        "d": "operator",
        "e": "viewer",
        "test-default": "operator",
    }
    assert {s.name: s.read_only for s in build_inventory(config)} == {
        "a": False,
        "b": False,
        "c": True,
        "d": False,
        "e": True,
    }
    everywhere = build_inventory(config, ["test:///default"], profile="viewer")
    assert {s.profile for s in everywhere} == {"viewer"}
    admins = build_inventory(config, profile="admin")
    assert {s.profile for s in admins} == {"admin"}
    adhoc = parse_config('[groups.adhoc]\nprofile = "viewer"\n')
    assert [s.profile for s in build_inventory(adhoc, ["test:///default"])] == ["viewer"]


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ('profile = "root"\n', 1, "profile", "must be one of 'viewer', 'operator', 'admin'"),
        ("profile = 3\n", 1, "profile", "expected a string, got an integer"),
        (
            '[[hosts]]\nname = "a"\nuri = "test:///default"\nprofile = "god"\n',
            4,
            "hosts[0].profile",
            "must be one of",
        ),
        (
            '[[hosts]]\nname = "a"\nuri = "test:///default"\nread_only = true\nprofile = "admin"\n',
            5,
            "hosts[0].profile",
            "read_only = true is the viewer profile",
        ),
        (
            '[[hosts]]\nname = "a"\nuri = "test:///default"\ngroup = "dc1"\n[groups.dc9]\nprofile = "x"\n',
            5,
            "groups.dc9",
            "no host is in group 'dc9'",
        ),
        (
            '[[hosts]]\nname = "a"\nuri = "test:///default"\ngroup = "dc1"\n[groups.dc1]\nprofile = "x"\n',
            6,
            "groups.dc1.profile",
            "must be one of",
        ),
        (
            '[[hosts]]\nname = "a"\nuri = "test:///default"\ngroup = "dc1"\n[groups.dc1]\nprofle = "x"\n',
            6,
            "groups.dc1.profle",
            "did you mean 'profile'?",
        ),
        ("profil = 'viewer'\n", 1, "profil", "did you mean 'profile'?"),
    ],
)
def test_a_bad_profile_is_named_by_line_and_key(text: str, line: int, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, file="c.toml")
    err = info.value
    assert (err.line, err.key) == (line, key), str(err)
    assert message in err.message, str(err)


def _env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "run").mkdir(mode=0o700, exist_ok=True)
    return {"XDG_DATA_HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "run"), "HOME": str(tmp_path)}


async def test_a_viewer_is_refused_every_action_and_libvirt_refuses_its_connection_a_change(
    tmp_path: Path,
) -> None:
    """A viewer on the test driver: every VM action and the console refused with the reason, a create
    from an image refused before anything is sent, and a change forced through its own connection
    refused by libvirt (it was opened read-only). Breaks if an action is declared without a profile check
    or the viewer's connection is opened read-write."""
    config = parse_config('[[hosts]]\nname = "t"\nuri = "test:///default"\nprofile = "viewer"\n')
    fleet = make_fleet(config, build_inventory(config), env=_env(tmp_path))
    await fleet.start()
    try:
        state = await fleet.wait_for(lambda s: bool(s.vms), 20)
        vm = next(iter(state.vms.values()))
        assert REGISTRY
        for act in of_kind("vm"):
            why = act.state_refusal(vm, state)
            assert why is not None and f"needs the {act.needs} profile (yours on t: viewer)" in why, act.id
        for act in of_kind("host"):
            why = act.host_state_refusal(state.hosts[0], state)
            assert why is not None and f"needs the {act.needs} profile (yours on t: viewer)" in why, act.id
        assert "The console needs the operator profile" in (console_refusal(vm, host=state.host("t")) or "")
        task = submit_create_from_image(fleet, "t", name="n", image="default/x.qcow2")
        await fleet.tasks.wait([task])
        assert not task.ok and "needs the admin profile" in task.error

        def force_off(conn: libvirt.virConnect) -> None:
            conn.lookupByUUIDString(vm.uuid).destroy()

        with pytest.raises(QueryFailed, match="read only access prevents"):
            await fleet.ask("t", force_off)
        assert await fleet.ask("t", lambda conn: conn.lookupByUUIDString(vm.uuid).isActive()) == 1
    finally:
        await fleet.stop()


async def test_an_operator_runs_lifecycle_and_snapshots_but_not_the_admin_actions(tmp_path: Path) -> None:
    config = parse_config('profile = "operator"\n[[hosts]]\nname = "t"\nuri = "test:///default"\n')
    fleet = make_fleet(config, build_inventory(config), env=_env(tmp_path))
    await fleet.start()
    try:
        state = await fleet.wait_for(lambda s: bool(s.vms), 20)
        vm = next(iter(state.vms.values()))
        host = state.host("t")
        assert host is not None and host.profile == "operator" and not host.read_only
        refused = {a.name for a in of_kind("vm") if a.profile_refusal(host)}
        assert refused == {a.name for a in of_kind("vm") if a.needs == "admin"}
        assert {"delete", "edit", "create", "clone", "attach-disk", "detach-nic"} <= refused
        assert not {"start", "shutdown", "destroy", "snapshot", "revert", "migrate"} & refused
        assert "profile" not in (console_refusal(vm, host=host) or "")
        assert REGISTRY["vm.autostart"].state_refusal(vm, state) is None  # in any state (test:///default is
        # the process's one driver: other tests may have paused its VM)
    finally:
        await fleet.stop()
        await asyncio.sleep(0)
