"""HostTree: groups and hosts with a health mark, VM counts and load; choosing a node scopes the VM table."""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from vimtui.core.model import FleetState, HostState, HostStatus
from vimtui.core.text import shown
from vimtui.ui.format import literal, pct

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


class HostTree(Tree[Scope]):
    """The fleet as a tree. Labels update in place each tick; the cursor stays where it was."""

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
        self.root.expand()

    def update_state(self, state: FleetState) -> None:
        """Add nodes for new groups and hosts; relabel those whose label changed (a changed label redraws
        its line: the whole tree each second, at 50 hosts, when every label was set anew)."""
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
        if host.status.healthy:
            r = host.rates
            cpu, mem = (r.cpu_pct, r.mem_pct) if r else (None, None)
            detail = f"  {running}/{total}  cpu {pct(cpu)}  mem {pct(mem)}"
        else:
            detail = f"  {host.status}"
        label.append(detail, style=self._style("tree--dim" if host.status.healthy else component))
        return label

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[Scope]) -> None:
        event.stop()
        if event.node.data is not None:
            self.post_message(self.ScopeChanged(event.node.data))

    def select_scope(self, scope: Scope) -> bool:
        """Move the cursor to a scope's node (the `:host NAME` command); False when there is none."""
        node = self._by_scope.get(scope)
        if node is None:
            return False
        self.move_cursor(node)
        return True

    @property
    def scope(self) -> Scope:
        node = self.cursor_node
        return node.data if node is not None and node.data is not None else ALL


def _relabel(node: TreeNode[Scope], label: Text) -> None:
    if node.label != label:
        node.set_label(label)
