"""The action registry and its parameters: pure, no hosts. What a value of each kind becomes, the one
message a bad one gets, and the declarations matching the functions they describe."""

from __future__ import annotations

import inspect

import pytest

from vimtui.core.actions import ACTIONS, REGISTRY, of_kind
from vimtui.core.actions.params import BadArgument, Param, check_args, convert, parse_words

COUNT = Param("count", "int", low=1, high=5, required=True)
MEM = Param("memory_mib", "size", low=16)
DEST = Param("dest", "choice", required=True, choices=[("a", "kvm-a"), ("b", "kvm-b")])


@pytest.mark.parametrize(
    ("param", "text", "value"),
    [
        (COUNT, "3", 3),
        (COUNT, 5, 5),
        (MEM, "2G", 2048),
        (MEM, "512", 512),
        (MEM, "1.5g", 1536),
        (Param("t", "float"), "2.5", 2.5),
        (Param("b", "bool"), "yes", True),
        (Param("b", "bool"), "off", False),
        (Param("l", "list"), "vda, vdb", ("vda", "vdb")),
        (Param("l", "list"), ["vda"], ("vda",)),
        (DEST, "kvm-b", "kvm-b"),
    ],
)
def test_values_are_typed(param: Param, text: object, value: object) -> None:
    assert convert(param, text) == value


@pytest.mark.parametrize(
    ("param", "text", "message"),
    [
        (COUNT, "9", "count: between 1 and 5, not 9"),
        (COUNT, "0", "count: between 1 and 5, not 0"),
        (COUNT, "two", "count: a whole number, not 'two'"),
        (COUNT, "2.5", "count: a whole number, not '2.5'"),
        (MEM, "8", "memory_mib: between 16 and inf, not 8"),
        (MEM, "lots", "memory_mib: a size in MiB (512, 2G), not 'lots'"),
        (Param("b", "bool"), "maybe", "b: yes or no, not 'maybe'"),
        (DEST, "kvm-c", "dest: one of kvm-a, kvm-b, not 'kvm-c'"),
    ],
)
def test_a_bad_value_is_refused_naming_the_parameter(param: Param, text: object, message: str) -> None:
    with pytest.raises(BadArgument) as info:
        convert(param, text)
    assert str(info.value) == message


def test_check_args_insists_on_required_fills_defaults_and_refuses_unknown_names() -> None:
    params = (COUNT, DEST, Param("loud", "bool"), Param("note", "text", default="hi"))
    assert check_args(params, {"count": "2", "dest": "kvm-a"}) == {
        "count": 2,
        "dest": "kvm-a",
        "loud": False,
        "note": "hi",
    }
    with pytest.raises(BadArgument, match="^dest: required$"):
        check_args(params, {"count": "2"})
    with pytest.raises(BadArgument, match="^colour: no such parameter"):
        check_args(params, {"colour": "red"})
    assert check_args(params, {"count": "2"}, partial=True) == {"count": 2}  # the form asks the rest


def test_computed_choices_are_checked_when_given_and_loose_ones_pass() -> None:
    host = Param("dest", "choice", from_state=lambda vm, st: [])
    assert check_args((host,), {"dest": "x"}) == {"dest": "x"}  # not computed here: the task checks
    with pytest.raises(BadArgument, match="^dest: none to choose from, not 'x'$"):
        check_args((host,), {"dest": "x"}, {"dest": []})
    loose = Param("disks", "list", strict=False)
    assert check_args((loose,), {"disks": "/var/a.qcow2"}, {"disks": [("vda", "vda")]}) == {
        "disks": ("/var/a.qcow2",)
    }


def test_colon_words_split_into_names_and_arguments() -> None:
    params = (COUNT, Param("force", "bool"))
    assert parse_words(params, ["web01", "kvm-b/db", "count=3", "force"]) == (
        ["web01", "kvm-b/db"],
        {"count": "3", "force": "yes"},
    )


def test_every_declaration_matches_its_function() -> None:
    """A parameter the function does not take, or a function argument without a default that is not
    declared, would fail only when the task runs."""
    for act in REGISTRY.values():
        sig = inspect.signature(act.run)
        taken = list(sig.parameters.values())[2:]
        names = {p.name for p in taken}
        for p in act.params:
            assert p.name in names, f"{act.id}: {p.name} is not an argument of {act.run.__name__}"
        declared = {p.name for p in act.params}
        for arg in taken:
            if arg.default is inspect.Parameter.empty:
                assert arg.name in declared, f"{act.id}: {arg.name} is not declared"


def test_ids_and_keys_are_unique_and_the_snapshot_key_is_n() -> None:
    assert all(a.id == f"{a.target}.{a.name}" for a in REGISTRY.values())
    keys = [a.key for a in of_kind("vm") if a.key]
    assert len(keys) == len(set(keys))
    assert ACTIONS["snapshot"].key == "n" and ACTIONS["snapshot"].id == "vm.snapshot"
