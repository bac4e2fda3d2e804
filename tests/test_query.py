"""The filter grammar (vimtui.core.fleet.filter) on a small hand-built fleet, plus properties on random
text and VMs.

The fleet below is chosen so that each term splits it differently, and so that every kind of unknown value
(no rates, a rate missing, no details, no vcpus, an unseen state change) appears at least once.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.factories import domain_details
from vimtui.core.fleet.filter import Query, QueryError, describe, fields, parse_query
from vimtui.core.model import DOMAIN_STATES, FleetState, HostState, HostStatus, VmState
from vimtui.core.poll.domxml import DomainDetails
from vimtui.core.poll.stats import VmRates

NOW = 1_000_000.0
KIB, MIB, GIB = 1024.0, 1024.0**2, 1024.0**3


def rates(
    cpu: float | None = None,
    mem: float | None = None,
    rd: float | None = None,
    wr: float | None = None,
    rx: float | None = None,
    tx: float | None = None,
) -> VmRates:
    return VmRates(
        cpu_pct=cpu,
        cpu_host_pct=None,
        mem_used_kib=None,
        mem_pct=mem,
        disk_rd_bps=rd,
        disk_wr_bps=wr,
        disk_rd_iops=None,
        disk_wr_iops=None,
        net_rx_bps=rx,
        net_tx_bps=tx,
    )


def details(
    name: str, tags: tuple[str, ...] = (), tenant: str | None = None, vcpus: int = 0
) -> DomainDetails:
    """(vcpus 0: the XML's count unknown too, so that a VM without vcpus stays unknown)"""
    return domain_details(name, uuid="u-" + name, tags=tags, tenant=tenant, vcpus=vcpus)


def vm(
    name: str,
    host: str = "kvm01",
    state: str = "running",
    *,
    vcpus: int | None = 1,
    mem_max_kib: int | None = 1024 * 1024,
    r: VmRates | None = None,
    tags: tuple[str, ...] | None = None,
    tenant: str | None = None,
    ips: tuple[str, ...] = (),
    stale: bool = False,
    since: float = NOW - 60,
    uuid: str | None = None,
) -> VmState:
    return VmState(
        uuid=uuid or "u-" + name,
        name=name,
        host=host,
        state=state,
        reason=1,
        vcpus=vcpus,
        mem_max_kib=mem_max_kib,
        mem_current_kib=mem_max_kib,
        sample=None,
        rates=r,
        details=None if tags is None and tenant is None else details(name, tags or (), tenant, vcpus or 0),
        ips=ips,
        stale=stale,
        state_since=since,
    )


FLEET = (
    vm(
        "web01",
        "kvm01",
        vcpus=2,
        mem_max_kib=2 * 1024 * 1024,
        r=rates(cpu=75.0, mem=40.0, rd=8 * MIB, wr=4 * MIB, rx=1 * KIB, tx=1 * KIB),
        tags=("prod", "Frontend"),
        tenant="Acme",
        ips=("10.0.0.11", "FE80::1"),
        since=NOW - 7200,
    ),
    vm(
        "db01",
        "kvm02",
        vcpus=8,
        mem_max_kib=16 * 1024 * 1024,
        r=rates(cpu=20.0, mem=90.0, rd=50 * MIB, wr=0.0),  # no NIC rates: net unknown
        tags=("prod", "db"),
        tenant="globex",
        ips=("10.0.1.5",),
        since=NOW - 600,
    ),
    vm("cache01", "KVM10", "paused", vcpus=1, mem_max_kib=512 * 1024, since=NOW - 100),
    vm("my vm", "lab", "shutoff", vcpus=None, mem_max_kib=None, tags=("Web-Tier",), stale=True),
    # running, but its state change was never seen (uptime unknown), no CPU rate, half a disk rate
    vm("old01", "kvm01", r=rates(mem=10.0, rd=1.0, rx=0.0, tx=0.0), since=0.0),
)
GROUPS = MappingProxyType({"kvm01": "dc1/rack1", "kvm02": "dc1/rack2", "KVM10": "dc10", "lab": ""})
MARKED = frozenset({"kvm02/u-db01", "lab/u-my vm"})


def names(text: str) -> list[str]:
    return [v.name for v in parse_query(text).filter(FLEET, now=NOW, groups=GROUPS, marked=MARKED)]


# ---------------------------------------------------------------------------------------------- matching

MATCHES = [
    # plain text: name, host, any IP, any tag; case-insensitive
    ("web", ["web01", "my vm"]),  # name; tag Web-Tier
    ("WEB01", ["web01"]),
    ("kvm0", ["web01", "db01", "old01"]),  # host substring
    ("kvm1", ["cache01"]),  # host KVM10, case-insensitive
    ("10.0.1", ["db01"]),  # IP substring
    ("fe80:", ["web01"]),  # IPv6, case-insensitive, digits first so not a field
    ("front", ["web01"]),  # tag substring
    ("tier", ["my vm"]),
    ("nothing-like-this", []),
    # name: substring, or glob with * ? [
    ("name:01", ["web01", "db01", "cache01", "old01"]),
    ("name:B0", ["web01", "db01"]),
    ("name:*01", ["web01", "db01", "cache01", "old01"]),
    ("name:w*", ["web01"]),
    ("name:web", ["web01"]),  # substring: my vm's tag does not count for name:
    ("name:?b01", ["db01"]),
    ("name:[dw]*", ["web01", "db01"]),
    ("name:web0", ["web01"]),
    ("name:eb0*", []),  # a glob matches the whole name
    ('name:"my vm"', ["my vm"]),
    ('name:"y v"', ["my vm"]),
    ("n:db", ["db01"]),
    ("N:db", ["db01"]),
    ("NAME:db", ["db01"]),
    # host: exact, or glob; case-insensitive
    ("host:kvm01", ["web01", "old01"]),
    ("host:kvm0", []),  # exact, not a substring
    ("host:kvm10", ["cache01"]),
    ("host:kvm*", ["web01", "db01", "cache01", "old01"]),
    ("host:kvm0?", ["web01", "db01", "old01"]),
    ("h:lab", ["my vm"]),
    ("H:LAB", ["my vm"]),
    # state: exact or prefix
    ("state:running", ["web01", "db01", "old01"]),
    ("state:run", ["web01", "db01", "old01"]),
    ("state:r", ["web01", "db01", "old01"]),
    ("state:p", ["cache01"]),  # paused (pmsuspended: none)
    ("state:shut", ["my vm"]),
    ("state:shutdown", []),
    ("s:PAUSED", ["cache01"]),
    # tag: exact, case-insensitive
    ("tag:prod", ["web01", "db01"]),
    ("tag:frontend", ["web01"]),
    ("tag:front", []),  # not a substring
    ("t:web-tier", ["my vm"]),
    # ip: prefix
    ("ip:10.0.", ["web01", "db01"]),
    ("ip:10.0.0", ["web01"]),
    ("ip:0.0", []),  # not a substring
    ("ip:fe80", ["web01"]),
    # tenant: exact, case-insensitive
    ("tenant:acme", ["web01"]),
    ("tenant:ACME", ["web01"]),
    ("tenant:acm", []),
    ("tenant:globex", ["db01"]),
    # group: the host's group or one above it (path components)
    ("group:dc1", ["web01", "db01", "old01"]),
    ("group:dc1/", ["web01", "db01", "old01"]),
    ("group:dc1/rack2", ["db01"]),
    ("group:DC1/RACK1", ["web01", "old01"]),
    ("group:dc10", ["cache01"]),
    ("group:dc", []),
    ("group:rack1", []),
    # is:
    ("is:running", ["web01", "db01", "old01"]),
    ("is:stale", ["my vm"]),
    ("is:marked", ["db01", "my vm"]),
    ("is:paused", ["cache01"]),
    ("IS:Stale", ["my vm"]),
    # numbers: cpu (unknown for cache01, my vm (no rates) and old01 (no cpu rate))
    ("cpu>50", ["web01"]),
    ("cpu>75", []),
    ("cpu>=75", ["web01"]),
    ("cpu<50", ["db01"]),
    ("cpu<=20", ["db01"]),
    ("cpu=20", ["db01"]),
    ("cpu!=20", ["web01"]),
    ("cpu>=0", ["web01", "db01"]),
    ("cpu>19.5", ["web01", "db01"]),
    ("cpu>50%", ["web01"]),
    ("CPU>50", ["web01"]),
    # mem (%)
    ("mem>80", ["db01"]),
    ("mem<50", ["web01", "old01"]),
    ("mem>=10", ["web01", "db01", "old01"]),
    # vcpus (unknown for my vm)
    ("vcpus=1", ["cache01", "old01"]),
    ("vcpus>1", ["web01", "db01"]),
    ("vcpus!=2", ["db01", "cache01", "old01"]),
    ("vcpus<=8", ["web01", "db01", "cache01", "old01"]),
    # memory: MiB, or with a suffix
    ("memory=2048", ["web01"]),
    ("memory>=2048", ["web01", "db01"]),
    ("memory<1024", ["cache01"]),
    ("memory=1024", ["old01"]),
    ("memory>=2G", ["web01", "db01"]),
    ("memory>2G", ["db01"]),
    ("memory=16GiB", ["db01"]),
    ("memory=524288K", ["cache01"]),
    ("memory<0.5g", []),
    ("memory=536870912b", ["cache01"]),  # bytes
    # disk: rd + wr in bytes/s (unknown when either is: old01)
    ("disk>10M", ["web01", "db01"]),
    ("disk=12M", ["web01"]),
    ("disk=12MiB", ["web01"]),
    ("disk>12m", ["db01"]),
    ("disk>49M", ["db01"]),
    ("disk>1G", []),
    ("disk<1G", ["web01", "db01"]),
    ("disk>12288K", ["db01"]),
    ("disk>=12582912", ["web01", "db01"]),
    ("disk<1", []),  # old01's disk is unknown, not 1 byte/s
    # net: rx + tx (unknown for db01)
    ("net=2K", ["web01"]),
    ("net=2048", ["web01"]),
    ("net<1K", ["old01"]),
    ("net>=0", ["web01", "old01"]),
    ("net!=0", ["web01"]),
    ("net>1kb", ["web01"]),
    # uptime: running VMs whose state change was seen (not old01)
    ("uptime>1h", ["web01"]),
    ("uptime>=2h", ["web01"]),
    ("uptime>2h", []),
    ("uptime<1h", ["db01"]),
    ("uptime=600", ["db01"]),
    ("uptime=10m", ["db01"]),
    ("uptime>1h59m59s", ["web01"]),
    ("uptime<1d", ["web01", "db01"]),
    ("uptime<1w", ["web01", "db01"]),
    ("uptime<0.012w", ["web01", "db01"]),  # 7257.6 s
    ("uptime>0.2H", ["web01"]),
    ("uptime>0s", ["web01", "db01"]),  # never cache01 (paused) nor my vm (shutoff)
    # negation
    ("!web", ["db01", "cache01", "old01"]),
    ("!state:running", ["cache01", "my vm"]),
    ("!h:kvm01", ["db01", "cache01", "my vm"]),
    ("!cpu>50", ["db01", "cache01", "my vm", "old01"]),  # unknown cpu: !cpu>50 matches
    ("!vcpus=2", ["db01", "cache01", "my vm", "old01"]),  # unlike vcpus!=2, includes unknown (my vm)
    ("!uptime>0", ["cache01", "my vm", "old01"]),
    ("!is:marked", ["web01", "cache01", "old01"]),
    ("!tag:prod", ["cache01", "my vm", "old01"]),
    ('!"my vm"', ["web01", "db01", "cache01", "old01"]),
    ('!name:"my vm"', ["web01", "db01", "cache01", "old01"]),
    # quoting
    ('"my vm"', ["my vm"]),
    ('"y v"', ["my vm"]),
    ('my" "vm', ["my vm"]),  # quoted and bare pieces join into one term
    ("my vm", ["my vm"]),  # two terms: "vm" alone also matches the kvm hosts
    ("vm", ["web01", "db01", "cache01", "my vm", "old01"]),
    ('"state:running"', []),  # quoted: plain text, not a field
    ('"kvm01"', ["web01", "old01"]),
    ('h:"kvm01"', ["web01", "old01"]),
    # AND of terms, whitespace of any kind
    ("prod cpu>50", ["web01"]),
    ("tag:prod !name:web", ["db01"]),
    ("  h:kvm01\t\tstate:run  mem<20 ", ["old01"]),
    ("is:running !is:marked cpu<100", ["web01"]),
    ("", ["web01", "db01", "cache01", "my vm", "old01"]),
    ("   ", ["web01", "db01", "cache01", "my vm", "old01"]),
]


@pytest.mark.parametrize(("text", "expected"), MATCHES, ids=[t or "<empty>" for t, _ in MATCHES])
def test_query_selects_exactly_the_expected_vms(text: str, expected: list[str]) -> None:
    assert names(text) == expected
    q = parse_query(text)
    # matches() agrees with filter(), one VM at a time
    one_by_one = [v.name for v in FLEET if q.matches(v, now=NOW, groups=GROUPS, marked=MARKED)]
    assert one_by_one == expected


def test_unquoted_words_are_separate_terms_and_quoted_ones_one() -> None:
    assert names("vm my") == ["my vm"]
    assert names('"vm my"') == []
    assert len(parse_query("vm my").terms) == 2 and len(parse_query('"vm my"').terms) == 1


def test_uptime_counts_from_the_now_given_at_match_time() -> None:
    q = parse_query("uptime>1h")
    db01 = FLEET[1]  # running since NOW - 600
    assert not q.matches(db01, now=NOW)
    assert q.matches(db01, now=NOW + 3600)


def test_marked_and_groups_default_to_nothing_and_accept_any_collection() -> None:
    db01 = FLEET[1]
    assert not parse_query("is:marked").matches(db01, now=NOW)
    assert not parse_query("group:dc1").matches(db01, now=NOW)
    assert parse_query("is:marked").filter(FLEET, now=NOW, marked=["kvm02/u-db01"]) == [db01]
    assert parse_query("is:marked").matches(db01, now=NOW, marked=("kvm02/u-db01",))
    assert parse_query("!is:marked").filter(FLEET, now=NOW, marked=("kvm02/u-db01",)) == [
        v for v in FLEET if v is not db01
    ]


def test_filter_keeps_the_input_order_and_takes_any_iterable() -> None:
    q = parse_query("prod")
    assert q.filter(reversed(FLEET), now=NOW) == [FLEET[1], FLEET[0]]
    assert q.filter(iter(FLEET), now=NOW) == [FLEET[0], FLEET[1]]


def test_filter_fleet_uses_the_snapshots_time_and_host_groups() -> None:
    def host(name: str, group: str) -> HostState:
        return HostState(name, group, name, "qemu:///system", "ssh", False, HostStatus.UP, "", 0.0)

    fleet = FleetState(
        version=1,
        time=NOW + 3600,
        hosts=(host("kvm01", "dc1/rack1"), host("kvm02", "dc2")),
        vms=MappingProxyType({v.key: v for v in FLEET}),
    )
    assert [v.name for v in parse_query("group:dc1").filter_fleet(fleet)] == ["web01", "old01"]
    # at fleet.time db01 has run 4200 s
    assert [v.name for v in parse_query("uptime>1h").filter_fleet(fleet)] == ["web01", "db01"]
    assert [v.name for v in parse_query("is:marked").filter_fleet(fleet, marked={"kvm01/u-old01"})] == [
        "old01"
    ]


# ---------------------------------------------------------------------------------------------- the Query


def test_an_empty_query_is_falsy_and_a_non_empty_one_is_not() -> None:
    assert not parse_query("") and not parse_query(" \t ") and not Query()
    assert parse_query("web")
    assert parse_query("").terms == () and parse_query("").text == ""


def test_terms_carry_field_op_value_negation_and_column() -> None:
    q = parse_query(' h:kvm01  !cpu>=50 "my vm"  !n:"a b"')
    assert [(t.field, t.op, t.value, t.negated, t.column) for t in q.terms] == [
        ("host", ":", "kvm01", False, 2),
        ("cpu", ">=", "50", True, 11),
        ("", "", "my vm", False, 20),
        ("name", ":", "a b", True, 29),
    ]


NORMAL = [
    ("web", "web"),
    ("  web   db  ", "web db"),
    ("H:kvm01 S:run T:prod N:x", "host:kvm01 state:run tag:prod name:x"),
    ("CPU>50 Mem<=3 VCPUS!=2", "cpu>50 mem<=3 vcpus!=2"),
    ('"web"', "web"),
    ('name:"my vm"', 'name:"my vm"'),
    ('name:my" "vm', 'name:"my vm"'),
    ('"state:running"', '"state:running"'),
    ('"!web"', '"!web"'),
    ('!"!web"', '!"!web"'),
    ("!web", "!web"),
    ('!"a b"', '!"a b"'),
    ("name:!x", "name:!x"),
    ('cpu>"50"', "cpu>50"),
    ("fe80::1", '"fe80::1"'),
    ("ip:fe80::1", "ip:fe80::1"),
    ("disk>10M uptime>2h30m", "disk>10M uptime>2h30m"),
]


@pytest.mark.parametrize(("text", "normal"), NORMAL)
def test_text_is_the_normal_form_and_reads_back_as_the_same_query(text: str, normal: str) -> None:
    q = parse_query(text)
    assert q.text == normal and str(q) == normal
    again = parse_query(normal)
    assert again.terms == q.terms and again.text == normal


SUMMARIES = [
    ("host:kvm01 state:running cpu>50", "host=kvm01 · state=running · cpu>50%"),
    ("h:kvm0* s:run", "host=kvm0* · state=running"),
    ("state:shut", "state=shut*"),
    ("!state:paused", "not state=paused"),
    ("web", '"web"'),
    ('"my vm"', '"my vm"'),
    ("name:web name:web*", "name~web · name=web*"),
    ("tag:prod tenant:acme ip:10.0. group:dc1/", "tag=prod · tenant=acme · ip=10.0.* · group=dc1"),
    ("is:stale is:marked is:running", "stale · marked · running"),
    ("cpu>=50 mem<=80% vcpus!=2", "cpu≥50% · mem≤80% · vcpus≠2"),
    ("memory>=4096 memory<8G", "memory≥4096 MiB · memory<8G"),
    ("disk>10M net<1K uptime>2h", "disk>10M/s · net<1K/s · uptime>2h"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "summary"), SUMMARIES)
def test_describe_gives_a_short_summary(text: str, summary: str) -> None:
    assert describe(parse_query(text)) == summary


# ---------------------------------------------------------------------------------------------- errors

ERRORS = [
    # (text, column, term, words the message must contain)
    ("foo:bar", 1, "foo:bar", "unknown field 'foo'"),
    ("web  bogus>3", 6, "bogus>3", "unknown field 'bogus'"),
    ("x:1", 1, "x:1", "unknown field 'x'"),
    ("cpu>abc", 1, "cpu>abc", "a number expected after cpu>"),
    ("web cpu>", 5, "cpu>", "a number expected after cpu>"),
    ("mem<=5x", 1, "mem<=5x", "a number expected"),
    ("vcpus=2K", 1, "vcpus=2K", "a number expected"),  # no suffixes on a count
    ("disk>10X", 1, "disk>10X", "a number expected"),
    ("disk>10s", 1, "disk>10s", "a number expected"),
    ("net>-1", 1, "net>-1", "a number expected"),
    ("uptime>2x", 1, "uptime>2x", "a number expected"),
    ("uptime>h", 1, "uptime>h", "a number expected"),
    ("cpu>٣", 1, "cpu>٣", "a number expected"),  # ASCII digits only
    ("cpu:50", 1, "cpu:50", "cpu compares with"),
    ("memory:4G", 1, "memory:4G", "memory compares with"),
    ("name>3", 1, "name>3", 'name takes ":"'),
    ("host=kvm01", 1, "host=kvm01", 'host takes ":"'),
    ("s!=running", 1, "s!=running", 'state takes ":"'),
    ("name:", 1, "name:", "a value expected after name:"),
    ('tag:""', 1, 'tag:""', "a value expected after tag:"),
    ("group://", 1, "group://", "a group path expected"),
    ("state:runx", 1, "state:runx", "no state starts with 'runx'"),
    ("is:foo", 1, "is:foo", "is: takes running, stale, marked"),
    ('"abc', 1, '"abc', "unbalanced quote"),
    ('web name:"my vm', 10, 'name:"my vm', "unbalanced quote"),  # the column of the quote
    ('a"b"c"d', 6, 'a"b"c"d', "unbalanced quote"),
    ("!", 1, "!", "! must be followed by a term"),
    ("web !", 5, "!", "! must be followed by a term"),
    ("!!web", 1, "!!web", "one ! is enough"),
    ('""', 1, '""', "empty quotes"),
]


@pytest.mark.parametrize(("text", "column", "term", "words"), ERRORS)
def test_bad_input_raises_a_query_error_naming_the_term_and_column(
    text: str, column: int, term: str, words: str
) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.column, err.term) == (column, term)
    assert words in err.reason
    assert str(err) == f"{term!r} at column {column}: {err.reason}"


def test_a_duration_with_a_space_is_two_terms() -> None:
    q = parse_query("uptime>2h 3m")
    assert [(t.field, t.value) for t in q.terms] == [("uptime", "2h"), ("", "3m")]


def test_the_unknown_field_message_lists_the_fields() -> None:
    with pytest.raises(QueryError, match="fields are name, host, state") as info:
        parse_query("colour:red")
    assert all(f in info.value.reason for f in fields())


# ---------------------------------------------------------------------------------------------- properties


@settings(max_examples=500)
@given(
    st.text(alphabet=st.sampled_from(list('ab: !"<>=*?[]0123456789.KMhsnamecpuisdtg\t')) | st.characters())
)
def test_parse_raises_only_query_errors_and_its_normal_form_is_stable(text: str) -> None:
    try:
        q = parse_query(text)
    except QueryError as e:
        assert 1 <= e.column <= len(text) and e.term and e.term in text
        return
    again = parse_query(q.text)
    assert again.terms == q.terms and again.text == q.text
    for v in FLEET:  # the same query both ways: same answers
        a = q.matches(v, now=NOW, groups=GROUPS, marked=MARKED)
        assert a == again.matches(v, now=NOW, groups=GROUPS, marked=MARKED)


def optional(s: st.SearchStrategy[float]) -> st.SearchStrategy[float | None]:
    return st.none() | s


rate = optional(st.floats(0, 1e10, allow_nan=False))
pct = optional(st.floats(0, 100, allow_nan=False))
word = st.text(alphabet="abkvm01-.", min_size=1, max_size=6)

random_vms = st.builds(
    vm,
    name=word,
    host=st.sampled_from(["kvm01", "kvm02", "KVM10", "lab"]),
    state=st.sampled_from(DOMAIN_STATES),
    vcpus=st.none() | st.integers(1, 16),
    mem_max_kib=st.none() | st.integers(0, 64 * 1024 * 1024),
    r=st.none() | st.builds(rates, cpu=pct, mem=pct, rd=rate, wr=rate, rx=rate, tx=rate),
    tags=st.none() | st.lists(word, max_size=3).map(tuple),
    tenant=st.none() | word,
    ips=st.lists(st.sampled_from(["10.0.0.1", "10.0.1.7", "fe80::1", "192.168.1.10"]), max_size=2).map(tuple),
    stale=st.booleans(),
    since=st.sampled_from([0.0, NOW - 30, NOW - 5000, NOW - 200_000]),
)

number = st.sampled_from(["0", "1", "2", "4", "50", "99.5", "100", "600"])
ops = st.sampled_from([">", "<", ">=", "<=", "=", "!="])
numeric_parts = st.one_of(
    st.tuples(st.sampled_from(["cpu", "mem"]), ops, number, st.sampled_from(["", "%"])),
    st.tuples(st.just("vcpus"), ops, number, st.just("")),
    st.tuples(st.sampled_from(["memory", "disk", "net"]), ops, number, st.sampled_from(["", "K", "M", "G"])),
    st.tuples(st.just("uptime"), ops, number, st.sampled_from(["", "s", "m", "h", "d"])),
)
numeric_terms = numeric_parts.map("".join)


def known(v: VmState, field: str) -> bool:
    """Whether `field` has a value for `v`, worked out here from the VM rather than by the module."""
    r = v.rates
    if field == "vcpus":
        return v.vcpus is not None
    if field == "memory":
        return v.mem_max_kib is not None
    if field == "uptime":
        return v.state == "running" and v.state_since > 0
    if r is None:
        return False
    return {
        "cpu": r.cpu_pct is not None,
        "mem": r.mem_pct is not None,
        "disk": r.disk_rd_bps is not None and r.disk_wr_bps is not None,
        "net": r.net_rx_bps is not None and r.net_tx_bps is not None,
    }[field]


text_terms = st.one_of(
    word,
    st.builds("{}:{}".format, st.sampled_from(["name", "n", "host", "h", "tag", "t", "tenant", "ip"]), word),
    st.builds("name:{}*".format, word),
    st.builds("h:{}?".format, word),
    st.builds("state:{}".format, st.sampled_from(["run", "running", "p", "paused", "shut", "shutoff", "c"])),
    st.builds("group:{}".format, st.sampled_from(["dc1", "dc1/rack1", "dc10", "dc2"])),
    st.sampled_from(["is:running", "is:stale", "is:marked", "is:paused"]),
)


@settings(max_examples=400)
@given(random_vms, text_terms | numeric_terms, st.floats(NOW - 10, NOW + 10_000))
def test_a_negated_term_matches_exactly_when_the_term_does_not(v: VmState, term: str, now: float) -> None:
    marked = {v.key} if v.stale else set()  # marked or not, depending on the VM
    yes = parse_query(term).matches(v, now=now, groups=GROUPS, marked=marked)
    no = parse_query("!" + term).matches(v, now=now, groups=GROUPS, marked=marked)
    assert yes is not no
    assert parse_query("!" + term).filter([v], now=now, groups=GROUPS, marked=marked) == ([] if yes else [v])


@settings(max_examples=300)
@given(random_vms, numeric_parts)
def test_an_unknown_value_fails_every_comparison_and_its_negation_matches(
    v: VmState, parts: tuple[str, str, str, str]
) -> None:
    assume(not known(v, parts[0]))
    term = "".join(parts)
    assert not parse_query(term).matches(v, now=NOW)
    assert parse_query("!" + term).matches(v, now=NOW)


@settings(max_examples=300)
@given(st.lists(random_vms, max_size=8), st.lists(text_terms | numeric_terms, min_size=1, max_size=3))
def test_a_query_is_the_and_of_its_terms(vms: list[VmState], terms: list[str]) -> None:
    q = parse_query(" ".join(terms))
    each = [parse_query(t) for t in terms]
    expected = [v for v in vms if all(t.matches(v, now=NOW, groups=GROUPS) for t in each)]
    assert q.filter(vms, now=NOW, groups=GROUPS) == expected
