"""Trust on first contact against real lab hosts, each test with fresh known_hosts files: an unknown key is
shown with the fingerprint ssh-keygen gives for the host's own public key file, `vimtui trust` adds it only
on yes (nothing written on no, without a terminal, or for another fingerprint), and the host then connects
(the CLI, a running fleet, the screen); a changed key (known_hosts holding another key for the address) is
refused, named with both fingerprints and the line to remove, and never offered."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from textual.screen import Screen

from tests.lab.lab import Lab
from tests.lab.support import FAST, spec
from vimtui.core.config.settings import parse_config
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import build_inventory
from vimtui.core.model import HostStatus
from vimtui.ui.app import make_app
from vimtui.ui.screens.confirm import ConfirmScreen
from vimtui.ui.screens.host_detail import HostDetailScreen

pytestmark = pytest.mark.lab

VIMTUI = str(Path(sys.executable).parent / "vimtui")
QUESTION = "(yes/no/[fingerprint])"


def host_fingerprint(lab: Lab, host: str, kind: str = "ed25519") -> str:
    """What ssh-keygen prints for the host's own public key file."""
    pub = Path(lab.host(host).dir) / f"ssh_host_{kind}_key.pub"
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def other_key(path: Path, kind: str) -> tuple[str, str]:
    """A fresh key of `kind` (not the host's): its `type base64` and its fingerprint."""
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    pub = Path(f"{path}.pub")
    fp = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True)
    return " ".join(pub.read_text().split()[:2]), fp.stdout.split()[1]


class Home:
    """An operator's own HOME, data dir (vimtui's known_hosts) and config naming one lab host by address,
    with no known_hosts of its own: what a first contact looks like."""

    def __init__(self, lab: Lab, root: Path, host: str = "kvm01") -> None:
        self.root = root
        self.host = lab.host(host)
        self.config = root / "config.toml"
        self.config.write_text(
            f'[[hosts]]\nname = "{host}"\naddress = "{self.host.address}"\nuser = "root"\n'
            f'identity = "{lab.key_file}"\n'
        )
        (root / "run").mkdir(mode=0o700, exist_ok=True)
        self.known_hosts = root / "data" / "vimtui" / "known_hosts"
        self.env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        self.env.update(HOME=str(root), XDG_RUNTIME_DIR=str(root / "run"), XDG_DATA_HOME=str(root / "data"))

    def seed(self, text: str) -> bytes:
        self.known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.known_hosts.write_text(text)
        return self.known_hosts.read_bytes()

    def contents(self) -> bytes | None:
        return self.known_hosts.read_bytes() if self.known_hosts.exists() else None

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """vimtui without a terminal (stdin is /dev/null)."""
        argv = [VIMTUI, "--config", str(self.config), *args]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=self.env
        )

    def on_terminal(self, answer: str | None, *args: str) -> tuple[int, str]:
        """vimtui on a pseudo-terminal: `answer` typed once its question shows (None: never typed)."""
        master, slave = os.openpty()
        argv = [VIMTUI, "--config", str(self.config), *args]
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=self.env, close_fds=True)
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 1)
                if not ready:
                    continue
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child has closed its end
                    break
                if not chunk:
                    break
                seen += chunk
                if answer is not None and QUESTION.encode() in seen:
                    os.write(master, answer.encode() + b"\n")
                    answer = None
            rc = proc.wait(timeout=30)
        finally:
            os.close(master)
            if proc.poll() is None:
                proc.kill()
        return rc, seen.decode(errors="replace")

    def status(self) -> dict[str, Any]:
        import json

        out = self.run("hosts", "--json")
        [row] = json.loads(out.stdout)
        return dict(row)


def audit_records(home: Home) -> list[dict[str, Any]]:
    import json

    path = home.root / "data" / "vimtui" / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_an_unknown_key_is_shown_and_trusted_only_on_yes(lab: Lab, tmp_path: Path) -> None:
    home = Home(lab, tmp_path)
    fp = host_fingerprint(lab, "kvm01")
    other = lab.known_hosts.read_text().splitlines()[1]  # kvm02's entry: a file that is not empty
    before = home.seed(other + "\n")

    row = home.status()
    assert row["status"] == "hostkey-mismatch", row
    assert f"unknown host key ssh-ed25519 {fp}" in row["message"], row["message"]
    assert "vimtui trust kvm01" in row["message"]

    rc, shown = home.on_terminal("no", "trust", "kvm01")
    assert f"ssh-ed25519 {fp}" in shown and QUESTION in shown, shown
    assert rc == 1 and "not trusted" in shown, shown
    assert home.contents() == before  # "no": the file as it was

    out = home.run("trust", "kvm01")  # no terminal, no --yes: refused
    assert out.returncode == 2 and "--fingerprint" in out.stderr, out.stderr
    out = home.run("trust", "kvm01", "--yes")  # --yes alone: refused
    assert out.returncode == 2, out.stderr
    wrong = "SHA256:" + "A" * 43
    out = home.run("trust", "kvm01", "--yes", "--fingerprint", wrong)
    assert out.returncode == 1 and f"offers {fp}, not {wrong}" in out.stderr, out.stderr
    assert home.contents() == before

    rc, shown = home.on_terminal("yes", "trust", "kvm01")
    assert rc == 0, shown
    assert f"trusted: {home.known_hosts}:2" in shown, shown
    lines = home.known_hosts.read_text().splitlines()
    host_pub = (Path(home.host.dir) / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    assert lines == [other, f"{home.host.address} {' '.join(host_pub)}"]
    assert home.known_hosts.stat().st_mode & 0o777 == 0o600

    assert home.status()["status"] == "up"
    [record] = audit_records(home)  # the yes, not the no nor the refusals
    assert (record["action"], record["outcome"], record["args"]["key"]) == (
        "host.trust_key",
        "ok",
        f"ssh-ed25519 {fp}",
    )
    out = home.run("trust", "kvm01")  # asked again: already trusted, nothing written
    assert out.returncode == 0 and f"is trusted ({home.known_hosts}:2)" in out.stdout, out.stdout
    assert len(home.known_hosts.read_text().splitlines()) == 2


def test_a_script_trusts_with_the_fingerprint_it_names(lab: Lab, tmp_path: Path) -> None:
    home = Home(lab, tmp_path, "kvm02")
    fp = host_fingerprint(lab, "kvm02")
    out = home.run("trust", "kvm02", "--yes", "--fingerprint", fp)
    assert out.returncode == 0, out.stdout + out.stderr
    assert home.status()["status"] == "up"


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_a_changed_key_is_refused_and_never_offered(lab: Lab, tmp_path: Path, kind: str) -> None:
    """Another key for the address: of the host's type (the handshake shows a key not trusted), or of a type
    the host does not have (sshd drops the handshake): refused alike."""
    home = Home(lab, tmp_path)
    fp = host_fingerprint(lab, "kvm01")
    key, other_fp = other_key(tmp_path / "other", kind)
    before = home.seed(f"# kept by hand\n{home.host.address} {key}\n")
    where = f"{home.known_hosts}:2"

    row = home.status()
    assert row["status"] == "hostkey-mismatch", row
    for text in ("CHANGED", fp, other_fp, where):
        assert text in row["message"], (text, row["message"])

    rc, shown = home.on_terminal("yes", "trust", "kvm01")  # a yes typed anyway finds no question
    assert rc == 1 and QUESTION not in shown, shown
    for text in ("CHANGED", fp, other_fp, f"remove {where}"):
        assert text in shown, (text, shown)
    out = home.run("trust", "kvm01", "--yes", "--fingerprint", fp)  # not even with the right fingerprint
    assert out.returncode == 1 and "CHANGED" in out.stderr, out.stderr
    assert home.contents() == before
    assert {(r["outcome"], r["args"]["key"]) for r in audit_records(home)} == {
        ("refused", f"ssh-ed25519 {fp}")
    }


async def test_a_running_fleet_connects_once_the_key_is_trusted_elsewhere(lab: Lab, tmp_path: Path) -> None:
    home = Home(lab, tmp_path, "kvm03")
    kh = tmp_path / "kh"
    kh.write_text("")
    fleet = Fleet([spec(lab, "kvm03", known_hosts=str(kh))], FAST, tmp_path / "run")
    await fleet.start(tick=False)
    try:
        await fleet.wait_for(lambda s: s.hosts[0].status == HostStatus.HOSTKEY_MISMATCH, 30)
        home.config.write_text(home.config.read_text() + f'known_hosts = "{kh}"\n')
        out = home.run("trust", "kvm03", "--yes", "--fingerprint", host_fingerprint(lab, "kvm03"))
        assert out.returncode == 0, out.stdout + out.stderr
        await fleet.wait_for(lambda s: s.hosts[0].status == HostStatus.UP, 30)  # no restart
    finally:
        await fleet.stop()


def shown_keys(screen: Screen[Any]) -> list[str]:
    return [b.binding.key for b in screen.active_bindings.values() if b.binding.show]


async def test_the_screen_trusts_an_unknown_key_on_yes_and_refuses_a_changed_one(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Home(lab, tmp_path)
    for name, value in home.env.items():
        monkeypatch.setenv(name, value)
    fp = host_fingerprint(lab, "kvm01")
    config = parse_config(home.config.read_text(), file=str(home.config))
    app = make_app(config, build_inventory(config))
    async with app.run_test(size=(120, 40)) as pilot:
        await app.fleet.wait_for(lambda s: s.hosts[0].status == HostStatus.HOSTKEY_MISMATCH, 30)
        await app.push_screen(HostDetailScreen("kvm01"))
        await pilot.pause()
        assert "t" in shown_keys(app.screen)

        async def asked() -> ConfirmScreen:
            for _ in range(300):
                if isinstance(app.screen, ConfirmScreen):
                    return app.screen
                await pilot.pause(0.1)
            raise AssertionError("no question asked")

        await pilot.press("t")
        question = await asked()
        assert f"ssh-ed25519\n  {fp}" in question.question and str(home.known_hosts) in question.question
        await pilot.press("n")
        await pilot.pause(0.5)
        assert home.contents() is None and app.fleet.state.hosts[0].status == HostStatus.HOSTKEY_MISMATCH

        await pilot.press("t")
        await asked()
        await pilot.press("y")
        await app.fleet.wait_for(lambda s: s.hosts[0].status == HostStatus.UP, 20)  # at once, not at a retry
        host_pub = (Path(home.host.dir) / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        assert home.known_hosts.read_text() == f"{home.host.address} {' '.join(host_pub)}\n"
        await pilot.pause()
        assert "t" not in shown_keys(app.screen)  # connected: nothing to trust

    key, other_fp = other_key(tmp_path / "other", "ed25519")
    before = home.seed(f"{home.host.address} {key}\n")
    app = make_app(config, build_inventory(config))
    async with app.run_test(size=(120, 40)) as pilot:
        await app.fleet.wait_for(lambda s: s.hosts[0].status == HostStatus.HOSTKEY_MISMATCH, 30)
        await app.push_screen(HostDetailScreen("kvm01"))
        await pilot.pause()
        assert "t" not in shown_keys(app.screen)  # not offered
        await pilot.press("t")  # pressed anyway (remembered from another host): nothing asked
        await pilot.pause(1)
        assert not isinstance(app.screen, ConfirmScreen)
        message = app.fleet.state.hosts[0].message  # what the Status row shows
        for text in ("CHANGED", fp, other_fp, f"{home.known_hosts}:1"):
            assert text in message, (text, message)
        assert home.contents() == before
