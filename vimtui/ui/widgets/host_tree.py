"""HostTree: groups and hosts with a health mark, VM counts and load; choosing a node scopes the VM table."""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from vimtui.core.fleet.capacity import host_capacity, ratio
from vimtui.core.metrics.capacity import pool_fill
from vimtui.core.model import FleetState, HostState, HostStatus
from vimtui.core.text import shown
from vimtui.ui.format import literal, pct
from vimtui.ui.host_actions import HostActionsMixin

MARKS = {
    HostStatus.UP: ("●", "tree--up"),
    HostStatus.DEGRADED: ("◐", "tree--degraded"),
    HostStatus.CONNECTING: ("○", "tree--connecting"),
    HostStatus.UNREACHABLE: ("✖", "tree--down"),
    HostStatus.AUTH_FAILED: ("⚠", "tree--down"),
    HostStatus.HOSTKEY_MISMATCH: ("⚠", "tree--down"),
    HostStatus.ERROR: ("⚠", "tree--down"),
}


@dataclass(frozen=True, slots=True)
class Scope:
    """What the VM table shows: everything, a group (and its subgroups), or one host."""

    kind: str  # "all" | "group" | "host"
    value: str = ""

    def contains(self, host: HostState) -> bool:
        if self.kind == "host":
            return host.name == self.value
        if self.kind == "group":
            return host.group == self.value or host.group.startswith(self.value + "/")
        return True

    @property
    def label(self) -> str:
        return {"all": "all hosts", "group": f"group {self.value}", "host": f"host {self.value}"}[self.kind]


ALL = Scope("all")


class HostTree(HostActionsMixin, Tree[Scope]):
    """The fleet as a tree. Labels update in place each tick; the cursor stays where it was. The host
    actions' keys act on the host under the cursor."""

    COMPONENT_CLASSES = {"tree--up", "tree--degraded", "tree--connecting", "tree--down", "tree--dim"}
    DEFAULT_CSS = """
    HostTree { background: $surface; padding: 0 1; overflow-x: hidden; }
    HostTree > .tree--up { color: $success; }
    HostTree > .tree--degraded { color: $warning; }
    HostTree > .tree--connecting { color: $text-muted; }
    HostTree > .tree--down { color: $error; text-style: bold; }
    HostTree > .tree--dim { color: $text-muted; }
    """
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="host_tree.cursor_down"),
        Binding("k", "cursor_up", "Up", show=False, id="host_tree.cursor_up"),
    ]

    class ScopeChanged(Message):
        def __init__(self, scope: Scope) -> None:
            super().__init__()
            self.scope = scope

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("fleet", data=ALL, name=name, id=id, classes=classes)
        self.show_root = True
        self.guide_depth = 2
        self._by_scope: dict[Scope, TreeNode[Scope]] = {ALL: self.root}
        self._last: FleetState | None = None
        self.root.expand()

    def on_resize(self) -> None:
        """The columns a label shows depend on the width: made again for the new one."""
        if self._last is not None:
            self.update_state(self._last)

    def update_state(self, state: FleetState) -> None:
        """Add nodes for new groups and hosts; relabel those whose label changed (a changed label redraws
        its line: the whole tree each second, at 50 hosts, when every label was set anew)."""
        self._last = state
        counts = state.vm_counts
        group_totals: dict[str, list[int]] = {}
        for host in state.hosts:
            node = self._host_node(host)
            total, running = counts.get(host.name, (0, 0))
            _relabel(node, self._host_label(host, total, running))
            path = ""
            for part in host.group.split("/") if host.group else []:
                path = f"{path}/{part}" if path else part
                agg = group_totals.setdefault(path, [0, 0, 0, 0])
                agg[0] += 1
                agg[1] += host.status.healthy
                agg[2] += total
                agg[3] += running
        for path, (hosts, up, total, running) in group_totals.items():
            label = literal(path.rsplit("/", 1)[-1], "bold")
            label.append(f"  {up}/{hosts} up  {running}/{total} vms", style=self._style("tree--dim"))
            _relabel(self._by_scope[Scope("group", path)], label)
        up = sum(h.status.healthy for h in state.hosts)
        root = Text("fleet", style="bold")
        root.append(f"  {up}/{len(state.hosts)} up  {len(state.vms)} vms", style=self._style("tree--dim"))
        _relabel(self.root, root)

    def _host_node(self, host: HostState) -> TreeNode[Scope]:
        scope = Scope("host", host.name)
        node = self._by_scope.get(scope)
        if node is None:
            parent = self.root
            path = ""
            for part in host.group.split("/") if host.group else []:
                path = f"{path}/{part}" if path else part
                gscope = Scope("group", path)
                if gscope not in self._by_scope:
                    self._by_scope[gscope] = parent.add(literal(part), data=gscope, expand=True)
                parent = self._by_scope[gscope]
            node = self._by_scope[scope] = parent.add_leaf(literal(host.name), data=scope)
        return node

    def _style(self, component: str) -> Style:
        return self.get_component_rich_style(component, partial=True)

    def _host_label(self, host: HostState, total: int, running: int) -> Text:
        mark, component = MARKS[host.status]
        label = Text(mark + " ", style=self._style(component))
        label.append(shown(host.name), style="bold" if host.status.healthy else "")
        dim = self._style("tree--dim" if host.status.healthy else component)
        room = self._room(host) - label.cell_len
        if host.maintenance is not None:
            label.append(" maint", style=self._style("tree--degraded"))
            room -= 6
        if not host.status.healthy:
            label.append(f"  {host.status}", style=dim)
            return label
        r = host.rates
        cap = host_capacity(host)
        fill = pool_fill(host, 0.0)
        parts = [
            (0, f"{running}/{total}"),
            (0, f"cpu {pct(r.cpu_pct if r else None)}"),
            (0, f"mem {pct(r.mem_pct if r else None)}"),
            (3, f"v:c {ratio(cap.vcpu_ratio)}"),
            (4, f"m:p {ratio(cap.mem_ratio)}"),
            (5, f"pool {pct(fill, digits=0)}"),
        ]
        shown_parts: list[tuple[int, str]] = []
        for rank, text in parts:  # counts and use always; each capacity column in if it fits what is left
            if rank == 0 or len(text) + 2 <= room:
                shown_parts.append((rank, text))
                room -= len(text) + 2
        label.append("".join(f"  {text}" for _rank, text in shown_parts), style=dim)
        return label

    def _room(self, host: HostState) -> int:
        """Columns a host's label has: the tree's content width less the guides before it, and one spare."""
        depth = 1 + (host.group.count("/") + 1 if host.group else 0)
        width = self.content_region.width or 32
        return max(width - depth * self.guide_depth - 1, 0)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[Scope]) -> None:
        event.stop()
        if event.node.data is not None:
            self.post_message(self.ScopeChanged(event.node.data))
        self.refresh_bindings()

    def select_scope(self, scope: Scope) -> bool:
        """Move the cursor to a scope's node (the `:host NAME` command); False when there is none."""
        node = self._by_scope.get(scope)
        if node is None:
            return False
        self.move_cursor(node)
        return True

    def host_target(self) -> str | None:
        scope = self.scope
        return scope.value if scope.kind == "host" else None

    @property
    def scope(self) -> Scope:
        node = self.cursor_node
        return node.data if node is not None and node.data is not None else ALL


def _relabel(node: TreeNode[Scope], label: Text) -> None:
    if node.label != label:
        node.set_label(label)
