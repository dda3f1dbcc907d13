"""End to end on the real starter model (Gemma 3 270M, Q4_K_M), assembled from PyPI."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.models.catalog import default_sources, scan_catalog, starter_entry
from engine.models.loader import resolve_model
from engine.models.starter import STARTER_FILE
from engine.prediction import ContentDelta

pytestmark = pytest.mark.starter


@pytest.fixture(scope="module")
def gemma(starter_model_path: Path):  # type: ignore[no-untyped-def]
    model = LoadedModel.load(starter_model_path, LoadConfig(context_length=1024))
    yield model
    model.unload()


def test_starter_model_metadata(gemma: LoadedModel) -> None:
    assert gemma.info is not None
    assert gemma.info.architecture == "gemma3"
    assert gemma.info.trained_context_length == 32768
    assert gemma.info.context_length == 1024


def test_starter_model_completes_real_text(gemma: LoadedModel) -> None:
    stream = gemma.complete_sync(
        "The capital of France is", {"maxTokens": 8, "temperature": 0, "seed": 0}
    )
    deltas = [e.text for e in stream if isinstance(e, ContentDelta)]
    result = stream.result
    assert result is not None
    assert "Paris" in result.content or "France" in result.content
    assert "".join(deltas) == result.content
    assert result.stats.predicted_tokens_count == 8
    assert result.stats.stop_reason == "maxPredictedTokensReached"
    assert result.stats.tokens_per_second and result.stats.tokens_per_second > 1


def test_starter_follow_up_reuses_the_cache(gemma: LoadedModel) -> None:
    first = "Here is a list of fruits: apple, banana, cherry,"
    stream = gemma.complete_sync(first, {"maxTokens": 4, "temperature": 0})
    list(stream)
    assert stream.result is not None
    follow_up = first + stream.result.content + " and more fruits such as"
    again = gemma.complete_sync(follow_up, {"maxTokens": 4, "temperature": 0})
    list(again)
    assert again.result is not None
    stats = again.result.stats
    assert stats.prompt_tokens_evaluated <= stats.prompt_tokens_count - len(gemma.tokenize(first)) + 2


def test_starter_ten_turn_chat_evaluates_little_per_turn(gemma: LoadedModel) -> None:
    from engine.chat import Chat
    from engine.formatting.conversation import respond_sync

    chat = Chat("You are a helpful assistant.")
    wrapper = len(
        gemma.tokenize(
            "<end_of_turn>\n<start_of_turn>user\n<end_of_turn>\n<start_of_turn>model\n",
            add_special=False,
        )
    )
    evaluated: list[int] = []
    for turn in range(10):
        message = f"Tell me one short fact about the number {turn}."
        chat.add_user_message(message)
        stream = respond_sync(gemma, chat, {"maxTokens": 12, "temperature": 0, "seed": 0})
        list(stream)
        assert stream.result is not None, stream.error
        chat.add_assistant_response(stream.result.content)
        evaluated.append(stream.result.stats.prompt_tokens_evaluated)
        last_message = message
    new_tokens = len(gemma.tokenize(last_message, add_special=False)) + wrapper
    assert evaluated[-1] < 2 * new_tokens, evaluated
    assert stream.result.stats.prompt_tokens_count > 5 * evaluated[-1]


def test_a_fresh_install_lists_the_starter_before_it_is_assembled(tmp_path: Path) -> None:
    """`llamaterm models list` said "no local models" though the starter loads (issue 12)."""
    models = tmp_path / "models"
    sources = default_sources(models, include_hf_cache=False, starter=True)
    scan = scan_catalog([s for s in sources if s.kind in ("models_dir", "starter")])
    [entry] = scan.entries
    assert (entry.source, entry.source_label, entry.location) == (
        "starter", "starter", "assembled on first load"
    )
    assert entry.key == "gemma-3-270m-q4_k_m" and entry.ok
    assert (entry.architecture, entry.quantization) == ("gemma3", "Q4_K_M")
    assert entry.shape is not None and entry.size_bytes > 200_000_000
    assert entry.path == models / STARTER_FILE and not entry.path.exists()
    assert not models.exists()  # listing assembles nothing


def test_once_assembled_the_starter_is_listed_once_as_a_file(
    tmp_path: Path, starter_model_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    installed = models / STARTER_FILE
    installed.symlink_to(starter_model_path)
    assert starter_entry(models) is None
    sources = [s for s in default_sources(models, starter=True) if s.kind != "hf_cache"]
    entries = [e for e in scan_catalog(sources).entries if e.key == "gemma-3-270m-q4_k_m"]
    assert [(e.source, e.path) for e in entries] == [("models_dir", installed)]


def test_loading_the_listed_starter_path_assembles_it(tmp_path: Path) -> None:
    models = tmp_path / "models"
    entry = starter_entry(models)
    assert entry is not None
    assert resolve_model(str(entry.path), [], models) == models / STARTER_FILE
    assert (models / STARTER_FILE).is_file()
