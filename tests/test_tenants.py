"""Tenants, tags and quotas: the quota arithmetic and its refusal text, the tenant scope applied where the
fleet publishes, the config's `tenant` and `[tenants.NAME]`, the CLI's `+tag -tag` words; and on libvirt's
test driver, metadata written by the tag and tenant actions as libvirt then holds it, a scoped fleet seeing
only its tenant's VMs (exporter included), and a create past the quota refused with nothing defined."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import libvirt
import pytest

from tests.factories import domain_details
from vimtui.cli.vm import tag_words
from vimtui.core.actions import operations
from vimtui.core.actions.tenancy import changed_tags, tag_line
from vimtui.core.config.loading import parse_config
from vimtui.core.config.model import ConfigError
from vimtui.core.export.openmetrics import render
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.fleet.quotas import Use, refusal, tenants_table, vm_use
from vimtui.core.fleet.scope import TenantScope
from vimtui.core.model import FleetState, HostState, HostStatus, Quota, VmState
from vimtui.core.poll.domxml import VIMTUI_NS, parse_domain_xml
from vimtui.core.poll.session import SessionSettings
from vimtui.core.poll.stats import DiskSample, DomainSample

GIB = 2**30


def _vm(name: str, tenant: str | None, vcpus: int = 2, mem_mib: int = 1024, disk_gib: int = 0) -> VmState:
    disks = (DiskSample("vda", None, 0, 0, 0, 0, disk_gib * GIB, 0),) if disk_gib else ()
    sample = DomainSample(name, name, 0.0, 5, 0, None, vcpus, vcpus, mem_mib * 1024, None, *[None] * 4, disks)
    from vimtui.core.poll.domxml import DiskInfo

    details = domain_details(
        name,
        tenant=tenant,
        vcpus=vcpus,
        memory_kib=mem_mib * 1024,
        disks=(DiskInfo("vda", "disk", "/x", "qcow2", "virtio"),) if disk_gib else (),
    )
    return VmState(name, name, "h1", "shutoff", 0, vcpus, mem_mib * 1024, None, sample, None, details)


def _state(*vms: VmState, quotas: dict[str, Quota] | None = None, tenant: str | None = None) -> FleetState:
    host = HostState("h1", "", "", "test:///default", "direct", HostStatus.UP, "", 0.0)
    host = HostState(
        **{**{f: getattr(host, f) for f in host.__slots__}, "vm_keys": tuple(v.key for v in vms)}
    )
    return FleetState(
        1,
        0.0,
        (host,),
        MappingProxyType({v.key: v for v in vms}),
        tenant=tenant,
        quotas=MappingProxyType(quotas or {}),
    )


# -- quotas ------------------------------------------------------------------------------------------


def test_a_vms_use_is_its_vcpus_maximum_memory_and_disk_capacity() -> None:
    assert vm_use(_vm("a", "acme", vcpus=3, mem_mib=2048, disk_gib=10)) == Use(3, 2048, 1, 10.0)


def test_the_refusal_says_the_use_the_limit_and_the_ask() -> None:
    a1, a2, b1 = _vm("a1", "acme", 2), _vm("a2", "acme", 4), _vm("b1", "beta", 16)
    state = _state(a1, a2, b1, quotas={"acme": Quota(vcpus=8, memory_mib=4096, vms=3, disk_gib=20)})
    assert refusal(a1, Use(vcpus=4), state) == "acme: 6 of 8 vCPUs in use, 4 asked"
    assert refusal(a1, Use(vcpus=2), state) is None  # exactly the limit fits
    assert (
        refusal(a1, Use(memory_mib=3000), state) == "acme: 2,048 of 4,096 MiB of memory in use, 3,000 asked"
    )
    assert refusal(a1, Use(vms=2), state) == "acme: 2 of 3 VMs in use, 2 asked"
    assert refusal(a1, Use(disk_gib=21), state) == "acme: 0 of 20 GiB of disk in use, 21 asked"
    assert refusal(a1, Use(vcpus=-6), state) is None  # giving back is never refused
    assert refusal(b1, Use(vcpus=100), state) is None  # beta has no quota
    assert refusal(_vm("n", None), Use(vcpus=100), state) is None  # no tenant, no quota


def test_a_request_for_several_vms_shares_the_tenants_quota() -> None:
    """Each create is checked with what the steps before it in the same request take."""
    t1, t2 = _vm("t1", "acme", 2), _vm("t2", "acme", 2)
    state = _state(t1, t2, quotas={"acme": Quota(vcpus=7)})
    act = operations.action("create")
    # create is one VM at a time in every face; plan itself takes several, as a resource change would
    steps = operations.plan(state, "create", [t1, t2], {"name": "new"})
    assert act.adds is not None
    assert [s.refusal for s in steps] == [None, "acme: 6 of 7 vCPUs in use, 2 asked"]


def test_the_tenants_table_lists_use_against_quota() -> None:
    state = _state(_vm("a1", "acme", 2), _vm("b1", "beta", 1), quotas={"gamma": Quota(vms=1)})
    rows = {r.tenant: r for r in tenants_table(state)}
    assert set(rows) == {"acme", "beta", "gamma"}
    assert rows["gamma"].use == Use() and rows["gamma"].quota == Quota(vms=1)
    assert rows["acme"].as_dict()["vcpus"] == 2 and rows["acme"].quota is None


# -- the scope ---------------------------------------------------------------------------------------


def test_the_scope_keeps_only_the_tenants_vms_and_attaches_the_quotas() -> None:
    unread = VmState("u", "u", "h1", "running", 0, 1, None, None, None, None, None)
    state = _state(_vm("a1", "acme"), _vm("b1", "beta"), _vm("n1", None), unread)
    scoped = TenantScope("acme", {"acme": Quota(vcpus=4)}).apply(state)
    assert list(scoped.vms) == ["h1/a1"]
    assert scoped.hosts[0].vm_keys == ("h1/a1",)
    assert scoped.vm_counts == {"h1": (1, 0)}
    assert scoped.tenant == "acme" and scoped.quotas == {"acme": Quota(vcpus=4)}
    everyone = TenantScope(None, {"acme": Quota(vcpus=4)}).apply(state)
    assert len(everyone.vms) == 4 and everyone.quotas["acme"].vcpus == 4


# -- config and words --------------------------------------------------------------------------------


def test_config_tenant_and_quotas() -> None:
    c = parse_config('tenant = "acme"\n[tenants.acme]\nvcpus = 8\nmemory = 4096\n[tenants.beta]\nvms = 2\n')
    assert c.tenant == "acme"
    assert [(n, t.vcpus, t.memory, t.vms, t.disk) for n, t in c.tenants] == [
        ("acme", 8, 4096, None, None),
        ("beta", None, None, 2, None),
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("tenant = 3", "c.toml:1: tenant: expected a tenant's name (a string), got an integer"),
        ('tenant = "a/b"', "c.toml:1: tenant: a tenant name has no control characters, commas or slashes"),
        ("[tenants.x]\nvcpu = 3", "c.toml:2: tenants.x.vcpu: unknown key (did you mean 'vcpus'?)"),
        ("[tenants.x]\nvcpus = -1", "c.toml:2: tenants.x.vcpus: must be >= 0"),
        ('[tenants.x]\nmemory = "4G"', "c.toml:2: tenants.x.memory: expected an integer, got a string"),
    ],
)
def test_config_errors_name_file_line_and_key(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, file="c.toml")
    assert str(exc.value) == error


def test_tag_words_of_the_cli_and_the_colon_line() -> None:
    argv = ["--config", "c", "vm", "tag", "web01", "+blue", "-green", "-y", "--host", "h1", "--", "-x"]
    assert tag_words(argv) == [
        *[
            "--config",
            "c",
            "vm",
            "tag",
            "web01",
            "--add=blue",
            "--remove=green",
            "-y",
            "--host",
            "h1",
            "--",
            "-x",
        ]
    ]
    assert tag_words(["vm", "start", "-x"]) == ["vm", "start", "-x"]
    assert tag_line(["web01", "+a", "+b", "-c"]) == ["web01", "add=a,b", "remove=c"]
    assert changed_tags(["a", "b"], ["c", "a"], ["b"]) == ["a", "c"]


# -- on libvirt's test driver --------------------------------------------------------------------------


def _node(path: Path) -> str:
    def dom(name: str, n: int, tenant: str, runstate: int, vcpus: int) -> str:
        meta = (
            f"<metadata><vimtui:vm xmlns:vimtui='{VIMTUI_NS}'><vimtui:tenant>{tenant}</vimtui:tenant>"
            "</vimtui:vm></metadata>"
            if tenant
            else ""
        )
        return (
            "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
            f"<name>{name}</name><uuid>00000000-0000-4000-8000-0000000c000{n}</uuid>{meta}"
            f"<memory unit='MiB'>512</memory><vcpu>{vcpus}</vcpu><os><type arch='x86_64'>hvm</type></os>"
            f"<test:runstate>{runstate}</test:runstate></domain>"
        )

    path.write_text(
        "<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads>"
        "<active>4</active><mhz>2400</mhz><model>x86_64</model></cpu><memory>8388608</memory>"
        + dom("a1", 1, "acme", 1, 2)
        + dom("a2", 2, "acme", 5, 4)
        + dom("b1", 3, "beta", 1, 1)
        + dom("n1", 4, "", 1, 1)
        + "</node>"
    )
    return f"test://{path}"


@pytest.fixture
async def acme_fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    """A fleet scoped to acme with an 8-vCPU quota, on a test-driver node of acme, beta and untenanted VMs."""
    spec = HostSpec(name="t1", transport="direct", uri=_node(tmp_path / "node.xml"))
    fleet = Fleet([spec], SessionSettings(interval=0.5), tmp_path / "run")
    fleet.scope = TenantScope("acme", {"acme": Quota(vcpus=8)})
    await fleet.start(tick=False)
    await fleet.connected(within=10)
    await fleet.wait_for(lambda s: len(s.vms) == 2, 20)
    yield fleet
    await fleet.stop()


def _names(conn: Any) -> list[str]:
    return sorted(d.name() for d in conn.listAllDomains())


def _xml(conn: Any, name: str) -> str:
    return str(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


async def test_a_scoped_fleet_sees_and_exports_only_its_tenant(acme_fleet: Fleet) -> None:
    state = await acme_fleet.tick(deadline=5)
    assert sorted(v.name for v in state.vms.values()) == ["a1", "a2"]
    assert state.vm_counts == {"t1": (2, 1)}
    assert await acme_fleet.ask("t1", _names) == ["a1", "a2", "b1", "n1"]  # the host holds all four
    text = render(state, openmetrics=True).decode()
    assert 'vm="a1"' in text and 'vm="a2"' in text and 'vm="b1"' not in text and 'vm="n1"' not in text
    vms, errors = operations.resolve(state, ["b1"])
    assert not vms and errors == [("b1", "no VM named 'b1'")]


async def test_a_create_past_the_quota_is_refused_with_the_numbers_and_defines_nothing(
    acme_fleet: Fleet,
) -> None:
    state = acme_fleet.state
    (a2,) = [v for v in state.vms.values() if v.name == "a2"]
    steps = operations.plan(state, "create", [a2], {"name": "big"})
    assert steps[0].refusal == "acme: 6 of 8 vCPUs in use, 4 asked"
    (task,) = operations.submit(acme_fleet, steps)
    await acme_fleet.tasks.wait([task])
    assert task.state == "failed" and task.error == "acme: 6 of 8 vCPUs in use, 4 asked"
    assert await acme_fleet.ask("t1", _names) == ["a1", "a2", "b1", "n1"]
    fits = operations.plan(state, "create", [a2], {"name": "small", "vcpus": 2})
    assert fits[0].refusal is None


async def test_tags_and_tenant_are_written_to_the_domain_metadata(acme_fleet: Fleet) -> None:
    state = acme_fleet.state
    (a1,) = [v for v in state.vms.values() if v.name == "a1"]
    steps = operations.plan(state, "tag", [a1], {"add": ("web", "prod"), "remove": ()})
    tasks = operations.submit(acme_fleet, steps)
    await acme_fleet.tasks.wait(tasks)
    assert tasks[0].ok, tasks[0].error
    details = parse_domain_xml(await acme_fleet.ask("t1", _xml, "a1"))  # the definition, as libvirt has it
    assert details.tags == ("web", "prod") and details.tenant == "acme"
    tasks = operations.submit(
        acme_fleet, operations.plan(state, "tag", [a1], {"add": (), "remove": ("web",)})
    )
    await acme_fleet.tasks.wait(tasks)
    assert parse_domain_xml(await acme_fleet.ask("t1", _xml, "a1")).tags == ("prod",)
    # the metadata-change event has the XML read again: the fleet state shows the new tags
    await acme_fleet.wait_for(
        lambda s: any(v.details is not None and v.details.tags == ("prod",) for v in s.vms.values()), 20
    )
    # a scoped operator cannot give a VM to another tenant
    (refused,) = operations.plan(state, "tenant", [a1], {"tenant": "beta"})
    assert refused.refusal == "scoped to tenant acme: a VM given to another would leave this view"


# -- the CLI -------------------------------------------------------------------------------------------


def _cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[[hosts]]\nname = "t1"\nuri = "{_node(tmp_path / "node.xml")}"\n[tenants.acme]\nvcpus = 8\n'
    )
    run = tmp_path / "run"
    run.mkdir(mode=0o700, exist_ok=True)
    env = os.environ | {"XDG_DATA_HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(run)}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "vimtui"), "--config", str(config), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def test_cli_tenant_scope_and_tenants_table(tmp_path: Path) -> None:
    out = _cli(tmp_path, "--tenant", "acme", "vms", "--json")
    assert out.returncode == 0, out.stderr
    assert sorted(v["name"] for v in json.loads(out.stdout)) == ["a1", "a2"]
    out = _cli(tmp_path, "tenants", "--json")
    rows = {r["tenant"]: r for r in json.loads(out.stdout)}
    assert rows["acme"]["vcpus"] == 6 and rows["acme"]["quota"]["vcpus"] == 8 and rows["beta"]["vcpus"] == 1
    out = _cli(tmp_path, "vm", "create", "big", "--host", "t1", "--template", "a2")
    assert out.returncode == 1 and "acme: 6 of 8 vCPUs in use, 4 asked" in out.stdout
    out = _cli(tmp_path, "--tenant", "a/b", "vms")
    assert out.returncode == 2 and "--tenant 'a/b'" in out.stderr


def test_resource_changes_declare_what_they_add() -> None:
    """`vm set` and `vm resize-disk` are checked against the quota by what they add (new minus now)."""
    from vimtui.core.actions.resources import resize_adds, set_adds

    vm = _vm("a1", "acme", vcpus=2, mem_mib=1024, disk_gib=10)
    state = _state(vm, quotas={"acme": Quota(vcpus=4, disk_gib=12)})
    assert set_adds(vm, {"vcpus": 6}, state) == Use(vcpus=4)
    assert set_adds(vm, {"max_memory": 4096}, state) == Use(memory_mib=3072)
    assert set_adds(vm, {"memory": 512}, state) == Use()
    assert resize_adds(vm, {"disk": "vda", "size": "+5G"}, state) == Use(disk_gib=5.0)
    assert resize_adds(vm, {"disk": "vda", "size": "12G"}, state) == Use(disk_gib=2.0)
    assert refusal(vm, set_adds(vm, {"vcpus": 6}, state), state) == "acme: 2 of 4 vCPUs in use, 4 asked"
    assert refusal(vm, resize_adds(vm, {"disk": "vda", "size": "+5G"}, state), state) == (
        "acme: 10 of 12 GiB of disk in use, 5 asked"
    )
