"""LM Studio's scoped clients, in process: `lms.Client` and `lms.AsyncClient`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import engine as lms


@pytest.fixture
def catalog(isolated_dirs: Path, tiny_model_path: Path) -> Path:
    models = isolated_dirs / "data" / "llamaterm" / "models"
    models.mkdir(parents=True)
    shutil.copyfile(tiny_model_path, models / "tiny-chat-q8_0.gguf")
    return models


def loaded_ids() -> set[str]:
    return {m.identifier for m in lms.list_loaded_models()}


def test_client_scopes_the_models_it_loads(catalog: Path) -> None:
    before = loaded_ids()  # other tests' models, if any are still loaded
    with lms.Client() as client:
        model = client.llm.model("tiny-chat", config={"contextLength": 512})
        assert model.identifier == "tiny-chat-q8_0"
        assert model.get_context_length() == 512
        other = client.llm.load_new_instance("tiny-chat", config={"contextLength": 256})
        assert other.identifier == "tiny-chat-q8_0:2"
        assert other.loaded_model is not model.loaded_model
        assert other.get_context_length() == 256
        loaded = {m.identifier for m in client.llm.list_loaded()} - before
        assert loaded == {"tiny-chat-q8_0", "tiny-chat-q8_0:2"}
        assert {m.identifier for m in lms.list_loaded_models("llm")} - before == loaded
        assert lms.list_loaded_models("embedding") == []
        result = other.respond("hi", config={"maxTokens": 3})
        assert result.model_info.model_key == "tiny-chat-q8_0:2"
        client.llm.unload("tiny-chat-q8_0:2")
        assert not other.loaded_model.is_loaded
        first = model.loaded_model
    # Closing the client unloads what it loaded.
    assert not first.is_loaded
    assert loaded_ids() == before


def test_client_lists_downloaded_models(catalog: Path, tiny_model_path: Path) -> None:
    with lms.Client() as client:
        found = client.system.list_downloaded_models()
        assert [d.model_key for d in found] == ["tiny-chat-q8_0"]
        entry = found[0]
        assert entry.type == "llm" and entry.format == "gguf" and entry.vision is False
        assert entry.size_bytes == tiny_model_path.stat().st_size
        assert entry.architecture == "llama" and entry.max_context_length > 0
        assert [d.model_key for d in client.llm.list_downloaded()] == ["tiny-chat-q8_0"]
        assert client.list_downloaded_models("embedding") == []
        handle = entry.model()
        assert handle.identifier == "tiny-chat-q8_0"
    assert [d.model_key for d in lms.list_downloaded_models()] == ["tiny-chat-q8_0"]
    with pytest.raises(ValueError, match="unknown model namespace"):
        lms.list_downloaded_models("images")


def test_a_remote_api_host_is_refused_clearly(catalog: Path) -> None:
    with pytest.raises(ValueError, match="in process"):
        lms.Client("192.0.2.1:1234")


async def test_async_client_streams_over_the_async_event_stream(catalog: Path) -> None:
    before = loaded_ids()
    async with lms.AsyncClient() as client:
        model = await client.llm.model("tiny-chat")
        assert isinstance(model, lms.AsyncLLM)
        chat = lms.Chat("Be brief.")
        chat.add_user_message("Hello")
        stream = await model.respond_stream(chat, config={"maxTokens": 6, "seed": 1},
                                            on_message=chat.append)
        pieces = [fragment.content async for fragment in stream]
        result = stream.result()
        assert "".join(pieces) == result.content
        assert result.prediction_config.max_tokens == 6
        assert [m.role for m in chat.messages] == ["system", "user", "assistant"]
        done = await model.complete("Once", config={"maxTokens": 4})
        assert done.stats.predicted_tokens_count <= 4
        async with await model.complete_stream("Once", config={"maxTokens": 500}) as early:
            async for _ in early:
                break
        assert early.result().stats.stop_reason == "userStopped"
        assert (await model.get_info()).model_key == "tiny-chat-q8_0"
        assert await model.count_tokens("hello") == len(await model.tokenize("hello"))
        listed = {m.identifier for m in await client.list_loaded_models()}
        assert listed - before == {"tiny-chat-q8_0"}
        assert [d.model_key for d in await client.system.list_downloaded_models()] == [
            "tiny-chat-q8_0"
        ]
    assert loaded_ids() == before


def test_the_default_client_is_one_and_stays_open(catalog: Path) -> None:
    client = lms.get_default_client()
    assert lms.get_default_client() is client
    model = client.llm.model("tiny-chat")
    try:
        with pytest.raises(RuntimeError, match="already created"):
            lms.configure_default_client("localhost:1234")
        assert model.loaded_model.is_loaded
    finally:
        model.unload()
        from engine.client import _reset_default_client

        _reset_default_client()


async def test_async_llm_act_and_structured_response(catalog: Path) -> None:
    import json

    call = '[TOOL_REQUEST]{"name": "ping", "arguments": {}}[END_TOOL_REQUEST]'
    seen: list[str] = []

    def ping() -> str:
        """Ping."""
        seen.append("ping")
        return "pong"

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    async with lms.AsyncClient() as client:
        model = await client.llm.model("tiny-chat")
        result = await model.act("ping", [ping], {"grammar": f"root ::= {json.dumps(call)}"},
                                 max_prediction_rounds=2)
        assert result.rounds == 2 and seen == ["ping"]
        reply = await model.respond("n?", response_format=schema, config={"seed": 2})
        assert isinstance(reply.parsed, dict) and isinstance(reply.parsed["n"], int)
