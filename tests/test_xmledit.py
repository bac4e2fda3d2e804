"""edit_text with a real editor process, and the checks that refuse an XML before libvirt sees it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vimtui.core.actions.xmledit import EditorError, changed_lines, edit_text, xml_problem

UUID = "896501c7-d52e-4588-98ba-5471f0027923"
XML = f"""<domain type='qemu'>
  <name>web01</name>
  <uuid>{UUID}</uuid>
  <memory unit='KiB'>131072</memory>
  <description>before</description>
</domain>
"""


def script(tmp_path: Path, body: str) -> str:
    """An editor: a shell script that gets the file's path as $1."""
    path = tmp_path / "editor.sh"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def env(**kw: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("VISUAL", "EDITOR")}
    return {**base, **kw}


def test_edit_text_returns_what_the_editor_wrote() -> None:
    new = edit_text(XML, env=env(EDITOR="sed -i s/before/after/"))
    assert new == XML.replace("before", "after")


def test_visual_wins_over_editor(tmp_path: Path) -> None:
    new = edit_text(XML, env=env(VISUAL="sed -i s/before/visual/", EDITOR="sed -i s/before/editor/"))
    assert new is not None and "<description>visual</description>" in new
    # an empty VISUAL does not count
    new = edit_text(XML, env=env(VISUAL="", EDITOR="sed -i s/before/editor/"))
    assert new is not None and "<description>editor</description>" in new


def test_unchanged_or_emptied_is_none(tmp_path: Path) -> None:
    assert edit_text(XML, env=env(EDITOR="true")) is None
    assert edit_text(XML, env=env(EDITOR=script(tmp_path, ': > "$1"'))) is None


def test_editor_sees_a_private_file_with_the_suffix_and_it_goes_afterwards(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    editor = script(tmp_path, f'echo "$1" > {seen}; stat -c %a "$(dirname "$1")" >> {seen}; echo x >> "$1"')
    new = edit_text("text\n", suffix=".yaml", env=env(EDITOR=editor))
    assert new == "text\nx\n"
    path, mode = seen.read_text().split()
    assert path.endswith(".yaml")
    assert mode == "700"
    assert not Path(path).exists() and not Path(path).parent.exists()


def test_failing_or_missing_editor_raises(tmp_path: Path) -> None:
    with pytest.raises(EditorError, match="exited with status 1"):
        edit_text(XML, env=env(EDITOR="false"))
    with pytest.raises(EditorError, match="cannot run the editor"):
        edit_text(XML, env=env(EDITOR=str(tmp_path / "no-such-editor")))


def test_well_formed_same_name_and_uuid_passes() -> None:
    assert xml_problem(XML, "web01", UUID) is None
    # the same UUID in another spelling is the same UUID
    assert xml_problem(XML.replace(UUID, UUID.upper()), "web01", UUID) is None


def test_malformed_xml_says_where() -> None:
    bad = XML.replace("<memory unit='KiB'>131072</memory>", "<memory unit='KiB'>131072</memroy>")
    why = xml_problem(bad, "web01", UUID)
    assert why is not None
    assert "not well-formed" in why and "mismatched tag" in why and "line 4, column" in why


def test_rename_and_uuid_changes_are_refused() -> None:
    why = xml_problem(XML.replace("web01", "web02"), "web01", UUID)
    assert why is not None and "rename is not supported here" in why
    other = "11111111-2222-3333-4444-555555555555"
    why = xml_problem(XML.replace(UUID, other), "web01", UUID)
    assert why is not None and "the UUID must stay" in why and other in why
    why = xml_problem(XML.replace(f"  <uuid>{UUID}</uuid>\n", ""), "web01", UUID)
    assert why is not None and "no <uuid>" in why
    why = xml_problem("<network><name>web01</name></network>", "web01", UUID)
    assert why is not None and "not a <domain>" in why


def test_changed_lines_counts_the_longer_side() -> None:
    assert changed_lines(XML, XML) == 0
    assert changed_lines(XML, XML.replace("before", "after")) == 1
    assert changed_lines(XML, XML.replace("before", "a\nb\nc")) == 3
    assert changed_lines("a\nb\n", "a\n") == 1
