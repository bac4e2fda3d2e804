"""Text from hosts and users in the CLI and the reports: `shown` (core/text.py), the CLI's text output over
the hostile test:/// fleet (tests/hostile.py) and a real SSH server whose disconnect reason carries
escapes, and report cells (CSV formula injection, Markdown, HTML).

What breaks each: a control or bidi character that reaches stdout, stderr or a report; a CSV cell a
spreadsheet would run as a formula; JSON output that is no longer the exact data."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from queue import Queue

import asyncssh
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import hostile
from vimtui.cli.main import main
from vimtui.core.monitor.archive import Archive
from vimtui.core.report.model import Report, build_report
from vimtui.core.report.render import render
from vimtui.core.text import cells, csv_cell, shown

UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
"""Newlines aside, what must never be printed of a host's text."""


# ------------------------------------------------------------------------------------------- shown


def test_shown_makes_escapes_visible_one_character_for_one() -> None:
    assert shown(hostile.ESCAPES) == "␛]0;owned␇␛[2J[/x][reverse]"
    assert shown(hostile.C1) == "c1��31mred"
    assert shown(hostile.BIDI) == "evil�gpj.exe"
    assert shown("a\nb\tc\x7f") == "a␊b␉c␡"
    assert shown("a\nb\tc", keep="\n") == "a\nb␉c"
    assert shown(hostile.WIDE) == hostile.WIDE and shown(hostile.LONG) == hostile.LONG
    assert shown("x[/x] [on black]") == "x[/x] [on black]"  # markup is the screen's business: text


@given(st.text())
def test_shown_never_lets_a_control_through_and_keeps_the_rest(text: str) -> None:
    out = shown(text)
    assert len(out) == len(text)  # one for one: offsets (a fuzzy match's highlights) still apply
    assert not UNSAFE.search(out) and "\n" not in out
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in out)  # always encodable
    assert all(a == b for a, b in zip(text, out, strict=True) if a.isprintable())


@pytest.mark.parametrize(
    ("cell", "want"),
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "␉x"),  # a leading tab is made visible, so it hides nothing
        ("web01", "web01"),
        ("a=b", "a=b"),
    ],
)
def test_csv_cells_that_a_spreadsheet_would_run_are_inert(cell: str, want: str) -> None:
    assert csv_cell(cell) == want


# ------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def fleet_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hostile.write_fleet(tmp_path_factory.mktemp("hostile"))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_vms_prints_names_as_text_and_json_keeps_them_exact(
    fleet_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--config", str(fleet_config), "vms")
    assert code == 3  # the down host
    assert not UNSAFE.search(out) and not UNSAFE.search(err)
    for name in hostile.VM_NAMES:
        assert shown(name) in out, name
    assert "␛]0;owned␇␛[2J[/x][reverse]" in err  # libvirt's error, naming the path, on stderr
    rows = out.splitlines()
    columns = {cells(row[: row.index(hostile.HOSTILE_HOST)]) for row in rows[1:]}
    assert len(columns) == 1  # the HOST column lines up under wide names (counted in terminal cells)
    code, out, _err = run(capsys, "--config", str(fleet_config), "vms", "--json")
    assert sorted(v["name"] for v in json.loads(out)) == sorted(hostile.VM_NAMES)  # exact, not shown
    assert {v["disks"][0]["source"] for v in json.loads(out)} == {hostile.DISK}


def test_hosts_and_stats_print_as_text(fleet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--config", str(fleet_config), "hosts")
    assert hostile.HOSTILE_HOST in out and hostile.DOWN_HOST in out
    assert not UNSAFE.search(out) and not UNSAFE.search(err)
    code, out, err = run(capsys, "--config", str(fleet_config), "stats", "--interval", "0.1")
    assert shown(hostile.C1) in out and shown(hostile.BIDI) in out
    assert not UNSAFE.search(out) and not UNSAFE.search(err)
    code, out, _err = run(capsys, "--config", str(fleet_config), "hosts", "--json")
    down = next(h for h in json.loads(out) if h["name"] == hostile.DOWN_HOST)
    assert hostile.ESCAPES in down["message"]  # the data as it is; json escapes it


def test_vm_verbs_print_as_text(fleet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = hostile.HOSTILE_HOST
    code, out, err = run(
        capsys, "--config", str(fleet_config), "vm", "snapshot", "list", f"{host}/{hostile.C1}"
    )
    assert shown(hostile.SNAPSHOT) in out and shown(hostile.SNAPSHOT_DESCRIPTION) in out
    assert not UNSAFE.search(out) and not UNSAFE.search(err)
    code, out, err = run(capsys, "--config", str(fleet_config), "vm", "start", f"{host}/{hostile.BIDI}")
    assert code == 1 and shown(hostile.BIDI) in out  # already running: refused, named as text
    assert not UNSAFE.search(out) and not UNSAFE.search(err)


# ------------------------------------------------------------------------------------------- reports

FORMULA = '=HYPERLINK("http://evil.example","x")'


@pytest.fixture
def report(tmp_path: Path) -> Iterator[Report]:
    """A report over an archive that holds hostile names, a group that starts like a formula, and an
    event whose text carries escapes."""
    with Archive(tmp_path / "h.sqlite") as a:
        names = {f"kvm01/u{i}": name for i, name in enumerate((FORMULA, "@cmd", *hostile.VM_NAMES))}
        for key, name in names.items():
            uuid = key.partition("/")[2]
            a.describe(key, {"kind": "vm", "name": name, "host": "kvm01", "group": "+g", "uuid": uuid})
            a.add(key, 1_700_000_000, {"cpu": 1.0})
        a.note("kvm01/u0", 1_700_000_001, "crashed", hostile.ESCAPES)
        a.flush()
        yield build_report(a, 1_700_000_000 - 60, 1_700_000_000 + 60)


def test_csv_report_cells_are_inert(report: Report) -> None:
    text = render(report, "csv")
    assert not UNSAFE.search(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    names = {r["name"] for r in rows if r["kind"] == "vm"}
    assert "'" + FORMULA in names and "'@cmd" in names and shown(hostile.C1) in names
    assert all(not r[k].startswith(("=", "+", "-", "@")) for r in rows for k in ("name", "group", "host"))
    assert all(r["group"] == "'+g" for r in rows if r["kind"] == "vm")


def test_md_and_html_reports_show_names_as_text(report: Report) -> None:
    md, page = render(report, "md"), render(report, "html")
    assert not UNSAFE.search(md) and not UNSAFE.search(page)
    assert "evil�gpj.exe" in md and "evil�gpj.exe" in page
    assert "␛\\]0;owned␇␛\\[2J\\[/x\\]\\[reverse\\]" in md  # the event's text, Markdown-escaped
    assert "␛]0;owned␇␛[2J[/x][reverse]" in page


# ------------------------------------------------------------------------------------------- SSH

REASON = "bye " + hostile.ESCAPES + " \x9b31m"
"""An SSH server's disconnect reason: it sets the terminal's title and clears the screen if printed raw."""


class _Hostile(asyncssh.SSHServer):
    """A real SSH server (asyncssh) that answers any login with a disconnect carrying `REASON`."""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        self._conn.disconnect(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, REASON)
        return True


@pytest.fixture
def hostile_ssh(tmp_path: Path) -> Iterator[Path]:
    """The server on a thread of its own (the CLI runs its own event loop), and a config that trusts its
    key: the disconnect comes after the host key is checked, as a real server's would."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    started: Queue[tuple[asyncio.AbstractEventLoop, asyncio.Event, int]] = Queue()

    async def serve() -> None:
        stop = asyncio.Event()
        server = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[key], server_factory=_Hostile)
        started.put((asyncio.get_running_loop(), stop, server.sockets[0].getsockname()[1]))
        await stop.wait()
        server.close()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    loop, stop, port = started.get(timeout=30)
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {key.export_public_key('openssh').decode()}")
    config = tmp_path / "ssh.toml"
    config.write_text(
        f'[[hosts]]\nname = "sshhost"\naddress = "127.0.0.1"\nport = {port}\nuser = "nobody"\n'
        f'known_hosts = "{known}"\n'
    )
    yield config
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=10)


def test_an_ssh_servers_disconnect_reason_is_printed_as_text(
    hostile_ssh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--config", str(hostile_ssh), "hosts")
    assert code == 3 and "auth-failed" in out
    assert not UNSAFE.search(out) and not UNSAFE.search(err)
    assert "bye ␛]0;owned␇␛[2J[/x][reverse] �31m" in err
    code, out, err = run(capsys, "--config", str(hostile_ssh), "hosts", "--json")
    assert json.loads(out)[0]["message"].endswith(REASON)  # the data, exact
