"""A guest's screenshot as terminal cells: decoded with Pillow (QEMU sends PNG, older ones PPM), scaled to
fit a box of cells, each cell the upper half block '▀' with the top pixel as its colour and the bottom one
as its background: two pixels a cell, in colour, in any terminal with true colour (and tmux).

Why Pillow: it decodes PNG and PPM in C, scales with area averaging (a text screen stays legible as
shapes rather than aliasing into noise) and writes the PNG `vm screenshot -o` saves; our own decoder
would be slower and do less. Pure: nothing here talks to a host or a terminal.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

UPPER_HALF = "\u2580"
RGB = tuple[int, int, int]


class BadPicture(ValueError):
    """Bytes that are no image Pillow knows; the message says what they were."""


@dataclass(frozen=True)
class Cells:
    """`rows` lists of `cols` (top, bottom) colours, one per cell: the picture scaled into the box."""

    cols: int
    rows: int
    pairs: tuple[tuple[tuple[RGB, RGB], ...], ...]
    source: tuple[int, int]
    """The picture's own size in pixels."""
    region: tuple[int, int, int, int]
    """The part of the picture shown (left, top, right, bottom), all of it unless zoomed in."""


def decode(data: bytes) -> Image.Image:
    """The picture in RGB. BadPicture when it is not one."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadPicture(f"not an image ({len(data)} bytes): {exc}") from exc
    return image if image.mode == "RGB" else image.convert("RGB")


def fit(size: tuple[int, int], cols: int, rows: int, cell_aspect: float = 2.0) -> tuple[int, int]:
    """The largest (cols, rows) box within (cols, rows) that keeps the picture's shape, for cells
    `cell_aspect` times as tall as wide (two square pixels each). At least 1 x 1."""
    w, h = size
    if w <= 0 or h <= 0 or cols <= 0 or rows <= 0:
        return max(1, cols), max(1, rows)
    scale = min(cols / w, rows * cell_aspect / h)
    return max(1, min(cols, round(w * scale))), max(1, min(rows, round(h * scale / cell_aspect)))


def cells(
    image: Image.Image, cols: int, rows: int, zoom: float | None = None, origin: tuple[int, int] = (0, 0)
) -> Cells:
    """The picture scaled (area average) to fit `cols` x `rows` cells of two pixels each; with `zoom`
    (cell columns per picture pixel: 0.5 makes a VGA text screen legible, 1.0 is every pixel), the part
    of it that fits from `origin` (picture pixels, moved in so the part stays within the picture)."""
    if zoom is None:
        c, r = fit(image.size, cols, rows)
        small = image.resize((c, 2 * r), Image.Resampling.BOX)
        region = (0, 0, *image.size)
    else:
        w, h = image.size
        rw, rh = min(w, round(cols / zoom)), min(h, round(2 * rows / zoom))
        x0, y0 = max(0, min(origin[0], w - rw)), max(0, min(origin[1], h - rh))
        region = (x0, y0, x0 + rw, y0 + rh)
        c, r = max(1, round(rw * zoom)), max(1, round(rh * zoom / 2))
        small = image.resize((c, 2 * r), Image.Resampling.BOX, box=region)
    raw = small.tobytes()
    stride = 3 * c
    out = []
    for y in range(r):
        top = raw[2 * y * stride : (2 * y + 1) * stride]
        bottom = raw[(2 * y + 1) * stride : (2 * y + 2) * stride]
        out.append(
            tuple(
                (
                    (top[i], top[i + 1], top[i + 2]),
                    (bottom[i], bottom[i + 1], bottom[i + 2]),
                )
                for i in range(0, stride, 3)
            )
        )
    return Cells(c, r, tuple(out), image.size, region)


def ansi(picture: Cells) -> str:
    """The cells as lines of 24-bit ANSI colour (for a terminal, not Rich markup), each line reset."""
    lines = []
    for row in picture.pairs:
        parts = []
        last: tuple[RGB, RGB] | None = None
        for pair in row:
            if pair != last:
                (r1, g1, b1), (r2, g2, b2) = pair
                parts.append(f"\x1b[38;2;{r1};{g1};{b1};48;2;{r2};{g2};{b2}m")
                last = pair
            parts.append(UPPER_HALF)
        lines.append("".join(parts) + "\x1b[0m")
    return "\n".join(lines)


def is_blank(image: Image.Image) -> bool:
    """True when every pixel has the same colour (a guest that drew nothing yet)."""
    lo, hi = zip(*image.getextrema(), strict=True)
    return lo == hi


def save(data: bytes, where: str | Path) -> tuple[int, int]:
    """Write the screenshot to `where` (~ expanded) in the format its suffix names (.png unless another
    Pillow writes); its size. BadPicture for bytes that are no image, OSError when it cannot be written."""
    path = Path(where).expanduser()
    image = decode(data)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    part = path.with_name(f".{path.name}.part")  # whole or not there: a reader never sees half a file
    try:
        image.save(part, format=fmt)
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)
    return image.size
