"""Several predictions at once on one model (`[load] parallel`): continuous batching, a
slot per conversation, conversations parked in host memory, shared prompt evaluation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gguf_factory import EOS_ID

from engine.chat import Chat
from engine.llama import LoadedModel, SyncEventStream
from engine.load_config import LoadConfig
from engine.prediction import ContentDelta, Log, PredictionResult

GREEDY = {"temperature": 0, "maxTokens": 40}
ENDLESS = {"logitBias": {EOS_ID: float("-inf")}}
"""End of generation banned: a prediction runs to its max tokens."""
PROMPTS = [
    "the quick brown fox",
    "hello world, says the lazy dog who jumps over the quick brown fox",
    "one two three",
    "a much longer prompt " * 12,
]


def load(path: Path, **config: Any) -> LoadedModel:
    return LoadedModel.load(path, LoadConfig.model_validate({"threads": 1, **config}))


@pytest.fixture(scope="module")
def four(tiny_model_path: Path) -> Iterator[LoadedModel]:
    model = load(tiny_model_path, parallel=4, batch_size=32)
    yield model
    model.unload()


def finish(stream: SyncEventStream) -> tuple[list[Any], PredictionResult]:
    events = list(stream)
    assert stream.error is None, stream.error
    assert stream.result is not None
    return events, stream.result


def slot_records(events: list[Any]) -> list[dict[str, Any]]:
    return [e.record.data for e in events if isinstance(e, Log) and e.record.kind == "slot"]


def test_the_model_reports_its_slots_and_a_shared_context(four: LoadedModel) -> None:
    assert (four.info.parallel, four.info.kv_unified) == (4, True)
    # Every slot may use the whole context (one KV cache shared), not a quarter of it.
    prompt = "the quick brown fox jumps over the lazy dog " * 40
    _, result = finish(four.complete_sync(prompt, {**GREEDY, "maxTokens": 5}))
    assert result.stats.prompt_tokens_count > four.info.context_length // 4
    assert result.stats.stop_reason == "maxPredictedTokensReached"


def test_four_at_once_give_the_texts_each_gives_alone(
    four: LoadedModel, tiny_model_path: Path
) -> None:
    config = {**GREEDY, **ENDLESS}
    single = load(tiny_model_path, parallel=1, batch_size=32)
    try:
        alone = [finish(single.complete_sync(p, config))[1].content for p in PROMPTS]
    finally:
        single.unload()
    four.reset_cache()
    finished = [finish(s) for s in [four.complete_sync(p, config) for p in PROMPTS]]
    # They ran together: the last to join found the others still running, each in its slot.
    records = [slot_records(events)[0] for events, _ in finished]
    assert sorted(r["slot"] for r in records) == [0, 1, 2, 3]
    assert max(r["active"] for r in records) == 4
    assert [r.content for _, r in finished] == alone
    assert all(r.stats.predicted_tokens_count == 40 for _, r in finished)
    # And one at a time on the batching model, the same again.
    four.reset_cache()
    assert [finish(four.complete_sync(p, config))[1].content for p in PROMPTS] == alone


def test_each_prediction_keeps_its_own_sampler(four: LoadedModel) -> None:
    grammar = 'root ::= "yes" | "no"'
    streams = [
        four.complete_sync(PROMPTS[0], {"maxTokens": 10, "grammar": grammar, "seed": 1}),
        four.complete_sync(PROMPTS[1], {**GREEDY, **ENDLESS, "maxTokens": 30}),
        four.complete_sync(PROMPTS[2], {**GREEDY, "maxTokens": 8, "topLogprobs": 2}),
    ]
    (_, constrained), (_, free), (_, scored) = (finish(s) for s in streams)
    assert constrained.content in ("yes", "no")
    assert free.stats.predicted_tokens_count == 30
    assert len(scored.logprobs) == scored.stats.predicted_tokens_count
    assert "".join(t.token.decode("utf-8", "replace") for t in scored.logprobs) == scored.content
    # Each token's own logprob is the best of its alternatives (greedy).
    assert all(t.logprob == t.top[0][1] for t in scored.logprobs)


def test_cancelling_one_leaves_the_others_running(four: LoadedModel) -> None:
    config = {**GREEDY, **ENDLESS, "maxTokens": 300}
    streams = [four.complete_sync(p, config) for p in PROMPTS[:3]]
    victim = streams[1]
    for event in victim:
        if isinstance(event, ContentDelta):
            victim.cancel()
            break
    _, stopped = finish(victim)
    others = [finish(s)[1] for s in (streams[0], streams[2])]
    assert stopped.stats.stop_reason == "userStopped"
    assert stopped.stats.predicted_tokens_count < 300
    assert [r.stats.stop_reason for r in others] == ["maxPredictedTokensReached"] * 2
    assert [r.stats.predicted_tokens_count for r in others] == [300, 300]


def test_a_prediction_waits_for_a_free_slot_and_can_be_cancelled_waiting(
    tiny_model_path: Path,
) -> None:
    model = load(tiny_model_path, parallel=2)
    try:
        config = {**GREEDY, **ENDLESS, "maxTokens": 400}
        running = [model.complete_sync(p, config) for p in PROMPTS[:2]]
        waiting = model.complete_sync(PROMPTS[2], config)
        later = model.complete_sync(PROMPTS[3], {**GREEDY, "maxTokens": 5})
        waiting.cancel()
        _, gone = finish(waiting)
        assert gone.stats.stop_reason == "userStopped"
        assert gone.stats.predicted_tokens_count == 0
        events, served = finish(later)
        assert served.stats.stop_reason in ("maxPredictedTokensReached", "eosFound")
        # It ran once a slot was free: after one of the two ahead of it.
        assert slot_records(events)[0]["slot"] in (0, 1)
        assert all(finish(s)[1].stats.predicted_tokens_count == 400 for s in running)
    finally:
        model.unload()


def _turn(model: LoadedModel, chat: Chat, text: str) -> tuple[PredictionResult, int]:
    chat.add_user_message(text)
    events, result = finish(
        model.respond_sync(chat, {"maxTokens": 12, "grammar": 'root ::= "fine thanks"'})
    )
    chat.add_assistant_response(result.content)
    return result, slot_records(events)[0]["slot"] if slot_records(events) else 0


def _new_tokens(model: LoadedModel, cached: list[int], result: PredictionResult) -> int:
    """Tokens of `result`'s prompt past those of `cached` (what its conversation's last
    turn left in its slot)."""
    now = model.tokenize(result.prompt)
    shared = next((i for i, (a, b) in enumerate(zip(cached, now)) if a != b), len(cached))
    return len(now) - min(shared, len(now))


def test_alternating_conversations_each_evaluate_only_their_new_turn(
    tiny_model_path: Path,
) -> None:
    model = load(tiny_model_path, parallel=2)
    single = load(tiny_model_path, parallel=1)
    try:
        for target, warm in ((model, True), (single, False)):
            chats = [Chat("You are test one."), Chat("You are test two, a different one.")]
            last: list[tuple[list[int], int] | None] = [None, None]
            for turn in range(4):
                for i, chat in enumerate(chats):
                    result, slot = _turn(target, chat, f"message {turn} about the fox")
                    previous = last[i]
                    if previous is not None:
                        new = _new_tokens(target, previous[0], result)
                        evaluated = result.stats.prompt_tokens_evaluated
                        if warm:
                            # Its own slot, its own cache: only the new turn is evaluated.
                            assert slot == previous[1]
                            assert evaluated == max(new, 1)
                        else:
                            # One sequence: the other chat's turn evicted this one's.
                            assert evaluated > new + 10
                    last[i] = (target.cached_sequences()[slot], slot)
    finally:
        model.unload()
        single.unload()


def test_more_conversations_than_slots_park_in_host_memory(tiny_model_path: Path) -> None:
    model = load(tiny_model_path, parallel=2)
    try:
        chats = [Chat(f"You are assistant number {i}, " + "with a long system prompt " * 8)
                 for i in range(3)]
        last: list[list[int] | None] = [None] * 3
        for turn in range(3):
            for i, chat in enumerate(chats):
                result, slot = _turn(model, chat, f"message {turn} about the fox")
                previous = last[i]
                if previous is not None:
                    new = _new_tokens(model, previous, result)
                    assert result.stats.prompt_tokens_evaluated == max(new, 1), (turn, i)
                last[i] = model.cached_sequences()[slot]
        assert model._batching is not None and model._batching.parked >= 1
    finally:
        model.unload()


def test_n_choices_share_one_prompt_evaluation(four: LoadedModel) -> None:
    four.reset_cache()
    prompt = PROMPTS[3]
    with four.together():
        streams = [
            four.complete_sync(prompt, {"maxTokens": 20, "temperature": 1.5, "seed": seed})
            for seed in (1, 2, 3)
        ]
    results = [finish(s)[1] for s in streams]
    evaluated = [r.stats.prompt_tokens_evaluated for r in results]
    n_prompt = results[0].stats.prompt_tokens_count
    assert evaluated == [n_prompt, 0, 0]
    assert all(r.stats.prompt_tokens_count == n_prompt for r in results)
    # Each its own seed: not one text three times.
    assert len({r.content for r in results}) > 1
    # The shared cells are right: greedy choices give what a lone prediction gives.
    with four.together():
        greedy = [four.complete_sync(prompt, GREEDY) for _ in range(2)]
    texts = [finish(s)[1].content for s in greedy]
    four.reset_cache()
    assert texts == [finish(four.complete_sync(prompt, GREEDY))[1].content] * 2


def test_unloading_stops_every_slot(tiny_model_path: Path) -> None:
    model = load(tiny_model_path, parallel=2)
    config = {**GREEDY, **ENDLESS, "maxTokens": 3000}
    streams = [model.complete_sync(p, config) for p in PROMPTS[:3]]
    next(iter(streams[0]))
    model.unload()
    results = [finish(s)[1] for s in streams]
    assert all(r.stats.stop_reason == "userStopped" for r in results)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"parallel": 0}, "greater than or equal to 1"),
        ({"parallel": 65}, "less than or equal to 64"),
        ({"parallel": 8, "batch_size": 4}, "parallel (8) must not exceed batch_size (4)"),
    ],
)
def test_parallel_is_checked(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        LoadConfig.model_validate(config)
    # LM Studio's name for it is taken too.
    assert LoadConfig.model_validate({"maxConcurrentPredictions": 2}).parallel == 2
