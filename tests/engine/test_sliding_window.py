"""Sliding-window attention with the window-sized cache (`swa_full = false`, the default):
a regenerate reuses the cache, an edit further back than the window evaluates the chat
anew, and both give what a fresh context gives. On Gemma 3 (a 512-token window)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.chat import Chat
from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.prediction import PredictionResult

pytestmark = pytest.mark.starter

GREEDY = {"temperature": 0, "maxTokens": 16}
TOPICS = ["rivers", "mountains", "deserts", "forests", "oceans", "glaciers", "volcanoes", "caves"]


def long_chat(topics: list[str]) -> Chat:
    chat = Chat("You are a concise geography tutor.")
    chat.add_user_message("Hello! I would like to learn about landforms today.")
    chat.add_assistant_response("Glad to help. " + "Ask me about any landform. " * 6)
    for topic in topics:
        chat.add_user_message(f"Tell me three facts about {topic}, in one short paragraph.")
        chat.add_assistant_response(
            f"Here are facts about {topic}: they shape climate, they host wildlife, and they "
            "change slowly over thousands of years through erosion and deposition. " * 4
        )
    chat.add_user_message("Which of these did we discuss first?")
    return chat


def ask(model: LoadedModel, chat: Chat) -> PredictionResult:
    stream = model.respond_sync(chat, GREEDY)
    for _ in stream:
        pass
    assert stream.error is None, stream.error
    assert stream.result is not None
    return stream.result


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_regenerate_and_a_deep_edit_on_a_sliding_window_model(
    starter_model_path: Path, parallel: int
) -> None:
    config = LoadConfig(context_length=4096, threads=2, parallel=parallel)
    assert config.swa_full is False
    model = LoadedModel.load(starter_model_path, config)
    try:
        chat = long_chat(TOPICS)
        first = ask(model, chat)
        n_prompt = first.stats.prompt_tokens_count
        assert n_prompt > 2 * 512  # far longer than the window
        # Regenerate: the same prompt again reuses the whole cache but its last token.
        again = ask(model, chat)
        assert again.stats.prompt_tokens_evaluated == 1
        assert again.content == first.content
        # Edit a message a third in: the prompt diverges further behind its end than the
        # window, whose cells there the cache no longer holds, so the chat is evaluated
        # anew; and right.
        edited = long_chat([*TOPICS[:3], "coral reefs", *TOPICS[4:]])
        changed = ask(model, edited)
        assert changed.stats.prompt_tokens_evaluated == changed.stats.prompt_tokens_count
        model.reset_cache()
        if parallel > 1:
            # The same again from scratch, with the other slot holding the original chat
            # as it did: in a shared cache another sequence's cells change the order of
            # attention's sums, and that alone can flip a near-tie of Gemma's.
            ask(model, chat)
        fresh = ask(model, edited)
        assert fresh.stats.prompt_tokens_evaluated == fresh.stats.prompt_tokens_count
        assert changed.content == fresh.content
    finally:
        model.unload()
