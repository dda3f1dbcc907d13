"""Sliding-window attention with the window-sized cache (`swa_full = false`, the default):
a regenerate reuses the cache, an edit further back than the window evaluates the chat
anew, and both give what a fresh context gives. On Gemma 3 (a 512-token window)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.chat import Chat
from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.prediction import Log, PredictionResult

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


def test_an_edit_behind_the_window_goes_back_to_a_checkpoint(starter_model_path: Path) -> None:
    # Two slots (the batching path, which keeps SWA checkpoints); one conversation. Its
    # slot's window cache holds the last ~1,280 positions (512 for each of 2 slots, plus
    # a batch), so a cut must lie that far behind the end, and (to stay on its slot)
    # past half of the slot's tokens: a base of ~1,500 tokens, then ~1,200 more.
    config = LoadConfig(context_length=4096, threads=2, parallel=2)
    model = LoadedModel.load(starter_model_path, config)
    try:
        topics = TOPICS + TOPICS[:3]
        base = ask(model, long_chat(topics))  # its prompt's end is a checkpoint

        def continued(reply: str) -> Chat:
            chat = long_chat(topics)
            chat.add_assistant_response(reply)
            for topic in TOPICS:
                chat.add_user_message(f"And three more facts about {topic}, please.")
                chat.add_assistant_response(
                    f"More about {topic}: they are studied by geographers, mapped from "
                    "satellites, and visited by travellers from all over the world. " * 4
                )
            chat.add_user_message("Which of these did we discuss last?")
            return chat

        ask(model, continued("We talked about rivers first."))
        # An edit of that reply: the prompt diverges right after the checkpoint, further
        # behind its end than the window cache reaches.
        edited = continued("Rivers came first, then mountains.")
        stream = model.respond_sync(edited, {**GREEDY, "topLogprobs": 5})
        events: list[Any] = list(stream)
        assert stream.result is not None, stream.error
        changed = stream.result
        n_prompt = changed.stats.prompt_tokens_count
        back = [e.record for e in events if isinstance(e, Log) and "checkpoint" in e.record.message]
        assert len(back) == 1, [e.record.message for e in events if isinstance(e, Log)]
        checkpoint = back[0].data["kept"]
        assert checkpoint == base.stats.prompt_tokens_count
        assert changed.stats.prompt_tokens_evaluated == n_prompt - checkpoint
        # As a fresh evaluation would have it (to float rounding: the cells were computed
        # in other batches).
        model.reset_cache()
        fresh_stream = model.respond_sync(edited, {**GREEDY, "topLogprobs": 5})
        for _ in fresh_stream:
            pass
        fresh = fresh_stream.result
        assert fresh is not None and fresh.stats.prompt_tokens_evaluated == n_prompt
        ours = dict(changed.logprobs[0].top)
        theirs = dict(fresh.logprobs[0].top)
        assert len(ours.keys() & theirs.keys()) >= 3
        for token in ours.keys() & theirs.keys():
            assert abs(ours[token] - theirs[token]) < 1.0
    finally:
        model.unload()
