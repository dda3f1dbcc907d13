"""The llamaterm app: screens as modes, themes, keymap, and the one loaded model.

The app owns the model (load, unload, which one) and hands it down as the
reactive `model`, mirrored in the `AppContext` every screen is built with;
screens own their widgets and their predictions, and ask for model changes by
posting requests (tui.app_messages), never by calling the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen
from textual.theme import Theme
from textual.worker import WorkerError

from engine.contract import ChatModel
from engine.logbus import LOG_BUS, LogBus
from engine.models.loader import load_model_async, resolve_load
from engine.models.starter import STARTER_KEY
from engine.paths import config_path
from themes import DEFAULT_ROLE_COLORS, builtin_themes_dir, load_themes
from tui.app_messages import (
    CancelModelLoadRequested,
    LoadModelRequested,
    ModelLoadCancelled,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoadStarted,
    UnloadModelRequested,
)
from tui.config import AppSettings
from tui.context import AppContext
from tui.keys_in_order import KeysInOrderApp
from tui.log_file import open_log_file
from tui.model_state import ModelState
from tui.palette import ModelCommands, binding_commands, plain_command
from tui.screens.base import LlamatermScreen
from tui.screens.chat.chat_screen import ChatScreen
from tui.screens.complete.complete_screen import CompleteScreen
from tui.screens.keys_help import KeysScreen, key_rows
from tui.screens.logs.logs_screen import LogRecordScreen, LogsScreen
from tui.screens.models.models_screen import ModelsScreen
from tui.screens.prediction_settings import PredictionSettingsScreen
from tui.services.in_app_server import InAppServer, ServerState
from tui.store.app_state import LAST_MODEL_KEY, THEME_KEY, AppState
from tui.store.housekeeping import tidy_app_directories

UI_SWITCH_INTERVAL = 0.0005
"""Seconds the UI thread may hold the GIL while the model thread waits for it.

The token loop takes the GIL back after every llama.cpp call; with Python's default
of 5 ms, a UI thread busy drawing made each token wait up to that long several times
over, costing a third of generation speed on a 2-core machine (bench/tui_streaming.py).
A thread that nobody waits for is not interrupted, so this costs the UI nothing then."""

DEFAULT_THEME = "llamaterm-dark"

QUIT_WAIT = 10.0
"""Seconds quitting waits for the screens to stop their predictions and save them."""

_log = logging.getLogger("llamaterm.tui")


def _screen_binding(key: str, mode: str, title: str) -> Binding:
    return Binding(
        key,
        f"app.switch_mode('{mode}')",
        title,
        id=f"screen.{mode}",
        tooltip=f"Show the {title} screen",
        show=False,
    )


class LlamatermApp(KeysInOrderApp[int]):
    """llamaterm's full-screen app. Build it with settings from `tui.config.load_app_settings`."""

    TITLE = "llamaterm"
    CSS_PATH = "app.tcss"
    SCREENS_BY_MODE: ClassVar[dict[str, type[LlamatermScreen]]] = {
        "chat": ChatScreen,
        "complete": CompleteScreen,
        "models": ModelsScreen,
        "logs": LogsScreen,
    }
    """The app's modes; each screen is built with the app's context (see __init__)."""
    DEFAULT_MODE = "chat"
    COMMANDS = App.COMMANDS | {ModelCommands}

    # F-keys work in tmux and over SSH; alt+digit is there for terminals that take F1.
    BINDINGS: ClassVar[list[BindingType]] = [
        _screen_binding("f1,alt+1", "chat", "Chat"),
        _screen_binding("f2,alt+2", "complete", "Complete"),
        _screen_binding("f3,alt+3", "models", "Models"),
        _screen_binding("f4,alt+4", "logs", "Logs"),
        Binding(
            "ctrl+q",
            "quit",
            "Quit",
            id="app.quit",
            tooltip="Quit llamaterm",
            priority=True,
            show=False,
        ),
        Binding(
            # F5 to F7 belong to Textual's text areas (select line, all).
            "f8",
            "toggle_server",
            "Server",
            id="server.toggle",
            tooltip="Start or stop the OpenAI-compatible server for the loaded model",
            show=False,
        ),
        Binding(
            "f9",
            "unload_model",
            "Unload",
            id="model.unload",
            tooltip="Unload the model and free its memory",
            show=False,
        ),
        # Not a priority: a text field that takes "?" types it (tui.screens.keys_help).
        Binding(
            "question_mark",
            "show_keys",
            "Keys",
            id="app.keys",
            tooltip="Show the keys of this screen and what they do",
            show=False,
        ),
    ]

    model: reactive[ChatModel | None] = reactive(None, init=False)
    """The loaded model, or None. Screens watch it."""
    model_state: reactive[ModelState] = reactive(ModelState, init=False)
    """What the status line shows about the model."""
    load_progress: reactive[float | None] = reactive(None, init=False)
    """How much of the loading model is in, 0.0 to 1.0; None when not known."""
    server_state: reactive[ServerState] = reactive(ServerState, init=False)
    """What the status line shows about the in-app server."""

    def __init__(
        self,
        settings: AppSettings,
        *,
        model: str | None = None,
        data_dir: Path | None = None,
        autoload: bool = True,
        theme_dirs: Sequence[Path] | None = None,
        log_bus: LogBus | None = None,
        cursor_blink: bool = True,
        mode: str | None = None,
    ) -> None:
        """`model` (a key or a path) overrides the start-up choice; `autoload=False` starts
        with no model. The other arguments are for tests: another data directory, theme
        directories, log bus, a cursor that does not blink (for snapshots), and the
        screen to open on (`mode`, default Chat)."""
        if mode is not None:
            # Read by App.__init__ to set up the first screen stack.
            self.DEFAULT_MODE = mode  # type: ignore[misc]  # an instance's own first screen
        super().__init__()
        self.context = AppContext(
            settings,
            data_dir if data_dir is not None else settings.data_dir(),
            log_bus if log_bus is not None else LOG_BUS,
            cursor_blink,
        )
        """What every screen is built with; the app keeps it current."""
        self._mode_screens: dict[str, LlamatermScreen] = {}
        """The mode screens made so far (made when first shown), by mode."""
        for name, screen in self.SCREENS_BY_MODE.items():
            self.add_mode(name, partial(self._make_mode_screen, name, screen))
        self.model_spec = model
        self.autoload = autoload
        self._switch_interval = sys.getswitchinterval()
        self.theme_dirs = (
            list(theme_dirs)
            if theme_dirs is not None
            else [builtin_themes_dir(), config_path().parent / "themes"]
        )
        self._remembered_theme: str | None = None
        self._start_state: dict[str, Any] = {}
        self._start_problem: str | None = None
        """state.json as read at start, and what was wrong with it (on_load reads it)."""
        self.server = InAppServer(settings, self._show_server_state)
        self._load_cancel: threading.Event | None = None
        self._quitting = False

    def _make_mode_screen(self, mode: str, screen: type[LlamatermScreen]) -> LlamatermScreen:
        made = self._mode_screens[mode] = screen(self.context)
        return made

    # What the screens see too: the context's.

    @property
    def settings(self) -> AppSettings:
        return self.context.settings

    @settings.setter
    def settings(self, settings: AppSettings) -> None:
        self.context.settings = settings

    @property
    def data_dir(self) -> Path:
        return self.context.data_dir

    @property
    def log_bus(self) -> LogBus:
        return self.context.log_bus

    @property
    def cursor_blink(self) -> bool:
        return self.context.cursor_blink

    # --- start-up -----------------------------------------------------------

    def get_theme_variable_defaults(self) -> dict[str, str]:
        # Textual's own themes know nothing of our roles; the stylesheet needs them anyway.
        return dict(DEFAULT_ROLE_COLORS)

    def on_load(self) -> None:
        # Before the first screen mounts: it reads state.json too, and only the first
        # reader of a corrupt file sees the problem (the file is then set aside).
        tidy_app_directories(self.data_dir)
        self._start_state, self._start_problem = AppState(self.data_dir).read_reporting()

    def on_mount(self) -> None:
        sys.setswitchinterval(min(self._switch_interval, UI_SWITCH_INTERVAL))
        # First, so that the model's load is in the file too.
        self._log_file = open_log_file(self.log_bus, self.data_dir)
        state = self._start_state
        if self._start_problem is not None:
            self.notify(
                self._start_problem, title="Remembered choices reset", severity="error", timeout=15
            )
        self._apply_themes(state.get(THEME_KEY))
        self._apply_keymap()
        if self.autoload:
            self.load_model(self._startup_model(state))

    def _apply_themes(self, remembered: object) -> None:
        themes, errors = load_themes(self.theme_dirs)
        for theme in themes:
            self.register_theme(theme)
        if errors:
            self.notify(
                "\n".join(errors),
                title=f"{len(errors)} theme file{'s' if len(errors) > 1 else ''} not loaded",
                severity="error",
                timeout=15,
            )
        wanted = remembered if isinstance(remembered, str) else self.settings.ui.theme
        if wanted not in self.available_themes:
            self.notify(f"No theme named {wanted!r}; using {DEFAULT_THEME}.", severity="warning")
            wanted = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
        self._remembered_theme = remembered if isinstance(remembered, str) else None
        self.theme = wanted
        self.theme_changed_signal.subscribe(self, self._remember_theme)

    def _remember_theme(self, theme: Theme) -> None:
        if theme.name == self._remembered_theme:
            return
        self._remembered_theme = theme.name
        try:
            AppState(self.data_dir).remember(THEME_KEY, theme.name)
        except (OSError, TypeError) as err:
            self.notify(f"could not remember the theme: {err}", severity="warning")

    def _apply_keymap(self) -> None:
        keymap = dict(self.settings.keymap)
        unknown = sorted(set(keymap) - known_binding_ids())
        if unknown:
            self.notify(
                f"[keymap] has unknown binding ids: {', '.join(unknown)}",
                title="Config",
                severity="warning",
            )
        self.set_keymap(keymap)

    def _startup_model(self, state: dict[str, object]) -> str:
        """The model asked for, else the configured default, else the last used, else the starter."""
        if self.model_spec:
            return self.model_spec
        if self.settings.model.default:
            return self.settings.model.default
        last = state.get(LAST_MODEL_KEY)
        if isinstance(last, str) and Path(last).is_file():
            return last
        return STARTER_KEY

    # --- the model ----------------------------------------------------------

    def model_dirs(self) -> list[Path]:
        """Where local models are looked for: the data directory's models/, then the config's."""
        return self.context.model_dirs()

    def watch_model(self, model: ChatModel | None) -> None:
        # Runs before the screens' watchers of `model`: they find the context current.
        self.context.model = model
        self.server.set_model(model)
        self.refresh_bindings()

    def watch_model_state(self, state: ModelState) -> None:
        self.context.model_state = state

    def on_load_model_requested(self, message: LoadModelRequested) -> None:
        self.load_model(message.spec)

    def on_unload_model_requested(self, message: UnloadModelRequested) -> None:
        self.unload_model()

    def on_cancel_model_load_requested(self, message: CancelModelLoadRequested) -> None:
        self.cancel_model_load()

    def load_model(self, spec: str) -> None:
        """Load a model by key or path in a worker; the old one is unloaded first."""
        old = self.model
        self.model = None
        self.run_worker(
            self._load(spec, old),
            name=f"load {spec}",
            group="model",
            exclusive=True,
            exit_on_error=False,
        )

    async def _load(self, spec: str, old: ChatModel | None) -> None:
        # An async worker: llama.cpp loads on the model's own thread, resolving
        # (which may assemble the starter model) on a thread of its own.
        name = Path(spec).name if spec.endswith(".gguf") else spec
        self.post_message(ModelLoadStarted(name))
        cancel = self._load_cancel = threading.Event()
        on_progress = self._load_progress_reporter()
        try:
            if old is not None:
                await asyncio.to_thread(old.unload)
            # The one loader: config, then what the person chose in the Models screen.
            plan = await asyncio.to_thread(
                resolve_load, spec, self.settings, data_dir=self.data_dir
            )
            path = plan.path
            for problem in plan.problems:
                # Remembered settings that were not applied: say so, the load goes on.
                self.notify(problem, title="Model settings", severity="warning", markup=False)
            model = await load_model_async(plan, on_progress=on_progress, cancel=cancel)
        except asyncio.CancelledError:
            self.post_message(ModelLoadCancelled(name))
            raise
        except Exception as err:  # noqa: BLE001 - whatever the failure, the app goes on without a model
            self.post_message(ModelLoadFailed(name, str(err)))
            return
        self.post_message(ModelLoaded(model, path))

    def _load_progress_reporter(self) -> Callable[[float], None]:
        """A progress callback for the model thread that sets `load_progress` on the loop,
        at most once per percent."""
        loop = asyncio.get_running_loop()
        shown = -1

        def report(fraction: float) -> None:
            nonlocal shown
            percent = int(fraction * 100)
            if percent != shown:
                shown = percent
                loop.call_soon_threadsafe(self._set_load_progress, fraction)

        return report

    def _set_load_progress(self, fraction: float) -> None:
        if self.model_state.status == "loading":
            self.load_progress = fraction

    def on_model_load_started(self, message: ModelLoadStarted) -> None:
        self.load_progress = None
        self.model_state = ModelState.loading(message.name)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        previous = self.model
        if previous is not None and previous is not message.model:
            # A load that finished while another was asked for: keep only the newest.
            self.run_worker(asyncio.to_thread(previous.unload), exit_on_error=False)
        self.model = message.model
        self.model_state = ModelState.of(message.model)
        try:
            AppState(self.data_dir).remember(LAST_MODEL_KEY, str(message.path))
        except (OSError, TypeError) as err:
            _log.warning("could not remember the model: %s", err)

    def on_models_screen_remote_model_chosen(self, message: ModelsScreen.RemoteModelChosen) -> None:
        previous = self.model
        if previous is not None and previous is not message.model:
            # A remote model needs no local one: free its memory.
            self.run_worker(asyncio.to_thread(previous.unload), exit_on_error=False)
        self.model = message.model
        self.model_state = ModelState.of(message.model)

    def on_model_load_failed(self, message: ModelLoadFailed) -> None:
        self.model_state = ModelState.failed(message.name, message.error)
        self.notify(message.error, title="Could not load the model", severity="error", timeout=15)

    def on_model_load_cancelled(self, message: ModelLoadCancelled) -> None:
        if self.model_state.status == "loading":
            self.model_state = ModelState()

    def unload_model(self) -> None:
        model = self.model
        if model is None:
            self.notify("No model is loaded.", severity="warning")
            return
        self.model = None
        self.model_state = ModelState()
        self.run_worker(asyncio.to_thread(model.unload), group="unload", exit_on_error=False)

    def cancel_model_load(self) -> None:
        # The event stops llama.cpp mid-load; cancelling the worker tells the app.
        if self._load_cancel is not None:
            self._load_cancel.set()
        self.workers.cancel_group(self, "model")

    # --- the server ---------------------------------------------------------

    def _show_server_state(self, state: ServerState) -> None:
        self.server_state = state

    def action_toggle_server(self) -> None:
        self.run_worker(
            self._toggle_server(not self.server.running),
            name="server",
            group="server",
            exclusive=True,
            exit_on_error=False,
        )

    async def _toggle_server(self, start: bool) -> None:
        if not start:
            await self.server.stop()
            self.notify("The server has stopped.", title="Server")
            return
        try:
            await self.server.start()
        except Exception as err:  # noqa: BLE001 - a port in use must not end the app
            self.notify(str(err), title="Could not start the server", severity="error", timeout=15)
            return
        note = "" if self.model is not None else " (no model loaded yet)"
        self.notify(f"Serving at {self.server_state.url}{note}", title="Server")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "unload_model":
            return True if self.model is not None else None
        return True

    def action_show_keys(self) -> None:
        screen = self.screen
        if isinstance(screen, KeysScreen):
            return
        name = getattr(screen, "MODE", "") or type(screen).__name__.removesuffix("Screen")
        self.push_screen(KeysScreen(str(name).capitalize(), key_rows(screen)))

    def action_unload_model(self) -> None:
        self.unload_model()

    # --- quitting -----------------------------------------------------------

    async def action_quit(self) -> None:
        """Stop what the screens run and let them save it, then exit; a second Ctrl+Q
        while they do exits at once."""
        if self._quitting:
            self.exit()
            return
        self._quitting = True
        self.run_worker(self._quit(), name="quit", group="quit", exit_on_error=False)

    async def _quit(self) -> None:
        screens = [screen for screen in self._mode_screens.values() if screen.is_attached]
        try:
            await asyncio.wait_for(
                asyncio.gather(
                    *(screen.wind_down() for screen in screens), self._stop_loading()
                ),
                QUIT_WAIT,
            )
        except TimeoutError:
            _log.warning("quitting before the screens had stopped (waited %s s)", QUIT_WAIT)
        finally:
            self.exit()

    async def _stop_loading(self) -> None:
        """Stop a model load and wait until llama.cpp has let go of it: the model's
        thread must not be inside llama.cpp when the process exits."""
        if self._load_cancel is None:
            return
        # Not by cancelling the worker: that returns before the model thread has stopped.
        self._load_cancel.set()
        for worker in list(self.workers):
            if worker.group == "model" and not worker.is_finished:
                with contextlib.suppress(WorkerError):
                    await worker.wait()

    async def on_unmount(self) -> None:
        sys.setswitchinterval(self._switch_interval)
        await self.server.stop()
        # Free llama.cpp's memory now, not whenever the process ends.
        model = self.model
        if model is not None:
            # Not through the reactive: there are no screens left to tell.
            self.set_reactive(LlamatermApp.model, None)
            await asyncio.to_thread(model.unload)
        log_file = getattr(self, "_log_file", None)
        if log_file is not None:
            log_file.close()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Notifications are plain text, whatever `markup` says: they carry file and
        model names and error messages, in which "[/]" is no markup (it was an error)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    # --- palette ------------------------------------------------------------

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        # Escaped once here: theme names come from files, and a key name may be "/".
        for command in self._system_commands(screen):
            yield plain_command(command)

    def _system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """The palette's commands, their titles and help as plain text."""
        yield from binding_commands(screen)
        if self.model_state.status == "loading":
            yield SystemCommand("model: cancel load", "Stop loading", self.cancel_model_load)
        if self.server.running:
            yield SystemCommand(
                "server: stop",
                f"Stop serving at {self.server_state.url}",
                self.action_toggle_server,
            )
        else:
            yield SystemCommand(
                "server: start",
                "Serve the loaded model over an OpenAI-compatible API",
                self.action_toggle_server,
            )
        yield SystemCommand(
            "model: load",
            "Choose a local model to load (the Models screen)",
            lambda: self.switch_mode("models"),
        )
        yield SystemCommand(
            "model: load starter",
            "Load the Gemma 3 270M starter model",
            lambda: self.load_model(STARTER_KEY),
        )
        # Ours first: Textual's own themes are many, and know nothing of our roles.
        for name in sorted(self.available_themes, key=lambda n: (not n.startswith("llamaterm"), n)):
            yield SystemCommand(
                f"theme: {name}", f"Switch to the {name} theme", self._theme_setter(name)
            )
        yield SystemCommand(
            "app: keys", "Show the keys of this screen", self.action_show_help_panel
        )

    def _theme_setter(self, name: str) -> Callable[[], None]:
        def set_theme() -> None:
            self.theme = name

        return set_theme


def known_binding_ids() -> set[str]:
    """Every binding id a [keymap] table may name."""
    ids: set[str] = set()
    for cls in known_binding_classes():
        for binding in getattr(cls, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.id:
                ids.add(binding.id)
    return ids


def known_binding_classes() -> list[type]:
    """The app, its screens, dialogs and widgets that have bindings of their own."""
    from tui.screens.chat.chat_settings import ChatSettingsScreen
    from tui.screens.dialogs import ConfirmScreen, ExportChatScreen, RenameChatScreen
    from tui.screens.logs.logs_screen import LogTable
    from tui.screens.models.model_dialogs import AddRemoteScreen, LoadSettingsScreen
    from tui.widgets.chat.chat_input import ChatInput
    from tui.widgets.chat.chat_list import ChatList
    from tui.widgets.chat.chat_view import ChatView
    from tui.widgets.chat.tool_card import ToolCard

    classes: list[type] = [
        LlamatermApp,
        ChatScreen,
        ChatList,
        ChatView,
        ChatInput,
        ToolCard,
        ChatSettingsScreen,
        RenameChatScreen,
        ConfirmScreen,
        ExportChatScreen,
        KeysScreen,
        LoadSettingsScreen,
        AddRemoteScreen,
        CompleteScreen,
        ModelsScreen,
        LogsScreen,
        LogTable,
        LogRecordScreen,
        PredictionSettingsScreen,
    ]
    return classes


def run_app(settings: AppSettings, model: str | None = None) -> int:
    """Run the full-screen app until the person quits; returns the process exit code."""
    app = LlamatermApp(settings, model=model)
    result = app.run()
    if app.return_code:
        return app.return_code
    return result if isinstance(result, int) else 0
