"""The guest's screen without a host: keys as Linux keycodes (what a US keyboard sends), screenshots as
half-block cells, saved as PNG; typed text kept out of the audit. The host side (libvirt's screenshot and
send-key) is on libvirt's test driver here and on a real guest in tests/lab/test_guest_screen_lab.py."""

from __future__ import annotations

from pathlib import Path

import libvirt
import pytest
from PIL import Image

from vimtui.core.actions.guest_keys import BadKeys, chord_name, key_chord, parse_keys, text_chords
from vimtui.core.actions.guest_screen import grab, press
from vimtui.core.fleet.audit import redact
from vimtui.core.picture import BadPicture, ansi, cells, decode, fit, is_blank, save


def test_chords_as_written_and_as_textual_names_them() -> None:
    assert key_chord("ctrl+alt+del") == (29, 56, 111)
    assert key_chord("ctrl+alt+delete") == (29, 56, 111)
    assert parse_keys(["esc f2,enter", "alt+f2"]) == [(1,), (60,), (28,), (56, 60)]
    assert key_chord("shift+tab") == (42, 15)
    assert key_chord("ctrl+right_square_bracket") == (29, 27)  # Textual's name for ctrl+]
    assert key_chord("+") == (42, 13) and key_chord("ctrl++") == (29, 42, 13)
    assert parse_keys([","]) == [(51,)]
    assert chord_name((29, 56, 111)) == "ctrl+alt+del" and chord_name(key_chord("ctrl+c")) == "ctrl+c"


def test_text_is_typed_with_shift_where_a_us_keyboard_needs_it() -> None:
    assert text_chords("Hi!\n") == [(42, 35), (23,), (42, 2), (28,)]
    assert text_chords("a-b_c") == [(30,), (12,), (48,), (42, 12), (46,)]


@pytest.mark.parametrize(
    ("word", "says"), [("hyper+x", "'hyper' is not a modifier"), ("f13", "no key named 'f13'"), ("", "empty")]
)
def test_unknown_keys_are_refused_by_name(word: str, says: str) -> None:
    with pytest.raises(BadKeys, match=says):
        key_chord(word)


def test_a_character_a_us_keyboard_cannot_type_is_named() -> None:
    with pytest.raises(BadKeys, match="'é' cannot be typed"):
        text_chords("café")


def test_typed_text_is_audited_by_its_length_only() -> None:
    shown = redact({"text": "hunter2", "keys": ("enter",)})
    assert shown == {"text": "<7 characters typed>", "keys": ("enter",)}


def _png(tmp_path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    path = tmp_path / "in.png"
    image = Image.new("RGB", size, colour)
    image.putpixel((0, 0), (255, 255, 255))
    image.save(path)
    return path.read_bytes()


def test_cells_keep_the_pictures_shape_in_the_box(tmp_path: Path) -> None:
    image = decode(_png(tmp_path, (720, 400), (0, 0, 170)))
    assert fit(image.size, 120, 40) == (120, 33)  # 720x400 -> 120 wide, 66.7 pixels = 33 rows of two
    assert fit(image.size, 40, 40) == (40, 11)
    c = cells(image, 120, 40)
    assert (c.cols, c.rows, len(c.pairs), len(c.pairs[0])) == (120, 33, 33, 120)
    assert c.pairs[10][10] == ((0, 0, 170), (0, 0, 170))
    text = ansi(c)
    assert text.count("\n") == 32 and "\x1b[38;2;0;0;170;48;2;0;0;170m" in text
    assert not is_blank(image) and is_blank(Image.new("RGB", (4, 4)))


def test_a_screenshot_is_saved_in_the_format_its_name_says(tmp_path: Path) -> None:
    data = _png(tmp_path, (64, 48), (10, 20, 30))
    ppm = tmp_path / "x.ppm"
    Image.open(tmp_path / "in.png").save(ppm)  # what an older QEMU sends
    assert save(ppm.read_bytes(), tmp_path / "out.png") == (64, 48)
    assert Image.open(tmp_path / "out.png").format == "PNG"
    save(data, tmp_path / "out.jpg")
    assert Image.open(tmp_path / "out.jpg").format == "JPEG"
    with pytest.raises(BadPicture, match="not an image"):
        decode(b"<html>no</html>")


def test_the_test_drivers_screen_and_keyboard() -> None:
    conn = libvirt.open("test:///default")
    try:
        uuid = conn.lookupByName("test").UUIDString()
        shot = grab(conn, uuid)
        assert shot.mime == "image/png" and decode(shot.data).size == (1120, 832)
        assert press(conn, uuid, [key_chord("ctrl+alt+del"), *text_chords("ls\n")]) == 4
    finally:
        conn.close()
