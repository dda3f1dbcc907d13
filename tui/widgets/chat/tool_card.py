"""A tool call as a card that fills in live: name, arguments, approval, result."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

ToolCardState = Literal[
    "streaming", "called", "pending", "running", "done", "error", "denied", "unknown"
]

RESULT_LINES = 8
"""Lines of a result shown on the card; copying the message gives all of it."""


def format_arguments(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, ensure_ascii=False)


def clip_lines(text: str, limit: int = RESULT_LINES) -> str:
    lines = text.rstrip("\n").splitlines()
    if len(lines) <= limit:
        return "\n".join(lines)
    return "\n".join([*lines[:limit], f"… {len(lines) - limit} more lines"])


class ToolCard(Widget, can_focus=False):
    """One call. The screen sets what it knows; a pending card takes the focus, and the
    person's answer goes up as `ToolCard.Decided`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "approve", "Approve", id="tool.approve", tooltip="Run this tool call"),
        Binding(
            "n",
            "deny",
            "Deny",
            id="tool.deny",
            tooltip="Do not run it; the model is told you refused",
        ),
    ]

    DEFAULT_CSS = """
    ToolCard {
        height: auto;
        border: round $tool-call 60%;
        border-title-color: $tool-call;
        border-subtitle-color: $text-muted;
        padding: 0 1;
        margin: 0 0 1 0;
        & > .tool-card--arguments { color: $text; }
        & > .tool-card--status { color: $text-muted; }
        & > .tool-card--result {
            color: $text-muted;
            max-height: 9;
        }
        &.-pending {
            border: heavy $tool-call;
            & > .tool-card--status { color: $tool-call; text-style: bold; }
        }
        &.-pending:focus { background: $tool-call 10%; }
        &.-error, &.-denied, &.-unknown {
            border: round $error 70%;
            & > .tool-card--status { color: $error; }
        }
    }
    """

    state: reactive[ToolCardState] = reactive("streaming", init=False)

    @dataclass
    class Decided(Message):
        card: ToolCard
        call_id: str
        approved: bool

    def __init__(self, name: str, call_id: str = "", *, arguments: str = "") -> None:
        super().__init__()
        self.tool_name = name
        self.call_id = call_id
        self.arguments = arguments
        self.result = ""
        self.duration_sec = 0.0
        self.exit_code: int | None = None
        # The name is the model's: "[/]" in it is no markup.
        self.border_title = Content(f"tool · {name}")
        self._arguments_view = Static(Content(arguments), classes="tool-card--arguments")
        self._status_view = Static("", classes="tool-card--status")
        self._result_view = Static("", classes="tool-card--result")
        self._result_view.display = False

    def compose(self) -> ComposeResult:
        yield self._arguments_view
        yield self._status_view
        yield self._result_view

    def on_mount(self) -> None:
        self._show_status()

    # --- what the screen tells the card ---------------------------------------------

    def append_arguments(self, text: str) -> None:
        if text:
            self.arguments += text
            self._arguments_view.update(Content(self.arguments))

    def set_call(self, call_id: str, arguments: dict[str, Any]) -> None:
        """The call parsed: its id, and its arguments as the tool will receive them."""
        self.call_id = call_id
        self.arguments = format_arguments(arguments)
        self._arguments_view.update(Content(self.arguments))
        if self.state == "streaming":
            self.state = "called"

    def set_unknown(self, raw_text: str) -> None:
        """The model called a tool this chat does not have: the card shows what it wrote."""
        self.arguments = raw_text.strip()
        self._arguments_view.update(Content(clip_lines(self.arguments)))
        self.state = "unknown"

    def request_approval(self) -> None:
        self.state = "pending"

    def set_running(self) -> None:
        self.state = "running"

    def set_result(
        self,
        content: str,
        *,
        is_error: bool = False,
        denied: bool = False,
        duration_sec: float = 0.0,
        exit_code: int | None = None,
    ) -> None:
        self.result = content
        self.duration_sec = duration_sec
        self.exit_code = exit_code
        self.state = "denied" if denied else "error" if is_error else "done"
        self._result_view.update(Content(clip_lines(content)))
        self._result_view.display = bool(content) and not denied

    # --- display --------------------------------------------------------------------

    def watch_state(self, state: ToolCardState) -> None:
        for name in ("pending", "error", "denied", "unknown"):
            self.set_class(state == name, f"-{name}")
        self.can_focus = state == "pending"
        self._show_status()
        self.refresh_bindings()

    def _show_status(self) -> None:
        self._status_view.update(self.status_text())

    def status_text(self) -> str:
        duration, exit_code = self.duration_sec, self.exit_code
        match self.state:
            case "streaming":
                return "writing the call…"
            case "called":
                return "called"
            case "pending":
                return "run this tool?  y approve · n deny · Esc stop"
            case "running":
                return "running…"
            case "done":
                return f"done in {duration:.2f}s"
            case "denied":
                return "denied: the model was told you refused"
            case "error":
                code = f" (exit {exit_code})" if exit_code not in (None, 0) else ""
                return f"failed{code} after {duration:.2f}s"
            case "unknown":
                return f"unknown tool {self.tool_name}: not offered to this chat, so not run"
        return ""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("approve", "deny"):
            return self.state == "pending"
        return True

    def action_approve(self) -> None:
        self._decide(True)

    def action_deny(self) -> None:
        self._decide(False)

    def _decide(self, approved: bool) -> None:
        if self.state != "pending":
            return
        self.state = "running" if approved else "denied"
        self.post_message(self.Decided(self, self.call_id, approved))
