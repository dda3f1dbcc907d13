"""The Complete screen: raw completion in place, and a simulated terminal.

Free text mode: the person writes, the model continues the text at its end, and
the continuation shows in `$generated-text`. Terminal mode: a transcript and a
`$ ` command line; each command is appended to the transcript as an ended line,
which the model continues with `$` as a stop string, so it answers with the
command's "output". Both sessions, and which of the two was shown, are saved in
the data directory and restored on start.
"""

from __future__ import annotations

import asyncio
from itertools import count
from pathlib import Path
from typing import ClassVar, Literal

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import ContentSwitcher, Input, Label

from engine.contract import ChatModel
from engine.llama import EventStream
from engine.prediction import PredictionConfig, PredictionConfigError
from tui.app_messages import (
    PredictionFailed,
    PredictionFinished,
    PredictionFirstToken,
    PredictionProgress,
)
from tui.context import AppContext
from tui.screens.base import LlamatermScreen
from tui.screens.prediction_settings import PredictionSettingsScreen
from tui.store.text_sessions import (
    COMPLETE_FILE,
    TERMINAL_FILE,
    TextSession,
    load_session,
    save_session,
    sessions_dir,
)
from tui.stream_buffer import TextBuffer, flush_interval, pump_prediction
from tui.token_rate import TokenRate
from tui.widgets.complete.completion_area import CompletionArea
from tui.widgets.status.prediction_status import PredictionStatus

TERMINAL_STOP = "$"
"""The shell prompt: where the simulated command's output ends."""

COMPLETE_PLACEHOLDER = (
    "Write the start of a text; the model continues it in place.\n"
    "Ctrl+G generates · Esc stops · Ctrl+O settings · Ctrl+T a simulated terminal"
)
"""What the empty free-text pane says: what the screen does, and its keys."""

SAVE_DELAY = 1.0
"""Seconds between checks for typed text to save."""

Pane = Literal["complete", "terminal"]


class CompleteScreen(LlamatermScreen):
    MODE = "complete"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+g",
            "generate",
            "Generate",
            id="complete.generate",
            tooltip="Continue the text with the model (terminal mode: run the command)",
        ),
        Binding(
            "escape",
            "stop",
            "Stop",
            id="complete.stop",
            tooltip="Stop the prediction at once; what was generated stays",
        ),
        Binding(
            "ctrl+t",
            "toggle_terminal",
            "Terminal",
            id="complete.terminal",
            tooltip="Switch between free text and the terminal simulation",
        ),
        Binding(
            "ctrl+o",
            "settings",
            "Settings",
            id="complete.settings",
            tooltip="Temperature, max tokens, stop strings and more for this screen",
        ),
        Binding(
            "ctrl+l",
            "clear_transcript",
            "Clear",
            id="complete.clear",
            tooltip="Empty the terminal transcript",
        ),
    ]

    DEFAULT_CSS = """
    CompleteScreen {
        #complete-switcher { height: 1fr; }
        #complete-pane, #transcript { height: 1fr; border: none; }
        #terminal-pane { height: 1fr; }
        #command-line {
            height: 1;
            background: $surface;
        }
        #command-prompt { width: 2; color: $accent; text-style: bold; }
        #command { width: 1fr; }
    }
    """

    generating: reactive[bool] = reactive(False, bindings=True)
    terminal_mode: reactive[bool] = reactive(False, bindings=True, init=False)

    def __init__(self, context: AppContext) -> None:
        super().__init__(context)
        self._defaults = PredictionConfig()
        self._overrides = PredictionConfig()
        self._buffer = TextBuffer()
        self._rate = TokenRate()
        self._stream: EventStream | None = None
        self._tag = ""
        self._tags = count(1)
        self._target: CompletionArea | None = None
        self._typed = False
        # Made here, not queried: the sessions are saved from them after unmounting too.
        self.complete_area = CompletionArea(
            id="complete-pane", soft_wrap=True, placeholder=COMPLETE_PLACEHOLDER
        )
        self.transcript = CompletionArea(id="transcript", soft_wrap=True, read_only=True)
        self.command_input = Input(id="command", placeholder="a command, then Enter", compact=True)
        self.status = PredictionStatus()

    def compose_body(self) -> ComposeResult:
        with ContentSwitcher(initial="complete-pane", id="complete-switcher"):
            yield self.complete_area
            with Vertical(id="terminal-pane"):
                yield self.transcript
                with Horizontal(id="command-line"):
                    yield Label("$ ", id="command-prompt")
                    yield self.command_input
        yield self.status

    def on_mount(self) -> None:
        # LlamatermScreen.on_mount runs too: Textual calls each class's handler.
        self._defaults = self.context.settings.prediction_defaults()
        self._flush_timer = self.set_interval(
            flush_interval(self.context.settings.ui.stream_refresh_rate), self._flush, pause=True
        )
        self.set_interval(SAVE_DELAY, self._save_typed_text)
        self.watch(self.app, "model", self._model_changed, init=False)
        self.complete_area.focus()
        self._restore()

    async def wind_down(self) -> None:
        """Quitting: stop the prediction and wait until what it wrote is saved."""
        if self._stream is not None:
            self.action_stop()
        while self.generating:
            await asyncio.sleep(0.01)

    def on_unmount(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
        if self._typed:
            self._save("complete")

    def on_text_area_changed(self, event: CompletionArea.Changed) -> None:
        # Typing saves too, within a second, so quitting loses nothing.
        if event.text_area.id == "complete-pane" and not self.generating:
            self._typed = True

    @property
    def config(self) -> PredictionConfig:
        """The settings of this screen's predictions: the config file's, and the person's
        changes on top (only those are saved, so later edits of the config file apply)."""
        return self._overrides.merged_over(self._defaults)

    @config.setter
    def config(self, config: PredictionConfig) -> None:
        defaults = self._defaults.model_dump()
        changed = {
            name: value
            for name, value in config.model_dump(exclude_none=True).items()
            if defaults.get(name) != value
        }
        self._overrides = PredictionConfig.model_validate(changed)

    # --- actions ------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.generating
        if action in ("generate", "settings"):
            return None if self.generating else True
        if action == "clear_transcript":
            return self.terminal_mode and not self.generating
        return True

    def action_generate(self) -> None:
        if self.generating:
            return
        if self.terminal_mode:
            self.run_command(self.command_input.value)
            return
        area = self.complete_area
        if not area.text.strip():
            self.notify("Write some text for the model to continue.", severity="warning")
            return
        self._start("complete", area.text, self.config, area)

    def action_stop(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
            self.status.phase = "stopping"

    def action_toggle_terminal(self) -> None:
        self.terminal_mode = not self.terminal_mode
        # Both files say which pane is shown, so a restart reopens the same one.
        self._save("terminal")
        self._save("complete")

    def action_settings(self) -> None:
        def apply(config: PredictionConfig | None) -> None:
            if config is not None:
                self.config = config.merged_over(self._defaults)
                self._save("complete")

        self.app.push_screen(PredictionSettingsScreen(self.config), apply)

    def action_clear_transcript(self) -> None:
        self.transcript.load_session("", [])
        self._save("terminal")

    def watch_terminal_mode(self, terminal: bool) -> None:
        self.query_one(ContentSwitcher).current = "terminal-pane" if terminal else "complete-pane"
        (self.command_input if terminal else self.complete_area).focus()

    # --- terminal simulation ------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "command":
            event.stop()
            if self.generating:
                # The command stays on its line, to run once this prediction ends.
                self.notify("A prediction is running: Esc stops it.", severity="warning")
                return
            self.run_command(event.value)

    def run_command(self, command: str) -> None:
        """Append `$ command` to the transcript and let the model answer it.

        The prompt is the transcript with the command as its last, ended line
        (`$ ls -la\n`): the model writes the command's output, and `$` (the next
        prompt) ends its turn. Without the newline the model goes on writing the
        command line instead, or stops at once with nothing.
        """
        if self.generating or not command.strip():
            return
        if self.context.model is None:
            self._no_model()
            return
        transcript = self.transcript
        text = transcript.text
        separator = "" if not text or text.endswith("\n") else "\n"
        transcript.append_text(f"{separator}$ {command}\n")
        self.command_input.value = ""
        self._save("terminal")
        self._start("terminal", transcript.text, self._terminal_config(), transcript)

    def _terminal_config(self) -> PredictionConfig:
        stops = (TERMINAL_STOP, *(s for s in self.config.stop_strings or () if s != TERMINAL_STOP))
        return self.config.model_copy(update={"stop_strings": stops})

    # --- predictions --------------------------------------------------------

    def _start(
        self, pane: Pane, prompt: str, config: PredictionConfig, area: CompletionArea
    ) -> None:
        model = self.context.model
        if model is None:
            self._no_model()
            return
        try:
            stream = model.complete_events(prompt, config)
        except Exception as err:  # noqa: BLE001 - an unloaded model, a bad config: report, never crash
            self.notify(str(err), title="Cannot generate", severity="error")
            return
        self._stream = stream
        self._tag = f"{pane}-{next(self._tags)}"
        self._target = area
        area.read_only = True
        area.begin_generation()
        self.generating = True
        self._rate = TokenRate()
        self.status.start()
        self._flush_timer.resume()
        self.run_worker(
            pump_prediction(stream, self._buffer, self, self._tag, self._rate),
            name=f"{pane} prediction",
            group="prediction",
            exclusive=True,
            exit_on_error=False,
        )

    def _flush(self) -> None:
        text = self._buffer.take()
        if self.status.phase == "generating":
            self.status.show_rate(self._rate)
        if text and self._target is not None:
            self._target.append_generated(text)

    def on_prediction_progress(self, message: PredictionProgress) -> None:
        if message.tag == self._tag:
            self.status.show_prompt_progress(message.fraction, message.done, message.total)

    def on_prediction_first_token(self, message: PredictionFirstToken) -> None:
        if message.tag == self._tag and self.status.phase != "stopping":
            self.status.progress = 1.0
            self.status.phase = "generating"

    def on_prediction_finished(self, message: PredictionFinished) -> None:
        if message.tag != self._tag:
            return
        pane = self._end()
        self.status.phase = ""
        self.status.stats = message.result.stats
        self._save(pane)

    def on_prediction_failed(self, message: PredictionFailed) -> None:
        if message.tag != self._tag:
            return
        pane = self._end()
        self.status.phase = ""
        self.status.error = str(message.error)
        self.notify(str(message.error), title="Prediction failed", severity="error")
        self._save(pane)

    def _end(self) -> Pane:
        # Always drain the buffer at the end: the last tokens must reach the screen.
        self._flush()
        self._flush_timer.pause()
        pane: Pane = "terminal" if self._target is self.transcript else "complete"
        if self._target is not None:
            self._target.end_generation()
        if self._target is self.complete_area:
            self._target.read_only = False
        self._target = None
        self._stream = None
        self.generating = False
        return pane

    def _model_changed(self, model: ChatModel | None) -> None:
        # The old model is about to be unloaded: stop what it is generating.
        if self._stream is not None:
            self._stream.cancel()

    def _no_model(self) -> None:
        if self.context.model_state.status == "loading":
            # What was written stays: the person runs it again once the model is in.
            self.notify("The model is still loading: try again once it has.", title="Loading")
            return
        self.notify(
            "No model is loaded: choose one on the Models screen.",
            title="No model",
            severity="warning",
        )

    # --- sessions -----------------------------------------------------------

    def _session_path(self, pane: Pane) -> Path:
        name = TERMINAL_FILE if pane == "terminal" else COMPLETE_FILE
        return sessions_dir(self.context.data_dir) / name

    def _restore(self) -> None:
        panes: tuple[tuple[Pane, CompletionArea], ...] = (
            ("complete", self.complete_area),
            ("terminal", self.transcript),
        )
        for pane, area in panes:
            session, error = load_session(self._session_path(pane))
            if error is not None:
                self.notify(error, title="Session set aside", severity="error", timeout=10)
            if session is None:
                continue
            area.load_session(session.text, session.generated)
            if pane == "terminal" and session.active:
                self.terminal_mode = True
            if pane == "complete" and session.prediction:
                try:
                    saved = PredictionConfig.parse(session.prediction)
                except PredictionConfigError:
                    continue
                self._overrides = saved

    def _save_typed_text(self) -> None:
        if self._typed and not self.generating:
            self._save("complete")

    def _save(self, pane: Pane) -> None:
        area = self.transcript if pane == "terminal" else self.complete_area
        prediction = (
            self._overrides.model_dump(by_alias=True, exclude_none=True, mode="json")
            if pane == "complete"
            else {}
        )
        active = self.terminal_mode == (pane == "terminal")
        session = TextSession(area.text, area.generated_spans, prediction, active)
        if pane == "complete":
            self._typed = False
        try:
            save_session(self._session_path(pane), session)
        except OSError as err:
            self.notify(f"could not save the {pane} session: {err}", severity="error")
