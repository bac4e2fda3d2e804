"""The local side of volume transfers (no host needed): what a file is, which format a made volume takes,
where a download goes, and the file read back as the pieces an upload sends (data and holes) that add up
to the same bytes. The host's side is in tests/lab/test_vol_transfer_lab.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vimtui.core.actions import vol_transfer
from vimtui.core.actions.base import ActionError
from vimtui.core.actions.vol_transfer import Pace, _Reader, download_refusal, download_target, inspect_file

MIB = 1024 * 1024


def qcow2_header(virtual: int) -> bytes:
    return b"QFI\xfb" + (3).to_bytes(4, "big") + bytes(16) + virtual.to_bytes(8, "big") + bytes(32)


def test_inspect_tells_raw_from_qcow2_and_refuses_what_cannot_go(tmp_path: Path) -> None:
    raw = tmp_path / "a.iso"
    raw.write_bytes(b"CD001" * 1000)
    image = inspect_file(raw)
    assert (image.format, image.size, image.virtual_size) == ("raw", 5000, 5000)
    q = tmp_path / "b.qcow2"
    q.write_bytes(qcow2_header(10 * 1024**3))
    image = inspect_file(q)
    assert (image.format, image.virtual_size) == ("qcow2", 10 * 1024**3)
    assert vol_transfer.upload_format(image, None) == "qcow2"
    with pytest.raises(ActionError, match="is a qcow2 image, not raw: use --format qcow2"):
        vol_transfer.upload_format(image, "raw")
    with pytest.raises(ActionError, match="an upload makes a raw or qcow2 volume"):
        vol_transfer.upload_format(image, "vmdk")
    (tmp_path / "empty").write_bytes(b"")
    assert vol_transfer.upload_refusal(tmp_path / "empty") == f"{tmp_path / 'empty'} is empty"
    assert vol_transfer.upload_refusal(tmp_path) == f"{tmp_path} is not a regular file"
    assert "No such file" in (vol_transfer.upload_refusal(tmp_path / "missing") or "")
    assert vol_transfer.upload_refusal(raw, create=True, fmt="qcow2") is not None
    assert vol_transfer.upload_refusal(raw, create=True) is None


def test_a_download_goes_into_a_directory_and_never_over_a_file_unasked(tmp_path: Path) -> None:
    assert download_target(tmp_path, "web.qcow2") == tmp_path / "web.qcow2"
    assert download_target(tmp_path / "x.img", "web.qcow2") == tmp_path / "x.img"
    (tmp_path / "web.qcow2").write_bytes(b"mine")
    why = download_refusal(tmp_path, "web.qcow2")
    assert why == f"{tmp_path / 'web.qcow2'} exists: choose another file, or overwrite it with --force"
    assert download_target(tmp_path, "web.qcow2", force=True) == tmp_path / "web.qcow2"
    assert download_refusal(tmp_path / "nodir" / "x", "v") == f"no directory {tmp_path / 'nodir'}"


def _sparse(path: Path) -> bytes:
    """A file of data, a hole, data, and a hole at its end; its bytes as a reader must give them."""
    a, b = os.urandom(3 * MIB + 17), os.urandom(MIB)
    with path.open("wb") as f:
        f.write(a)
        f.seek(8 * MIB, os.SEEK_CUR)
        f.write(b)
        f.truncate(f.tell() + 5 * MIB)
    return a + bytes(8 * MIB) + b + bytes(5 * MIB)


@pytest.mark.parametrize("sparse", [True, False])
def test_the_reader_gives_the_file_back_in_chunks_holes_as_lengths(tmp_path: Path, sparse: bool) -> None:
    path = tmp_path / "disk.img"
    expected = _sparse(path)
    size = path.stat().st_size
    rebuilt = bytearray()
    holes = 0
    with path.open("rb") as f:
        reader = _Reader(f, size, sparse)
        while len(rebuilt) < size:
            pieces, covered = reader.chunk(MIB)
            assert covered > 0
            assert sum(len(p) for p in pieces if isinstance(p, bytes)) <= MIB
            for p in pieces:
                if isinstance(p, int):
                    rebuilt += bytes(p)
                    holes += p
                else:
                    rebuilt += p
        assert reader.chunk(MIB) == ([], 0)
    assert bytes(rebuilt) == expected
    if sparse and inspect_file(path).allocated < size:  # the file system keeps holes (tmpfs, ext4 do)
        assert holes >= 12 * MIB
    if not sparse:
        assert holes == 0


def test_chunks_are_sized_to_take_a_short_while_within_bounds() -> None:
    pace = Pace()
    assert pace.size == vol_transfer.FIRST_CHUNK
    for _ in range(20):
        pace.took(pace.size, pace.size / (100 * MIB))  # 100 MiB/s: 20 MiB in 0.2 s, above the cap
    assert pace.size == vol_transfer.MAX_CHUNK
    for _ in range(20):
        pace.took(pace.size, pace.size / (100 * 1024))  # 100 KiB/s: 20 KiB in 0.2 s, below the floor
    assert pace.size == vol_transfer.MIN_CHUNK
    for _ in range(30):
        pace.took(pace.size, pace.size / (10 * MIB))
    assert abs(pace.size - 2 * MIB) < 0.05 * MIB


@pytest.mark.parametrize(("volume_format", "file_format"), [("qcow2", "raw"), ("raw", "qcow2")])
def test_a_file_of_another_format_than_the_volume_is_refused_before_anything_is_written(
    volume_format: str, file_format: str
) -> None:
    """Seen in the screen: a raw file uploaded into a qcow2 volume left a volume that libvirt calls qcow2
    holding raw bytes (the VM that uses it could no longer read its disk), and the confirmation had not
    said so. The check runs before the volume is opened, and says what to do instead."""
    import libvirt

    from vimtui.core.actions import vol_stream

    conn = libvirt.open("test:///default")
    try:
        pool = conn.storagePoolLookupByName("default-pool")
        name = f"disk.{volume_format}"
        pool.createXML(
            f"<volume><name>{name}</name><capacity>{MIB}</capacity>"
            f"<target><format type='{volume_format}'/></target></volume>",
            0,
        )
        with pytest.raises(ActionError, match=f"is {volume_format}, the file is {file_format}"):
            vol_stream.check_upload(conn, "", "default-pool", name, MIB // 2, None, file_format)
        plan = vol_stream.check_upload(conn, "", "default-pool", name, MIB // 2, None, volume_format)
        assert (plan.create, plan.format) == (False, volume_format)
    finally:
        conn.close()
