"""The settings of one chat: system prompt, sampling, thinking, tools.

Built from the Complete screen's settings form (its fields, parsing and error
messages, see `prediction_settings`), with what only a chat has added around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Label, SelectionList, Static, TextArea
from textual.widgets.selection_list import Selection

from engine.prediction import PredictionConfig, PredictionConfigError
from tui.screens.prediction_settings import FIELDS, config_from_fields, fields_from_config
from tui.store.saved_chats import ToolOptions
from tui.widgets.state_checkbox import StateCheckbox

_LABELS = {name: (label, placeholder) for name, label, placeholder in FIELDS}

LAYOUT: tuple[tuple[str, str], ...] = (
    ("temperature", "max_tokens"),
    ("top_k", "top_p"),
    ("min_p", "repeat_penalty"),
    ("seed", "stop_strings"),
)
"""The sampling fields, two to a row so the form fits 80×24."""


def tools_file_line(path: Path, has_tools: bool) -> str:
    """Where the tools come from, or would: the file the app reads."""
    if has_tools:
        return f"tools from {path}"
    if path.exists():
        return f"tools file: {path} (no valid tools in it)"
    return f"tools file: {path} (not there yet)"


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """What the form holds: the chat's system prompt, its full prediction settings
    (the screen keeps only what differs from the defaults) and its tools."""

    system_prompt: str
    config: PredictionConfig
    tools: ToolOptions


def options_from_form(
    system_prompt: str,
    values: dict[str, str],
    thinking: bool,
    tools: ToolOptions,
) -> ChatOptions:
    """Raises ValueError naming the field that is wrong."""
    base = config_from_fields({name: values[name] for name, _, _ in FIELDS})
    data: dict[str, Any] = base.model_dump(exclude_none=True)
    data["enable_thinking"] = thinking
    try:
        config = PredictionConfig.parse(data)
    except PredictionConfigError as err:
        raise ValueError(str(err).removeprefix("invalid prediction config: ")) from None
    return ChatOptions(system_prompt.strip(), config, tools)


class ChatSettingsScreen(ModalScreen[ChatOptions | None]):
    """Edit a chat's settings; Ctrl+S (or Enter in a field) saves, Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+s",
            "save",
            "Save",
            id="chat_settings.save",
            tooltip="Save these settings for this chat",
            priority=True,
        ),
        Binding(
            "escape",
            "cancel",
            "Cancel",
            id="chat_settings.cancel",
            tooltip="Close without changing anything",
        ),
    ]

    DEFAULT_CSS = """
    ChatSettingsScreen {
        align: center middle;
        & > VerticalScroll {
            width: 78;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: round $primary;
            background: $surface;
            padding: 0 1;
        }
        #system-prompt { height: 4; margin: 0 0 1 0; }
        Grid {
            grid-size: 4;
            grid-columns: 15 1fr 15 1fr;
            grid-rows: 1;
            grid-gutter: 0 1;
            height: auto;
            margin: 0 0 1 0;
        }
        #switches { height: 1; margin: 0 0 1 0; }
        #switches > Checkbox { width: auto; margin: 0 2 0 0; }
        #tool-names { height: auto; max-height: 6; }
        #tools-missing, #tools-file { color: $text-muted; height: auto; }
        #settings-error { color: $error; height: auto; }
        #settings-help { color: $text-muted; }
        .section { color: $text-muted; }
    }
    """

    def __init__(
        self,
        system_prompt: str,
        config: PredictionConfig,
        tools: ToolOptions,
        available_tools: list[str],
        *,
        title: str = "Chat settings",
        tools_file: Path | None = None,
    ) -> None:
        super().__init__()
        self.tools_file = tools_file
        """The tools file the app reads, named in the form (None: not said)."""
        self.system_prompt = system_prompt
        self.config = config
        self.tools = tools
        self.available_tools = available_tools
        self.title_text = title

    def compose(self) -> ComposeResult:
        values = fields_from_config(self.config)
        with VerticalScroll() as box:
            box.border_title = self.title_text
            yield Label("system prompt", classes="section")
            yield TextArea(
                self.system_prompt,
                id="system-prompt",
                compact=True,
                soft_wrap=True,
                placeholder="none: the model's own default",
            )
            with Grid():
                for row in LAYOUT:
                    for name in row:
                        label, placeholder = _LABELS[name]
                        yield Label(label)
                        yield Input(
                            values[name], placeholder=placeholder, id=f"field-{name}", compact=True
                        )
            with Horizontal(id="switches"):
                yield StateCheckbox(
                    "thinking", self.config.enable_thinking is not False, id="thinking"
                )
                yield StateCheckbox("tools", self.tools.enabled, id="tools-enabled")
                yield StateCheckbox(
                    "force a tool call", self.tools.choice == "required", id="tools-required"
                )
            if self.tools_file is not None:
                # Content, not markup: a path may hold brackets.
                line = tools_file_line(self.tools_file, bool(self.available_tools))
                yield Static(Content(line), id="tools-file")
            if self.available_tools:
                chosen = set(self.tools.names) if self.tools.names is not None else None
                yield SelectionList[str](
                    *(
                        Selection(name, name, chosen is None or name in chosen)
                        for name in self.available_tools
                    ),
                    id="tool-names",
                    compact=True,
                )
            else:
                yield Static(
                    "No tools defined: tools.example.toml shows how to write the file.",
                    id="tools-missing",
                )
            yield Static("", id="settings-error")
            yield Static(
                "Ctrl+S saves · Esc cancels · Space toggles · empty: the default",
                id="settings-help",
            )

    def on_mount(self) -> None:
        blink = getattr(self.app, "cursor_blink", True)
        for field in self.query(Input):
            field.cursor_blink = blink
        self.query_one("#system-prompt", TextArea).cursor_blink = blink
        self.query_one("#system-prompt", TextArea).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    def action_save(self) -> None:
        values = {
            name: self.query_one(f"#field-{name}", Input).value for row in LAYOUT for name in row
        }
        enabled = self.query_one("#tools-enabled", Checkbox).value
        required = self.query_one("#tools-required", Checkbox).value
        names: list[str] | None = self.tools.names
        lists = self.query("#tool-names")
        if lists:
            selected = list(self.query_one("#tool-names", SelectionList).selected)
            names = None if len(selected) == len(self.available_tools) else selected
        tools = ToolOptions(enabled, names, "required" if required else "auto")
        try:
            options = options_from_form(
                self.query_one("#system-prompt", TextArea).text,
                values,
                self.query_one("#thinking", Checkbox).value,
                tools,
            )
        except ValueError as err:
            self.query_one("#settings-error", Static).update(Content(str(err)))
            return
        self.dismiss(options)

    def action_cancel(self) -> None:
        self.dismiss(None)
