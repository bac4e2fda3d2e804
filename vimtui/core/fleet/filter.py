"""The filter grammar shared by the VM table's `/` filter and the CLI (k9s-style).

A query is whitespace-separated terms that must all match::

    web                    name, host, an IP or a tag contains "web" (case-insensitive)
    host:kvm0*  h:kvm01    exact host name, or a glob
    name:web  n:"my vm"    substring of the name, or a glob when the value has * ? or [
    state:run  s:shutoff   a state name or a prefix of one
    tag:prod  t:prod       exact tag
    ip:10.0.               IP prefix
    tenant:acme            exact tenant
    group:dc1              the host's group or a group above it (dc1 matches dc1 and dc1/rack3)
    is:running is:stale is:marked is:template  (and is:<state>; !is:template hides the templates)
    cpu>50 mem>=80 vcpus=4 memory>=4G disk>10M net<1K uptime>2h30m  (also <, <=, =, !=)
                           the metrics declared as filter fields (vimtui.core.metrics), by unit:
                           % a percentage, B/s with K M G, B in MiB or with K M G, s with s m h d w
    !term                  negation

Field names are case-insensitive; double quotes group a value with spaces. Every term is compiled once,
at parse time, into a small closure: the table filters its whole fleet again on each keystroke.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from vimtui.core import metrics
from vimtui.core.fleet.filter_numbers import NUMBER_PARSERS, SUMMARY_UNITS, compare, plain_number
from vimtui.core.model import DOMAIN_STATES, FleetState, VmState

__all__ = ["TEXT_FIELDS", "Query", "QueryError", "Term", "describe", "fields", "parse_query"]

_NO_GROUPS: Mapping[str, str] = MappingProxyType({})


class QueryError(ValueError):
    """A query that does not parse. `term` is the offending term (from its start to the end of the text for
    an unbalanced quote), `column` (1-based) where it starts, or where the unclosed quote is."""

    def __init__(self, reason: str, term: str, column: int) -> None:
        super().__init__(f"{term!r} at column {column}: {reason}")
        self.reason = reason
        self.term = term
        self.column = column


class _Context:
    """What a match needs beyond the VM itself, bound once per `matches`/`filter` call. A plain slotted
    class: a frozen dataclass costs a microsecond to build, which `matches` pays per VM."""

    __slots__ = ("now", "groups", "marked")

    def __init__(self, now: float, groups: Mapping[str, str], marked: Collection[str]) -> None:
        self.now = now
        self.groups = groups
        self.marked = marked


_Predicate = Callable[[VmState, _Context], bool]


@dataclass(frozen=True)
class Term:
    """One compiled term. `field` is "" for plain text; `op` is ":" for text fields and is:, else one of
    > < >= <= = !=. `value` is as typed, without the quotes."""

    field: str
    op: str
    value: str
    negated: bool
    column: int = dataclasses.field(compare=False)
    """Where the term starts in the text it was parsed from (1-based)."""
    predicate: _Predicate = dataclasses.field(compare=False, repr=False)
    """Whether the un-negated term holds for a VM, given the match-time context."""

    @property
    def text(self) -> str:
        """The term in normal form: canonical field name, quotes only where needed."""
        bang = "!" if self.negated else ""
        if not self.field:
            return f"{bang}{_quote(self.value, plain=True)}"
        return f"{bang}{self.field}{self.op}{_quote(self.value, plain=False)}"

    @property
    def summary(self) -> str:
        """Short human form for the filter bar, e.g. `host=kvm01` or `cpu>50%`."""
        text = _summary(self)
        return f"not {text}" if self.negated else text


@dataclass(frozen=True)
class Query:
    """A parsed query: all terms must match. An empty query (no terms) is falsy and matches every VM."""

    terms: tuple[Term, ...] = ()

    @property
    def text(self) -> str:
        """The query in normal form; parsing it gives the same query."""
        return " ".join(t.text for t in self.terms)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def __str__(self) -> str:
        return self.text

    def matches(
        self,
        vm: VmState,
        *,
        now: float,
        groups: Mapping[str, str] = _NO_GROUPS,
        marked: Collection[str] = (),
    ) -> bool:
        """Whether `vm` matches every term. `now` is the wall time uptime is measured to, `groups` maps a
        host name to its group path and `marked` holds the keys (host/uuid) of the marked VMs."""
        ctx = _Context(now, groups, marked)
        for term in self.terms:
            if term.predicate(vm, ctx) is term.negated:
                return False
        return True

    def filter(
        self,
        vms: Iterable[VmState],
        *,
        now: float,
        groups: Mapping[str, str] = _NO_GROUPS,
        marked: Collection[str] = (),
    ) -> list[VmState]:
        """The VMs that match, in their order. Narrows the list one term at a time, so later terms see
        fewer VMs."""
        if not isinstance(marked, set | frozenset):
            marked = frozenset(marked)
        ctx = _Context(now, groups, marked)
        out = list(vms)
        for term in self.terms:
            pred = term.predicate
            if term.negated:
                out = [vm for vm in out if not pred(vm, ctx)]
            else:
                out = [vm for vm in out if pred(vm, ctx)]
        return out

    def filter_fleet(self, fleet: FleetState, *, marked: Collection[str] = ()) -> list[VmState]:
        """`filter` over a fleet snapshot: its own time as `now`, its hosts' groups."""
        groups = {h.name: h.group for h in fleet.hosts}
        return self.filter(fleet.vms.values(), now=fleet.time, groups=groups, marked=marked)


def describe(query: Query) -> str:
    """A short human summary for the filter bar, e.g. `host=kvm01 · state=running · cpu>50%`."""
    return " · ".join(t.summary for t in query.terms)


# ---------------------------------------------------------------------------------------------- fields

TEXT_FIELDS = ("name", "host", "state", "tag", "ip", "tenant", "group", "is")


def fields() -> tuple[str, ...]:
    """Every field name, canonical spelling: the text fields, then the metrics' (the registry's)."""
    return TEXT_FIELDS + tuple(metrics.filter_fields())


_ALIASES = {"n": "name", "h": "host", "s": "state", "t": "tag"}
_STATES = (*DOMAIN_STATES, "unknown")
_IS_VALUES = ("running", "stale", "marked", "template", *(s for s in _STATES if s != "running"))
_GLOB_CHARS = frozenset("*?[")
_SPECIAL = frozenset(':<>=!"')
_FIELD_RE = re.compile(r"([A-Za-z]+)(>=|<=|!=|:|>|<|=)")


def _field_list() -> str:
    return ", ".join(fields())


# ---------------------------------------------------------------------------------------------- parsing


def parse_query(text: str) -> Query:
    """Parse `text` into a Query; raise QueryError naming the bad term and its column."""
    terms: list[Term] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        pieces: list[tuple[str, bool]] = []  # (text, quoted), concatenated into the term
        while i < n and not text[i].isspace():
            if text[i] == '"':
                close = text.find('"', i + 1)
                if close < 0:
                    raise QueryError('unbalanced quote: no closing "', text[start:], i + 1)
                pieces.append((text[i + 1 : close], True))
                i = close + 1
            else:
                j = i
                while j < n and not text[j].isspace() and text[j] != '"':
                    j += 1
                pieces.append((text[i:j], False))
                i = j
        terms.append(_term(text[start:i], pieces, start + 1))
    return Query(tuple(terms))


def _term(raw: str, pieces: list[tuple[str, bool]], column: int) -> Term:
    def fail(reason: str) -> QueryError:
        return QueryError(reason, raw, column)

    negated = False
    first, quoted = pieces[0]
    if not quoted and first.startswith("!"):
        negated = True
        first = first[1:]
        if first.startswith("!"):
            raise fail("one ! is enough (quote text that starts with !)")
        pieces = [(first, False), *pieces[1:]] if first else pieces[1:]
        if not pieces:
            raise fail("! must be followed by a term, e.g. !state:running")
        first, quoted = pieces[0]

    m = None if quoted else _FIELD_RE.match(first)
    if m is None:
        value = "".join(p for p, _ in pieces)
        if not value:
            raise fail('empty quotes ""')
        return Term("", "", value, negated, column, _plain(value))

    name, op = m.group(1).lower(), m.group(2)
    value = first[m.end() :] + "".join(p for p, _ in pieces[1:])
    canonical = _ALIASES.get(name, name)
    numeric = metrics.filter_fields().get(canonical)
    if canonical not in TEXT_FIELDS and numeric is None:
        raise fail(f"unknown field {name!r}; fields are {_field_list()} (quote text to search for it)")
    if numeric is None:
        if op != ":":
            raise fail(f'{canonical} takes ":" (e.g. {canonical}:value; negate with !{canonical}:value)')
        if not value:
            raise fail(f"a value expected after {canonical}:")
        pred = _TEXT_COMPILERS[canonical](value, fail)
    else:
        assert numeric.filter is not None
        example = numeric.filter.example
        if op == ":":
            raise fail(f"{canonical} compares with >, <, >=, <=, =, != (e.g. {example})")
        number = NUMBER_PARSERS.get(numeric.unit, plain_number)(value)
        if number is None:
            raise fail(f"a number expected after {canonical}{op} (e.g. {example})")
        pred = compare(_bounded(numeric) if op in (">", ">=") else numeric.getter, op, number)
    return Term(canonical, op, value, negated, column, pred)


def _bounded(m: metrics.Metric) -> metrics.Value:
    """The metric's value, else its lower bound (`at_least`), which settles a > or >= comparison."""
    low = metrics.get(m.at_least) if m.at_least else None
    if low is None:
        return m.getter
    get, least = m.getter, low.getter

    def value_or_least(vm: VmState, now: float) -> float | None:
        v = get(vm, now)
        return least(vm, now) if v is None else v

    return value_or_least


def _quote(value: str, *, plain: bool) -> str:
    """Quote `value` when it would not read back as itself: spaces, and for plain text anything that
    could be taken for a field, an operator or a negation."""
    if any(c.isspace() for c in value) or (plain and any(c in _SPECIAL for c in value)):
        return f'"{value}"'
    return value


# ---------------------------------------------------------------------------------------------- text terms

_Fail = Callable[[str], QueryError]


def _plain(value: str) -> _Predicate:
    needle = value.lower()

    def plain(vm: VmState, _ctx: _Context) -> bool:
        if needle in vm.name.lower() or needle in vm.host.lower():
            return True
        for ip in vm.ips:
            if needle in ip.lower():
                return True
        details = vm.details
        if details is not None:
            for tag in details.tags:
                if needle in tag.lower():
                    return True
        return False

    return plain


def _glob(value: str) -> Callable[[str], re.Match[str] | None]:
    return re.compile(fnmatch.translate(value), re.IGNORECASE).match


def _name(value: str, _fail: _Fail) -> _Predicate:
    if _GLOB_CHARS.intersection(value):
        match = _glob(value)
        return lambda vm, _ctx: match(vm.name) is not None
    needle = value.lower()
    return lambda vm, _ctx: needle in vm.name.lower()


def _host(value: str, _fail: _Fail) -> _Predicate:
    if _GLOB_CHARS.intersection(value):
        match = _glob(value)
        return lambda vm, _ctx: match(vm.host) is not None
    wanted = value.lower()
    return lambda vm, _ctx: vm.host.lower() == wanted


def _state(value: str, fail: _Fail) -> _Predicate:
    prefix = value.lower()
    if not any(s.startswith(prefix) for s in _STATES):
        raise fail(f"no state starts with {value!r}; states are {', '.join(_STATES)}")
    return lambda vm, _ctx: vm.state.lower().startswith(prefix)


def _tag(value: str, _fail: _Fail) -> _Predicate:
    wanted = value.lower()

    def tag(vm: VmState, _ctx: _Context) -> bool:
        details = vm.details
        if details is None:
            return False
        for t in details.tags:
            if t.lower() == wanted:
                return True
        return False

    return tag


def _ip(value: str, _fail: _Fail) -> _Predicate:
    prefix = value.lower()

    def ip(vm: VmState, _ctx: _Context) -> bool:
        for address in vm.ips:
            if address.lower().startswith(prefix):
                return True
        return False

    return ip


def _tenant(value: str, _fail: _Fail) -> _Predicate:
    wanted = value.lower()

    def tenant(vm: VmState, _ctx: _Context) -> bool:
        details = vm.details
        return details is not None and details.tenant is not None and details.tenant.lower() == wanted

    return tenant


def _group(value: str, fail: _Fail) -> _Predicate:
    path = value.strip("/").lower()
    if not path:
        raise fail("a group path expected after group:, e.g. group:dc1/rack3")
    below = path + "/"

    def group(vm: VmState, ctx: _Context) -> bool:
        g = ctx.groups.get(vm.host, "").lower()
        return g == path or g.startswith(below)

    return group


def _is(value: str, fail: _Fail) -> _Predicate:
    what = value.lower()
    if what == "stale":
        return lambda vm, _ctx: vm.stale
    if what == "marked":
        return lambda vm, ctx: vm.key in ctx.marked
    if what == "template":
        return lambda vm, _ctx: vm.details is not None and vm.details.template
    if what in _IS_VALUES:
        return lambda vm, _ctx: vm.state.lower() == what
    raise fail(f"is: takes {', '.join(_IS_VALUES)}")


_TEXT_COMPILERS: dict[str, Callable[[str, _Fail], _Predicate]] = {
    "name": _name,
    "host": _host,
    "state": _state,
    "tag": _tag,
    "ip": _ip,
    "tenant": _tenant,
    "group": _group,
    "is": _is,
}


# ---------------------------------------------------------------------------------------------- summary

_SYMBOLS = {">=": "≥", "<=": "≤", "!=": "≠"}


def _summary(term: Term) -> str:
    f, v = term.field, term.value
    if not f:
        return f'"{v}"'
    numeric = metrics.filter_fields().get(f)
    if numeric is not None:
        unit = SUMMARY_UNITS.get(numeric.unit, "")
        if numeric.unit == "B" and plain_number(v) is not None:
            unit = " MiB"
        elif v.endswith(unit):
            unit = ""
        return f"{f}{_SYMBOLS.get(term.op, term.op)}{v}{unit}"
    if f == "is":
        return v.lower()
    if f == "state":
        states = [s for s in _STATES if s.startswith(v.lower())]
        return f"state={states[0]}" if len(states) == 1 else f"state={v.lower()}*"
    if f == "name" and not _GLOB_CHARS.intersection(v):
        return f"name~{v}"
    if f == "ip":
        return f"ip={v}*"
    if f == "group":
        return f"group={v.strip('/')}"
    return f"{f}={v}"
