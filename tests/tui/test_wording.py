"""Counts agree with their nouns: `1 token`, `2 tokens`, `1 model`."""

from __future__ import annotations

from engine.prediction import PredictionStats
from tui.cli.headless import format_stats as cli_stats
from tui.widgets.chat.chat_status import context_text
from tui.widgets.status.prediction_status import format_stats
from tui.wording import plural


def test_plural() -> None:
    assert plural(1, "token") == "1 token"
    assert plural(0, "token") == "0 tokens"
    assert plural(2, "model") == "2 models"
    assert plural(3, "match", "matches") == "3 matches"


def test_one_token_is_one_token_everywhere() -> None:
    stats = PredictionStats(stop_reason="stopStringFound", predicted_tokens_count=1)
    assert format_stats(stats).startswith("1 token ·")
    assert cli_stats(stats).startswith("1 token ·")
    assert context_text(1, 0) == "context: 1 token"
