"""A small modal for the prediction settings of the Complete screen."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from engine.prediction import PredictionConfig, PredictionConfigError

# (field, label, placeholder); every one is a one-line Input.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("temperature", "temperature", "0 picks the likeliest token"),
    ("max_tokens", "max tokens", "-1 for no limit"),
    ("stop_strings", "stop strings", '["\\n\\n", "User:"] or one string'),
    ("top_k", "top k", "0 disables"),
    ("top_p", "top p", "0 < p ≤ 1"),
    ("min_p", "min p", "0 disables"),
    ("repeat_penalty", "repeat penalty", "1.0 disables"),
    ("seed", "seed", "empty for a random seed"),
)


def format_stop_strings(stops: tuple[str, ...] | None) -> str:
    return json.dumps(list(stops), ensure_ascii=False) if stops else ""


def parse_stop_strings(text: str) -> list[str]:
    """A JSON array of strings, or one string in which `\\n`, `\\t` and such are escapes."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"stop strings: not a JSON array ({err.msg})") from None
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise ValueError("stop strings: a JSON array of strings, please")
        return value
    try:
        return [json.loads(f'"{text}"')]
    except json.JSONDecodeError:
        return [text]


def _number(text: str, kind: type[int | float], name: str) -> int | float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{name}: not a number: {text!r}") from None


def config_from_fields(values: dict[str, str]) -> PredictionConfig:
    """The settings typed in the form; raises ValueError naming the bad field."""
    config: dict[str, Any] = {
        "temperature": _number(values["temperature"], float, "temperature"),
        "max_tokens": _number(values["max_tokens"], int, "max tokens"),
        "top_k": _number(values["top_k"], int, "top k"),
        "top_p": _number(values["top_p"], float, "top p"),
        "min_p": _number(values["min_p"], float, "min p"),
        "repeat_penalty": _number(values["repeat_penalty"], float, "repeat penalty"),
        "seed": _number(values["seed"], int, "seed"),
        "stop_strings": parse_stop_strings(values["stop_strings"]) or None,
    }
    try:
        return PredictionConfig.parse({k: v for k, v in config.items() if v is not None})
    except PredictionConfigError as err:
        raise ValueError(str(err).removeprefix("invalid prediction config: ")) from None


def fields_from_config(config: PredictionConfig) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, _label, _placeholder in FIELDS:
        value = getattr(config, name)
        if name == "stop_strings":
            values[name] = format_stop_strings(value)
        else:
            values[name] = "" if value is None else str(value)
    return values


class PredictionSettingsScreen(ModalScreen[PredictionConfig | None]):
    """Edit a PredictionConfig; Enter saves, Escape cancels. Dismisses with the new config."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape",
            "cancel",
            "Cancel",
            id="settings.cancel",
            tooltip="Close the settings without changing them",
        ),
    ]

    DEFAULT_CSS = """
    PredictionSettingsScreen {
        align: center middle;
        & > Vertical {
            width: 64;
            max-width: 100%;
            height: auto;
            border: round $primary;
            background: $surface;
            padding: 0 1;
        }
        Grid {
            grid-size: 2;
            grid-columns: 16 1fr;
            grid-rows: 1;
            grid-gutter: 0 1;
            height: auto;
        }
        #settings-error { color: $error; height: auto; }
        #settings-help { color: $text-muted; }
    }
    """

    def __init__(self, config: PredictionConfig, title: str = "Completion settings") -> None:
        super().__init__()
        self.config = config
        self.title_text = title

    def compose(self) -> ComposeResult:
        values = fields_from_config(self.config)
        with Vertical() as box:
            box.border_title = self.title_text
            with Grid():
                for name, label, placeholder in FIELDS:
                    yield Label(label)
                    yield Input(
                        values[name], placeholder=placeholder, id=f"field-{name}", compact=True
                    )
            yield Static("", id="settings-error")
            yield Static(
                "Enter saves · Escape cancels · empty means the default", id="settings-help"
            )

    def on_mount(self) -> None:
        blink = getattr(self.app, "cursor_blink", True)
        for field in self.query(Input):
            field.cursor_blink = blink

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        values = {name: self.query_one(f"#field-{name}", Input).value for name, _, _ in FIELDS}
        try:
            config = config_from_fields(values)
        except ValueError as err:
            self.query_one("#settings-error", Static).update(Content(str(err)))
            return
        self.dismiss(config)

    def action_cancel(self) -> None:
        self.dismiss(None)
