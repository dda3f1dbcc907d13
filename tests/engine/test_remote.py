"""A remote model source pointed at llamaterm's own server gives the local engine's events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openai_tools import WEATHER
from serve_testing import tiny_models

from engine.chat import Chat
from engine.contract import ChatModel
from engine.formatting.conversation import respond_events
from engine.llama import EventStream, LoadedModel
from engine.load_config import LoadConfig
from engine.logbus import LOG_BUS
from engine.prediction import (
    ContentDelta,
    Event,
    Failed,
    Finished,
    FirstToken,
    LogRecord,
    PredictionResult,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from engine.remote import RemoteError, RemoteModel, RemoteSource, api_base, list_remote_models
from engine.serve.models import ModelRegistry, ServedModel
from engine.serve.run import ServerHandle

TEMPLATES = Path(__file__).resolve().parents[1] / "data" / "chat-templates"


@pytest.fixture(scope="module")
def models(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LoadedModel]]:
    with tiny_models(tiny_model_path, tmp_path_factory.mktemp("qwen3")) as loaded:
        yield loaded


@pytest.fixture
async def server(models: dict[str, LoadedModel]) -> AsyncIterator[ServerHandle]:
    registry = ModelRegistry([ServedModel(key, model) for key, model in models.items()])
    async with ServerHandle(registry, port=0, api_key="key") as handle:
        yield handle


async def run(stream: EventStream) -> tuple[list[Event], PredictionResult]:
    events = [e for e in [event async for event in stream]]
    assert stream.error is None, stream.error
    assert stream.result is not None
    return events, stream.result


def visible(events: list[Event]) -> list[tuple[Any, ...]]:
    """What a chat view shows, without call ids (each prediction makes new ones)."""
    shown: list[tuple[Any, ...]] = []
    for event in events:
        if isinstance(event, (ContentDelta, ReasoningDelta)):
            shown.append((type(event).__name__, event.text))
        elif isinstance(event, ToolCallStarted):
            shown.append(("started", event.index, event.name))
        elif isinstance(event, ToolCallArgumentsDelta):
            shown.append(("arguments", event.index, event.text))
        elif isinstance(event, ToolCallFinished):
            shown.append(("finished", event.index, event.call.name, event.call.arguments))
    return shown


async def local_and_remote(
    models: dict[str, LoadedModel], server: ServerHandle, key: str, chat: Chat,
    config: dict[str, Any], **kwargs: Any,
) -> tuple[tuple[list[Event], PredictionResult], tuple[list[Event], PredictionResult]]:
    model = models[key]
    # The same cache state for both, so that the same seed samples the same tokens.
    model.reset_cache()
    local = await run(respond_events(model, chat, config, **kwargs))
    model.reset_cache()
    remote = await run(RemoteModel(server.url, key, "key").respond_events(chat, config, **kwargs))
    return local, remote


def ask(text: str) -> Chat:
    chat = Chat("You are a helpful assistant.")
    chat.add_user_message(text)
    return chat


async def test_content_events_match_the_local_engine(
    models: dict[str, LoadedModel], server: ServerHandle
) -> None:
    (local, local_result), (remote, result) = await local_and_remote(
        models, server, "tiny", ask("Hello"), {"maxTokens": 12, "seed": 3, "temperature": 0.7}
    )
    assert visible(remote) == visible(local)
    assert result.content == local_result.content and result.content
    stats = result.stats
    assert stats.stop_reason == local_result.stats.stop_reason == "maxPredictedTokensReached"
    assert stats.predicted_tokens_count == 12
    assert stats.prompt_tokens_count == local_result.stats.prompt_tokens_count
    assert stats.time_to_first_token_sec is not None and stats.time_to_first_token_sec > 0
    assert stats.tokens_per_second is not None and stats.tokens_per_second > 0
    assert any(isinstance(e, FirstToken) for e in remote)
    assert isinstance(remote[-1], Finished)


async def test_reasoning_events_match_the_local_engine(
    models: dict[str, LoadedModel], server: ServerHandle
) -> None:
    grammar = 'root ::= "<think>" [a-z ]{2,12} "</think>" "\\n\\n" [a-z]{1,6}'
    (local, local_result), (remote, result) = await local_and_remote(
        models, server, "tiny-qwen3", ask("Why?"), {"maxTokens": 40, "seed": 1, "grammar": grammar}
    )
    assert visible(remote) == visible(local)
    assert result.reasoning == local_result.reasoning and result.reasoning.strip()
    assert result.content == local_result.content and result.content.isalpha()
    assert result.stats.stop_reason == "eosFound"


async def test_reasoning_parsing_off_matches_the_local_engine(
    models: dict[str, LoadedModel], server: ServerHandle
) -> None:
    grammar = 'root ::= "<think>" [a-z ]{2,12} "</think>" "\\n\\n" [a-z]{1,6}'
    config = {"maxTokens": 40, "seed": 1, "grammar": grammar, "reasoningParsing": {"enabled": False}}
    (local, local_result), (remote, result) = await local_and_remote(
        models, server, "tiny-qwen3", ask("Why?"), config
    )
    assert visible(remote) == visible(local)
    assert result.reasoning == local_result.reasoning == ""
    assert result.content == local_result.content and result.content.startswith("<think>")


async def test_thinking_off_reaches_the_remote_template(
    models: dict[str, LoadedModel], server: ServerHandle
) -> None:
    prompts: list[LogRecord] = []
    unsubscribe = LOG_BUS.subscribe(lambda r: prompts.append(r) if r.kind == "prompt" else None)
    try:
        remote = RemoteModel(server.url, "tiny-qwen3", "key")
        await run(remote.respond_events(
            ask("Hi"), {"maxTokens": 4, "grammar": 'root ::= "ok"', "enableThinking": False}
        ))
    finally:
        unsubscribe()
    assert prompts[-1].data["text"].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.mark.parametrize("key", ["tiny", "tiny-qwen3"])
async def test_tool_call_events_match_the_local_engine(
    models: dict[str, LoadedModel], server: ServerHandle, key: str
) -> None:
    (local, local_result), (remote, result) = await local_and_remote(
        models, server, key, ask("Weather in Paris?"), {"maxTokens": 200, "seed": 4},
        tools=[WEATHER], tool_choice="required",
    )
    assert visible(remote) == visible(local)
    assert result.stats.stop_reason == local_result.stats.stop_reason == "toolCalls"
    assert [c.name for c in result.tool_calls] == ["get_weather"]
    call = result.tool_calls[0]
    assert call.arguments == local_result.tool_calls[0].arguments
    jsonschema.validate(call.arguments, WEATHER["function"]["parameters"])
    started = next(e for e in remote if isinstance(e, ToolCallStarted))
    assert started.id == call.id and call.id


async def test_a_tool_result_goes_back_to_the_server(
    models: dict[str, LoadedModel], server: ServerHandle
) -> None:
    remote = RemoteModel(server.url, "tiny-qwen3", "key")
    chat = ask("Weather in Paris?")
    _, first = await run(remote.respond_events(chat, {"maxTokens": 200, "seed": 2},
                                               tools=[WEATHER], tool_choice="required"))
    call = first.tool_calls[0]
    chat.add_assistant_response(first.content, tool_calls=[call])
    chat.add_tool_result(call.id, '{"forecast": "sunny"}', name=call.name)
    _, final = await run(remote.respond_events(chat, {"maxTokens": 10, "grammar": 'root ::= "Sunny."'}))
    assert final.content == "Sunny."


async def test_completion_with_a_stop_string(server: ServerHandle) -> None:
    remote = RemoteModel(server.url, "tiny", "key")
    config = {"maxTokens": 20, "stopStrings": ["$"], "grammar": 'root ::= "ls\\n" "$ " [a-z]{3}'}
    events, result = await run(remote.complete_events("$ ", config))
    assert result.content == "ls\n"
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "ls\n"
    assert result.stats.stop_reason == "eosFound"  # OpenAI's "stop" covers both


async def test_logit_bias_reaches_the_remote_sampler(
    server: ServerHandle, tiny_model_path: Path
) -> None:
    remote = RemoteModel(server.url, "tiny", "key")
    _, greedy = await run(remote.complete_events("the", {"maxTokens": 1, "temperature": 0}))
    local = LoadedModel.load(tiny_model_path, LoadConfig(context_length=256))
    assert local._pieces is not None and local._llama is not None and greedy.content
    token = local.tokenize("fox", add_special=False)[0]
    piece = local._pieces(token).decode()
    same = [t for t in range(local._llama.n_vocab()) if local._pieces(t) == greedy.content.encode()]
    local.unload()
    _, forced = await run(remote.complete_events("the", {"maxTokens": 3, "logitBias": {token: 100.0}}))
    assert forced.content == piece * 3
    # -inf cannot travel as JSON: it is sent as OpenAI's -100, which bans the token.
    config = {"maxTokens": 1, "temperature": 0, "logitBias": {t: float("-inf") for t in same}}
    _, banned = await run(remote.complete_events("the", config))
    assert banned.content != greedy.content


async def test_cancel_closes_the_request_and_the_server_stops(server: ServerHandle) -> None:
    records: list[LogRecord] = []
    unsubscribe = LOG_BUS.subscribe(lambda r: records.append(r) if r.kind == "server" else None)
    try:
        stream = RemoteModel(server.url, "tiny", "key").respond_events(
            ask("Talk"), {"maxTokens": 1500, "seed": 1}
        )
        seen = 0
        async for event in stream:
            if isinstance(event, ContentDelta):
                seen += 1
                if seen == 3:
                    stream.cancel()
        assert stream.result is not None
        assert stream.result.stats.stop_reason == "userStopped"
        for _ in range(500):
            done = [r for r in records if r.data.get("status") == 499]
            if done:
                break
            await asyncio.sleep(0.01)
        assert done and done[0].data["stop_reason"] == "userStopped"
    finally:
        unsubscribe()


async def test_cancel_before_the_request_starts_still_finishes(server: ServerHandle) -> None:
    stream = RemoteModel(server.url, "tiny", "key").complete_events("x", {"maxTokens": 5})
    stream.cancel()
    _, result = await run(stream)
    assert result.stats.stop_reason == "userStopped"


async def test_errors_become_failed_events(server: ServerHandle) -> None:
    unknown = RemoteModel(server.url, "no-such-model", "key").respond_events(ask("Hi"))
    events = [e async for e in unknown]
    assert isinstance(events[-1], Failed)
    assert "not loaded here" in str(events[-1].error) and "param: model" in str(events[-1].error)

    no_key = RemoteModel(server.url, "tiny").respond_events(ask("Hi"))
    assert isinstance([e async for e in no_key][-1], Failed)
    assert "401" in str(no_key.error)

    nobody = RemoteModel("http://127.0.0.1:9/v1", "tiny").complete_events("x")
    events = [e async for e in nobody]
    assert isinstance(events[-1], Failed) and isinstance(events[-1].error, RemoteError)
    assert "cannot reach" in str(events[-1].error)


async def test_listing_models(server: ServerHandle) -> None:
    entries = await list_remote_models(server.url, "key")
    assert [e.id for e in entries] == ["tiny", "tiny-qwen3"]
    assert entries[0].context_length == 2048
    assert await RemoteModel(server.url, "tiny", "key").list_models() == ["tiny", "tiny-qwen3"]
    source = RemoteSource(server.url.removesuffix("/v1"), api_key="key")
    assert [m.model_id for m in await source.list_models()] == ["tiny", "tiny-qwen3"]
    with pytest.raises(RemoteError, match="401"):
        await list_remote_models(server.url)


def test_api_base() -> None:
    assert api_base("localhost:1234") == "http://localhost:1234/v1"
    assert api_base("http://gpu-box:8000/") == "http://gpu-box:8000/v1"
    assert api_base("https://host/api/v1") == "https://host/api/v1"


@pytest.fixture(params=["local", "remote"])
def chat_model(
    request: pytest.FixtureRequest, models: dict[str, LoadedModel], server: ServerHandle
) -> ChatModel:
    """The tiny model, in this process or behind the server: consumers cannot tell."""
    local = models["tiny"]
    local.reset_cache()
    return local if request.param == "local" else RemoteModel(server.url, "tiny", "key")


async def test_act_loop_runs_the_same_on_local_and_remote_models(chat_model: ChatModel) -> None:
    from engine.agent import ActFinished, ToolRunFinished, act_events

    ran: list[str] = []

    def get_weather(city: str) -> str:
        """The weather forecast for a city."""
        ran.append(city)
        return "sunny"

    chat = ask("Weather in Paris?")
    run_ = act_events(chat_model, chat, [get_weather], config={"maxTokens": 200, "seed": 3},
                      tool_choice="required", max_rounds=2)
    events = [e async for e in run_]
    assert len(ran) == 1
    assert any(isinstance(e, ToolRunFinished) and e.result.content == "sunny" for e in events)
    assert isinstance(events[-1], ActFinished)
    assert [m.role for m in chat.messages][-3:] == ["assistant", "tool", "assistant"]


async def test_unload_closes_the_open_streams_and_the_model_stays_usable(server: ServerHandle) -> None:
    remote = RemoteModel(server.url, "tiny", "key")
    stream = remote.respond_events(ask("Talk"), {"maxTokens": 1500, "seed": 1})
    async for event in stream:
        if isinstance(event, ContentDelta):
            remote.unload()
    assert stream.result is not None and stream.result.stats.stop_reason == "userStopped"
    assert remote.is_loaded
    _, again = await run(remote.complete_events("x", {"maxTokens": 2}))
    assert again.stats.predicted_tokens_count == 2


async def test_tokenize_on_a_server_without_tokenize_is_a_remote_error(server: ServerHandle) -> None:
    remote = RemoteModel(server.url, "tiny", "key")
    # Off the loop: tokenize blocks, and this loop runs the server.
    with pytest.raises(RemoteError, match="cannot tokenise"):
        await asyncio.to_thread(remote.tokenize, "hello")
