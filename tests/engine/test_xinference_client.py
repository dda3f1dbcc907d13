"""Xinference's own client, `xinference_client.RESTfulClient`, unchanged, against our server.

The snippets are Xinference's "Chat & Generate" page's, with its host and model uid
filled in; its curl examples are posted as they are written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai_tools import WEATHER
from serve_testing import ServerThread, tiny_models
from test_server import Records
from xinference_client import RESTfulClient
from xinference_client.client.restful.restful_client import (
    RESTfulChatModelHandle,
)

from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.logbus import LOG_BUS
from engine.serve.models import ModelRegistry, ServedModel
from engine.serve.run import ServerHandle
from engine.serve.schemas import ChatCompletionRequest

MESSAGES = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the largest animal?"}]


@pytest.fixture(scope="module")
def models(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LoadedModel]]:
    with tiny_models(tiny_model_path, tmp_path_factory.mktemp("qwen3")) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def server(models: dict[str, LoadedModel]) -> Iterator[ServerHandle]:
    registry = ModelRegistry([ServedModel(key, model) for key, model in models.items()])
    with ServerThread(ServerHandle(registry, port=0)) as handle:
        yield handle


@pytest.fixture
def base(server: ServerHandle) -> str:
    """The address as Xinference's docs write it: no /v1."""
    return server.url.removesuffix("/v1")


@pytest.fixture
def client(base: str) -> RESTfulClient:
    return RESTfulClient(base)


@pytest.fixture
def records() -> Iterator[Records]:
    collected = Records("prompt", "server")
    unsubscribe = LOG_BUS.subscribe(collected)
    yield collected
    unsubscribe()


def chat_model(client: RESTfulClient, uid: str = "tiny") -> RESTfulChatModelHandle:
    model = client.get_model(uid)
    assert isinstance(model, RESTfulChatModelHandle)
    return model


# --- models ---------------------------------------------------------------------------------


def test_list_models_describes_each_as_xinference_does(client: RESTfulClient) -> None:
    listed = client.list_models()
    assert list(listed) == ["tiny", "tiny-qwen3"]
    tiny = listed["tiny"]
    assert tiny["model_type"] == "LLM" and tiny["model_name"] == "tiny"
    assert tiny["model_ability"] == ["generate", "chat"]
    assert tiny["model_format"] == "ggufv2" and tiny["quantization"]
    assert tiny["context_length"] == 2048
    # Qwen3's template reasons and renders tools itself.
    assert listed["tiny-qwen3"]["model_ability"] == ["generate", "chat", "reasoning", "tools"]
    assert client.describe_model("tiny")["model_type"] == "LLM"


def test_an_unknown_model_is_a_runtime_error_with_the_detail(client: RESTfulClient) -> None:
    with pytest.raises(RuntimeError, match="model 'nope' is not loaded here"):
        client.get_model("nope")


# --- chat -----------------------------------------------------------------------------------


def test_chat_as_the_docs_show(client: RESTfulClient) -> None:
    model = chat_model(client)
    reply = model.chat(MESSAGES, generate_config={"max_tokens": 512, "temperature": 0.7})
    assert isinstance(reply, dict) and reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"]["role"] == "assistant"
    assert reply["usage"]["completion_tokens"] > 0


def test_streamed_chat_matches_the_whole_reply(
    client: RESTfulClient, models: dict[str, LoadedModel]
) -> None:
    model = chat_model(client)
    config: dict[str, Any] = {"max_tokens": 12, "temperature": 0.0}
    models["tiny"].reset_cache()
    whole = model.chat(MESSAGES, generate_config=config)
    models["tiny"].reset_cache()
    chunks = list(model.chat(MESSAGES, generate_config={**config, "stream": True}))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    "how", ["argument", "chat_template_kwargs"],
)
def test_enable_thinking_off_reaches_the_template(
    client: RESTfulClient, records: Records, how: str
) -> None:
    model = chat_model(client, "tiny-qwen3")
    config: dict[str, Any] = {"max_tokens": 10, "grammar": "root ::= [a-z]{1,6}"}
    if how == "argument":
        reply = model.chat(MESSAGES, enable_thinking=False, generate_config=config)
    else:
        config["chat_template_kwargs"] = {"enable_thinking": False}
        reply = model.chat(MESSAGES, generate_config=config)
    assert reply["choices"][0]["message"]["content"].isalpha()
    prompt = records.of("prompt")[-1].data["text"]
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_chat_with_tools(client: RESTfulClient) -> None:
    model = chat_model(client)
    reply = model.chat(
        [{"role": "user", "content": "What is the weather in Paris?"}], tools=[WEATHER],
        generate_config={"tool_choice": "required", "max_tokens": 400, "seed": 1},
    )
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and call["id"]


def test_repetition_penalty_is_the_repeat_penalty(
    client: RESTfulClient, models: dict[str, LoadedModel]
) -> None:
    model = chat_model(client)

    def text(**extra: Any) -> str:
        models["tiny"].reset_cache()
        reply = model.chat(MESSAGES, generate_config={"max_tokens": 40, "temperature": 0.0, **extra})
        return str(reply["choices"][0]["message"]["content"])

    penalised = text(repetition_penalty=5.0)
    assert penalised == text(repeat_penalty=5.0)
    assert penalised != text()
    request = ChatCompletionRequest.model_validate({"messages": MESSAGES, "repetition_penalty": 1.3})
    assert request.sampling()["repeat_penalty"] == 1.3


# --- generate -------------------------------------------------------------------------------


def test_generate_as_the_docs_show(client: RESTfulClient) -> None:
    model = client.get_model("tiny")
    reply = model.generate(prompt="What is the largest animal?",
                           generate_config={"max_tokens": 512, "temperature": 0.7})
    assert isinstance(reply, dict) and reply["object"] == "text_completion"
    assert reply["usage"]["completion_tokens"] > 0


def test_streamed_generate(client: RESTfulClient) -> None:
    model = client.get_model("tiny")
    chunks = list(model.generate(prompt="Once upon a time",
                                 generate_config={"max_tokens": 6, "stream": True}))
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_stop_token_ids_stop_generation(
    client: RESTfulClient, models: dict[str, LoadedModel]
) -> None:
    [dollar] = models["tiny"].tokenize("$", add_special=False)
    model = client.get_model("tiny")
    grammar = 'root ::= "ls -la\\n" "$ " [a-z]{3}'
    reply = model.generate(prompt="$ ", generate_config={
        "max_tokens": 20, "grammar": grammar, "stop_token_ids": [dollar]})
    choice = reply["choices"][0]
    assert choice["text"] == "ls -la\n" and choice["finish_reason"] == "stop"
    with pytest.raises(RuntimeError, match="stop_token_ids: token 99999999 is not in"):
        model.generate(prompt="$ ", generate_config={"stop_token_ids": 99999999})


# --- the docs' curl examples ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "tiny", "messages": MESSAGES, "max_tokens": 512,
                                  "temperature": 0.7}),
        ("/v1/chat/completions", {"model": "tiny-qwen3", "enable_thinking": False,
                                  "messages": [{"role": "user",
                                                "content": "What is the largest animal?"}]}),
        ("/v1/completions", {"model": "tiny", "prompt": "What is the largest animal?",
                             "max_tokens": 512, "temperature": 0.7}),
    ],
    ids=["chat", "enable_thinking", "generate"],
)
def test_curl_examples(base: str, path: str, body: dict[str, Any]) -> None:
    response = httpx.post(f"{base}{path}", json=body, timeout=120,
                          headers={"accept": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["finish_reason"] in ("stop", "length")


# --- the API key ------------------------------------------------------------------------------


def test_the_api_key_is_sent_when_the_cluster_asks(models: dict[str, LoadedModel]) -> None:
    registry = ModelRegistry([ServedModel("tiny", models["tiny"])])
    with ServerThread(ServerHandle(registry, port=0, api_key="sekrit")) as handle:
        base = handle.url.removesuffix("/v1")
        assert httpx.get(f"{base}/v1/cluster/auth").json() == {"auth": True}
        keyed = RESTfulClient(base, api_key="sekrit")
        assert list(keyed.list_models()) == ["tiny"]
        reply = chat_model(keyed).chat(MESSAGES, generate_config={"max_tokens": 3})
        assert reply["usage"]["completion_tokens"] == 3
        with pytest.raises(RuntimeError, match="invalid or missing API key"):
            RESTfulClient(base).list_models()
        with pytest.raises(RuntimeError, match="invalid or missing API key"):
            RESTfulClient(base, api_key="wrong").get_model("tiny")


def test_no_api_key_is_asked_for_when_none_is_set(base: str) -> None:
    assert httpx.get(f"{base}/v1/cluster/auth").json() == {"auth": False}
    # A key given anyway is not sent (the client's rule), and nothing is refused.
    assert list(RESTfulClient(base, api_key="anything").list_models()) == ["tiny", "tiny-qwen3"]


# --- the starter model ---------------------------------------------------------------------------


@pytest.mark.starter
def test_starter_model_chats_through_the_client(starter_model_path: Path) -> None:
    gemma = LoadedModel.load(starter_model_path, LoadConfig(context_length=1024))
    try:
        registry = ModelRegistry([ServedModel("gemma-3-270m", gemma)])
        with ServerThread(ServerHandle(registry, port=0)) as handle:
            client = RESTfulClient(handle.url.removesuffix("/v1"))
            entry = client.list_models()["gemma-3-270m"]
            assert entry["quantization"] == "Q4_K_M" and entry["model_family"] == "gemma3"
            model = chat_model(client, "gemma-3-270m")
            reply = model.chat([{"role": "user", "content": "What is the capital of France?"}],
                               generate_config={"max_tokens": 16, "temperature": 0})
            assert reply["choices"][0]["message"]["content"].strip()
            assert reply["usage"]["completion_tokens"] > 0
    finally:
        gemma.unload()
