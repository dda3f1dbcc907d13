"""The loaded model, in one line: name, context, offload; or what is happening instead.

The in-app server's status sits at its left while the server runs.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import LoadingIndicator, Static

from tui.model_state import ModelState
from tui.widgets.status.server_status import ServerStatus

BAR_WIDTH = 10


class ModelStatus(Horizontal):
    """Shows `state` and, while loading, `progress`; the owner (the app, through a watch) sets them."""

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
            /* The rest of the line after the server status, cut with an ellipsis. */
            width: 1fr;
            text-align: right;
            height: 1;
            text-wrap: nowrap;
            text-overflow: ellipsis;
        }
    }
    """

    state: reactive[ModelState] = reactive(ModelState)
    progress: reactive[float | None] = reactive(None)
    """How much of the model is loaded, 0.0 to 1.0; None before llama.cpp says."""

    def compose(self) -> ComposeResult:
        yield ServerStatus()
        yield LoadingIndicator()
        yield Static(id="model-text")

    def on_mount(self) -> None:
        # Load progress changes many times a second; the app keeps it apart from the state.
        if hasattr(self.app, "load_progress"):
            self.watch(self.app, "load_progress", self._follow_progress, init=True)

    def _follow_progress(self, progress: float | None) -> None:
        self.progress = progress

    def watch_state(self) -> None:
        self._show()

    def watch_progress(self) -> None:
        if self.state.status == "loading":
            self._show()

    def _show(self) -> None:
        state = self.state
        self.set_class(state.status == "loading", "-loading")
        self.query_one("#model-text", Static).update(describe(state, self.progress))


def progress_bar(fraction: float) -> Content:
    filled = round(fraction * BAR_WIDTH)
    return Content.assemble(
        ("━" * filled, "$accent"),
        ("━" * (BAR_WIDTH - filled), "$text-muted"),
        f" {fraction * 100:3.0f}%",
    )


def describe(state: ModelState, progress: float | None = None) -> Content:
    match state.status:
        case "loaded":
            parts = [state.name]
            if state.context_length:
                parts.append(f"ctx {state.context_length}")
            if state.offload:
                parts.append(state.offload.replace(" (llama.cpp built without GPU support)", ""))
            return Content.assemble(("● ", "$success"), " · ".join(parts))
        case "loading":
            if progress is None:
                return Content(f"loading {state.name}…")
            return Content.assemble(f"loading {state.name} ", progress_bar(progress))
        case "failed":
            return Content.assemble(("✗ ", "$error"), f"could not load {state.name}")
        case _:
            return Content.assemble(("○ ", "$text-muted"), "no model loaded")
