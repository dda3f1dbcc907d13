"""OpenAI fidelity, through the official `openai` client on the tiny model: what the server
accepts it honours (penalties, logprobs, seeds, model names), and what it cannot honour it
refuses with a 400 naming the parameter."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI
from serve_testing import ServerThread

from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.prediction import PredictionConfig
from engine.serve.models import ModelRegistry, ServedModel
from engine.serve.run import ServerHandle


@pytest.fixture(scope="module")
def model(tiny_model_path: Path) -> Iterator[LoadedModel]:
    loaded = LoadedModel.load(
        tiny_model_path, LoadConfig.model_validate({"context_length": 2048, "threads": 1})
    )
    yield loaded
    loaded.unload()


def _client(handle: ServerHandle) -> OpenAI:
    return OpenAI(base_url=handle.url, api_key="not-needed", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def two(model: LoadedModel) -> Iterator[OpenAI]:
    """A server with two models (the same one under two names): names must match."""
    registry = ModelRegistry([ServedModel("tiny", model), ServedModel("other", model)])
    with ServerThread(ServerHandle(registry, port=0)) as handle, _client(handle) as client:
        yield client


@pytest.fixture(scope="module")
def one(model: LoadedModel) -> Iterator[OpenAI]:
    """A server with one model: any name reaches it."""
    registry = ModelRegistry([ServedModel("tiny", model)])
    with ServerThread(ServerHandle(registry, port=0)) as handle, _client(handle) as client:
        yield client


def ask(text: str = "Tell me a story") -> list[Any]:
    return [{"role": "user", "content": text}]


# --- penalties ------------------------------------------------------------------------------


def test_presence_and_frequency_penalties_change_greedy_output(two: OpenAI) -> None:
    def greedy(**penalties: float) -> str:
        response = two.completions.create(
            model="tiny", prompt="the the the", max_tokens=40, temperature=0,
            extra_body={"repeat_penalty": 1.0}, **penalties,  # type: ignore[arg-type]
        )
        return response.choices[0].text

    plain = greedy()
    assert greedy(frequency_penalty=2.0) != plain
    assert greedy(presence_penalty=2.0) != plain
    assert greedy(presence_penalty=0.0, frequency_penalty=0.0) == plain


def test_the_python_config_takes_the_penalties(model: LoadedModel) -> None:
    camel = PredictionConfig.parse({"presencePenalty": 1.5, "frequencyPenalty": 0.5})
    snake = PredictionConfig.parse({"presence_penalty": 1.5, "frequency_penalty": 0.5})
    assert camel == snake and (camel.presence_penalty, camel.frequency_penalty) == (1.5, 0.5)

    def greedy(config: dict[str, Any]) -> str:
        stream = model.complete_sync("the the the", {"maxTokens": 40, "temperature": 0,
                                                     "repeatPenalty": 1.0, **config})
        for _ in stream:
            pass
        assert stream.result is not None
        return stream.result.content

    assert greedy({"frequencyPenalty": 2.0}) != greedy({})


def test_out_of_range_penalties_name_the_field(two: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        two.chat.completions.create(model="tiny", messages=ask(), presence_penalty=3.0)
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "presence_penalty"


# --- logprobs -------------------------------------------------------------------------------


def test_chat_logprobs(two: OpenAI) -> None:
    response = two.chat.completions.create(
        model="tiny", messages=ask(), max_tokens=6, temperature=0, logprobs=True, top_logprobs=3
    )
    choice = response.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    tokens = choice.logprobs.content
    assert response.usage is not None and len(tokens) == response.usage.completion_tokens == 6
    assert "".join(t.token for t in tokens) == choice.message.content
    for token in tokens:
        assert token.logprob <= 0.0 and len(token.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert token.top_logprobs[0].token == token.token
        assert math.isclose(token.top_logprobs[0].logprob, token.logprob, abs_tol=1e-5)
        assert token.bytes == list(token.token.encode())
    plain = two.chat.completions.create(model="tiny", messages=ask(), max_tokens=6, temperature=0)
    assert plain.choices[0].logprobs is None
    assert plain.choices[0].message.content == choice.message.content
    just = two.chat.completions.create(
        model="tiny", messages=ask(), max_tokens=3, temperature=0, logprobs=True
    )
    assert just.choices[0].logprobs is not None and just.choices[0].logprobs.content is not None
    assert [t.top_logprobs for t in just.choices[0].logprobs.content] == [[], [], []]


def test_streamed_chat_logprobs_match_the_whole_reply(two: OpenAI) -> None:
    request: dict[str, Any] = {"model": "tiny", "messages": ask(), "max_tokens": 8,
                               "temperature": 0, "logprobs": True, "top_logprobs": 2}
    whole = two.chat.completions.create(**request)
    assert whole.choices[0].logprobs is not None and whole.choices[0].logprobs.content is not None
    streamed = [
        token
        for chunk in two.chat.completions.create(**request, stream=True)
        if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content
        for token in chunk.choices[0].logprobs.content
    ]
    assert [(t.token, round(t.logprob, 4)) for t in streamed] == [
        (t.token, round(t.logprob, 4)) for t in whole.choices[0].logprobs.content
    ]


def test_completion_logprobs(two: OpenAI) -> None:
    response = two.completions.create(
        model="tiny", prompt="Once upon", max_tokens=5, temperature=0, logprobs=2
    )
    choice = response.choices[0]
    assert choice.logprobs is not None
    assert choice.logprobs.tokens is not None and len(choice.logprobs.tokens) == 5
    assert "".join(choice.logprobs.tokens) == choice.text
    assert choice.logprobs.token_logprobs is not None
    assert all(lp <= 0.0 for lp in choice.logprobs.token_logprobs)
    assert choice.logprobs.top_logprobs is not None
    assert all(len(top) == 2 for top in choice.logprobs.top_logprobs)
    assert choice.logprobs.text_offset == [
        sum(len(t) for t in choice.logprobs.tokens[:n]) for n in range(5)
    ]
    streamed = [
        token
        for chunk in two.completions.create(
            model="tiny", prompt="Once upon", max_tokens=5, temperature=0, logprobs=2, stream=True
        )
        if chunk.choices[0].logprobs and chunk.choices[0].logprobs.tokens
        for token in chunk.choices[0].logprobs.tokens
    ]
    assert streamed == choice.logprobs.tokens


# --- seeds ----------------------------------------------------------------------------------


def test_a_seeded_request_is_reproducible_whatever_ran_before(two: OpenAI) -> None:
    def seeded() -> str:
        response = two.chat.completions.create(
            model="tiny", messages=ask("Stream it"), max_tokens=16, seed=11, temperature=1.0
        )
        return response.choices[0].message.content or ""

    first = seeded()
    two.chat.completions.create(model="tiny", messages=ask("Something else"), max_tokens=9, seed=2)
    assert seeded() == first
    two.completions.create(model="tiny", prompt="Once upon a time", max_tokens=30)
    assert seeded() == first
    assert seeded() == first


def test_a_seeded_request_does_not_depend_on_the_cache(two: OpenAI) -> None:
    """The prompt continues an earlier reply, which the KV cache holds as generated (one
    token at a time): a seeded request must not reuse those cells, or its logits (and on
    larger models its text) differ from the same request evaluated afresh."""
    opening = "Once upon a time in a land far away, there lived"

    def continued() -> str:
        response = two.completions.create(model="tiny", prompt=opening, max_tokens=60, seed=5)
        return response.choices[0].text

    def seeded(prompt: str) -> tuple[str, list[float]]:
        response = two.completions.create(
            model="tiny", prompt=prompt, max_tokens=20, seed=7, temperature=1.0, logprobs=0
        )
        choice = response.choices[0]
        assert choice.logprobs is not None and choice.logprobs.token_logprobs is not None
        return choice.text, choice.logprobs.token_logprobs

    story = opening + continued()
    two.completions.create(model="tiny", prompt="Something else", max_tokens=2)
    fresh = seeded(story)
    continued()
    assert seeded(story) == fresh


# --- model names ----------------------------------------------------------------------------


def test_an_unknown_model_is_not_found(two: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        two.chat.completions.create(model="gpt-9", messages=ask(), max_tokens=2)
    assert isinstance(caught.value.body, dict)
    assert (caught.value.body["param"], caught.value.body["code"]) == ("model", "model_not_found")
    with pytest.raises(openai.NotFoundError):
        two.completions.create(model="gpt-9", prompt="x", max_tokens=2)
    with pytest.raises(openai.NotFoundError):
        two.responses.create(model="gpt-9", input="Hi", max_output_tokens=2)
    with pytest.raises(openai.NotFoundError):
        two.models.retrieve("gpt-9")


def test_with_one_model_any_name_is_served(one: OpenAI) -> None:
    assert [m.id for m in one.models.list().data] == ["tiny"]
    response = one.chat.completions.create(model="gpt-4o-mini", messages=ask(), max_tokens=2)
    assert response.model == "tiny" and response.choices[0].message.content
    completion = one.completions.create(model="gpt-3.5-turbo-instruct", prompt="x", max_tokens=2)
    assert completion.model == "tiny"


# --- what cannot be honoured is refused -----------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2, "stream": True}, "n"),
        ({"best_of": 3}, "best_of"),
        ({"suffix": "the end"}, "suffix"),
    ],
)
def test_what_completions_cannot_honour_is_refused(
    two: OpenAI, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        two.completions.create(model="tiny", prompt="x", max_tokens=2, **fields)
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == param
    assert param in caught.value.body["message"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2, "stream": True}, "n"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ],
)
def test_what_chat_cannot_honour_is_refused(two: OpenAI, fields: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        two.chat.completions.create(model="tiny", messages=ask(), max_tokens=2, **fields)
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == param
    assert param in caught.value.body["message"]


def test_an_image_part_without_vision_is_refused(two: OpenAI) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    with pytest.raises(openai.BadRequestError, match="no vision") as caught:
        two.chat.completions.create(
            model="tiny", max_tokens=2,
            messages=[{"role": "user", "content": [{"type": "text", "text": "What is it?"}, image]}],
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == "messages[0].content[1]"


def test_a_seeded_request_repeats_its_text_on_the_starter_model(starter_model_path: Path) -> None:
    """On a real (quantised) model the cache's cells change not only the logits but the
    text: the same seeded request after the story it continues must still repeat."""
    starter = LoadedModel.load(
        starter_model_path, LoadConfig.model_validate({"context_length": 2048, "threads": 1})
    )
    registry = ModelRegistry([ServedModel("gemma", starter)])
    try:
        with ServerThread(ServerHandle(registry, port=0)) as handle, _client(handle) as client:
            opening = "Once upon a time in a land far away, there lived"

            def complete(prompt: str, seed: int, tokens: int) -> str:
                response = client.completions.create(
                    model="gemma", prompt=prompt, max_tokens=tokens, seed=seed, temperature=1.0
                )
                return response.choices[0].text

            story = opening + complete(opening, 5, 60)
            starter.reset_cache()
            fresh = complete(story, 7, 20)
            complete(opening, 5, 60)
            assert complete(story, 7, 20) == fresh
    finally:
        starter.unload()


def test_a_reproducible_prediction_still_reuses_whole_batches(tiny_model_path: Path) -> None:
    """What `reproducible` costs is bounded: whole batches computed as a fresh evaluation
    computes them are still reused; only the rest (under a batch, and the last reply) is
    evaluated again."""
    small = LoadedModel.load(tiny_model_path, LoadConfig.model_validate(
        {"context_length": 2048, "threads": 1, "batch_size": 16}))
    try:
        def run(prompt: str) -> tuple[str, int, int]:
            stream = small.complete_sync(prompt, {"maxTokens": 10, "seed": 3, "reproducible": True})
            for _ in stream:
                pass
            assert stream.result is not None, stream.error
            stats = stream.result.stats
            return stream.result.content, stats.prompt_tokens_count, stats.prompt_tokens_evaluated

        opening = "Once upon a time in a land far away, there lived " * 6
        reply, n_opening, evaluated = run(opening)
        assert evaluated == n_opening
        follow_up = opening + reply + " And then"
        again, n_follow_up, evaluated = run(follow_up)
        assert evaluated <= n_follow_up - (n_opening // 16) * 16
        assert evaluated < n_follow_up - 32
        small.reset_cache()
        assert run(follow_up) == (again, n_follow_up, n_follow_up)
    finally:
        small.unload()
