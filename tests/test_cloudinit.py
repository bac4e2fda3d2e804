"""cloud-init NoCloud seeds: built in memory, read back, bad input refused."""

from __future__ import annotations

import uuid

import pytest

from vimtui.core.actions import cloudinit

KEY1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0000000000000000000000 alice@laptop"
KEY2 = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= bob@desk"


def test_round_trip_generated_cloud_config() -> None:
    iso = cloudinit.build_seed(hostname="web-1", instance_id="iid-web-1", user="alice", ssh_keys=[KEY1, KEY2])
    assert len(iso) % 2048 == 0
    assert cloudinit.volume_id(iso) == "cidata"
    files = cloudinit.read_seed(iso)
    assert set(files) == {"meta-data", "user-data"}
    assert files["meta-data"] == 'instance-id: "iid-web-1"\nlocal-hostname: "web-1"\n'
    ud = files["user-data"]
    assert ud.startswith("#cloud-config\n")
    assert 'hostname: "web-1"' in ud
    assert '- name: "alice"' in ud
    assert 'sudo: "ALL=(ALL) NOPASSWD:ALL"' in ud
    assert f"      - {KEY1!r}".replace("'", '"') in ud
    assert f"      - {KEY2!r}".replace("'", '"') in ud


def test_generated_cloud_config_is_exactly_this() -> None:
    assert cloudinit.cloud_config("db.example.org", "ops", [KEY1]) == (
        "#cloud-config\n"
        "# written by vimtui\n"
        'hostname: "db"\n'
        'fqdn: "db.example.org"\n'
        "preserve_hostname: false\n"
        "users:\n"
        '  - name: "ops"\n'
        '    sudo: "ALL=(ALL) NOPASSWD:ALL"\n'
        '    shell: "/bin/bash"\n'
        "    lock_passwd: true\n"
        "    ssh_authorized_keys:\n"
        f'      - "{KEY1}"\n'
    )
    # no user: the keys go to the image's default user
    assert cloudinit.cloud_config("db", None, [KEY1]).endswith(f'ssh_authorized_keys:\n  - "{KEY1}"\n')
    # quoting: a value YAML would read as something else stays a string
    assert 'hostname: "yes"' in cloudinit.cloud_config("yes", None, [])


def test_instance_id_defaults_to_a_fresh_uuid() -> None:
    ids = []
    for _ in range(2):
        meta = cloudinit.read_seed(cloudinit.build_seed(hostname="h1"))["meta-data"]
        line = next(ln for ln in meta.splitlines() if ln.startswith("instance-id:"))
        ids.append(str(uuid.UUID(line.split(":", 1)[1].strip().strip('"'))))
    assert ids[0] != ids[1]


def test_user_data_is_used_as_is() -> None:
    text = "#cloud-config\npackages: [nginx]\nruncmd:\n  - [sh, -c, 'echo ünïcode > /x']\n"
    files = cloudinit.read_seed(cloudinit.build_seed(hostname="h1", user_data=text))
    assert files["user-data"] == text
    script = "#!/bin/sh\necho hello\n"
    assert cloudinit.read_seed(cloudinit.build_seed(hostname="h1", user_data=script))["user-data"] == script


@pytest.mark.parametrize(
    "user_data",
    ["packages: [nginx]\n", "", "  #cloud-config\n", "# cloud-config\n"],
)
def test_bad_user_data_is_refused(user_data: str) -> None:
    with pytest.raises(ValueError, match="must start with '#cloud-config' or '#!'"):
        cloudinit.build_seed(hostname="h1", user_data=user_data)


def test_user_data_with_user_or_keys_is_refused_not_silently_merged() -> None:
    with pytest.raises(ValueError, match="user-data given"):
        cloudinit.build_seed(hostname="h1", user="alice", user_data="#cloud-config\n")
    with pytest.raises(ValueError, match="user-data given"):
        cloudinit.build_seed(hostname="h1", ssh_keys=[KEY1], user_data="#cloud-config\n")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hostname": "bad_name"}, "not a valid host name"),
        ({"hostname": "-x"}, "not a valid host name"),
        ({"hostname": ""}, "not a valid host name"),
        ({"hostname": "a" * 64}, "not a valid host name"),
        ({"hostname": "h1", "user": "Alice"}, "not a valid user name"),
        ({"hostname": "h1", "user": "root"}, "not a valid user name"),
        ({"hostname": "h1", "ssh_keys": ["not a key"]}, "not an SSH public key"),
        ({"hostname": "h1", "ssh_keys": ["-----BEGIN OPENSSH PRIVATE KEY-----"]}, "private key"),
        ({"hostname": "h1", "instance_id": "a\nb"}, "not a valid instance id"),
    ],
)
def test_bad_input_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cloudinit.build_seed(**kwargs)  # type: ignore[arg-type]


def test_keys_from_an_authorized_keys_file() -> None:
    text = f"# mine\n{KEY1}\n\n{KEY2}\n"
    assert cloudinit.ssh_key_lines([text]) == [KEY1, KEY2]


def test_read_seed_refuses_what_is_not_an_iso() -> None:
    with pytest.raises(ValueError, match="not an ISO 9660 image"):
        cloudinit.read_seed(b"\0" * 4096)


def test_packages_are_installed_at_first_boot_and_bad_names_refused() -> None:
    files = cloudinit.read_seed(cloudinit.build_seed(hostname="h", packages=["nginx", "curl=7.88.1-10"]))
    assert files["user-data"].endswith('package_update: true\npackages:\n  - "nginx"\n  - "curl=7.88.1-10"\n')
    with pytest.raises(ValueError, match="is not a package name"):
        cloudinit.build_seed(hostname="h", packages=["nginx; rm -rf /"])
    with pytest.raises(ValueError, match="put the user, SSH keys and packages in it"):
        cloudinit.build_seed(hostname="h", user_data="#cloud-config\n", packages=["nginx"])
