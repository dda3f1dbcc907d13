"""The completion engine on a real (tiny, random-weight) GGUF model through llama.cpp."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from engine.errors import ModelLoadError
from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.prediction import (
    ContentDelta,
    Event,
    Finished,
    FirstToken,
    Log,
    PredictionConfig,
    PredictionResult,
    PromptProgress,
)

LONG_PROMPT = " ".join(["the quick brown fox jumps over the lazy dog"] * 12)


@pytest.fixture(scope="module")
def model(tiny_model_path: Path) -> LoadedModel:
    loaded = LoadedModel.load(tiny_model_path, LoadConfig(context_length=512, batch_size=16))
    yield loaded
    loaded.unload()


def run(model: LoadedModel, prompt: str, **config: object) -> tuple[list[Event], PredictionResult]:
    stream = model.complete_sync(prompt, config)
    events = [e for e in stream if not isinstance(e, Log)]
    assert stream.error is None, stream.error
    assert stream.result is not None
    return events, stream.result


def content_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, ContentDelta))


# --- loading ---------------------------------------------------------------


def test_load_reports_model_info(model: LoadedModel, tiny_model_path: Path) -> None:
    assert model.info is not None
    assert model.info.path == str(tiny_model_path)
    assert model.info.architecture == "llama"
    assert model.info.context_length == 512
    assert model.info.trained_context_length > 0
    assert model.offload.describe()


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelLoadError, match="not found.*nope.gguf"):
        LoadedModel.load(missing)


def test_non_gguf_file_is_refused_by_name(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("this is not a model")
    with pytest.raises(ModelLoadError, match="notes.gguf is not a GGUF"):
        LoadedModel.load(bogus)


def test_truncated_gguf_gives_a_clear_error(tmp_path: Path, tiny_model_path: Path) -> None:
    data = tiny_model_path.read_bytes()
    broken = tmp_path / "truncated.gguf"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated.gguf"):
        LoadedModel.load(broken)


def test_a_template_that_does_not_parse_still_loads(make_tiny_model) -> None:  # type: ignore[no-untyped-def]
    # llama-cpp-python compiles the GGUF's template in Llama() and used to refuse the
    # file; the engine renders templates itself and falls back by architecture.
    path = make_tiny_model(chat_template="{% for x in %}{{ x }}")
    loaded = LoadedModel.load(path, LoadConfig(context_length=256))
    try:
        assert loaded.info.chat_template == "ChatML (fallback)"
        assert "does not parse" in loaded.info.chat_template_reason
        _, result = run(loaded, "hi", maxTokens=2)
        assert result.stats.predicted_tokens_count == 2
    finally:
        loaded.unload()


def test_unload_refuses_further_predictions(tiny_model_path: Path) -> None:
    loaded = LoadedModel.load(tiny_model_path, LoadConfig(context_length=128))
    loaded.unload()
    assert not loaded.is_loaded
    with pytest.raises(ModelLoadError, match="unloaded"):
        loaded.complete_sync("hello", {"maxTokens": 2})


# --- the event stream --------------------------------------------------------


def test_event_order_and_result(model: LoadedModel) -> None:
    events, result = run(model, "hello world", maxTokens=12, seed=3)
    kinds = [type(e) for e in events]
    assert kinds[0] is PromptProgress
    first_token = kinds.index(FirstToken)
    assert all(k is PromptProgress for k in kinds[:first_token])
    assert kinds[-1] is Finished
    assert result.content == content_of(events)
    assert result.stats.predicted_tokens_count <= 12
    assert result.stats.prompt_tokens_count == len(model.tokenize("hello world"))
    assert result.stats.time_to_first_token_sec is not None
    assert result.stats.total_tokens_count == (
        result.stats.prompt_tokens_count + result.stats.predicted_tokens_count
    )


def test_progress_is_monotone_and_per_batch(model: LoadedModel) -> None:
    events, result = run(model, LONG_PROMPT + " first", maxTokens=1)
    fractions = [e.fraction for e in events if isinstance(e, PromptProgress)]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    evaluated = result.stats.prompt_tokens_evaluated
    batches = -(-evaluated // 16)
    assert len(fractions) == batches + 1


def test_same_seed_same_text(model: LoadedModel) -> None:
    _, first = run(model, "hello", maxTokens=16, seed=42, temperature=1.0)
    _, second = run(model, "hello", maxTokens=16, seed=42, temperature=1.0)
    assert first.content == second.content
    assert first.stats.predicted_tokens_count == second.stats.predicted_tokens_count


def test_max_tokens(model: LoadedModel) -> None:
    # A grammar that never ends keeps the model from stopping on its own.
    _, result = run(model, "count", maxTokens=5, grammar='root ::= [a-z]+')
    assert result.stats.stop_reason == "maxPredictedTokensReached"
    assert result.stats.predicted_tokens_count == 5


# --- KV cache reuse ----------------------------------------------------------


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def test_follow_up_evaluates_only_new_tokens(model: LoadedModel) -> None:
    first = LONG_PROMPT
    second = LONG_PROMPT + " and the cat sat on the mat"
    model.reset_cache()  # (a slot may still hold the prompt from an earlier test)
    _, cold = run(model, first, maxTokens=1, seed=1)
    _, warm = run(model, second, maxTokens=1, seed=1)
    t1, t2 = model.tokenize(first), model.tokenize(second)
    new_tokens = len(t2) - common_prefix(t1, t2)
    assert cold.stats.prompt_tokens_evaluated >= len(t1) - 1
    assert 1 <= warm.stats.prompt_tokens_evaluated <= new_tokens
    assert warm.stats.prompt_tokens_count == len(t2)


def test_repeated_prompt_evaluates_one_token(model: LoadedModel) -> None:
    run(model, LONG_PROMPT, maxTokens=1)
    _, again = run(model, LONG_PROMPT, maxTokens=1)
    assert again.stats.prompt_tokens_evaluated == 1


def test_diverging_prompt_drops_the_stale_suffix(model: LoadedModel) -> None:
    run(model, LONG_PROMPT + " alpha beta gamma", maxTokens=1, seed=5)
    _, branched = run(model, LONG_PROMPT + " delta", maxTokens=4, seed=5)
    fresh = LoadedModel.load(model.path, model.config)
    try:
        _, cold = run(fresh, LONG_PROMPT + " delta", maxTokens=4, seed=5)
    finally:
        fresh.unload()
    # Reusing the shared prefix must not change what the model says.
    assert branched.content == cold.content
    assert branched.stats.prompt_tokens_evaluated < cold.stats.prompt_tokens_evaluated


# --- stop strings and text ---------------------------------------------------


def test_stop_string_is_never_emitted(model: LoadedModel) -> None:
    events, result = run(model, "x", grammar='root ::= "ab$cd"', stopStrings=["$"])
    assert result.content == "ab"
    assert result.stats.stop_reason == "stopStringFound"
    assert result.stats.stop_string == "$"
    assert all("$" not in e.text for e in events if isinstance(e, ContentDelta))


def test_stop_string_across_token_boundaries(model: LoadedModel) -> None:
    events, result = run(model, "x", grammar='root ::= "hello world again"', stopStrings=["o wor"])
    assert result.content == "hell"
    deltas = [e.text for e in events if isinstance(e, ContentDelta)]
    # "o" was held back until " wor" showed it to be the start of the stop string.
    assert "".join(deltas) == "hell"
    assert not any("o" in part for part in deltas)


def test_partial_stop_string_that_never_completes_is_emitted(model: LoadedModel) -> None:
    _, result = run(model, "x", grammar='root ::= "ab$c"', stopStrings=["$cd"])
    assert result.content == "ab$c"
    assert result.stats.stop_reason == "eosFound"


def test_multibyte_characters_come_out_whole(model: LoadedModel) -> None:
    events, result = run(model, "x", grammar='root ::= "é€😀 ok"')
    assert result.content == "é€😀 ok"
    for event in events:
        if isinstance(event, ContentDelta):
            assert "\ufffd" not in event.text


def test_long_token_pieces_are_not_truncated(make_tiny_model) -> None:  # type: ignore[no-untyped-def]
    # Longer than llama-cpp-python's 32-byte detokenize buffer, and multi-byte.
    long_piece = "x" * 40 + "é" * 30
    path = make_tiny_model(extra_tokens=[long_piece])
    loaded = LoadedModel.load(path, LoadConfig(context_length=128))
    try:
        tokens = loaded.tokenize(long_piece, add_special=False)
        assert len(tokens) == 1
        assert loaded._pieces is not None
        assert loaded._pieces(tokens[0]) == long_piece.encode()
        events, result = run(loaded, "x", grammar=f'root ::= "{long_piece}"', maxTokens=100)
        assert result.content == long_piece
    finally:
        loaded.unload()


# --- cancellation and limits ---------------------------------------------------


def test_cancel_stops_within_a_token(model: LoadedModel) -> None:
    # Cancel from the sink itself, on the model thread, so that the consumer's lag
    # behind a fast tiny model does not blur how quickly the engine reacts.
    events: list[Event] = []
    control = None

    def sink(event: Event) -> None:
        events.append(event)
        if sum(isinstance(e, ContentDelta) for e in events) == 3 and control is not None:
            control.cancel()

    control = model.start_prediction(
        "go",
        PredictionConfig(max_tokens=400, grammar="root ::= [a-z ]+", seed=1),
        sink,
    )
    assert control.done.wait(30)
    finished = events[-1]
    assert isinstance(finished, Finished)
    stats = finished.result.stats
    assert stats.stop_reason == "userStopped"
    assert stats.predicted_tokens_count == 3
    assert finished.result.content == "".join(
        e.text for e in events if isinstance(e, ContentDelta)
    )


def test_cancel_during_prompt_processing(model: LoadedModel) -> None:
    # The whole prompt to evaluate (several batches of 16), and the cancel made from the
    # sink after the first batch: a consumer thread lagging behind would blur it.
    model.reset_cache()
    events: list[Event] = []
    control = None

    def sink(event: Event) -> None:
        events.append(event)
        if isinstance(event, PromptProgress) and event.fraction > 0 and control is not None:
            control.cancel()

    control = model.start_prediction(
        LONG_PROMPT + " cancel me", PredictionConfig(max_tokens=5), sink
    )
    assert control.done.wait(30)
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.result.stats.stop_reason == "userStopped"
    assert finished.result.stats.predicted_tokens_count == 0
    assert finished.result.stats.prompt_tokens_evaluated < finished.result.stats.prompt_tokens_count


def test_unload_cancels_the_running_and_the_queued_predictions(tiny_model_path: Path) -> None:
    # One slot, so that the second waits (with more, see test_batching's unload test).
    loaded = LoadedModel.load(tiny_model_path, LoadConfig(context_length=2048, parallel=1))
    running: list[Event] = []
    queued: list[Event] = []
    three_tokens = threading.Event()

    def sink(event: Event) -> None:
        running.append(event)
        if sum(isinstance(e, ContentDelta) for e in running) == 3:
            three_tokens.set()

    # Without a cancel the grammar keeps the model going until the context is full.
    endless = PredictionConfig(max_tokens=100_000, grammar="root ::= [a-z ]+", seed=1)
    first = loaded.start_prediction("go", endless, sink)
    second = loaded.start_prediction("again", endless, queued.append)
    assert three_tokens.wait(30)
    loaded.unload()
    assert first.done.wait(5) and second.done.wait(5)
    for events in (running, queued):
        finished = events[-1]
        assert isinstance(finished, Finished), finished
        assert finished.result.stats.stop_reason == "userStopped"
    assert running[-1].result.stats.predicted_tokens_count < 100
    assert queued[-1].result.stats.predicted_tokens_count == 0
    assert not loaded.is_loaded


def test_cancel_lands_inside_a_prompt_batch(tiny_model_path: Path) -> None:
    # One batch of ~3,000 tokens (a second or more here): a cancel made 20 ms into it
    # stops llama_decode itself, through llama.cpp's abort callback, instead of waiting
    # for the batch to end; so no prompt token counts as evaluated.
    loaded = LoadedModel.load(
        tiny_model_path, LoadConfig(context_length=4096, batch_size=4096, threads=1)
    )
    try:
        prompt = " ".join(["the quick brown fox jumps over the lazy dog"] * 80)
        events: list[Event] = []
        timers: list[threading.Timer] = []
        control = None

        def sink(event: Event) -> None:
            events.append(event)
            if isinstance(event, PromptProgress) and event.fraction == 0.0 and control:
                timers.append(threading.Timer(0.02, control.cancel))
                timers[-1].start()

        control = loaded.start_prediction(prompt, PredictionConfig(max_tokens=5), sink)
        assert control.done.wait(60)
        finished = events[-1]
        assert isinstance(finished, Finished), finished
        stats = finished.result.stats
        assert stats.prompt_tokens_count > 2000
        assert stats.stop_reason == "userStopped"
        assert stats.prompt_tokens_evaluated == 0
        # The context is still good: the next prediction evaluates its whole prompt.
        _, again = run(loaded, "hello there", maxTokens=2)
        assert again.stats.predicted_tokens_count == 2
    finally:
        loaded.unload()


def test_prompt_longer_than_context(tiny_model_path: Path) -> None:
    small = LoadedModel.load(tiny_model_path, LoadConfig(context_length=32))
    try:
        # llama.cpp rounds small contexts up; the limit is what it really allocated.
        assert small.info is not None
        n_ctx = small.info.context_length
        assert n_ctx >= 32
        _, result = run(small, LONG_PROMPT * (1 + n_ctx // 50), maxTokens=5)
        assert result.stats.stop_reason == "contextLengthReached"
        assert result.stats.predicted_tokens_count == 0
        _, result = run(small, "hi", grammar="root ::= [a-z]+")
        assert result.stats.stop_reason == "contextLengthReached"
        total = result.stats.prompt_tokens_count + result.stats.predicted_tokens_count
        assert n_ctx - 2 <= total <= n_ctx
    finally:
        small.unload()


def test_bad_grammar_fails_cleanly(model: LoadedModel) -> None:
    stream = model.complete_sync("x", {"grammar": "root ::= ("})
    list(stream)
    assert isinstance(stream.error, ValueError)
    assert "grammar" in str(stream.error)


# --- async stream --------------------------------------------------------------


async def test_async_stream_does_not_block_the_loop(model: LoadedModel) -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    # Enough work that the loop must have ticked meanwhile: the whole prompt evaluated
    # (no cache left over from earlier tests) and 200 tokens with no early end.
    model.reset_cache()
    task = asyncio.create_task(ticker())
    stream = model.complete_events(
        LONG_PROMPT, {"maxTokens": 200, "seed": 9, "grammar": "root ::= [a-z ]+"}
    )
    events = [e async for e in stream]
    stop.set()
    await task
    assert isinstance(events[-1], Finished)
    assert stream.result is not None
    assert ticks > 5


async def test_async_cancel(model: LoadedModel) -> None:
    stream = model.complete_events("go", {"maxTokens": 300, "grammar": "root ::= [a-z ]+"})
    async for event in stream:
        if isinstance(event, ContentDelta):
            stream.cancel()
    assert stream.result is not None
    assert stream.result.stats.stop_reason == "userStopped"


async def test_requests_queue_in_order(model: LoadedModel) -> None:
    first = model.complete_events("one", {"maxTokens": 8, "grammar": 'root ::= "aaaa"'})
    second = model.complete_events("two", {"maxTokens": 8, "grammar": 'root ::= "bbbb"'})
    r2 = await second.wait_for_result()
    r1 = await first.wait_for_result()
    assert (r1.content, r2.content) == ("aaaa", "bbbb")


def test_prediction_config_is_validated() -> None:
    from engine.prediction import PredictionConfigError

    with pytest.raises(PredictionConfigError, match="unknown prediction setting 'maxTokenz'"):
        PredictionConfig.parse({"maxTokenz": 3})
    with pytest.raises(PredictionConfigError, match="temperature"):
        PredictionConfig.parse({"temperature": -1})
    with pytest.raises(PredictionConfigError, match="maxTokens"):
        PredictionConfig.parse({"maxTokens": 0})
    camel = PredictionConfig.parse(
        {"topKSampling": 5, "topPSampling": 0.5, "minPSampling": 0.1, "repeatPenalty": 1.2}
    )
    snake = PredictionConfig.parse({"top_k": 5, "top_p": 0.5, "min_p": 0.1, "repeat_penalty": 1.2})
    assert camel == snake
    assert PredictionConfig.parse({"stopStrings": "$"}).stop_strings == ("$",)


# --- logit bias ------------------------------------------------------------------


def test_logit_bias_forces_a_token(model: LoadedModel) -> None:
    token = model.tokenize("fox", add_special=False)[0]
    assert model._pieces is not None
    piece = model._pieces(token).decode()
    _, result = run(model, "the", maxTokens=6, seed=3, logitBias={token: 100.0})
    assert piece and result.content == piece * 6


def test_logit_bias_bans_the_greedy_choice(model: LoadedModel) -> None:
    assert model._llama is not None
    _, first = run(model, LONG_PROMPT, maxTokens=1, temperature=0)
    assert first.content
    pieces = model._pieces
    assert pieces is not None
    piece = first.content.encode()
    same = {t: float("-inf") for t in range(model._llama.n_vocab()) if pieces(t) == piece}
    _, banned = run(model, LONG_PROMPT, maxTokens=1, temperature=0, logit_bias=same)
    assert banned.content != first.content


def test_logit_bias_outside_the_vocabulary_fails_clearly(model: LoadedModel) -> None:
    from engine.prediction import PredictionConfigError

    stream = model.complete_sync("x", {"logitBias": {10**6: 5.0}})
    list(stream)
    assert isinstance(stream.error, PredictionConfigError)
    assert "token id 1000000 is outside the vocabulary" in str(stream.error)


def test_logit_bias_config_is_validated() -> None:
    from engine.prediction import PredictionConfigError

    parsed = PredictionConfig.parse({"logitBias": {"12": -1.5, "3": float("-inf")}})
    assert parsed.logit_bias == ((3, float("-inf")), (12, -1.5))
    assert PredictionConfig.parse({"logit_bias": {3: float("-inf"), 12: -1.5}}) == parsed
    with pytest.raises(PredictionConfigError, match="negative"):
        PredictionConfig.parse({"logitBias": {-1: 1.0}})
    with pytest.raises(PredictionConfigError, match="not a number"):
        PredictionConfig.parse({"logitBias": {1: float("nan")}})
    with pytest.raises(PredictionConfigError, match="logitBias"):
        PredictionConfig.parse({"logitBias": {"fox": 1.0}})


async def test_events_made_while_the_loop_is_busy_all_arrive_in_order(model: LoadedModel) -> None:
    import time

    stream = model.complete_events(LONG_PROMPT, {"maxTokens": 30, "seed": 4})
    time.sleep(1.0)  # the loop is blocked: the model thread's events pile up meanwhile
    events = [e async for e in stream if not isinstance(e, Log)]
    assert stream.result is not None
    assert isinstance(events[-1], Finished)
    assert isinstance(events[0], PromptProgress)
    assert sum(isinstance(e, FirstToken) for e in events) == 1
    progress = [e.fraction for e in events if isinstance(e, PromptProgress)]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert content_of(events) == stream.result.content
    assert stream.result.stats.predicted_tokens_count == 30
