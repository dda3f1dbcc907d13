"""The loaded model, in one line: name, context, offload; or what is happening instead."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import LoadingIndicator, Static

from ..model_state import ModelState


class ModelStatus(Horizontal):
    """Shows `state`; the owner (the app, through a watch) sets it."""

    DEFAULT_CSS = """
    ModelStatus {
        width: 1fr;
        height: 1;
        align-horizontal: right;
        & > LoadingIndicator {
            width: 5;
            height: 1;
            min-height: 1;
            background: transparent;
            display: none;
        }
        &.-loading > LoadingIndicator {
            display: block;
        }
        & > #model-text {
            width: auto;
            max-width: 1fr;
            height: 1;
            text-wrap: nowrap;
            text-overflow: ellipsis;
        }
    }
    """

    state: reactive[ModelState] = reactive(ModelState)

    def compose(self) -> ComposeResult:
        yield LoadingIndicator()
        yield Static(id="model-text")

    def watch_state(self, state: ModelState) -> None:
        self.set_class(state.status == "loading", "-loading")
        self.query_one("#model-text", Static).update(describe(state))


def describe(state: ModelState) -> Content:
    match state.status:
        case "loaded":
            parts = [state.name]
            if state.context_length:
                parts.append(f"ctx {state.context_length}")
            if state.offload:
                parts.append(state.offload.replace(" (llama.cpp built without GPU support)", ""))
            return Content.assemble(("● ", "$success"), " · ".join(parts))
        case "loading":
            return Content(f"loading {state.name}…")
        case "failed":
            return Content.assemble(("✗ ", "$error"), f"could not load {state.name}")
        case _:
            return Content.assemble(("○ ", "$text-muted"), "no model loaded")
