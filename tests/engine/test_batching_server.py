"""The server over a model with several slots: concurrent clients, `n > 1`, the queue bound."""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gguf_factory import EOS_ID
from serve_testing import ServerThread

from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.logbus import LOG_BUS
from engine.prediction import LogRecord
from engine.serve.models import ModelRegistry, ServedModel
from engine.serve.run import ServerHandle
from engine.serve.settings import ServerSettings

MESSAGES = [{"role": "user", "content": "tell me about the quick brown fox"}]
ENDLESS = {"logit_bias": {str(EOS_ID): -100}}


@contextlib.contextmanager
def records() -> Iterator[list[LogRecord]]:
    """The log records published (on any thread) while the block runs."""
    seen: list[LogRecord] = []
    unsubscribe = LOG_BUS.subscribe(seen.append)
    try:
        yield seen
    finally:
        unsubscribe()


def serving(model: LoadedModel, **settings: Any) -> ServerThread:
    registry = ModelRegistry([ServedModel("tiny", model)])
    return ServerThread(ServerHandle(registry, port=0, settings=ServerSettings(**settings)))


@pytest.fixture(scope="module")
def model(tiny_model_path: Path) -> Iterator[LoadedModel]:
    loaded = LoadedModel.load(tiny_model_path, LoadConfig(threads=1, parallel=3))
    yield loaded
    loaded.unload()


def test_n_choices_come_from_one_prompt_evaluation(model: LoadedModel) -> None:
    model.reset_cache()
    with serving(model) as handle, openai.OpenAI(base_url=handle.url, api_key="x") as client:
        with records() as seen:
            response = client.chat.completions.create(
                model="tiny", messages=MESSAGES, max_tokens=12, n=3, temperature=1.5, seed=7,
                extra_body=ENDLESS,
            )
        assert [c.index for c in response.choices] == [0, 1, 2]
        assert all(c.finish_reason == "length" for c in response.choices)
        assert len({c.message.content for c in response.choices}) > 1
        assert response.usage is not None
        assert response.usage.completion_tokens == 36
        prompt = response.usage.prompt_tokens
        assert response.usage.total_tokens == prompt + 36
        # One choice evaluated the prompt; the two others followed it.
        evaluated = [r.data["evaluate"] for r in seen if r.kind == "cache" and "evaluate" in r.data]
        assert evaluated == [prompt]
        followers = [r for r in seen if r.kind == "slot" and "follows" in r.message]
        assert len(followers) == 2
        # The same request, the same choices (each choice its own seed, kept).
        again = client.chat.completions.create(
            model="tiny", messages=MESSAGES, max_tokens=12, n=3, temperature=1.5, seed=7,
            extra_body=ENDLESS,
        )
        assert [c.message.content for c in again.choices] == [
            c.message.content for c in response.choices
        ]
        completion = client.completions.create(model="tiny", prompt="the fox", max_tokens=5, n=2)
        assert [c.index for c in completion.choices] == [0, 1]
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="tiny", messages=MESSAGES, n=2, stream=True)


def test_concurrent_clients_are_served_at_once(model: LoadedModel) -> None:
    with serving(model) as handle:
        def ask(i: int) -> dict[str, Any]:
            with openai.OpenAI(base_url=handle.url, api_key="x") as client:
                reply = client.chat.completions.create(
                    model="tiny", max_tokens=300, temperature=0, extra_body=ENDLESS,
                    messages=[{"role": "user", "content": f"question number {i}"}],
                )
                return {"text": reply.choices[0].message.content,
                        "tokens": reply.usage.completion_tokens if reply.usage else 0}

        model.reset_cache()
        with records() as seen, concurrent.futures.ThreadPoolExecutor(3) as pool:
            together = list(pool.map(ask, range(3)))
        active = [r.data["active"] for r in seen if r.kind == "slot"]
        assert max(active) >= 2
        alone = []
        for i in range(3):
            model.reset_cache()  # (each from a cold cache, as each was beside the others)
            alone.append(ask(i))
        assert together == alone
        assert all(r["tokens"] == 300 for r in alone)


def test_the_queue_bound_counts_running_and_waiting_predictions(tiny_model_path: Path) -> None:
    # Room in the shared context for three long predictions at once.
    config = LoadConfig(threads=1, parallel=3, context_length=3 * 6000)
    long = LoadedModel.load(tiny_model_path, config)
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 5000, "stream": True,
            **ENDLESS}
    pool = concurrent.futures.ThreadPoolExecutor(1)
    with serving(long, queue_limit=4) as handle, records() as seen:
        with contextlib.ExitStack() as open_streams:
            # Three run, one per slot (each answers once its prompt is built)...
            for _ in range(3):
                response = open_streams.enter_context(
                    httpx.stream("POST", f"{handle.url}/chat/completions", json=body, timeout=30)
                )
                assert response.status_code == 200
            # ...one waits for a slot (no answer yet): the fifth is refused.
            waiting = pool.submit(lambda: httpx.post(
                f"{handle.url}/chat/completions", timeout=60,
                json={**body, "stream": False, "max_tokens": 5}))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if len([r for r in seen if r.kind == "prompt"]) == 4:
                    break
                time.sleep(0.02)
            busy = httpx.post(f"{handle.url}/chat/completions", timeout=30,
                              json={"model": "tiny", "messages": MESSAGES, "max_tokens": 2})
            assert busy.status_code == 503
            assert busy.json()["error"]["code"] == "server_busy"
            assert not waiting.done()
        # Its turn came once the others left.
        assert waiting.result(timeout=60).status_code == 200
    pool.shutdown()
    long.unload()
