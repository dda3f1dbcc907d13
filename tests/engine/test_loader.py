"""The one loader (engine.models.loader): a reference and its load settings, resolved the
same way for every surface. The app, `llamaterm chat` and `serve` have their own tests
in tests/tui/test_load_surfaces.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import engine as lms
from engine.load_config import LoadConfig
from engine.models.loader import layered_load_config, resolve_load
from engine.models.remembered import ModelSettingsStore
from engine.settings import ModelOverride, Settings


@pytest.fixture
def data(isolated_dirs: Path, tiny_model_path: Path) -> Path:
    """The data directory, with the tiny model in its models/ as `tiny-chat-q8_0`."""
    data = isolated_dirs / "data" / "llamaterm"
    (data / "models").mkdir(parents=True)
    shutil.copyfile(tiny_model_path, data / "models" / "tiny-chat-q8_0.gguf")
    return data


def settings_with(**tables: object) -> Settings:
    return Settings.model_validate(tables)


def test_layers_stack_config_then_model_table_then_remembered_then_call(data: Path) -> None:
    settings = settings_with(
        load={"context_length": 2048, "threads": 2, "batch_size": 64},
        models={"tiny-chat-q8_0": {"load": {"context_length": 1024, "threads": 3}}},
    )
    ModelSettingsStore(data).remember("tiny-chat-q8_0", {"context_length": 512, "seed": 7})
    plan = resolve_load("tiny-chat", settings, overrides={"seed": 9})
    assert plan.path == data / "models" / "tiny-chat-q8_0.gguf"
    assert plan.key == "tiny-chat-q8_0"
    config = plan.load_config
    assert (config.batch_size, config.threads) == (64, 3)
    assert (config.context_length, config.seed) == (512, 9)
    assert plan.source_of("batch_size") == "[load]"
    assert plan.source_of("threads") == '[models."tiny-chat-q8_0"]'
    assert plan.source_of("context_length") == "remembered"
    assert plan.source_of("seed") == "call"
    assert plan.source_of("use_mmap") == "defaults"


def test_a_whole_load_config_replaces_every_layer(data: Path) -> None:
    ModelSettingsStore(data).remember("tiny-chat-q8_0", {"context_length": 512})
    plan = resolve_load("tiny-chat", Settings(), overrides=LoadConfig(context_length=256))
    assert plan.load_config == LoadConfig(context_length=256)
    assert set(plan.sources.values()) == {"call"}


def test_remembered_values_that_no_longer_validate_are_ignored_and_reported(data: Path) -> None:
    # Written by hand (or an older version): a context shorter than the schema allows.
    (data / "model_settings.json").write_text(
        json.dumps({"schema_version": 1, "models": {"tiny-chat-q8_0": {"context_length": 4}}})
    )
    plan = resolve_load("tiny-chat", Settings())
    assert plan.load_config.context_length == LoadConfig().context_length
    assert any("tiny-chat-q8_0" in problem for problem in plan.problems)


def test_settings_load_config_for_is_the_config_layers_of_the_loader() -> None:
    settings = settings_with(
        load={"context_length": 2048},
        models={"tiny.gguf": {"load": {"gpu_layers": 4}, "chat_template_file": "/t.jinja"}},
    )
    by_file = settings.load_config_for("tiny", "tiny.gguf")
    assert by_file == layered_load_config(settings, "tiny", "tiny.gguf")[0]
    assert (by_file.context_length, by_file.gpu_layers) == (2048, 4)
    assert by_file.chat_template_file == Path("/t.jinja")
    assert settings.model_override_for("tiny", "tiny.gguf") == (
        "tiny.gguf",
        ModelOverride.model_validate({"load": {"gpu_layers": 4}, "chat_template_file": "/t.jinja"}),
    )


def test_a_linked_model_keeps_the_name_of_the_link(data: Path, tiny_model_path: Path) -> None:
    (data / "models" / "linked-model.gguf").symlink_to(tiny_model_path)
    plan = resolve_load("linked-model", Settings())
    assert plan.key == "linked-model" and plan.path.name == "linked-model.gguf"


def test_an_unknown_reference_names_what_exists(data: Path) -> None:
    with pytest.raises(lms.ModelNotFoundError, match="tiny-chat-q8_0"):
        resolve_load("no-such-model", Settings())


def test_engine_llm_loads_with_the_remembered_settings(data: Path) -> None:
    """Before the one loader, engine.llm() read the config only: ctx 2048 here."""
    settings = settings_with(load={"context_length": 2048})
    ModelSettingsStore(data).remember("tiny-chat-q8_0", {"context_length": 1024})
    handle = lms.llm("tiny-chat", settings=settings)
    try:
        assert handle.get_context_length() == 1024
        assert handle.identifier == "tiny-chat-q8_0"
    finally:
        handle.unload()


def test_engine_llm_call_overrides_win_over_remembered(data: Path) -> None:
    ModelSettingsStore(data).remember("tiny-chat-q8_0", {"context_length": 1024})
    handle = lms.llm("tiny-chat", config={"contextLength": 512}, settings=Settings())
    try:
        assert handle.get_context_length() == 512
    finally:
        handle.unload()
