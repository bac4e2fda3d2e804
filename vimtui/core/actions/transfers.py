"""Volume upload and download as actions (target "volume", `HOST/POOL/VOL`): `vimtui vol upload HOST/POOL/VOL
FILE [--create [--format raw|qcow2]]`, `vimtui vol download HOST/POOL/VOL FILE [--force]`, the keys in the
host's volume list, the palette and `:`.

Each runs as a task on a lane of its own (own_lane): the transfer itself goes chunk by chunk on the host's
lane (vol_transfer.py), so the host's polls and its other actions go on meanwhile. Cancelling stops it at
its next chunk; the task's error then says what it left. The local file is checked before the task is
asked for (missing, unreadable, a qcow2 file uploaded as raw, a download over an existing file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vimtui.core.actions import vol_stream, vol_transfer
from vimtui.core.actions.base import Action
from vimtui.core.actions.params import Param
from vimtui.core.actions.targets import Ref
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.model import FleetState

FORMATS = tuple((f, f) for f in vol_transfer.FORMATS)


def upload(
    ctx: TaskContext,
    ref: Ref,
    file: str,
    create: bool = False,
    format: str | None = None,
    new_volume: str | None = None,
) -> str:
    volume = (create and new_volume) or ref.volume  # the volume list's `u`: a new one beside the selected
    name = f"{ref.pool}/{volume}"
    done = vol_transfer.upload_file(ctx, file, ref.pool, volume, create=create, fmt=format)
    made = f" into new {done.format} volume {name}" if done.created else f" into {name}"
    return f"{done.summary('uploaded')}{made} from {done.local}"


def download(ctx: TaskContext, ref: Ref, file: str, force: bool = False) -> str:
    done = vol_transfer.download_file(ctx, ref.pool, ref.volume, file, force=force)
    return f"{done.summary('downloaded')} of {ref.name} to {done.local}"


def upload_preview(conn: Any, name: str, args: dict[str, Any]) -> list[str]:
    """What the upload would do: make the volume, or overwrite which part of it."""
    pool, _, volume = name.partition("/")
    volume = (args.get("create") and args.get("new_volume")) or volume
    image = vol_transfer.inspect_file(args["file"])
    if args.get("create"):
        fmt = vol_transfer.upload_format(image, args.get("format"))
        capacity = image.virtual_size if fmt == "qcow2" else image.size
        plan = vol_stream.check_upload(conn, "", pool, volume, image.size, (fmt, capacity))
    else:
        plan = vol_stream.check_upload(conn, "", pool, volume, image.size, None, image.format)
    return plan.lines(image.path, image.size)


def _check_upload(ref: Any, args: dict[str, Any], _state: FleetState) -> str | None:
    if not args.get("file"):
        return "upload: which local file (FILE)?"
    if args.get("format") and not args.get("create"):
        return "a format is for a volume the upload makes: it goes with create"
    if args.get("new_volume") and not args.get("create"):
        return "a new name is for a volume the upload makes: it goes with create"
    return vol_transfer.upload_refusal(args["file"], bool(args.get("create")), args.get("format"))


def _check_download(ref: Any, args: dict[str, Any], _state: FleetState) -> str | None:
    if not args.get("file"):
        return "download: to which local file or directory (FILE)?"
    volume = ref.volume if isinstance(ref, Ref) else Path(str(ref)).name
    return vol_transfer.download_refusal(args["file"], volume, bool(args.get("force")))


def between_chunks(_conn: Any, _name: str) -> None:
    """Nothing to stop on the host: a cancelled transfer stops at its next chunk (no stream stays open)."""


ACTIONS = (
    Action(
        "upload",
        "Upload to volume",
        "Write a local file into a volume through the host's connection (--create: into a new volume "
        "sized for it); progress, cancel",
        upload,
        params=(
            Param("file", "path", "the local file", required=True, positional=True, metavar="FILE"),
            Param("create", "bool", "make the volume first (raw or qcow2, sized for the file)"),
            Param(
                "format",
                "choice",
                "with create: the new volume's format (default: the file's own)",
                choices=FORMATS,
            ),
            Param(
                "new_volume",
                "text",
                "with create: the new volume's name, in the same pool (default: the one named)",
                label="new volume's name",
            ),
        ),
        target="volume",
        check=_check_upload,
        needs="admin",
        destructive=True,
        preview=upload_preview,
        abort=between_chunks,
        own_lane=True,
        timeout=0.0,
        key="u",
        bar=True,
        note="Without create the volume's first bytes are replaced by the file's.",
    ),
    Action(
        "download",
        "Download volume",
        "Copy a volume into a local file (or a directory) through the host's connection, holes kept; "
        "progress, cancel",
        download,
        params=(
            Param(
                "file",
                "path",
                "the local file, or a directory to put it in under the volume's name",
                required=True,
                positional=True,
                metavar="FILE",
            ),
            Param("force", "bool", "overwrite the local file if it exists"),
        ),
        target="volume",
        check=_check_download,
        needs="admin",
        abort=between_chunks,
        own_lane=True,
        timeout=0.0,
        key="d",
        bar=True,
    ),
)
