"""A lint run over the fleet: every host read at once, each on its own lane (`Fleet.ask`), then the pure
rules over all of them. A host that cannot answer is named, not linted. A tenant-scoped vimtui sees only its
tenant's VMs' findings."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

from vimtui.core.config.model import LintConfig
from vimtui.core.fleet.fleet import Fleet, QueryFailed
from vimtui.core.lint.facts import HostFacts, domain_facts, host_facts, persistent_domains
from vimtui.core.lint.rules import Finding, HostInput, lint


@dataclass(frozen=True, slots=True)
class LintResult:
    findings: tuple[Finding, ...]
    linted: tuple[str, ...]
    """The hosts whose facts were read."""
    failed: tuple[tuple[str, str], ...]
    """(host, why) for those that could not be read."""
    at: float


async def gather(
    fleet: Fleet, hosts: list[str] | None = None
) -> tuple[list[HostInput], list[tuple[str, str]]]:
    state = fleet.state
    wanted = [h for h in state.hosts if hosts is None or h.name in hosts]
    failed: list[tuple[str, str]] = []
    asked = []
    for h in wanted:
        if h.status.healthy:
            asked.append(h)
        else:
            failed.append((h.name, f"{h.status}: {h.message}" if h.message else str(h.status)))
    answers = await asyncio.gather(*(collect(fleet, h.name) for h in asked), return_exceptions=True)
    inputs = []
    for h, answer in zip(asked, answers, strict=True):
        if isinstance(answer, HostFacts):
            inputs.append(HostInput(h.name, h.group, answer))
        elif isinstance(answer, QueryFailed):
            failed.append((h.name, str(answer)))
        elif isinstance(answer, BaseException):
            failed.append((h.name, f"{type(answer).__name__}: {answer}"))
    return inputs, failed


async def collect(fleet: Fleet, host: str) -> HostFacts:
    """One host's facts through `Fleet.ask`: the host's own, then each domain's in a call of its own."""
    facts = await fleet.ask(host, host_facts)
    domains = []
    for uuid in await fleet.ask(host, persistent_domains):
        d = await fleet.ask(host, domain_facts, uuid)
        if d is not None:
            domains.append(d)
    return replace(facts, domains=tuple(domains))


async def lint_fleet(fleet: Fleet, config: LintConfig, hosts: list[str] | None = None) -> LintResult:
    inputs, failed = await gather(fleet, hosts)
    now = time.time()
    findings = lint(inputs, config, now)
    scope = fleet.scope
    if scope is not None and scope.tenant is not None:
        # a tenant's view: its own VMs' findings only (the published state holds only them); the hosts'
        # own findings (versions, overcommit, orphaned volumes) are the fleet owner's, not the tenant's
        own = {vm.uuid for vm in fleet.state.vms.values()}
        findings = [f for f in findings if f.vm and f.uuid in own]
    return LintResult(tuple(findings), tuple(h.name for h in inputs), tuple(failed), now)
