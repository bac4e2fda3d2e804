"""The host detail screen's storage: its pools (state, autostart, capacity, allocation, free), the volumes
of the pool under the cursor (format, sizes, backing, which domains use each), or the host's orphaned
volumes (`o`: those no domain defined on the host uses, with their sizes); the keys of the pool and volume
actions act on the row under the cursor, their forms and confirmations made from the registry.

The lists are asked of the host on its lane (Fleet.ask) when the screen opens, on `r`, and after each of
its tasks ends; nothing here calls libvirt.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from vimtui.core.actions import Action, of_kind, targets
from vimtui.core.actions import storage_view as view
from vimtui.core.fleet.fleet import QueryFailed
from vimtui.core.fleet.tasks import ActionError, Task
from vimtui.core.units import format_bytes
from vimtui.ui.format import literal, pct
from vimtui.ui.target_actions import run_target_action, target_why_not
from vimtui.ui.vm_actions import ACTIONS_GROUP
from vimtui.ui.widgets.list_table import ListTable

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp


def _bindings(kind: str, extra: tuple[Action, ...] = ()) -> list[Binding]:
    """One binding per action of `kind` with a key (id `pool.start`, remappable from [keys])."""
    acts = [a for a in of_kind(kind) if a.key] + list(extra)
    return [
        Binding(a.key, f"target('{a.target}', '{a.name}')", a.title, id=a.id, show=a.bar, group=ACTIONS_GROUP)
        for a in acts
    ]


def storage_bindings() -> list[Binding]:
    """Every pool and volume action's binding (for `?` and checking [keys])."""
    return _bindings("pool") + _bindings("volume")


def _create_volume() -> tuple[Action, ...]:
    return tuple(a for a in of_kind("volume") if a.creates and a.key)


class _TargetTable(ListTable[Any]):
    """A list of pools or volumes whose keys run the actions of its kind on the row under the cursor."""

    kind = ""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, id="storage.cursor_down"),
        Binding("k", "cursor_up", "Up", show=False, id="storage.cursor_up"),
    ]

    def __init__(self, panel: StoragePanel, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.panel = panel

    def selected(self) -> str | None:
        return self.panel.selected(self.kind)

    def _why_not(self, kind: str, name: str) -> str | None:
        act = next((a for a in of_kind(kind) if a.name == name), None)
        if act is None:
            return f"no {kind} action {name}"
        if kind == "volume" and act.creates:
            return target_why_not(self.panel.vimapp, act, self.panel.host, self.panel.selected("pool"))
        return target_why_not(self.panel.vimapp, act, self.panel.host, self.panel.selected(kind))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "target":
            return None if self._why_not(str(parameters[0]), str(parameters[1])) else True
        return True

    def action_refusal(self, action: str, parameters: tuple[object, ...]) -> str | None:
        if action == "target":
            return self._why_not(str(parameters[0]), str(parameters[1]))
        return None

    def action_target(self, kind: str, name: str) -> None:
        self.panel.act(kind, name)


class PoolTable(_TargetTable):
    kind = "pool"

    def __init__(self, panel: StoragePanel, **kwargs: Any) -> None:
        super().__init__(panel, **kwargs)
        self._bindings = self._bindings.merge([self._bindings, _binding_map("pool", _create_volume())])


class VolumeTable(_TargetTable):
    kind = "volume"

    def __init__(self, panel: StoragePanel, **kwargs: Any) -> None:
        super().__init__(panel, **kwargs)
        self._bindings = self._bindings.merge([self._bindings, _binding_map("volume")])


def _binding_map(kind: str, extra: tuple[Action, ...] = ()) -> Any:
    from textual.binding import BindingsMap

    return BindingsMap(_bindings(kind, extra))


class StoragePanel(Vertical):
    BINDINGS = [Binding("o", "orphans", "Orphans", id="storage.orphans")]
    DEFAULT_CSS = """
    StoragePanel { height: auto; }
    StoragePanel DataTable { height: auto; max-height: 14; }
    StoragePanel .storage-title { text-style: bold; margin-top: 1; }
    """

    def __init__(self, host: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.pools: dict[str, view.PoolRow] = {}
        self.volumes: dict[str, view.VolumeRow] = {}
        self.orphans = False
        self._shown = False
        self._listed: str | None = None
        """The pool whose volumes are listed (or being listed)."""
        """Showing the host's orphaned volumes (all pools) rather than those of the pool under the cursor."""

    @property
    def vimapp(self) -> VimApp:
        return cast("VimApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static("Storage pools: loading ...", id="pools-title", classes="storage-title")
        yield PoolTable(self, id="pool-table")
        yield Static("", id="volumes-title", classes="storage-title")
        yield VolumeTable(self, id="volume-table")

    def on_mount(self) -> None:
        t = self.query_one(PoolTable)
        for col in (
            "pool",
            "type",
            "state",
            "autostart",
            "capacity",
            "allocated",
            "free",
            "used",
            "vols",
            "path",
        ):
            t.add_column(col, key=col)
        self._volume_columns()

    def _volume_columns(self) -> None:
        t = self.query_one(VolumeTable)
        t.clear(columns=True)
        cols = ["pool"] if self.orphans else []
        for col in (*cols, "volume", "format", "capacity", "allocated", "used by", "backing"):
            t.add_column(col, key=col)

    # -- what is selected ---------------------------------------------------------------------------

    def selected(self, kind: str) -> str | None:
        """The pool (`POOL`) or volume (`POOL/VOL`) under the cursor of its list."""
        table: DataTable[Any] = self.query_one(PoolTable if kind == "pool" else VolumeTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # the table is being refilled
            return None
        return str(key) if key is not None else None

    def row(self, kind: str, name: str | None) -> Any:
        if name is None:
            return None
        return self.pools.get(name) if kind == "pool" else self.volumes.get(name)

    # -- acting ---------------------------------------------------------------------------------------

    def act(self, kind: str, name: str) -> None:
        act = next(a for a in of_kind(kind) if a.name == name)
        if kind == "volume" and act.creates:
            where = self.selected("pool") or (self.selected("volume") or "").split("/")[0] or None
        else:
            where = self.selected(kind)
        if where is None:
            self.vimapp.notify(f"{act.title}: no {kind} selected", severity="warning", timeout=4)
            return
        row = self.row(kind, where)
        self.vimapp.run_worker(
            run_target_action(self.vimapp, act, self.host, where, row, done=self._task_done),
            group="storage-actions",
        )

    def commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        """The palette's entries: every pool and volume action on the rows under the cursors; those that do
        not apply are listed as such, and say why."""
        out: list[tuple[str, str, Callable[[], object]]] = []
        for kind in ("pool", "volume"):
            for act in of_kind(kind):
                where = self.selected("pool") if act.creates and kind == "volume" else self.selected(kind)
                why = target_why_not(self.vimapp, act, self.host, where)
                what = f"{self.host}" if act.creates and kind == "pool" else f"{self.host}/{where or '-'}"
                title = f"{'Pool' if kind == 'pool' else 'Volume'}: {act.title} {what}"
                hint = f":{targets.GROUP[kind]} {act.name}" + (f"  ({act.key})" if act.key else "")
                if why:
                    note = partial(self.vimapp.notify, why, markup=False)
                    out.append((f"{title} — not available", f"{hint}: {why}", note))
                else:
                    out.append((title, f"{hint}: {act.help}", partial(self.act, kind, act.name)))
        return out

    def _task_done(self, _task: Task) -> None:
        self.reload()
        self._refresh_figures()

    @work(group="storage-figures", exit_on_error=False, description="pool figures")
    async def _refresh_figures(self) -> None:
        """The fleet's figures of this host's pools (capacity, the tree's fill) read again now, not at the
        next pool watch."""
        await self.vimapp.fleet.pools.refresh(self.host)

    def action_orphans(self) -> None:
        self.orphans = not self.orphans
        self._volume_columns()
        self._load_volumes()

    # -- loading --------------------------------------------------------------------------------------

    def reload(self) -> None:
        self._load_pools()

    @work(exclusive=True, group="storage-pools", exit_on_error=False, description="storage pools")
    async def _load_pools(self) -> None:
        title = self.query_one("#pools-title", Static)
        try:
            rows = await self.vimapp.fleet.ask(self.host, view.pool_rows)
        except QueryFailed as exc:
            title.update(literal(f"Storage pools: {exc}"))
            return
        self.pools = {r.name: r for r in rows}
        table = self.query_one(PoolTable)
        keep = self.selected("pool")
        table.clear()
        for r in rows:
            table.add_row(*_pool_cells(r), key=r.name)
        if keep in self.pools:
            table.move_cursor(row=table.get_row_index(keep))
        if not self._shown:  # the first list: its keys work at once (unless another list was asked for)
            self._shown = True
            focused = self.screen.focused
            if not isinstance(focused, DataTable) or self in focused.ancestors:
                table.focus()
        total = sum(r.capacity for r in rows if r.active)
        free = sum(r.available for r in rows if r.active)
        title.update(Text(f"Storage pools ({len(rows)}; {format_bytes(free)} free of {format_bytes(total)})"))
        await self._fill_volumes()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if isinstance(event.data_table, PoolTable) and not self.orphans:
            if self.selected("pool") != self._listed:  # (not again for the pool just listed)
                self._load_volumes()

    @work(exclusive=True, group="storage-volumes", exit_on_error=False, description="volumes")
    async def _load_volumes(self) -> None:
        await self._fill_volumes()

    async def _fill_volumes(self) -> None:
        title = self.query_one("#volumes-title", Static)
        table = self.query_one(VolumeTable)
        pool = self.selected("pool")
        self._listed = None if self.orphans else pool
        if self.orphans:
            what = f"Orphaned volumes on {self.host} (used by no domain defined there, backing none)"
            ask: Any = view.orphans
            args: tuple[Any, ...] = ()
        else:
            if pool is None:
                table.clear()
                title.update(Text("Volumes: no pool selected"))
                return
            row = self.pools.get(pool)
            if row is not None and not row.active:
                table.clear()
                self.volumes = {}
                title.update(literal(f"Volumes of {pool}: the pool is inactive (s starts it)"))
                return
            what = f"Volumes of {pool}"
            ask, args = view.volume_rows, ([pool],)
        if not table.row_count:
            title.update(literal(f"{what}: loading ..."))
        try:
            rows = await self.vimapp.fleet.ask(self.host, ask, *args)
        except (QueryFailed, ActionError) as exc:
            title.update(literal(f"{what}: {exc}"))
            return
        keep = self.selected("volume")
        self.volumes = {f"{r.pool}/{r.name}": r for r in rows}
        table.clear()
        for r in rows:
            table.add_row(*_volume_cells(r, self.orphans), key=f"{r.pool}/{r.name}")
        if keep in self.volumes:
            table.move_cursor(row=table.get_row_index(keep))
        used = sum(r.allocation for r in rows)
        other = "o: the pool's volumes" if self.orphans else "o: the host's orphaned volumes"
        title.update(
            literal(f"{what} ({len(rows)}, {format_bytes(used)} allocated)  ") + Text(other, style="dim")
        )


def _pool_cells(r: view.PoolRow) -> list[Text]:
    used = 100.0 * r.allocation / r.capacity if r.active and r.capacity else None
    state = "active" if r.active else "inactive"
    return [
        literal(r.name),
        literal(r.type),
        Text(state, style="" if r.active else "dim"),
        Text("yes" if r.autostart else "no"),
        Text(format_bytes(r.capacity) if r.active else "-"),
        Text(format_bytes(r.allocation) if r.active else "-"),
        Text(format_bytes(r.available) if r.active else "-"),
        Text(pct(used, digits=0)),
        Text("-" if r.volumes is None else str(r.volumes)),
        literal(r.path or "-"),
    ]


def _volume_cells(r: view.VolumeRow, with_pool: bool) -> list[Text]:
    users = ", ".join(r.used_by)
    if r.backs:
        users = (users + "; " if users else "") + f"backs {len(r.backs)}"
    cells = [literal(r.pool)] if with_pool else []
    return cells + [
        literal(r.name),
        literal(r.format or "-"),
        Text(format_bytes(r.capacity)),
        Text(format_bytes(r.allocation)),
        literal(users or "-", "" if users else "dim"),
        literal(r.backing or "-"),
    ]
