"""Chats on a real tiny model: templates, reasoning, KV reuse across turns, context policies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.chat import Chat
from engine.formatting.conversation import fit_messages, respond_sync
from engine.llama import LoadedModel, SyncEventStream
from engine.load_config import LoadConfig
from engine.prediction import ContentDelta, Log, PredictionResult, ReasoningDelta

TEMPLATES = Path(__file__).resolve().parents[1] / "data" / "chat-templates"


def finish(stream: SyncEventStream) -> tuple[list[object], PredictionResult]:
    events = [e for e in stream if not isinstance(e, Log)]
    if stream.error is not None:
        raise stream.error
    assert stream.result is not None
    return events, stream.result


@pytest.fixture(scope="module")
def chatml(tiny_model_path: Path):  # type: ignore[no-untyped-def]
    model = LoadedModel.load(tiny_model_path, LoadConfig(context_length=1024, batch_size=32))
    yield model
    model.unload()


@pytest.fixture
def load(make_tiny_model: Callable[..., Path]):  # type: ignore[no-untyped-def]
    loaded: list[LoadedModel] = []

    def make(context_length: int = 1024, **kwargs: object) -> LoadedModel:
        model = LoadedModel.load(make_tiny_model(**kwargs), LoadConfig(context_length=context_length))
        loaded.append(model)
        return model

    yield make
    for model in loaded:
        model.unload()


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


# --- templates ------------------------------------------------------------------------


def test_embedded_template_renders_the_prompt(chatml: LoadedModel) -> None:
    chat = Chat("Be brief.")
    chat.add_user_message("Hello there")
    _, result = finish(respond_sync(chatml, chat, {"maxTokens": 3, "grammar": 'root ::= "hi"'}))
    assert result.prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n"
    )
    assert result.content == "hi"
    assert result.model_info.chat_template_reason.startswith("the model file carries")


def test_model_without_template_gets_a_fallback_and_says_why(load) -> None:  # type: ignore[no-untyped-def]
    model = load(chat_template=None)
    assert model.chat_template.origin == "fallback"
    assert model.info.chat_template == "ChatML (fallback)"
    assert "carries no chat template" in model.info.chat_template_reason
    _, result = finish(respond_sync(model, "Hi", {"maxTokens": 2, "grammar": 'root ::= "ok"'}))
    assert result.prompt.endswith("<|im_start|>assistant\n")


def test_template_file_from_config_wins(load, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    template = tmp_path / "mine.jinja"
    template.write_text("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}>>> ")
    model = load()
    override = LoadedModel.load(model.path, LoadConfig(context_length=256, chat_template_file=template))
    try:
        assert override.chat_template.origin == "file"
        _, result = finish(respond_sync(override, "Hi", {"maxTokens": 2, "grammar": 'root ::= "a"'}))
        assert result.prompt == "[user] Hi\n>>> "
    finally:
        override.unload()


def test_template_that_refuses_names_the_rule(load) -> None:  # type: ignore[no-untyped-def]
    source = (TEMPLATES / "google-gemma-2-2b-it.jinja").read_text()
    model = load(chat_template=source)
    chat = Chat("a system prompt gemma-2 does not support")
    chat.add_user_message("Hi")
    stream = respond_sync(model, chat, {"maxTokens": 2})
    list(stream)
    assert stream.error is not None
    assert "System role not supported" in str(stream.error)
    assert "Traceback" not in str(stream.error)


# --- thinking --------------------------------------------------------------------------


def qwen3(load, **kwargs: object) -> LoadedModel:  # type: ignore[no-untyped-def]
    return load(chat_template=(TEMPLATES / "Qwen-Qwen3-0.6B.jinja").read_text(), **kwargs)


def test_reasoning_is_split_from_the_answer(load) -> None:  # type: ignore[no-untyped-def]
    model = qwen3(load)
    grammar = 'root ::= "<think>" "let me see" "</think>" "\\n\\n" "the answer"'
    events, result = finish(respond_sync(model, "Why?", {"maxTokens": 40, "grammar": grammar}))
    assert result.reasoning == "let me see"
    assert result.content == "the answer"
    assert "<think>" in result.raw_text
    kinds = [type(e) for e in events if isinstance(e, (ContentDelta, ReasoningDelta))]
    assert kinds.index(ContentDelta) > kinds.index(ReasoningDelta)


def test_unclosed_reasoning_is_kept_as_reasoning(load) -> None:  # type: ignore[no-untyped-def]
    model = qwen3(load)
    grammar = 'root ::= "<think>" "still thinking about it"'
    _, result = finish(respond_sync(model, "Why?", {"maxTokens": 40, "grammar": grammar}))
    assert result.reasoning == "still thinking about it"
    assert result.content == ""


def test_enable_thinking_false_reaches_the_template(load) -> None:  # type: ignore[no-untyped-def]
    model = qwen3(load)
    config = {"maxTokens": 2, "grammar": 'root ::= "ok"', "enableThinking": False}
    _, result = finish(respond_sync(model, "Hi", config))
    assert result.prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    _, thinking = finish(respond_sync(model, "Hi", {"maxTokens": 2, "grammar": 'root ::= "ok"'}))
    assert thinking.prompt.endswith("<|im_start|>assistant\n")


def test_forced_open_template_starts_in_reasoning(load) -> None:  # type: ignore[no-untyped-def]
    model = load(chat_template=(TEMPLATES / "Qwen-QwQ-32B.jinja").read_text())
    grammar = 'root ::= "hmm" "</think>" "\\n\\n" "done"'
    _, result = finish(respond_sync(model, "Why?", {"maxTokens": 30, "grammar": grammar}))
    assert result.prompt.endswith("<think>\n")
    assert (result.reasoning, result.content) == ("hmm", "done")


def test_history_reasoning_is_stored_but_rendered_as_the_template_wants(load) -> None:  # type: ignore[no-untyped-def]
    model = qwen3(load)
    chat = Chat()
    chat.add_user_message("first")
    grammar = 'root ::= "<think>" "secret plan" "</think>" "\\n\\n" "reply one"'
    stream = respond_sync(model, chat, {"maxTokens": 80, "grammar": grammar})
    _, result = finish(stream)
    chat.add_assistant_response(result.content, reasoning=result.reasoning)
    chat.add_user_message("second")
    assert chat.messages[-2].reasoning == "secret plan"
    _, second = finish(respond_sync(model, chat, {"maxTokens": 2, "grammar": 'root ::= "x"'}))
    # Qwen3's template drops the reasoning of earlier turns from the prompt.
    assert "secret plan" not in second.prompt
    assert "reply one" in second.prompt


# --- multi-turn KV reuse ----------------------------------------------------------------


def test_each_turn_evaluates_only_what_is_new(chatml: LoadedModel) -> None:
    chat = Chat("You are a test.")
    for turn in range(6):
        message = f"message number {turn} about the quick brown fox"
        chat.add_user_message(message)
        cached = chatml.cached_sequences()
        _, result = finish(
            respond_sync(chatml, chat, {"maxTokens": 20, "grammar": 'root ::= "fine thanks"'})
        )
        chat.add_assistant_response(result.content)
        prompt_tokens = chatml.tokenize(result.prompt, add_special=True)
        assert result.stats.prompt_tokens_count == len(prompt_tokens)
        if turn:
            # Only what follows the prefix already in the KV cache is evaluated...
            # (the slot whose cache shares the most with the prompt: the turn's own)
            new = len(prompt_tokens) - max(common_prefix(c, prompt_tokens) for c in cached)
            assert result.stats.prompt_tokens_evaluated == max(new, 1)
            # ...which is the new message, its wrapper, and at most the re-tokenised reply.
            user_and_wrapper = len(chatml.tokenize(message, add_special=False)) + 10
            assert result.stats.prompt_tokens_evaluated < 2 * user_and_wrapper
            assert result.stats.prompt_tokens_evaluated < result.stats.prompt_tokens_count / 2


# --- context policies --------------------------------------------------------------------


def long_chat(turns: int) -> Chat:
    chat = Chat("SYSTEM PROMPT KEPT")
    for n in range(turns):
        chat.add_user_message(f"question {n}: " + "the quick brown fox jumps over the lazy dog " * 3)
        chat.add_assistant_response(f"answer {n}: " + "hello world " * 8)
    chat.add_user_message("the last question")
    return chat


def test_truncate_middle_keeps_system_prompt_and_last_turns(load) -> None:  # type: ignore[no-untyped-def]
    model = load(context_length=256)
    config = {"maxTokens": 8, "grammar": 'root ::= "ok"', "contextOverflowPolicy": "truncateMiddle"}
    events, result = finish(respond_sync(model, long_chat(12), config))
    assert result.content == "ok"
    assert result.prompt.startswith("<|im_start|>system\nSYSTEM PROMPT KEPT")
    assert "the last question" in result.prompt
    assert "question 0:" not in result.prompt
    assert result.stats.context_overflow and "truncateMiddle" in result.stats.context_overflow
    assert result.stats.prompt_tokens_count + 8 <= model.info.context_length


def test_rolling_window_drops_the_system_prompt_too(load) -> None:  # type: ignore[no-untyped-def]
    model = load(context_length=256)
    config = {"maxTokens": 8, "grammar": 'root ::= "ok"', "contextOverflowPolicy": "rollingWindow"}
    _, result = finish(respond_sync(model, long_chat(12), config))
    assert "SYSTEM PROMPT KEPT" not in result.prompt
    assert "the last question" in result.prompt
    assert result.stats.context_overflow and "rollingWindow" in result.stats.context_overflow


def test_stop_at_limit_does_not_truncate(load) -> None:  # type: ignore[no-untyped-def]
    model = load(context_length=256)
    config = {"maxTokens": 8, "contextOverflowPolicy": "stopAtLimit"}
    _, result = finish(respond_sync(model, long_chat(12), config))
    assert result.stats.stop_reason == "contextLengthReached"
    assert result.stats.predicted_tokens_count == 0
    assert result.stats.context_overflow is None


def test_fit_messages_drops_whole_turns() -> None:
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "u3"},
    ]
    kept, dropped = fit_messages(messages, "truncateMiddle", lambda m: len(m) <= 4)
    assert [m["content"] for m in kept] == ["s", "u2", "a2", "u3"] and dropped == 2
    kept, dropped = fit_messages(messages, "rollingWindow", lambda m: len(m) <= 3)
    assert [m["content"] for m in kept] == ["u2", "a2", "u3"] and dropped == 3
    kept, _ = fit_messages(messages, "truncateMiddle", lambda m: False)
    assert [m["content"] for m in kept] == ["u3"]


# --- a hostile template ----------------------------------------------------------------


async def test_no_template_code_runs_on_the_event_loop(
    chatml: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import engine.formatting.templates as templates

    render_threads: list[int] = []
    real = templates._render_limited

    def spy(*args: Any, **kwargs: Any) -> str:
        render_threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(templates, "_render_limited", spy)
    loop_thread = threading.get_ident()
    chat = Chat("You are helpful.")
    chat.add_user_message("Weather?")
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    for choice in ("auto", "required"):
        stream = chatml.respond_events(chat, {"maxTokens": 3}, tools=[tool], tool_choice=choice)
        await stream.wait_for_result()
    assert render_threads and loop_thread not in render_threads


async def test_a_looping_template_fails_the_prediction_and_the_model_goes_on(
    make_tiny_model: Callable[..., Path],
) -> None:
    import asyncio
    import time

    from engine.formatting.limits import RenderLimits, TemplateLimitError
    from engine.prediction import Failed

    looping = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    path = make_tiny_model(chat_template=looping + "{{ messages[0]['content'] }}")
    model = await LoadedModel.load_async(path, LoadConfig(context_length=512))
    try:
        chat = Chat()
        chat.add_user_message("hi")
        started = time.perf_counter()
        stream = model.respond_events(chat, {"maxTokens": 2})
        ticks = 0
        while not stream.control.done.is_set():  # the loop stays free meanwhile
            ticks += 1
            await asyncio.sleep(0.05)
        events = [e async for e in stream]
        assert isinstance(events[-1], Failed)
        error = events[-1].error
        assert isinstance(error, TemplateLimitError) and "stopped: it took more than" in str(error)
        assert time.perf_counter() - started < RenderLimits().max_seconds + 10
        assert ticks > 10
        # The model thread is free again: raw completion needs no template.
        result = await model.complete_events("hello", {"maxTokens": 2}).wait_for_result()
        assert result.stats.predicted_tokens_count == 2
    finally:
        model.unload()


async def test_cancel_stops_a_render_that_runs_long(make_tiny_model: Callable[..., Path]) -> None:
    import asyncio
    import time

    looping = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    path = make_tiny_model(chat_template=looping + "{{ messages[0]['content'] }}")
    model = await LoadedModel.load_async(path, LoadConfig(context_length=512))
    try:
        chat = Chat()
        chat.add_user_message("hi")
        stream = model.respond_events(chat, {"maxTokens": 2})
        await asyncio.sleep(0.3)  # well inside the render (its limit is seconds away)
        cancelled_at = time.perf_counter()
        stream.cancel()
        result = await stream.wait_for_result()
        assert result.stats.stop_reason == "userStopped"
        # Well under the render's 5 s limit (so the cancel, not the limit, ended it), with
        # room for a busy machine.
        assert time.perf_counter() - cancelled_at < 2.5
    finally:
        model.unload()


async def test_the_template_time_limit_is_a_load_setting(
    make_tiny_model: Callable[..., Path],
) -> None:
    import time

    from engine.formatting.limits import TemplateLimitError
    from engine.prediction import Failed

    looping = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    path = make_tiny_model(chat_template=looping + "{{ messages[0]['content'] }}")
    model = await LoadedModel.load_async(
        path, LoadConfig.model_validate({"contextLength": 512, "templateSeconds": 0.5})
    )
    try:
        chat = Chat()
        chat.add_user_message("hi")
        started = time.perf_counter()
        events = [e async for e in model.respond_events(chat, {"maxTokens": 2})]
        elapsed = time.perf_counter() - started
        assert isinstance(events[-1], Failed)
        assert isinstance(events[-1].error, TemplateLimitError)
        assert "0.5" in str(events[-1].error), str(events[-1].error)
        # Well inside the default 5 s: the setting, not the default, stopped it.
        assert elapsed < 3.0
    finally:
        model.unload()
