"""The model handle (tokenize, templates, info, load config, ttl), streams and prediction
keys of `import engine as lms`, on the tiny model."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import engine as lms


@pytest.fixture(scope="module")
def model(tiny_model_path: Path) -> Iterator[lms.LLM]:
    handle = lms.llm(str(tiny_model_path), config={"contextLength": 2048})
    yield handle
    handle.unload()


# --- the model handle ----------------------------------------------------------------


def test_tokenize_a_string_or_a_list_and_count_tokens(model: lms.LLM) -> None:
    one = model.tokenize("hello world")
    many = model.tokenize(["hello world", "hi"])
    assert isinstance(one[0], int) and many[0] == one and len(many) == 2
    assert model.count_tokens("hello world") == len(one)


def test_apply_prompt_template_is_the_prompt_a_reply_evaluates(model: lms.LLM) -> None:
    chat = lms.Chat("Be brief.")
    chat.add_user_message("Hello")
    text = model.apply_prompt_template(chat)
    result = model.respond(chat, config={"maxTokens": 2, "seed": 1})
    bos = model.loaded_model.bos_text
    assert text == bos + result.prompt  # the BOS token tokenising adds, spelt out
    assert model.apply_prompt_template(chat, {"omitBosToken": True}) == result.prompt
    with pytest.raises(ValueError, match="unknown option"):
        model.apply_prompt_template(chat, {"bogus": 1})


def test_get_info_has_the_sdks_llm_instance_fields(model: lms.LLM, tiny_model_path: Path) -> None:
    info = model.get_info()
    assert info.type == "llm" and info.format == "gguf"
    assert info.model_key == info.identifier == info.instance_reference == model.identifier
    assert info.display_name == "tiny-test-model" and info.path == str(tiny_model_path)
    assert info.size_bytes == tiny_model_path.stat().st_size
    assert info.architecture == "llama" and info.vision is False
    assert info.trained_for_tool_use is False  # the tiny model's ChatML renders no tools
    assert info.context_length == 2048 == model.get_context_length()
    assert info.max_context_length == info.trained_context_length > 0


def test_lm_studios_load_keys_are_honoured(make_tiny_model: Callable[..., Path]) -> None:
    path = make_tiny_model()
    handle = lms.llm(str(path), config={
        "contextLength": 1024, "evalBatchSize": 64, "gpu": {"ratio": "off"},
        "keepModelInMemory": False, "tryMmap": False, "seed": 5,
        "llamaKCacheQuantizationType": "f16", "llamaVCacheQuantizationType": "f16",
    })
    try:
        config = handle.get_load_config()
        assert (config.context_length, config.batch_size, config.gpu_layers) == (1024, 64, 0)
        assert (config.use_mmap, config.use_mlock, config.seed) == (False, False, 5)
        assert handle.get_context_length() == 1024
    finally:
        handle.unload()


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"ropeFrequencyBase": 10000.0}, "ropeFrequencyBase: not supported"),
        ({"numExperts": 2}, "numExperts: not supported"),
        ({"gpu": {"ratio": 0.5, "mainGpu": 1}}, "gpu.mainGpu: not supported"),
        ({"llamaKCacheQuantizationType": "q8_0", "llamaVCacheQuantizationType": "f16"},
         "one type for the K and V caches"),
        ({"contextLength": "big"}, "contextLength: Input should be a valid integer"),
        ({"noSuchKey": 1}, "unknown load setting 'noSuchKey'"),
    ],
)
def test_load_keys_it_cannot_honour_are_a_clear_error(
    tiny_model_path: Path, config: dict[str, object], named: str
) -> None:
    with pytest.raises(lms.LoadConfigError, match=named):
        lms.llm(str(tiny_model_path), config=config)


def test_a_partial_gpu_ratio_becomes_layers(make_tiny_model: Callable[..., Path]) -> None:
    from engine.load_config import parse_load_overrides

    assert parse_load_overrides({"gpu": {"ratio": 0.5}}, lambda: 10) == {"gpu_layers": 5}
    path = make_tiny_model()
    handle = lms.llm(str(path), config={"gpu": {"ratio": 0.5}})
    try:
        assert isinstance(handle.get_load_config().gpu_layers, int)
    finally:
        handle.unload()


def test_ttl_unloads_an_idle_model_and_the_handle_loads_it_again(
    make_tiny_model: Callable[..., Path],
) -> None:
    path = make_tiny_model()
    handle = lms.llm(str(path), ttl=0.3)
    first = handle.loaded_model
    handle.complete("a", config={"maxTokens": 2})
    deadline = time.monotonic() + 10
    while first.is_loaded and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not first.is_loaded
    assert all(m.loaded_model is not first for m in lms.list_loaded_models())
    result = handle.complete("a", config={"maxTokens": 2})
    assert result.stats.predicted_tokens_count >= 0 and handle.loaded_model is not first
    handle.unload()
    with pytest.raises(lms.ModelLoadError, match="unloaded"):
        handle.complete("a")


# --- streams -------------------------------------------------------------------------


def test_a_stream_as_a_context_manager_cancels_on_early_exit(model: lms.LLM) -> None:
    with model.complete_stream("Once upon a time", config={"maxTokens": 500}) as stream:
        for _ in stream:
            break
    result = stream.result()
    assert result.stats.stop_reason == "userStopped"
    assert result.stats.predicted_tokens_count < 500


def test_fragments_and_result_carry_the_sdks_fields(model: lms.LLM) -> None:
    stream = model.respond_stream("hi", config={"maxTokens": 5, "temperature": 0.3})
    fragments = list(stream)
    assert fragments and all(f.contains_drafted is False for f in fragments)
    result = stream.result()
    assert result.prediction_config is not None
    assert (result.prediction_config.max_tokens, result.prediction_config.temperature) == (5, 0.3)
    assert result.load_config.context_length == 2048
    assert result.stats.num_gpu_layers == 0.0  # the CPU build offloads nothing
    assert result.stats.accepted_draft_tokens_count is None
    assert result.model_info.identifier == model.identifier
    assert result.model_info.size_bytes == model.get_info().size_bytes > 0


# --- prediction keys -----------------------------------------------------------------


def test_max_tokens_false_means_no_limit(model: lms.LLM) -> None:
    result = model.complete("x", config={"maxTokens": False, "grammar": 'root ::= "abc"'})
    assert result.prediction_config.max_tokens == -1 and result.content == "abc"


def test_frequency_and_presence_penalties_change_sampling(model: lms.LLM) -> None:
    base = {"maxTokens": 40, "temperature": 0, "repeatPenalty": 1.0}
    plain = model.complete("the the the", config=base).content
    penalised = model.complete("the the the", config={**base, "frequencyPenalty": 2.0}).content
    present = model.complete("the the the", config={**base, "presencePenalty": 2.0}).content
    assert penalised != plain and present != plain


def test_cpu_threads_for_one_prediction(model: lms.LLM) -> None:
    import llama_cpp

    ctx = model.loaded_model.run(lambda llama: llama._ctx.ctx).result()
    before = llama_cpp.llama_n_threads(ctx)
    wanted = 2 if before == 1 else 1  # a count other than the model's own
    seen: list[int] = []
    # Read while the prediction runs (it is long, and stopped once read).
    with model.complete_stream("a", config={"maxTokens": 1500, "cpuThreads": wanted}) as stream:
        for _ in stream:
            seen.append(llama_cpp.llama_n_threads(ctx))
            break
    assert seen == [wanted]
    assert llama_cpp.llama_n_threads(ctx) == before
    with pytest.raises(lms.PredictionConfigError, match="cpuThreads"):
        model.complete("a", config={"cpuThreads": 0})


def test_prompt_template_overrides_the_template_for_one_prediction(model: lms.LLM) -> None:
    template = {
        "type": "jinja",
        "jinjaPromptTemplate": {
            "template": "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<bot>"
        },
        "stopStrings": ["</bot>"],
    }
    result = model.respond("hello", config={"promptTemplate": template, "maxTokens": 2})
    assert result.prompt == "<user>hello<bot>"
    assert "</bot>" in result.prediction_config.stop_strings
    assert model.respond("hello", config={"maxTokens": 2}).prompt.startswith("<|im_start|>")
    with pytest.raises(lms.PredictionConfigError, match="manual prompt template"):
        model.respond("x", config={"promptTemplate": {"type": "manual"}})


def test_raw_tools_are_offered_and_parsed_but_not_run(model: lms.LLM) -> None:
    tool = {"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}}
    call = '[TOOL_REQUEST]{"name": "ping", "arguments": {}}[END_TOOL_REQUEST]'
    config = {"rawTools": {"type": "toolArray", "tools": [tool]},
              "grammar": f"root ::= {json.dumps(call)}", "toolCallStopStrings": ["STOP"]}
    result = model.respond("ping", config=config)
    assert [c.name for c in result.tool_calls] == ["ping"]
    assert "STOP" in result.prediction_config.stop_strings  # tools were offered
    assert "AVAILABLE TOOLS" in result.prompt
    plain = model.respond("ping", config={"grammar": f"root ::= {json.dumps(call)}"})
    assert plain.tool_calls == ()
    # With a structured reply too: the grammar comes from the schema, the tools are offered.
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    both = model.respond("ping", response_format=schema, config={
        "rawTools": {"type": "toolArray", "tools": [tool]}, "maxTokens": 60, "seed": 1})
    assert "AVAILABLE TOOLS" in both.prompt and isinstance(both.parsed, dict)


def test_draft_model_is_refused_by_name(model: lms.LLM) -> None:
    with pytest.raises(lms.PredictionConfigError, match="draftModel: speculative decoding"):
        model.respond("x", config={"draftModel": "qwen2.5-0.5b-instruct"})
    with pytest.raises(lms.PredictionConfigError, match="speculativeDecodingNumDraftTokensExact"):
        model.respond("x", config={"speculativeDecodingNumDraftTokensExact": 3})


def test_a_preset_is_refused(model: lms.LLM) -> None:
    with pytest.raises(lms.PredictionConfigError, match="preset"):
        model.respond("x", preset="my preset")
