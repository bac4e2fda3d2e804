"""The fleet's metrics for Prometheus: the OpenMetrics 1.0 or classic 0.0.4 text of a FleetState (served by
server.py, `vimtui export`).

What is exported, and how:

- Every metric the registry (vimtui.core.metrics) declares with an exporter `Series`, by its declaration:
  name, help, type, unit, and the divisor to the base unit Prometheus wants: bytes, seconds, and ratios
  from 0 to 1 where the screen shows a percentage (`vimtui_vm_cpu_usage_ratio` is the screen's CPU % over
  100). Counters are named `..._total` (OpenMetrics: the family without the suffix, its sample with it).
  Beside them, three labelled families of this module: a VM's state, a host's status, a host's VMs by
  state (an enum-like gauge: one series per value, 1 for the current one, or a count).
- Labels: every VM series has host, vm, uuid, group (its host's group) and tenant (`tenant_of(vm)`: the
  tenant in the domain's vimtui metadata, "" when it has none or its details have not arrived yet); every
  host series has host and group.
- Unknown is left out, never written as 0 (nor is a value that is not finite). While a host is not
  answering, its VMs keep their last known state (with `vimtui_vm_stale` 1) but none of their
  measurements, and the host keeps only what does not go out of date: the series declared `lasting`.
- The rates are those the screen and `vimtui stats` show (over the last poll interval); for Prometheus'
  own `rate()` use the counters.

Rendering is one pass over the hosts and one over the VMs, then one list of lines per family (the formats
want every sample of a family together).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from vimtui.core import metrics
from vimtui.core.model import DOMAIN_STATES, FleetState, VmState

OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

TenantOf = Callable[[VmState], str]


def vm_tenant(vm: VmState) -> str:
    """The VM's tenant from its domain metadata (DomainDetails.tenant); "" when it has none (yet)."""
    d = vm.details
    return (d.tenant or "") if d is not None else ""


# ---------------------------------------------------------------------------------------------- families


class Family(NamedTuple):
    name: str
    """The family's name; a counter's samples add `_total` to it."""
    kind: str
    """gauge or counter"""
    unit: str
    """OpenMetrics UNIT (the name ends with it), or ""."""
    help: str


HOST_STATUS = Family(
    "vimtui_host_status",
    "gauge",
    "",
    "The host's connection status as vimtui shows it (connecting, up, degraded, unreachable, "
    "auth-failed, hostkey-mismatch, error): 1, labelled with the current one.",
)
HOST_VMS = Family(
    "vimtui_host_vms",
    "gauge",
    "",
    "VMs on the host by libvirt state (the last known while the host is not answering).",
)
VM_STATE = Family(
    "vimtui_vm_state",
    "gauge",
    "",
    "The VM's state by libvirt's name (running, paused, shutoff ...): 1, labelled with the current one; "
    "the last known while its host is not answering.",
)


def _family(m: metrics.Metric) -> Family:
    s = m.export
    assert s is not None
    return Family(s.name, s.kind, s.unit, s.help)


def host_families() -> tuple[Family, ...]:
    """The host families in the order they are written: the labelled ones, then the registry's."""
    return (HOST_STATUS, HOST_VMS, *(_family(m) for m in metrics.series("host")))


def vm_families() -> tuple[Family, ...]:
    return (VM_STATE, *(_family(m) for m in metrics.series("vm")))


def families() -> tuple[Family, ...]:
    """Every family, in the order `render` writes them."""
    return host_families() + vm_families()


# ---------------------------------------------------------------------------------------------- text


def escape(value: str) -> str:
    """A label value as both formats want it: backslash, double quote and newline escaped."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


_Num = int | float | None


def _header(f: Family, openmetrics: bool) -> str:
    if openmetrics:
        unit = f"# UNIT {f.name} {f.unit}\n" if f.unit else ""
        return f"# HELP {f.name} {f.help}\n# TYPE {f.name} {f.kind}\n{unit}"
    # the classic format names a counter's family as its samples are named
    name = f.name + "_total" if f.kind == "counter" else f.name
    return f"# HELP {name} {f.help}\n# TYPE {name} {f.kind}\n"


class _Reader:
    """How one subject kind's series are read: each metric's value function and divisor, and which of
    them are written while the subject is out of date."""

    def __init__(self, declared: Sequence[metrics.Metric]) -> None:
        self.all = [(m.getter, m.export.divide if m.export else 1.0) for m in declared]
        self.lasting = [
            (i, m.getter, d)
            for i, (m, (_, d)) in enumerate(zip(declared, self.all, strict=True))
            if m.export and m.export.lasting
        ]
        self.n = len(declared)

    def row(self, subject: Any, now: float, current: bool) -> list[_Num]:
        if current:
            return [_scaled(get(subject, now), d) for get, d in self.all]
        row: list[_Num] = [None] * self.n
        for i, get, d in self.lasting:
            row[i] = _scaled(get(subject, now), d)
        return row


def _scaled(v: float | None, divide: float) -> _Num:
    """A value in the series' base unit; None for unknown and for what is not finite."""
    if v is None or v - v != 0:  # v - v != 0: NaN or infinite
        return None
    return v if divide == 1.0 else v / divide


def render(state: FleetState, *, openmetrics: bool, tenant_of: TenantOf = vm_tenant) -> bytes:
    """The exposition of `state`: OpenMetrics 1.0 (ends with `# EOF`) or the classic text format 0.0.4.

    Every family is written, with its HELP and TYPE (and UNIT in OpenMetrics), even one with no sample;
    series in the state's order (hosts, then VMs by host and name)."""
    hosts = state.hosts
    now = state.time
    group_of = {h.name: h.group for h in hosts}
    vms_by_state: dict[str, dict[str, int]] = {h.name: dict.fromkeys(DOMAIN_STATES, 0) for h in hosts}
    vm_declared = metrics.series("vm")
    host_declared = metrics.series("host")

    # per VM: its labels and one value per series (None: unknown, left out)
    vm_reader = _Reader(vm_declared)
    vm_rows: list[tuple[str, list[_Num]]] = []
    vm_states: list[str] = []
    for vm in state.vms.values():
        counts = vms_by_state.get(vm.host)
        if counts is not None:
            counts[vm.state] = counts.get(vm.state, 0) + 1
        labels = (
            f'host="{escape(vm.host)}",vm="{escape(vm.name)}",uuid="{escape(vm.uuid)}",'
            f'group="{escape(group_of.get(vm.host, ""))}",tenant="{escape(tenant_of(vm))}"'
        )
        vm_rows.append((labels, vm_reader.row(vm, now, not vm.stale)))
        vm_states.append(escape(vm.state))

    host_reader = _Reader(host_declared)
    host_rows: list[tuple[str, list[_Num]]] = []
    host_extra: list[tuple[str, dict[str, int]]] = []
    for h in hosts:
        labels = f'host="{escape(h.name)}",group="{escape(h.group)}"'
        host_rows.append((labels, host_reader.row(h, now, h.status.healthy)))
        host_extra.append((escape(str(h.status)), vms_by_state[h.name]))

    out: list[str] = []
    add = out.append
    add(_header(HOST_STATUS, openmetrics))
    for (labels, _), (status, _) in zip(host_rows, host_extra, strict=True):
        add(f'{HOST_STATUS.name}{{{labels},status="{status}"}} 1\n')
    add(_header(HOST_VMS, openmetrics))
    for (labels, _), (_, counts) in zip(host_rows, host_extra, strict=True):
        for st, n in counts.items():
            add(f'{HOST_VMS.name}{{{labels},state="{escape(st)}"}} {n}\n')
    _write_series(out, host_declared, host_rows, openmetrics)
    add(_header(VM_STATE, openmetrics))
    out += [
        f'{VM_STATE.name}{{{labels},state="{st}"}} 1\n'
        for (labels, _), st in zip(vm_rows, vm_states, strict=True)
    ]
    _write_series(out, vm_declared, vm_rows, openmetrics)
    if openmetrics:
        add("# EOF\n")
    # a name that is not valid UTF-8 (a lone surrogate) must not cost the whole scrape
    return "".join(out).encode("utf-8", "replace")


def _write_series(
    out: list[str], declared: Sequence[metrics.Metric], rows: list[tuple[str, list[_Num]]], openmetrics: bool
) -> None:
    for i, m in enumerate(declared):
        f = _family(m)
        out.append(_header(f, openmetrics))
        name = f.name + "_total" if f.kind == "counter" else f.name
        out += [f"{name}{{{labels}}} {row[i]}\n" for labels, row in rows if row[i] is not None]
