"""Shared fixtures. The lab (real hosts in namespaces) is brought up once per session and removed after."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import libvirt
import pytest
from hypothesis import HealthCheck, settings

from tests.lab.lab import Lab

# Property tests check results, not speed: no per-example deadline and no "too slow" health check, which
# only measure how busy the machine is (speed is measured in bench/)
settings.register_profile("vimtui", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("vimtui")

T = TypeVar("T")

# The screen shows local time, as its user wants; the suite pins the zone so that what it compares (the
# snapshots' task log and graph axes) is the same on every machine. test_app checks local time is used.
os.environ["TZ"] = "UTC"
time.tzset()

# pytest-xdist's workers export COLUMNS=80 and LINES=24 (execnet's); the app and the CLI read those before
# their terminal's size, so the app in a test's pseudo-terminal of 140x40 drew for 80x24 (and a key's
# answer fell off its screen). Under xdist as without it, a test's terminal says its own size
for _size in ("COLUMNS", "LINES"):
    os.environ.pop(_size, None)

# libvirt raises its errors; without this it also prints each one to stderr
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def wait_until(what: str, predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.2) -> T:
    """Poll `predicate` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """Three lab hosts with their guests. VIMTUI_LAB_REUSE=1 keeps (and reuses) it between runs;
    VIMTUI_TEST_LAB names it (default "test"), so two runs can have a lab each; under pytest-xdist each
    worker has its own lab, named after the worker ("testgw0", "testgw1"): no two tests share a host."""
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (see README: the test command runs as root)")
    reuse = bool(os.environ.get("VIMTUI_LAB_REUSE"))
    name = os.environ.get("VIMTUI_TEST_LAB", "test")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker:
        name = name[: 8 - len(worker)] + worker
    lab = Lab(name)
    if not reuse:
        lab.down()
    lab.up(3)
    yield lab
    if not reuse:
        lab.down()
