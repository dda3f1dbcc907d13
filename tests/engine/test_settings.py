"""The config file: where it is, what it may say, and how mistakes are reported."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import platformdirs
import pytest
from config_example import EXAMPLE, missing_fields, uncomment_settings, write_config

from engine import paths
from engine.load_config import LoadConfig
from engine.prediction import PredictionConfig
from engine.settings import (
    ConfigError,
    LoadOverride,
    ModelOverride,
    Settings,
    engine_prediction_defaults,
    load_settings,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LLAMATERM_CONFIG", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return str(caught.value)


# --- paths ------------------------------------------------------------------


def test_config_path_prefers_llamaterm_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LLAMATERM_CONFIG", str(tmp_path / "mine.toml"))
    assert paths.config_path() == tmp_path / "mine.toml"


def test_config_path_under_xdg_config_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert paths.config_path() == tmp_path / "llamaterm" / "config.toml"
    assert not (tmp_path / "llamaterm").exists()


def test_config_path_falls_back_to_platformdirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "")
    monkeypatch.setattr(platformdirs, "user_config_dir", lambda app, appauthor: f"/platform/{app}")
    assert paths.config_path() == Path("/platform/llamaterm/config.toml")


def test_data_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda app, appauthor: f"/platform/{app}")
    assert paths.data_dir() == Path("/platform/llamaterm")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert paths.data_dir() == tmp_path / "llamaterm"
    assert paths.data_dir(tmp_path / "elsewhere") == tmp_path / "elsewhere"
    assert paths.models_dir(tmp_path) == tmp_path / "models"
    assert paths.chats_dir(tmp_path) == tmp_path / "chats"
    assert paths.logs_dir(tmp_path) == tmp_path / "logs"
    assert list(tmp_path.iterdir()) == []


def test_settings_data_dir_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings().data_dir() == tmp_path / "xdg" / "llamaterm"
    config = write_config(tmp_path, f'[paths]\ndata_dir = "{tmp_path / "data"}"\n')
    assert load_settings(config).data_dir() == tmp_path / "data"


def test_paths_expand_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = write_config(tmp_path, '[paths]\nmodel_dirs = ["~/models"]\n')
    assert load_settings(config).paths.model_dirs == [tmp_path / "models"]


# --- reading ----------------------------------------------------------------


def test_missing_file_gives_defaults_and_creates_nothing(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "nowhere" / "config.toml")
    assert settings == Settings()
    assert settings.load.context_length == 4096
    assert settings.chat.context_overflow_policy == "truncateMiddle"
    assert list(tmp_path.iterdir()) == []


def test_default_path_comes_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    xdg_config = tmp_path / "xdg" / "llamaterm" / "config.toml"
    xdg_config.parent.mkdir(parents=True)
    xdg_config.write_text('[model]\ndefault = "from-xdg"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert load_settings().model.default == "from-xdg"

    mine = write_config(tmp_path, '[model]\ndefault = "from-env"\n')
    monkeypatch.setenv("LLAMATERM_CONFIG", str(mine))
    assert load_settings().model.default == "from-env"


@pytest.mark.parametrize(
    ("key", "value", "field", "expected"),
    [
        ("context_length", "8192", "context_length", 8192),
        ("contextLength", "8192", "context_length", 8192),
        ("gpu_layers", '"max"', "gpu_layers", "max"),
        ("gpuLayers", "12", "gpu_layers", 12),
        ("kvCacheType", '"q8_0"', "kv_cache_type", "q8_0"),
        ("use_mlock", "true", "use_mlock", True),
    ],
)
def test_load_accepts_snake_and_camel_case(
    tmp_path: Path, key: str, value: str, field: str, expected: Any
) -> None:
    settings = load_settings(write_config(tmp_path, f"[load]\n{key} = {value}\n"))
    assert getattr(settings.load, field) == expected


@pytest.mark.parametrize(
    ("key", "value", "field", "expected"),
    [
        ("max_tokens", "100", "max_tokens", 100),
        ("maxTokens", "100", "max_tokens", 100),
        ("top_k", "7", "top_k", 7),
        ("topKSampling", "7", "top_k", 7),
        ("stopStrings", '["$"]', "stop_strings", ("$",)),
        ("repeat_penalty", "1.3", "repeat_penalty", 1.3),
    ],
)
def test_prediction_accepts_snake_and_camel_case(
    tmp_path: Path, key: str, value: str, field: str, expected: Any
) -> None:
    settings = load_settings(write_config(tmp_path, f"[prediction]\n{key} = {value}\n"))
    assert getattr(settings.prediction, field) == expected
    assert getattr(settings.prediction_defaults(), field) == expected


def test_prediction_defaults_are_ours_under_the_file(tmp_path: Path) -> None:
    assert Settings().prediction_defaults() == PredictionConfig.model_validate(
        {"temperature": 0.8, "maxTokens": -1, "top_k": 40, "topPSampling": 0.95}
        | {"min_p": 0.05, "repeat_penalty": 1.1}
        # [chat] supplies the chat-only defaults.
        | {"enable_thinking": True, "context_overflow_policy": "truncateMiddle"}
    )
    assert Settings().prediction_defaults().seed is None
    settings = load_settings(write_config(tmp_path, "[prediction]\ntemperature = 0.2\nseed = 3\n"))
    merged = settings.prediction_defaults()
    assert (merged.temperature, merged.seed, merged.top_k) == (0.2, 3, 40)
    # The file's own section keeps only what the file said.
    assert settings.prediction.top_k is None


def test_unknown_key_names_file_and_key_and_leaves_file_alone(tmp_path: Path) -> None:
    text = "[load]\ncontxt_length = 8192\n"
    path = write_config(tmp_path, text)
    before = path.read_bytes()
    message = config_error(path)
    assert message == (
        f"{path}: load.contxt_length: unknown setting (did you mean 'context_length'?)"
    )
    assert path.read_bytes() == before


def test_unknown_section_is_reported(tmp_path: Path) -> None:
    message = config_error(write_config(tmp_path, "[lod]\ncontext_length = 1\n"))
    assert message.startswith(f"{tmp_path / 'config.toml'}: lod: unknown setting")
    assert "'load'" in message


def test_wrong_type_names_file_and_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[load]\ncontext_length = "lots"\n')
    before = path.read_bytes()
    message = config_error(path)
    assert message.startswith(f"{path}: load.context_length: Input should be a valid integer")
    assert path.read_bytes() == before


def test_out_of_range_value_matches_documented_format(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[load]\ncontext_length = 8\n")
    assert config_error(path) == (
        f"{path}: load.context_length: Input should be greater than or equal to 16"
    )


def test_bad_literal_in_chat_section(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[chat]\ncontext_overflow_policy = "never"\n')
    message = config_error(path)
    assert message.startswith(f"{path}: chat.context_overflow_policy: ")
    assert "'truncateMiddle'" in message


def test_union_failure_is_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[load]\ngpu_layers = "all"\n')
    message = config_error(path)
    assert "\n" not in message
    assert message.startswith(f"{path}: load.gpu_layers: ")
    assert "'max'" in message


def test_union_failure_with_a_table_value_is_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[load]\ngpu_layers = { all = true }\n")
    message = config_error(path)
    assert "\n" not in message
    assert message.startswith(f"{path}: load.gpu_layers: ")


def test_list_items_are_named_by_index(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[paths]\nmodel_dirs = ["/models", 3]\n')
    assert config_error(path).startswith(f"{path}: paths.model_dirs.1: ")


def test_section_of_the_wrong_type(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'tools = "ctrl+n"\nload = 3\n')
    assert [line.split(": ")[1] for line in config_error(path).splitlines()] == [
        "load",
        "tools",
    ]


def test_every_problem_on_its_own_line(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, '[load]\ncontext_length = 8\nbatch_size = 0\n[chat]\nenable_thinking = "maybe"\n'
    )
    lines = config_error(path).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "load.context_length",
        "load.batch_size",
        "chat.enable_thinking",
    ]
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_toml_syntax_error_names_file_and_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[ui]\ntheme = "x"\n\n[load]\ncontext_length = = 5\n')
    before = path.read_bytes()
    message = config_error(path)
    assert message.startswith(f"{path}: load.context_length: invalid TOML: ")
    assert "line 5" in message
    assert path.read_bytes() == before


def test_toml_error_without_a_key_still_names_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[load]\n[load]\n")
    message = config_error(path)
    assert message.startswith(f"{path}: line 2: invalid TOML: ")


def test_duplicate_key_names_file_and_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[load]\nthreads = 1\nthreads = 2\n")
    assert config_error(path).startswith(f"{path}: load.threads: invalid TOML: ")


def test_toml_error_at_end_of_document_names_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[paths]\nmodel_dirs = [\n")
    assert config_error(path).startswith(f"{path}: invalid TOML: ")


def test_unreadable_and_undecodable_files(tmp_path: Path) -> None:
    directory = tmp_path / "config.toml"
    directory.mkdir()
    assert config_error(directory).startswith(f"{directory}: cannot read")

    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'theme = "\xff"\n')
    assert config_error(binary).startswith(f"{binary}: not UTF-8")
    assert binary.read_bytes() == b'theme = "\xff"\n'


# --- per-model overrides ----------------------------------------------------


OVERRIDES = """
[load]
context_length = 2048
threads = 4

[models."tiny.gguf".load]
context_length = 512

[models.tiny]
chat_template_file = "/templates/tiny.jinja"
load = { gpuLayers = "max" }
"""


def test_load_config_for_applies_only_set_fields(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, OVERRIDES))
    by_key = settings.load_config_for("tiny", "tiny.gguf")
    assert (by_key.gpu_layers, by_key.context_length, by_key.threads) == ("max", 2048, 4)
    assert by_key.chat_template_file == Path("/templates/tiny.jinja")

    by_file = settings.load_config_for("other", "tiny.gguf")
    assert (by_file.context_length, by_file.gpu_layers, by_file.threads) == (512, 0, 4)
    assert by_file.chat_template_file is None

    assert settings.load_config_for("other", "other.gguf") == settings.load
    assert settings.model_override("tiny") is not None
    assert settings.model_override("nothing") is None


def test_override_values_are_validated(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[models."tiny.gguf".load]\ncontextLength = 8\n')
    assert config_error(path) == (
        f'{path}: models."tiny.gguf".load.contextLength: '
        "Input should be greater than or equal to 16"
    )
    typo = write_config(tmp_path, '[models."tiny.gguf".load]\nbatchsize = 8\n')
    assert "did you mean 'batch_size'" in config_error(typo)


def test_load_override_mirrors_load_config() -> None:
    # LoadOverride is written out by hand; this keeps it in step with LoadConfig.
    expected = set(LoadConfig.model_fields) - {"chat_template_file"}
    assert set(LoadOverride.model_fields) == expected
    for name in expected:
        ours, theirs = LoadOverride.model_fields[name], LoadConfig.model_fields[name]
        assert ours.alias == theirs.alias, name
        assert ours.metadata == theirs.metadata, name
        assert theirs.annotation is not None
        assert ours.annotation == theirs.annotation | None, name
        assert ours.default is None, name


# --- config.example.toml ----------------------------------------------------

def test_example_config_loads() -> None:
    settings = load_settings(EXAMPLE)
    assert isinstance(settings, Settings)


def test_example_config_shows_the_defaults() -> None:
    settings = load_settings(EXAMPLE)
    defaults = Settings()
    assert settings.model_dump(exclude={"prediction"}) == defaults.model_dump(
        exclude={"prediction"}
    )
    assert settings.prediction_defaults() == defaults.prediction_defaults()
    assert settings.prediction_defaults().model_copy(
        update={"enable_thinking": None, "context_overflow_policy": None}
    ) == engine_prediction_defaults()


def test_example_config_commented_settings_are_valid(tmp_path: Path) -> None:
    text = uncomment_settings(EXAMPLE.read_text(encoding="utf-8"))
    settings = load_settings(write_config(tmp_path, text))
    assert settings.models and settings.paths.data_dir is not None


def test_example_config_covers_every_field() -> None:
    data = tomllib.loads(uncomment_settings(EXAMPLE.read_text(encoding="utf-8")))
    assert missing_fields(Settings, data) == []


def test_coverage_walk_would_notice_a_missing_field() -> None:
    # Guards the guard: a walker that never descends would pass everything.
    assert missing_fields(Settings, {"load": {}})[:1] == ["paths"]
    assert "load.seed" in missing_fields(Settings, {"load": {}})
    assert "models.load.swa_full" in missing_fields(Settings, {"models": {"m": {"load": {}}}})
    assert "models.<an example entry>" in missing_fields(Settings, {"models": {}})


def test_example_config_documents_every_setting() -> None:
    lines = uncomment_settings(EXAMPLE.read_text(encoding="utf-8")).splitlines()
    undocumented = [
        line
        for previous, line in zip(["", *lines[:-1]], lines, strict=True)
        if re.match(r'^(?:[A-Za-z_]\w*|"[^"]+") = ', line)
        and not previous.startswith("#")
        and not re.search(r"\s#\s", line)
    ]
    assert undocumented == []


def test_model_override_defaults() -> None:
    override = ModelOverride()
    assert override.chat_template_file is None
    assert override.load.model_dump(exclude_none=True) == {}
