"""Below a prediction: prompt-processing progress, the live speed while it streams,
and the stats of the last reply.

While the prompt is processed the line counts its tokens ("processing prompt… 512/1130
tokens", a percentage when the model does not count them); while the reply streams it
counts the tokens and their rate ("generating… 42 tokens · 35.1 tok/s"); at the end
the engine's measured stats take their place.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import ProgressBar, Static

from engine.prediction import PredictionStats
from tui.token_rate import TokenRate
from tui.wording import plural


def phase_text(
    phase: str,
    *,
    progress: float = 0.0,
    prompt_done: int = 0,
    prompt_total: int = 0,
    generated: int = 0,
    rate: float | None = None,
) -> str:
    """What a running prediction is doing, with its counts where it has them."""
    text = f"{phase}…"
    if phase == "processing prompt":
        if prompt_total:
            return f"{text} {prompt_done}/{prompt_total} tokens"
        return f"{text} {int(100 * progress)}%" if progress else text
    if phase == "generating" and generated:
        parts = [plural(generated, "token")]
        if rate is not None:
            parts.append(f"{rate:.1f} tok/s")
        return f"{text} {' · '.join(parts)}"
    return text


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
    progress: reactive[float] = reactive(0.0)
    prompt_done: reactive[int] = reactive(0)
    prompt_total: reactive[int] = reactive(0)
    generated: reactive[int] = reactive(0)
    rate: reactive[float | None] = reactive(None)

    def render(self) -> Content:
        if self.phase:
            return Content(
                phase_text(
                    self.phase,
                    progress=self.progress,
                    prompt_done=self.prompt_done,
                    prompt_total=self.prompt_total,
                    generated=self.generated,
                    rate=self.rate,
                )
            )
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
    prompt_done: reactive[int] = reactive(0)
    """Prompt tokens evaluated so far, of `prompt_total` (0 of 0: not counted)."""
    prompt_total: reactive[int] = reactive(0)
    generated: reactive[int] = reactive(0)
    """Tokens of the reply so far, while it streams."""
    rate: reactive[float | None] = reactive(None)
    """Their tokens a second, while it streams."""

    def show_prompt_progress(self, fraction: float, done: int, total: int) -> None:
        self.progress = fraction
        self.prompt_done = done
        self.prompt_total = total

    def show_rate(self, rate: TokenRate) -> None:
        """The live count and speed of the reply (unchanged values redraw nothing)."""
        self.generated = rate.generated
        self.rate = rate.per_second

    def reset_counts(self) -> None:
        self.progress = 0.0
        self.prompt_done = self.prompt_total = self.generated = 0
        self.rate = None

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
            PredictionStatus.phase,
            PredictionStatus.stats,
            PredictionStatus.error,
            PredictionStatus.progress,
            PredictionStatus.prompt_done,
            PredictionStatus.prompt_total,
            PredictionStatus.generated,
            PredictionStatus.rate,
        )

    def start(self) -> None:
        """A prediction began: empty bar, no stats yet."""
        self.error = ""
        self.stats = None
        self.reset_counts()
        self.phase = "processing prompt"
