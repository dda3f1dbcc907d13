"""Penalties and log-probabilities reach a remote server (llamaterm's own, for real)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from serve_testing import tiny_models

from engine.chat import Chat
from engine.formatting.conversation import respond_events
from engine.llama import LoadedModel
from engine.remote import RemoteModel
from engine.serve.models import ModelRegistry, ServedModel
from engine.serve.run import ServerHandle


@pytest.fixture(scope="module")
def models(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LoadedModel]]:
    with tiny_models(tiny_model_path, tmp_path_factory.mktemp("qwen3")) as loaded:
        yield loaded


@pytest.fixture
async def server(models: dict[str, LoadedModel]) -> AsyncIterator[ServerHandle]:
    registry = ModelRegistry([ServedModel(key, model) for key, model in models.items()])
    async with ServerHandle(registry, port=0, api_key="key") as handle:
        yield handle


def ask() -> Chat:
    chat = Chat("You are a helpful assistant.")
    chat.add_user_message("the the the the")
    return chat


@pytest.mark.parametrize("penalty", ["presencePenalty", "frequencyPenalty"])
async def test_penalties_are_forwarded(
    models: dict[str, LoadedModel], server: ServerHandle, penalty: str
) -> None:
    greedy = {"maxTokens": 30, "temperature": 0, "repeatPenalty": 1.0}
    model = models["tiny"]
    remote = RemoteModel(server.url, "tiny", "key")
    plain = await remote.respond_events(ask(), greedy).wait_for_result()
    penalised = await remote.respond_events(ask(), {**greedy, penalty: 2.0}).wait_for_result()
    local = await respond_events(model, ask(), {**greedy, penalty: 2.0}).wait_for_result()
    # Before, the remote request left the penalty out and gave the unpenalised reply.
    assert penalised.content == local.content != plain.content


async def test_top_logprobs_is_asked_for_in_each_api_spelling(server: ServerHandle) -> None:
    remote = RemoteModel(server.url, "tiny", "key")
    chat = remote.respond_events(ask(), {"maxTokens": 3, "topLogprobs": 2})
    text = remote.complete_events("Once", {"maxTokens": 3, "topLogprobs": 2})
    assert chat._request.body["logprobs"] is True and chat._request.body["top_logprobs"] == 2
    assert text._request.body["logprobs"] == 2
    # The server accepts both (a refusal would fail the stream).
    assert (await chat.wait_for_result()).stats.predicted_tokens_count >= 1
    assert (await text.wait_for_result()).stats.predicted_tokens_count >= 1
