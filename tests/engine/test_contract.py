"""Every model is a `ChatModel`: local and remote ones offer the same members, called alike."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.contract import ChatModel
from engine.errors import ModelLoadError
from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.prediction import ContentDelta
from engine.remote import RemoteModel


@pytest.fixture(scope="module")
def local(tiny_model_path: Path) -> Iterator[LoadedModel]:
    model = LoadedModel.load(tiny_model_path, LoadConfig.model_validate({"context_length": 512, "threads": 1}))
    yield model
    model.unload()


def protocol_members() -> list[str]:
    return sorted(
        name for name in dir(ChatModel) if not name.startswith("_") and name != "mro"
    )


def test_the_protocol_names_what_consumers_use() -> None:
    assert protocol_members() == sorted(
        ["cancel", "complete_events", "info", "is_loaded", "is_remote", "key", "location",
         "placement", "respond_events", "tokenize", "unload"]
    )


def test_local_and_remote_models_satisfy_the_protocol(local: LoadedModel) -> None:
    remote = RemoteModel("http://127.0.0.1:9", "some-model")
    for model in (local, remote):
        assert isinstance(model, ChatModel)
    assert (local.is_remote, remote.is_remote) == (False, True)
    assert local.location == str(local.path) and remote.location == "http://127.0.0.1:9/v1"
    assert remote.placement == "remote" and local.placement == local.offload.describe()
    assert local.info.model_key == local.key and remote.info.model_key == remote.key


@pytest.mark.parametrize("cls", [LoadedModel, RemoteModel])
def test_methods_take_the_protocol_arguments(cls: type) -> None:
    """A call written against ChatModel works on each model: every parameter the protocol
    names is there, of the same kind and default; extra ones are optional keywords."""
    for name in protocol_members():
        wanted = getattr(ChatModel, name)
        if not inspect.isfunction(wanted):
            continue
        want = inspect.signature(wanted).parameters
        have = inspect.signature(getattr(cls, name)).parameters
        for param in want.values():
            assert param.name in have, f"{cls.__name__}.{name} lacks {param.name}"
            got = have[param.name]
            assert got.kind == param.kind, f"{cls.__name__}.{name}({param.name})"
            assert got.default == param.default, f"{cls.__name__}.{name}({param.name}=)"
        for extra in have.keys() - want.keys():
            assert have[extra].default is not inspect.Parameter.empty, (
                f"{cls.__name__}.{name} needs {extra}, which the protocol does not pass"
            )


def test_info_before_the_load_is_an_error(tiny_model_path: Path) -> None:
    model = LoadedModel(tiny_model_path, LoadConfig())
    try:
        with pytest.raises(ModelLoadError, match="not finished loading"):
            _ = model.info
    finally:
        model._thread.stop()


async def test_cancel_on_the_model_stops_its_running_prediction(local: LoadedModel) -> None:
    stream = local.complete_events("Once upon a time", {"maxTokens": 400, "seed": 1})
    async for event in stream:
        if isinstance(event, ContentDelta):
            local.cancel()
    assert stream.result is not None
    assert stream.result.stats.stop_reason == "userStopped"
    assert stream.result.stats.predicted_tokens_count < 400
    # The job is done just after its Finished event: then the model forgets it.
    assert await asyncio.to_thread(stream.control.done.wait, 10)
    assert local._active == {}


def both_as_chat_models(local: LoadedModel, remote: RemoteModel) -> tuple[ChatModel, ChatModel]:
    """Never called: mypy checks here that both classes satisfy the protocol statically."""
    return local, remote
