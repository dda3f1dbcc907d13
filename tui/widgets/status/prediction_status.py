"""Below a prediction: prompt-processing progress and the stats of the last reply."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import ProgressBar, Static

from engine.prediction import PredictionStats
from tui.wording import plural


def format_stats(stats: PredictionStats) -> str:
    """`42 tokens · 35.1 tok/s · TTFT 0.12s · stop: eosFound`, short enough for 80 columns."""
    parts = [plural(stats.predicted_tokens_count, "token")]
    if stats.tokens_per_second is not None:
        parts.append(f"{stats.tokens_per_second:.1f} tok/s")
    if stats.time_to_first_token_sec is not None:
        parts.append(f"TTFT {stats.time_to_first_token_sec:.2f}s")
    parts.append(f"stop: {stats.stop_reason}")
    return " · ".join(parts)


class StatsLine(Static):
    """The phase of a running prediction, else the stats of the last one."""

    DEFAULT_CSS = """
    StatsLine {
        width: 1fr;
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    """

    stats: reactive[PredictionStats | None] = reactive(None)
    phase: reactive[str] = reactive("")
    """What a running prediction is doing ("processing prompt", "generating"); "" when idle."""
    error: reactive[str] = reactive("")

    def render(self) -> Content:
        if self.phase:
            return Content(f"{self.phase}…")
        if self.error:
            return Content.assemble(("failed: ", "$error"), self.error)
        if self.stats is None:
            return Content("")
        return Content(format_stats(self.stats))


class PromptProgressLine(Horizontal):
    """A one-line status with a prompt-processing bar that shows only while the prompt
    is processed; a subclass composes the bar and the text beside it."""

    DEFAULT_CSS = """
    PromptProgressLine {
        height: 1;
        background: $panel;
        & > ProgressBar {
            width: auto;
            display: none;
            & > Bar { width: 16; }
        }
        &.-processing > ProgressBar { display: block; }
    }
    """

    progress: reactive[float] = reactive(0.0)
    phase: reactive[str] = reactive("")
    """What a running prediction is doing ("processing prompt", "generating"...); "" when idle."""

    def watch_phase(self, phase: str) -> None:
        # The bar is for prompt processing; the rest of the time the text needs the room.
        self.set_class(phase == "processing prompt", "-processing")

    def watch_progress(self, progress: float) -> None:
        for bar in self.query(ProgressBar):
            bar.update(progress=progress)


class PredictionStatus(PromptProgressLine):
    """A prompt-processing progress bar and a stats line; the screen sets the attributes."""

    stats: reactive[PredictionStats | None] = reactive(None)
    error: reactive[str] = reactive("")

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=1.0, show_eta=False, id="prompt-progress")
        yield StatsLine().data_bind(
            PredictionStatus.phase, PredictionStatus.stats, PredictionStatus.error
        )

    def start(self) -> None:
        """A prediction began: empty bar, no stats yet."""
        self.error = ""
        self.stats = None
        self.progress = 0.0
        self.phase = "processing prompt"
