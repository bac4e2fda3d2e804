"""VmTable on made-up VMs (this is the screen, not the core): rows, sorting, cursor and marks across
updates, keys, messages, width, laziness; and the unit formatting it uses (vimtui.ui.format)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pytest
from rich.style import Style
from textual.app import App, ComposeResult
from textual.message import Message
from textual.strip import Strip

from tests.factories import domain_details
from vimtui.core.model import VmState
from vimtui.core.monitor.rings import History
from vimtui.core.poll.domxml import DomainDetails
from vimtui.core.poll.stats import VmRates
from vimtui.ui import format as fmt
from vimtui.ui.widgets.vm_columns import SPARK_CELLS, Sorter, layout, sort_columns, sort_vms
from vimtui.ui.widgets.vm_table import VmTable

NOW = 1_000_000.0
METRICS = ("cpu", "mem", "disk_rd", "disk_wr", "net_rx", "net_tx")


def rates(cpu: float | None = None, used_kib: int | None = None, disk: float | None = None) -> VmRates:
    return VmRates(cpu, None, used_kib, None, disk, disk, None, None, None, None)


def details(name: str, tags: tuple[str, ...]) -> DomainDetails:
    return domain_details(name, memory_kib=1 << 20, vcpus=2, tags=tags)


def vm(
    name: str,
    host: str = "kvm01",
    *,
    cpu: float | None = None,
    state: str = "running",
    stale: bool = False,
    used_kib: int | None = None,
    tags: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> VmState:
    return VmState(
        uuid=f"uuid-{name}",
        name=name,
        host=host,
        state=state,
        reason=1,
        vcpus=2,
        mem_max_kib=1 << 20,
        mem_current_kib=1 << 20,
        sample=None,
        rates=rates(cpu, used_kib),
        details=details(name, tags) if tags else None,
        ips=ips,
        stale=stale,
        state_since=NOW - 3 * 86400 - 4 * 3600 if state == "running" else 0.0,
    )


def key(name: str, host: str = "kvm01") -> str:
    return f"{host}/uuid-{name}"


class TableApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[Message] = []

    def compose(self) -> ComposeResult:
        yield VmTable()

    def on_vm_table_highlighted(self, message: VmTable.Highlighted) -> None:
        self.messages.append(message)

    def on_vm_table_selected(self, message: VmTable.Selected) -> None:
        self.messages.append(message)

    def on_vm_table_marks_changed(self, message: VmTable.MarksChanged) -> None:
        self.messages.append(message)

    def of(self, kind: type[Message]) -> list[Message]:
        return [m for m in self.messages if isinstance(m, kind)]


def first_style(strip: Strip) -> Style | None:
    return next(iter(strip)).style


def lines(table: VmTable) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


def row_line(table: VmTable, vm_key: str) -> str:
    """The rendered line of a VM's row (it must be on screen)."""
    y = table.rows.index(vm_key) - table.scroll_offset.y + 1
    assert 1 <= y < table.size.height, f"{vm_key} is not on screen"
    return table.render_line(y).text


def names_on_screen(table: VmTable) -> list[str]:
    return [line.split()[0].lstrip("●") or line.split()[1] for line in lines(table)[1:] if line.strip()]


FLEET = [
    vm("web", "kvm02", cpu=40.0),
    vm("db", "kvm01", cpu=90.0),
    vm("cache", "kvm01", cpu=None, state="shutoff"),
    vm("api", "kvm02", cpu=5.0),
    vm("batch", "kvm03", cpu=None, state="paused"),
]


# --------------------------------------------------------------------------------------------- widget


async def test_rows_render_in_host_then_name_order_under_a_fixed_header() -> None:
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(VmTable)
        table.update(
            [*FLEET[:4], vm("batch", "kvm03", state="paused", used_kib=421888, ips=("10.0.0.7",))],
            history=None,
            now=NOW,
        )
        await pilot.pause()
        header, *rows = lines(table)
        assert header.split()[:4] == ["NAME", "HOST▲", "STATE", "VCPU"]
        assert table.rows == (
            key("cache"),
            key("db"),
            key("api", "kvm02"),
            key("web", "kvm02"),
            key("batch", "kvm03"),
        )
        assert table.visible_count == 5
        assert [r.split()[:3] for r in rows[:5]] == [
            ["cache", "kvm01", "shutoff"],
            ["db", "kvm01", "running"],
            ["api", "kvm02", "running"],
            ["web", "kvm02", "running"],
            ["batch", "kvm03", "paused"],
        ]
        assert "90.0%" in rows[1] and "3d4h" in rows[1]  # CPU and uptime of a running VM
        assert "412M/1.0G" in rows[4] and "10.0.0.7" in rows[4]
        assert "?/1.0G" in rows[1]  # memory use unknown, allocation known
        assert rows[5].strip() == ""  # nothing under the last VM


async def test_sorting_by_cpu_and_by_name_with_unknown_last_both_ways() -> None:
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(VmTable)
        table.update(FLEET, history=None, now=NOW)
        table.sort_by("cpu")
        await pilot.pause()
        assert names_on_screen(table) == ["api", "web", "db", "cache", "batch"]
        assert "CPU%▲" in lines(table)[0]
        table.sort_by("cpu")  # the same column again: reversed, unknown still last, ties in host order
        await pilot.pause()
        assert table.sort_reverse
        assert names_on_screen(table) == ["db", "web", "api", "cache", "batch"]
        assert "CPU%▼" in lines(table)[0]
        table.sort_by("name")
        await pilot.pause()
        assert not table.sort_reverse
        assert names_on_screen(table) == ["api", "batch", "cache", "db", "web"]
        table.sort_by("name", reverse=True)
        await pilot.pause()
        assert names_on_screen(table) == ["web", "db", "cache", "batch", "api"]
        with pytest.raises(ValueError):
            table.sort_by("colour")


async def test_cursor_and_marks_follow_their_vms_when_every_vm_changes_and_the_order_too() -> None:
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(VmTable)
        fleet = [vm(f"vm{i:02d}", cpu=float(i)) for i in range(20)]
        table.update(fleet, history=None, now=NOW)
        table.sort_by("cpu", reverse=True)
        await pilot.pause()
        table.focus()
        assert table.current_key == key("vm00")  # the cursor followed its VM to the end
        await pilot.press("g", "j", "j", "j")  # vm16
        assert table.current_key == key("vm16") and table.cursor == 3
        await pilot.press("space")  # marks vm16, cursor to vm15
        assert table.marked == {key("vm16")}
        assert table.current_key == key("vm15")

        # new objects, all values changed, order reversed; vm00 filtered out by the caller
        table.update([vm(f"vm{i:02d}", cpu=100.0 - i) for i in range(1, 20)], history=None, now=NOW + 2)
        await pilot.pause()
        assert table.current_key == key("vm15")
        assert table.cursor == table.rows.index(key("vm15")) == 14
        assert table.marked == {key("vm16")}
        assert row_line(table, key("vm16")).startswith("●")
        assert not row_line(table, key("vm15")).startswith("●")
        # the row the cursor is drawn on is vm15's
        cursor_style = table.get_component_rich_style("vm-table--cursor")
        cursor_y = table.cursor - table.scroll_offset.y + 1
        assert "vm15" in table.render_line(cursor_y).text
        assert (first_style(table.render_line(cursor_y)) or Style()).bgcolor == cursor_style.bgcolor
        assert (first_style(table.render_line(cursor_y + 1)) or Style()).bgcolor != cursor_style.bgcolor
        # the VM under the cursor did not change: no new Highlighted for the update
        highlighted = app.of(VmTable.Highlighted)
        assert isinstance(highlighted[-1], VmTable.Highlighted) and highlighted[-1].key == key("vm15")


async def test_cursor_clamps_when_its_vm_disappears() -> None:
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(VmTable)
        table.update(FLEET, history=None, now=NOW)
        table.focus()
        await pilot.press("G")
        assert table.current_key == key("batch", "kvm03") and table.cursor == 4
        table.update(FLEET[:4], history=None, now=NOW)  # batch gone
        await pilot.pause()
        assert table.cursor == 3 and table.current_key == key("web", "kvm02")
        last = app.of(VmTable.Highlighted)[-1]
        assert isinstance(last, VmTable.Highlighted) and last.key == key("web", "kvm02")
        table.update([], history=None, now=NOW)
        await pilot.pause()
        assert table.cursor == 0 and table.current_key is None
        last = app.of(VmTable.Highlighted)[-1]
        assert isinstance(last, VmTable.Highlighted) and last.key is None


async def test_ctrl_a_marks_all_visible_and_keeps_marks_of_filtered_out_vms() -> None:
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(VmTable)
        table.update(FLEET, history=None, now=NOW)
        table.focus()
        await pilot.press("G", "space")  # batch
        table.update(FLEET[:3], history=None, now=NOW)  # the caller filters batch (and api) out
        await pilot.press("ctrl+a")
        assert table.marked == {key("batch", "kvm03"), *(v.key for v in FLEET[:3])}
        assert all(line.startswith("●") for line in lines(table)[1:4])
        changed = app.of(VmTable.MarksChanged)[-1]
        assert isinstance(changed, VmTable.MarksChanged) and changed.keys == table.marked
        await pilot.press("u")
        assert table.marked == frozenset()
        assert not any(line.startswith("●") for line in lines(table)[1:])


async def test_space_toggles_the_mark_and_moves_down() -> None:
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(VmTable)
        table.update(FLEET, history=None, now=NOW)
        table.focus()
        await pilot.press("space")
        assert table.marked == {key("cache")} and table.cursor == 1
        assert lines(table)[1].startswith("●") and not lines(table)[2].startswith("●")
        await pilot.press("k", "space")
        assert table.marked == frozenset() and table.cursor == 1
        assert not lines(table)[1].startswith("●")


async def test_stale_rows_are_shown_dimmed_not_removed() -> None:
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(VmTable)
        table.update([vm("fresh", cpu=1.0), vm("gone", cpu=2.0, stale=True)], history=None, now=NOW)
        table.focus()
        await pilot.pause()
        assert names_on_screen(table) == ["fresh", "gone"]

        def dim(y: int) -> list[bool]:
            return [bool(seg.style is not None and seg.style.dim) for seg in table.render_line(y)]

        assert "2.0%" in table.render_line(2).text
        assert all(dim(2)) and not any(dim(1))
        await pilot.press("j")  # the cursor on the stale row: still dim under the cursor
        assert all(dim(2)) and not any(dim(1))


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (200, 50)])
async def test_narrow_screens_drop_low_priority_columns_but_keep_name_and_state(
    size: tuple[int, int],
) -> None:
    app = TableApp()
    async with app.run_test(size=size) as pilot:
        table = app.query_one(VmTable)
        table.update(
            [
                vm("web-frontend-01", cpu=12.5, tags=("prod", "db"), ips=("192.168.100.200",)),
                vm("a-name-far-too-long-for-any-of-these-screens-" * 2, host="kvm02"),
            ],
            history=None,
            now=NOW,
        )
        await pilot.pause()
        header, row, long = lines(table)[:3]
        assert len(header) == len(row) == len(long) == size[0]
        assert "NAME" in header and "STATE" in header and "CPU%" in header
        assert "web-frontend-01" in row and "running" in row and "12.5%" in row
        assert "a-name-far-too" in long and "…" in long and "running" in long
        if size[0] == 80:
            assert "TAGS" not in header and "IP" not in header.split()
            assert "prod" not in row and "192.168.100.200" not in row
        if size[0] == 200:
            assert set(table.columns) == {c.column.id for c in layout(1000)}
            assert "prod,db" in row and "192.168.100.200" in row


def test_layout_never_drops_name_or_state_and_fills_the_width() -> None:
    for width in range(10, 260):
        slots = layout(width)
        ids = [s.column.id for s in slots]
        assert "name" in ids and "state" in ids
        end = slots[-1].x + slots[-1].width
        assert end <= width or width < 14, width  # 14: the mark, 4 cells of name, the state
    assert [s.column.id for s in layout(78)][:4] == ["mark", "name", "host", "state"]


async def test_G_goes_to_the_last_row_and_g_to_the_first() -> None:
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(VmTable)
        table.update([vm(f"vm{i:04d}") for i in range(500)], history=None, now=NOW)
        table.focus()
        await pilot.press("G")
        assert table.cursor == 499 and table.current_key == key("vm0499")
        assert lines(table)[-1].split()[0] == "vm0499"  # scrolled: the last VM on the last line
        assert lines(table)[0].split()[0] == "NAME"  # the header stays
        await pilot.press("g")
        assert table.cursor == 0 and table.scroll_offset.y == 0
        assert lines(table)[1].split()[0] == "vm0000"
        await pilot.press("pagedown")
        assert table.cursor == table.size.height - 1
        await pilot.press("end", "home")
        assert table.cursor == 0


async def test_enter_posts_selected_and_moves_post_highlighted() -> None:
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(VmTable)
        table.update(FLEET, history=None, now=NOW)
        table.focus()
        await pilot.press("j", "enter")
        await pilot.pause()
        selected = app.of(VmTable.Selected)
        assert len(selected) == 1
        assert isinstance(selected[0], VmTable.Selected) and selected[0].key == key("db")
        assert selected[0].control is table
        assert [m.key for m in app.of(VmTable.Highlighted) if isinstance(m, VmTable.Highlighted)][-1] == key(
            "db"
        )


async def test_a_click_moves_the_cursor_and_a_header_click_sorts() -> None:
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(VmTable)
        table.update(FLEET, history=None, now=NOW)
        await pilot.pause()
        await pilot.click(VmTable, offset=(5, 3))  # third row
        assert table.cursor == 2 and table.current_key == key("api", "kvm02")
        name_x = lines(table)[0].index("NAME")
        await pilot.click(VmTable, offset=(name_x, 0))
        assert table.sort_column == "name"
        assert table.current_key == key("api", "kvm02") and table.cursor == 0


async def test_the_sparkline_draws_the_last_cpu_samples_from_history() -> None:
    history = History(METRICS)
    for i in range(12):  # the last SPARK_CELLS of these are drawn
        history.record(key("busy"), NOW - 11 + i, {"cpu": 100.0 * i / 11})
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(VmTable)
        table.update([vm("busy", cpu=100.0), vm("idle", cpu=0.0)], history=history, now=NOW)
        await pilot.pause()
        busy, idle = lines(table)[1:3]
        expected = fmt.sparkline([100.0 * i / 11 for i in range(12)], SPARK_CELLS)
        assert expected.endswith("█") and expected in busy
        assert not any(c in idle for c in fmt.SPARK_BLOCKS)


async def test_only_visible_rows_are_formatted_and_unchanged_rows_are_not_formatted_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[str] = []
    original = VmTable._build_row

    def counting(self: VmTable, vm: VmState, *args: object, **kwargs: object) -> object:
        built.append(vm.name)
        return original(self, vm, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(VmTable, "_build_row", counting)
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(VmTable)
        fleet = [vm(f"vm{i:05d}", cpu=float(i % 100)) for i in range(5000)]
        table.update(fleet, history=None, now=NOW)
        await pilot.pause()
        rows_on_screen = table.size.height - 1
        assert 0 < len(set(built)) <= rows_on_screen
        built.clear()
        table.update(list(fleet), history=None, now=NOW)  # the same VmState objects: nothing to format
        await pilot.pause()
        assert built == []
        table.focus()
        await pilot.press("j")  # only the two rows whose cursor look changed
        assert sorted(set(built)) == ["vm00000", "vm00001"]
        built.clear()
        table.update([vm(f"vm{i:05d}", cpu=1.0) for i in range(5000)], history=None, now=NOW + 2)
        await pilot.pause()
        assert 0 < len(set(built)) <= rows_on_screen


async def test_focus_changes_the_cursor_look() -> None:
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(VmTable)
        table.update(FLEET, history=None, now=NOW)
        await pilot.pause()
        table.focus()
        await pilot.pause()
        focused = first_style(table.render_line(1))
        table.blur()
        await pilot.pause()
        blurred = first_style(table.render_line(1))
        assert blurred is not None and focused is not None and blurred.bgcolor != focused.bgcolor


def test_every_column_sorts_unknown_last_both_ways_with_ties_in_host_then_name_order() -> None:
    fleet = [
        vm("y", "kvm03", state="shutoff"),
        vm("b", "kvm02", cpu=10.0, used_kib=100, tags=("x",), ips=("10.0.0.2",)),
        vm("z", "kvm01", state="shutoff"),
        vm("a", "kvm02", cpu=10.0, used_kib=100, tags=("x",), ips=("10.0.0.2",)),
        vm("c", "kvm01", cpu=50.0, used_kib=900, tags=("y",), ips=("10.0.0.9",)),
    ]
    # host then name: c z (kvm01), a b (kvm02), y (kvm03); y and z know no cpu, memory, ip, tags, uptime
    expected = {
        # column: (ascending, descending)
        "host": ("czaby", "ybazc"),
        "name": ("abcyz", "zycba"),
        "state": ("cabzy", "zycab"),  # running < shutoff
        "vcpu": ("czaby", "czaby"),  # all equal: host then name order both ways
        "cpu": ("abczy", "cabzy"),
        "mem": ("abczy", "cabzy"),
        "disk": ("czaby", "czaby"),  # all unknown
        "net": ("czaby", "czaby"),
        "ip": ("abczy", "cabzy"),
        "uptime": ("cabzy", "cabzy"),  # the running three started together
        "tags": ("abczy", "cabzy"),
        "mark": ("yczab", "czaby"),  # marked first
    }
    assert set(expected) == set(sort_columns())
    marks = {key("y", "kvm03")}
    for column, (up, down) in expected.items():
        assert "".join(v.name for v in sort_vms(fleet, column, False, now=NOW, marks=marks)) == up, column
        assert "".join(v.name for v in sort_vms(fleet, column, True, now=NOW, marks=marks)) == down, column
    with pytest.raises(ValueError):
        sort_vms(fleet, "colour", False)


def test_the_sorter_reuses_its_order_only_while_hosts_and_names_stay_in_place() -> None:
    sorter = Sorter()
    fleet = [vm("b"), vm("a"), vm("c", "kvm00")]
    assert list(sorter.sort(fleet, "host", False)) == [2, 1, 0]
    renamed = [vm("b"), vm("d"), vm("c", "kvm00")]  # a renamed to d: the order changes
    assert list(sorter.sort(renamed, "host", False)) == [2, 0, 1]
    moved = [vm("b"), vm("d"), vm("c", "kvm09")]  # c migrated to another host
    assert list(sorter.sort(moved, "host", False)) == [0, 1, 2]
    assert list(sorter.sort(moved, "host", True)) == [2, 1, 0]


async def test_the_table_keeps_its_own_copy_of_the_callers_list() -> None:
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(VmTable)
        fleet = list(FLEET)
        table.update(fleet, history=None, now=NOW)
        fleet.clear()
        await pilot.pause()
        assert table.visible_count == 5 and names_on_screen(table)[0] == "cache"


# --------------------------------------------------------------------------------------------- format


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (math.nan, "-"), (0.0, "0.0%"), (34.46, "34.5%"), (100.0, "100.0%")],
)
def test_pct(value: float | None, text: str) -> None:
    assert fmt.pct(value) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "-"),
        (0, "0B"),
        (999, "999B"),
        (1000, "1.0K"),
        (1234, "1.2K"),
        (34 * 1024, "34K"),
        (412 * 1024**2, "412M"),
        (1023.9 * 1024**2, "1.0G"),
        (1024**3, "1.0G"),
        (9.8 * 1024**3, "9.8G"),
        (16 * 1024**3, "16G"),
        (3 * 1024**5, "3.0P"),
        (-2048, "-2.0K"),
    ],
)
def test_size_is_at_most_four_characters(n: float | None, text: str) -> None:
    assert fmt.size(n) == text
    assert n is None or len(fmt.size(abs(n))) <= 4


def test_sizes_across_the_range_fit_four_characters() -> None:
    for exp in range(0, 60):
        for mant in (1.0, 1.5, 9.94, 9.96, 99.4, 99.6, 999.4, 999.6, 1023.9):
            assert len(fmt.size(mant * 2.0**exp)) <= 4, mant * 2.0**exp


def test_kib_rate_and_memory_pairs() -> None:
    assert fmt.kib(421888) == "412M"
    assert fmt.rate(1234) == "1.2K/s"
    assert fmt.rate(1234, per="") == "1.2K"
    assert fmt.rate(None) == "-"
    assert fmt.mem_used_of(421888, 1 << 20) == "412M/1.0G"
    assert fmt.mem_used_of(None, 1 << 20) == "?/1.0G"
    assert fmt.mem_used_of(421888, None) == "412M/?"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (-5, "0s"),
        (0, "0s"),
        (42.9, "42s"),
        (60, "1m"),
        (312, "5m12s"),
        (3 * 3600 + 4 * 60 + 59, "3h4m"),
        (7200, "2h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (86400, "1d"),
        (400 * 86400 + 23 * 3600, "400d23h"),
    ],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert fmt.duration(seconds) == text


def sparks(values: Iterable[float], width: int = 8, **kw: float | None) -> str:
    return fmt.sparkline(list(values), width, **kw)  # type: ignore[arg-type]


def test_sparkline() -> None:
    assert sparks([0, 12.5, 25, 37.5, 50, 62.5, 75, 100]) == "▁▂▃▄▅▆▇█"
    assert sparks([50.0, 50.0]) == "      ▅▅"  # right-aligned, padded to the width
    assert sparks(range(20), width=4, hi=None) == "▇███"  # the last 4, scaled to their maximum (19)
    assert sparks([1.0, 2.0, 3.0, 4.0], width=4, lo=1.0, hi=5.0) == "▁▃▅▇"
    assert sparks([-10.0, math.nan, 500.0], width=3) == "▁ █"  # clamped; NaN is a gap
    assert sparks([], width=3) == "   "
    assert sparks([1.0], width=0) == ""
    assert sparks([0.0, 0.0], width=2, hi=None) == "▁▁"
