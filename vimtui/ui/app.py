"""VimApp: composition and routing only. The fleet (core) is passed in; the app subscribes to its snapshots
and hands each one, coalesced, to the screens."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from textual.actions import ActionParseResult
from textual.actions import parse as parse_action
from textual.app import App
from textual.binding import Binding
from textual.dom import DOMNode
from textual.notifications import SeverityLevel

from vimtui.core.config.settings import Config, ConfigError, default_config_path
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.fleet.startup import make_fleet
from vimtui.core.model import FleetState
from vimtui.core.text import shown
from vimtui.ui.commands import VimCommands
from vimtui.ui.keys import apply_keymap
from vimtui.ui.messages import FleetUpdated
from vimtui.ui.themes import DEFAULT_THEME, load_themes, shipped_dir


class VimApp(App[None]):
    """The vimtui screen."""

    TITLE = "vimtui"
    CSS_PATH = "vimtui.tcss"
    COMMANDS = App.COMMANDS | {VimCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("colon", "command_line", "Command", key_display=":", id="app.command"),
    ]

    def __init__(
        self,
        fleet: Fleet,
        config: Config | None = None,
        *,
        wall: bool = False,
        clock: Callable[[], float] = time.time,
        start_fleet: bool = True,
    ) -> None:
        self.config = config or Config()
        self.fleet = fleet
        self.wall = wall
        self.clock = clock
        self._start_fleet = start_fleet
        self.theme_errors: list[str] = []
        super().__init__()
        self._pending: FleetState | None = None
        self._setup_themes()
        from vimtui.ui.screens.display import make_forwards

        self.displays = make_forwards(self)
        """The display forwards open (screens/display.py): closed, and audited so, when vimtui ends."""

    # -- set-up -----------------------------------------------------------------------------------

    def _setup_themes(self) -> None:
        config_dir = default_config_path().parent
        themes, self.theme_errors = load_themes([shipped_dir(), config_dir / "themes"])
        for theme in themes.values():
            self.register_theme(theme)
        wanted = self.config.defaults.theme
        self.theme = wanted if wanted in themes else DEFAULT_THEME if DEFAULT_THEME in themes else self.theme
        if wanted not in themes:
            self.theme_errors.append(f"theme {wanted!r} not found; using {self.theme!r}")

    def get_default_screen(self):  # type: ignore[no-untyped-def]
        if self.wall:
            from vimtui.ui.screens.wall import WallScreen

            return WallScreen()
        from vimtui.ui.screens.main import MainScreen

        return MainScreen()

    async def on_load(self) -> None:
        # before the terminal and the first screen are set up: the hosts' SSH handshakes then overlap
        # with mounting the screen rather than wait for it (start to first paint, bench/startup.py)
        self.fleet.subscribe(self._fleet_published)
        if self._start_fleet:
            await self.fleet.start()

    async def on_mount(self) -> None:
        for message in self.theme_errors:
            self.notify(message, severity="warning", timeout=8)
        self.post_message(FleetUpdated(self.fleet.state))

    async def on_unmount(self) -> None:
        await self.displays.close_all("vimtui quit")
        if self._start_fleet:
            await self.fleet.stop()

    def _fleet_published(self, state: FleetState) -> None:
        """Called by the core on each snapshot: post one message; newer ones replace unhandled older ones."""
        self.post_message(FleetUpdated(state))

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        for screen in self.screen_stack:  # screens underneath keep their picture current too
            screen.post_message(FleetUpdated(message.state))

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification (the screens' and widgets' come here too) is shown as the text it is: what
        it says often comes from a host (a VM name, libvirt's error), so it is never parsed as markup, and
        its control characters are made visible. `markup` is accepted for Textual's signature only."""
        message, title = shown(message), shown(title)
        if timeout is None:
            super().notify(message, title=title, severity=severity, markup=False)
        else:
            super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def action_help_quit(self) -> None:
        """ctrl+c, pressed out of habit: say how to quit (Textual's own text is markup, which `notify`
        no longer reads)."""
        keys = [k for k, b in self.active_bindings.items() if b.binding.action in ("quit", "app.quit")]
        if keys:
            self.notify(f"Press {keys[0]} to quit the app", title="Do you want to quit?")

    # -- actions ----------------------------------------------------------------------------------

    async def run_action(
        self,
        action: str | ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """Textual's, except that a key (or a key bar hint) whose action its node refuses (check_action:
        greyed out or hidden) says why in a notification instead of doing nothing, when that node tells
        the reason through `action_refusal(action, parameters)` (the actions' mixins: the core's refusal
        text, as the palette shows it). The key is then handled: it falls through to no other binding."""
        if await super().run_action(action, default_namespace, namespaces):
            return True
        explain = getattr(default_namespace, "action_refusal", None)
        if explain is None:
            return False
        destination, name, parameters = parse_action(action) if isinstance(action, str) else action
        if destination:  # "app.x", "screen.x": another node's action, not the refusing node's
            return False
        why = explain(name, parameters)
        if not why:
            return False
        self.notify(why, severity="warning", timeout=4, markup=False)
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.wall and action in ("command_line", "command_palette", "help"):
            return False  # the wall is a display: nothing to operate
        if action in ("command_palette", "quit") and getattr(self.screen, "takes_every_key", False):
            return False  # typing into a guest's screen: ctrl+p and ctrl+q are the guest's
        return True

    def action_help(self) -> None:
        from vimtui.ui.screens.help import HelpScreen

        self.push_screen(HelpScreen())

    def action_command_line(self) -> None:
        """`:` opens the command line from any view, as in k9s: the main screen's, after leaving the
        views opened over it (a command acts on the fleet, and its answer shows there)."""
        from vimtui.ui.screens.main import MainScreen

        handler = getattr(self.screen, "action_command_line", None)
        if handler is None and not self.screen.is_modal:
            while len(self.screen_stack) > 1 and not isinstance(self.screen, MainScreen):
                self.pop_screen()
            handler = getattr(self.screen, "action_command_line", None)
        if handler is not None:
            handler()

    async def action_quit(self) -> None:
        running = [e for e in self.fleet.activity.entries() if e.state in ("running", "queued")]
        if not running:
            self.exit()
            return
        from vimtui.ui.screens.confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(
            ConfirmScreen(f"{len(running)} task(s) still running. Quit anyway?", "Quit", danger=True),
            answered,
        )


def make_app(
    config: Config,
    specs: Sequence[HostSpec],
    *,
    wall: bool = False,
    clock: Callable[[], float] = time.time,
    fleet: Fleet | None = None,
    start_fleet: bool = True,
    archive: bool = False,
) -> VimApp:
    """The one factory shared by the CLI and the tests. Raises ConfigError for a bad [keys] table.
    `archive`: keep the lasting history in the data dir (the real run does; tests ask for it)."""
    fleet = fleet or make_fleet(config, specs, clock=clock, archive=archive)
    app = VimApp(fleet, config, wall=wall, clock=clock, start_fleet=start_fleet)
    apply_keymap(app, config)
    return app


def run_app(config: Config, specs: Sequence[HostSpec], *, wall: bool = False) -> int:
    """Run the screen (the CLI sets TEXTUAL_FPS from max_fps before Textual is imported; Textual itself
    honours NO_COLOR)."""
    try:
        app = make_app(config, specs, wall=wall, archive=True)
    except ConfigError as exc:
        import sys

        print(f"vimtui: error: {exc}", file=sys.stderr)
        return 2
    app.run()
    return 0
