"""Under the conversation: prompt-processing progress while a reply starts (with its
token counts), what the reply is doing (while it streams: its tokens and tok/s), and
otherwise how full the model's context is.

Each reply carries its own stats line, so this line does not repeat them.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import ProgressBar, Static

from tui.widgets.status.prediction_status import PromptProgressLine, phase_text
from tui.wording import plural


def context_text(used: int, length: int) -> str:
    if not used:
        return ""
    if not length:
        return f"context: {plural(used, 'token')}"
    return f"context: {used} of {length} tokens ({100 * used // length}%)"


class ChatStatus(PromptProgressLine):
    """The screen sets the attributes."""

    DEFAULT_CSS = """
    ChatStatus {
        & > #chat-status-text {
            width: 1fr;
            height: 1;
            padding: 0 1;
            color: $text-muted;
            text-wrap: nowrap;
            text-overflow: ellipsis;
        }
    }
    """

    error: reactive[str] = reactive("")
    context_used: reactive[int] = reactive(0)
    """Tokens of the chat in the context after its last reply (prompt and reply)."""
    context_length: reactive[int] = reactive(0)

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=1.0, show_eta=False, id="chat-prompt-progress")
        yield Static(id="chat-status-text")

    def on_mount(self) -> None:
        self._show()

    def watch_phase(self, phase: str) -> None:
        super().watch_phase(phase)
        self._show()

    def watch_error(self) -> None:
        self._show()

    def watch_context_used(self) -> None:
        self._show()

    def watch_context_length(self) -> None:
        self._show()

    def watch_progress(self, progress: float) -> None:
        super().watch_progress(progress)
        self._show()

    def watch_prompt_done(self) -> None:
        self._show()

    def watch_generated(self) -> None:
        self._show()

    def watch_rate(self) -> None:
        self._show()

    def _show(self) -> None:
        if not self.is_mounted:
            return
        text = self.query_one("#chat-status-text", Static)
        if self.phase:
            shown: str | Content = phase_text(
                self.phase,
                progress=self.progress,
                prompt_done=self.prompt_done,
                prompt_total=self.prompt_total,
                generated=self.generated,
                rate=self.rate,
            )
        elif self.error:
            shown = Content.assemble(("failed: ", "$error"), self.error)
        else:
            shown = context_text(self.context_used, self.context_length)
        # One line of fixed size: no layout pass. While a reply streams this changes up
        # to `stream_refresh_rate` times a second, and a layout of the whole screen each
        # time would cost the streaming what it gains from batching.
        text.update(shown, layout=False)

    def start(self) -> None:
        """A reply began: an empty bar."""
        self.error = ""
        self.reset_counts()
        self.phase = "processing prompt"
