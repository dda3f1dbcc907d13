"""Chat templates: every real template in tests/data/chat-templates renders a conversation,
embedded in a GGUF it reads back unchanged, and fallbacks are chosen by architecture."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.chat import Chat
from engine.formatting.limits import RenderLimits, TemplateLimitError
from engine.formatting.reasoning import markers_for_template, prompt_opens_reasoning
from engine.formatting.templates import (
    CHATML_TEMPLATE,
    GEMMA_TEMPLATE,
    LLAMA3_TEMPLATE,
    ChatTemplate,
    TemplateError,
    render,
    select_template,
    template_opens_reasoning,
    template_supports_tools,
)

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "data" / "chat-templates"
TEMPLATE_FILES = sorted(TEMPLATES_DIR.glob("*.jinja"))

SYSTEM, USER_1, ASSISTANT_1, USER_2 = "SYS-PROMPT", "USER-ONE", "ASSIST-ONE", "USER-TWO"
BOS, EOS = "<BOS>", "<EOS>"

CHATML = ("<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_end|>")
LLAMA3 = (
    "<|start_header_id|>system<|end_header_id|>",
    "<|start_header_id|>user<|end_header_id|>",
    "<|start_header_id|>assistant<|end_header_id|>",
    "<|eot_id|>",
)
MISTRAL = ("[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[INST]", "[/INST]", f"{ASSISTANT_1}{EOS}")
DEEPSEEK = ("<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>")
COHERE = (
    "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>",
    "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>",
    "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
)
KIMI = (
    "<|im_system|>system<|im_middle|>",
    "<|im_user|>user<|im_middle|>",
    "<|im_assistant|>assistant<|im_middle|>",
)
CHATML_PROMPT = "<|im_start|>assistant\n"
LLAMA3_PROMPT = "<|start_header_id|>assistant<|end_header_id|>\n\n"


@dataclass(frozen=True)
class Family:
    markers: tuple[str, ...]
    """Role markers the rendered prompt must contain."""
    generation_prompt: str
    """How the prompt ends: the family's assistant generation prefix."""
    opens_reasoning: bool = False
    """The generation prompt already opens a reasoning block (README: "forced open")."""
    system_in_last_user_turn: bool = False


FAMILIES: dict[str, Family] = {
    "ByteDance-Seed-OSS.jinja": Family(
        ("<seed:bos>system\n", "<seed:bos>user\n", "<seed:bos>assistant\n", "<seed:eos>"),
        "<seed:bos>assistant\n",
    ),
    "CohereForAI-c4ai-command-r-plus-tool_use.jinja": Family(
        COHERE, "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"
    ),
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja": Family(
        COHERE, "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"
    ),
    "GLM-4.6.jinja": Family(
        ("[gMASK]<sop>", "<|system|>", "<|user|>", "<|assistant|>"), "<|assistant|>"
    ),
    "GLM-4.7-Flash.jinja": Family(
        ("[gMASK]<sop>", "<|system|>", "<|user|>", "<|assistant|>"),
        "<|assistant|><think>",
        opens_reasoning=True,
    ),
    "HuggingFaceTB-SmolLM3-3B.jinja": Family(CHATML, CHATML_PROMPT),
    "Kimi-K2-Thinking.jinja": Family(KIMI, "<|im_assistant|>assistant<|im_middle|>"),
    "LFM2-8B-A1B.jinja": Family(CHATML, CHATML_PROMPT),
    "LFM2.5-8B-A1B.jinja": Family(CHATML, CHATML_PROMPT),
    "MiniMax-M2.jinja": Family(
        ("]~b]system\n", "]~b]user\n", "]~b]ai\n", "[e~["),
        "]~b]ai\n<think>\n",
        opens_reasoning=True,
    ),
    "Mistral-Small-3.2-24B-Instruct-2506.jinja": Family(MISTRAL, "[/INST]"),
    "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16.jinja": Family(
        CHATML, CHATML_PROMPT + "<think>\n", opens_reasoning=True
    ),
    "NVIDIA-Nemotron-Nano-v2.jinja": Family(
        ("<SPECIAL_10>System\n", "<SPECIAL_11>User\n", "<SPECIAL_11>Assistant\n"),
        "<SPECIAL_11>Assistant\n<think>\n",
        opens_reasoning=True,
    ),
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja": Family(CHATML, CHATML_PROMPT),
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja": Family(CHATML, CHATML_PROMPT),
    "Qwen-QwQ-32B.jinja": Family(CHATML, CHATML_PROMPT + "<think>\n", opens_reasoning=True),
    "Qwen-Qwen2.5-7B-Instruct.jinja": Family(CHATML, CHATML_PROMPT),
    "Qwen-Qwen3-0.6B.jinja": Family(CHATML, CHATML_PROMPT),
    "Qwen3-Coder.jinja": Family(CHATML, CHATML_PROMPT),
    "Qwen3.5-4B.jinja": Family(CHATML, CHATML_PROMPT + "<think>\n", opens_reasoning=True),
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja": Family(
        DEEPSEEK, "<｜Assistant｜><think>\n", opens_reasoning=True
    ),
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja": Family(
        DEEPSEEK, "<｜Assistant｜><think>\n", opens_reasoning=True
    ),
    # `thinking` is this template's own switch and defaults to off.
    "deepseek-ai-DeepSeek-V3.1.jinja": Family(DEEPSEEK, "<｜Assistant｜></think>"),
    "fireworks-ai-llama-3-firefunction-v2.jinja": Family(LLAMA3, LLAMA3_PROMPT),
    "google-gemma-2-2b-it.jinja": Family(
        ("<start_of_turn>user\n", "<start_of_turn>model\n", "<end_of_turn>\n"),
        "<start_of_turn>model\n",
    ),
    "google-gemma-4-31B-it.jinja": Family(
        ("<|turn>system\n", "<|think|>", "<|turn>user\n", "<|turn>model\n", "<turn|>"),
        "<|turn>model\n",
    ),
    "ibm-granite-granite-3.3-2B-Instruct.jinja": Family(
        (
            "<|start_of_role|>system<|end_of_role|>",
            "<|start_of_role|>user<|end_of_role|>",
            "<|start_of_role|>assistant<|end_of_role|>",
            "<|end_of_text|>",
        ),
        "<|start_of_role|>assistant<|end_of_role|>",
    ),
    "llama-cpp-deepseek-r1.jinja": Family(
        DEEPSEEK, "<｜Assistant｜><think>\n", opens_reasoning=True
    ),
    "meetkai-functionary-medium-v3.1.jinja": Family(LLAMA3, LLAMA3_PROMPT),
    "meetkai-functionary-medium-v3.2.jinja": Family(LLAMA3, LLAMA3_PROMPT + ">>>"),
    "meta-llama-Llama-3.1-8B-Instruct.jinja": Family(LLAMA3, LLAMA3_PROMPT),
    "meta-llama-Llama-3.2-3B-Instruct.jinja": Family(LLAMA3, LLAMA3_PROMPT),
    "meta-llama-Llama-3.3-70B-Instruct.jinja": Family(LLAMA3, LLAMA3_PROMPT),
    "microsoft-Phi-3.5-mini-instruct.jinja": Family(
        ("<|system|>\n", "<|user|>\n", "<|assistant|>\n", "<|end|>\n"), "<|assistant|>\n"
    ),
    "mistralai-Ministral-3-14B-Reasoning-2512.jinja": Family(MISTRAL, "[/INST]"),
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": Family(
        ("[INST]", "[/INST]", f"{ASSISTANT_1}{EOS}", f"[INST]{SYSTEM}\n\n{USER_2}[/INST]"),
        "[/INST]",
        system_in_last_user_turn=True,
    ),
    "moonshotai-Kimi-K2.jinja": Family(KIMI, "<|im_assistant|>assistant<|im_middle|>"),
    "openai-gpt-oss-120b.jinja": Family(
        (
            "<|start|>system<|message|>",
            "<|start|>developer<|message|>",
            "<|start|>user<|message|>",
            "<|start|>assistant<|channel|>final<|message|>",
            "<|end|>",
        ),
        "<|start|>assistant",
    ),
    "unsloth-mistral-Devstral-Small-2507.jinja": Family(MISTRAL, "[/INST]"),
}

REFUSES_SYSTEM = {"google-gemma-2-2b-it.jinja": "System role not supported"}


def conversation(system: bool = True) -> list[dict[str, object]]:
    chat = Chat(SYSTEM) if system else Chat()
    chat.add_user_message(USER_1)
    chat.add_assistant_response(ASSISTANT_1)
    chat.add_user_message(USER_2)
    return chat.to_template_messages()


def template_of(path: Path) -> ChatTemplate:
    return ChatTemplate(path.read_text(encoding="utf-8"), "file", "test", path.name)


def render_file(path: Path, **kwargs: Any) -> str:
    system = path.name not in REFUSES_SYSTEM
    return render(template_of(path), conversation(system), bos_token=BOS, eos_token=EOS, **kwargs)


def by_name(name: str) -> Path:
    return TEMPLATES_DIR / name


def test_the_shared_templates_are_there() -> None:
    assert TEMPLATES_DIR.is_dir(), f"expected the shared chat templates at {TEMPLATES_DIR}"
    assert len(TEMPLATE_FILES) >= 39


def test_every_template_has_expectations() -> None:
    assert {p.name for p in TEMPLATE_FILES} == set(FAMILIES)


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.name)
def test_template_renders_the_conversation(path: Path) -> None:
    family = FAMILIES[path.name]
    prompt = render_file(path)

    texts = [USER_1, ASSISTANT_1, USER_2]
    if path.name not in REFUSES_SYSTEM:
        texts = [SYSTEM, *texts] if not family.system_in_last_user_turn else texts
        assert prompt.count(SYSTEM) == 1
    positions = [prompt.find(text) for text in texts]
    assert -1 not in positions, f"missing message text in {prompt!r}"
    assert positions == sorted(positions), "messages out of order"
    for marker in family.markers:
        assert marker in prompt, f"{marker!r} not in {prompt!r}"
    assert prompt.endswith(family.generation_prompt), repr(prompt[-80:])
    assert "None" not in prompt


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.name)
def test_forced_open_reasoning_is_detected_from_the_prompt(path: Path) -> None:
    family = FAMILIES[path.name]
    prompt = render_file(path)
    markers = markers_for_template(path.read_text(encoding="utf-8"))
    assert prompt_opens_reasoning(prompt, markers) is family.opens_reasoning
    assert template_opens_reasoning(prompt) is family.opens_reasoning
    if family.opens_reasoning:
        assert markers is not None


@pytest.mark.parametrize("name", sorted(REFUSES_SYSTEM))
def test_a_template_that_refuses_a_system_message_says_why(name: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template_of(by_name(name)), conversation(system=True))
    message = str(caught.value)
    assert message.startswith("chat template refused the conversation: ")
    assert REFUSES_SYSTEM[name] in message


def test_a_template_that_raises_names_the_rule() -> None:
    # gemma-2 insists on alternating roles.
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(TemplateError, match="Conversation roles must alternate user/assistant"):
        render(template_of(by_name("google-gemma-2-2b-it.jinja")), messages)


def test_qwen3_without_thinking_closes_an_empty_think_block() -> None:
    prompt = render_file(by_name("Qwen-Qwen3-0.6B.jinja"), enable_thinking=False)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not template_opens_reasoning(prompt)


def test_extra_template_variables_pass_through() -> None:
    prompt = render_file(by_name("deepseek-ai-DeepSeek-V3.1.jinja"), thinking=True)
    assert prompt.endswith("<｜Assistant｜><think>")


def test_gemma4_without_thinking_gets_an_empty_thought_channel() -> None:
    prompt = render_file(by_name("google-gemma-4-31B-it.jinja"), enable_thinking=False)
    assert prompt.endswith("<|turn>model\n<|channel>thought\n<channel|>")
    assert "<|think|>" not in prompt


def test_generation_prompt_can_be_left_out() -> None:
    prompt = render(
        template_of(by_name("Qwen-Qwen2.5-7B-Instruct.jinja")),
        conversation(),
        add_generation_prompt=False,
    )
    assert prompt.endswith(f"{USER_2}<|im_end|>\n")


def test_render_does_not_touch_the_callers_messages() -> None:
    messages = conversation()
    before = repr(messages)
    render_file(by_name("Kimi-K2-Thinking.jinja"))
    render(template_of(by_name("Kimi-K2-Thinking.jinja")), messages)
    assert repr(messages) == before


# --- tools ------------------------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            # Command R+ needs a description for every parameter.
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}


def tool_conversation(call_id: str = "call_1", system: bool = True) -> list[dict[str, object]]:
    chat = Chat(SYSTEM) if system else Chat()
    chat.add_user_message(USER_1)
    chat.add_assistant_response(
        "", tool_calls=[{"id": call_id, "name": "get_weather", "arguments": {"city": "Zürich"}}]
    )
    chat.add_tool_result(call_id, "TOOL-RESULT", name="get_weather")
    chat.add_assistant_response(ASSISTANT_1)
    chat.add_user_message(USER_2)
    return chat.to_template_messages()


# Templates that refuse this conversation (with free-form call ids), and the rule they name.
TOOL_HISTORY_REFUSALS = {
    "google-gemma-2-2b-it.jinja": "Conversation roles must alternate",
    "Mistral-Small-3.2-24B-Instruct-2506.jinja": "Tool call IDs should be alphanumeric",
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": "Tool call IDs should be alphanumeric",
}
NO_TOOL_ROLE = {"google-gemma-2-2b-it.jinja"}
# Templates that render no past tool calls at all.
TOOL_CALLS_NOT_SHOWN = {
    "HuggingFaceTB-SmolLM3-3B.jinja",
    "LFM2-8B-A1B.jinja",
    "ibm-granite-granite-3.3-2B-Instruct.jinja",
    "microsoft-Phi-3.5-mini-instruct.jinja",
}


@pytest.mark.parametrize(
    "path", [p for p in TEMPLATE_FILES if p.name not in NO_TOOL_ROLE], ids=lambda p: p.name
)
def test_template_renders_a_tool_call_history(path: Path) -> None:
    # Alphanumeric ids of 9 characters satisfy the Mistral templates too.
    messages = tool_conversation("abcDEF123", system=path.name not in REFUSES_SYSTEM)
    template = template_of(path)
    prompt = render(template, messages, tools=[WEATHER_TOOL], bos_token=BOS, eos_token=EOS)
    assert USER_2 in prompt and ASSISTANT_1 in prompt
    if path.name not in TOOL_CALLS_NOT_SHOWN:
        assert "Zürich" in prompt, "the call's arguments are missing"
    assert "None" not in prompt


@pytest.mark.parametrize("name", sorted(TOOL_HISTORY_REFUSALS))
def test_tool_history_refusals_name_the_rule(name: str) -> None:
    with pytest.raises(TemplateError, match=TOOL_HISTORY_REFUSALS[name]):
        messages = tool_conversation(system=name not in REFUSES_SYSTEM)
        render(template_of(by_name(name)), messages, tools=[WEATHER_TOOL])


@pytest.mark.parametrize(
    "name",
    ["deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "meetkai-functionary-medium-v3.1.jinja"],
)
def test_templates_that_want_string_arguments_get_them(name: str) -> None:
    prompt = render(template_of(by_name(name)), tool_conversation(), tools=[WEATHER_TOOL])
    assert '{"city": "Zürich"}' in prompt


def test_tool_support_is_detected() -> None:
    assert template_supports_tools(template_of(by_name("Qwen-Qwen2.5-7B-Instruct.jinja")))
    assert template_supports_tools(by_name("meta-llama-Llama-3.1-8B-Instruct.jinja").read_text())
    assert not template_supports_tools(template_of(by_name("google-gemma-2-2b-it.jinja")))
    assert not template_supports_tools(
        template_of(by_name("microsoft-Phi-3.5-mini-instruct.jinja"))
    )
    assert not template_supports_tools(CHATML_TEMPLATE)


def test_tojson_matches_transformers() -> None:
    template = ChatTemplate(
        "{{ messages[0]['content'] | tojson }}|{{ {'a': [1, 2]} | tojson(indent=2) }}"
        "|{{ {'a': 1, 'b': 2} | tojson(separators=(',', ':')) }}",
        "file",
        "test",
        "tojson",
    )
    out = render(template, [{"role": "user", "content": "<é & ü>"}])
    assert out == '"<é & ü>"|{\n  "a": [\n    1,\n    2\n  ]\n}|{"a":1,"b":2}'


# --- errors ---------------------------------------------------------------------


def test_syntax_error_is_a_template_error() -> None:
    broken = ChatTemplate("{% for m in messages %}{{ m.content }", "file", "test", "broken")
    with pytest.raises(TemplateError, match="syntax error on line 1"):
        render(broken, conversation())


def test_undefined_is_a_template_error() -> None:
    template = ChatTemplate("{{ nothing.here }}", "file", "test", "undefined")
    with pytest.raises(TemplateError, match="'nothing' is undefined"):
        render(template, conversation())


def test_sandbox_refusal_is_a_template_error() -> None:
    template = ChatTemplate("{{ messages.__class__.__mro__ }}", "file", "test", "escape")
    with pytest.raises(TemplateError):
        render(template, conversation())


def test_a_template_cannot_change_the_callers_dicts() -> None:
    template = ChatTemplate("{{ messages[0].update({'x': 1}) }}", "file", "test", "mutating")
    with pytest.raises(TemplateError, match="sandbox"):
        render(template, conversation())


def test_strftime_now_and_loop_controls() -> None:
    template = ChatTemplate(
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.role }}"
        "{% endfor %}|{{ strftime_now('%Y') | length }}",
        "file",
        "test",
        "misc",
    )
    assert render(template, conversation()) == "system|4"


# --- selection and fallbacks -------------------------------------------------------


def test_the_gguf_template_is_used_when_present() -> None:
    chosen = select_template(gguf_template="{{ 'x' }}", architecture="qwen3", model_name="Qwen3")
    assert chosen.origin == "gguf"
    assert chosen.source == "{{ 'x' }}"
    assert "chat template" in chosen.reason


def test_the_override_file_wins(tmp_path: Path) -> None:
    path = tmp_path / "mine.jinja"
    path.write_text("{{ 'mine' }}", encoding="utf-8")
    chosen = select_template(gguf_template="{{ 'x' }}", architecture="llama", override_file=path)
    assert (chosen.origin, chosen.source, chosen.name) == ("file", "{{ 'mine' }}", "mine.jinja")
    assert str(path) in chosen.reason


def test_a_missing_or_broken_override_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="cannot read chat template file"):
        select_template(gguf_template=None, architecture="llama", override_file=tmp_path / "no")
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% if %}", encoding="utf-8")
    with pytest.raises(TemplateError, match="does not parse"):
        select_template(gguf_template=None, architecture="llama", override_file=broken)


@pytest.mark.parametrize("architecture", ["gemma", "gemma2", "gemma3"])
def test_gemma_fallback(architecture: str) -> None:
    chosen = select_template(gguf_template=None, architecture=architecture)
    assert (chosen.origin, chosen.source) == ("fallback", GEMMA_TEMPLATE)
    assert "no chat template" in chosen.reason and "Gemma" in chosen.reason
    prompt = render(chosen, conversation(), bos_token="<bos>")
    assert prompt == (
        f"<bos><start_of_turn>user\n{SYSTEM}\n\n{USER_1}<end_of_turn>\n"
        f"<start_of_turn>model\n{ASSISTANT_1}<end_of_turn>\n"
        f"<start_of_turn>user\n{USER_2}<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


@pytest.mark.parametrize(
    ("model_name", "hint"),
    [("Meta-Llama-3.1-8B-Instruct", ""), ("my-llama3-finetune", ""), ("", "<|eot_id|>")],
)
def test_llama3_fallback(model_name: str, hint: str) -> None:
    chosen = select_template(
        gguf_template=None, architecture="llama", model_name=model_name, hint=hint
    )
    assert (chosen.origin, chosen.source) == ("fallback", LLAMA3_TEMPLATE)
    prompt = render(chosen, conversation(), bos_token="<|begin_of_text|>")
    assert prompt.startswith(
        f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{SYSTEM}<|eot_id|>"
    )
    assert prompt.endswith(f"{USER_2}<|eot_id|>{LLAMA3_PROMPT}")


@pytest.mark.parametrize(
    ("architecture", "model_name"), [("llama", "TinyLlama"), ("qwen2", ""), ("", "")]
)
def test_chatml_fallback(architecture: str, model_name: str) -> None:
    chosen = select_template(gguf_template="  ", architecture=architecture, model_name=model_name)
    assert (chosen.origin, chosen.source) == ("fallback", CHATML_TEMPLATE)
    assert "ChatML" in chosen.reason
    prompt = render(chosen, conversation())
    assert prompt == (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{USER_1}<|im_end|>\n"
        f"<|im_start|>assistant\n{ASSISTANT_1}<|im_end|>\n<|im_start|>user\n{USER_2}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_a_gguf_template_that_does_not_parse_falls_back() -> None:
    chosen = select_template(gguf_template="{% for %}", architecture="gemma3")
    assert chosen.origin == "fallback" and chosen.source == GEMMA_TEMPLATE
    assert "does not parse" in chosen.reason


def test_fallbacks_accept_tool_turns() -> None:
    for source in (CHATML_TEMPLATE, GEMMA_TEMPLATE, LLAMA3_TEMPLATE):
        prompt = render(ChatTemplate(source, "fallback", "", "f"), tool_conversation())
        assert "TOOL-RESULT" in prompt and "None" not in prompt


# --- templates embedded in a GGUF ----------------------------------------------------


def read_template_with_gguf(path: Path) -> str:
    from gguf import GGUFReader

    field = GGUFReader(path).fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def read_template_with_llama_cpp(path: Path) -> str:
    llama_cpp = pytest.importorskip("llama_cpp")
    llama = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    try:
        return str(llama.metadata["tokenizer.chat_template"])
    finally:
        llama.close()


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.name)
def test_template_read_back_from_gguf_renders_the_same(
    path: Path, make_tiny_model: Callable[..., Path]
) -> None:
    source = path.read_text(encoding="utf-8")
    model = make_tiny_model(chat_template=source)
    embedded = read_template_with_gguf(model)
    assert embedded == source
    chosen = select_template(gguf_template=embedded, architecture="llama", model_name=path.stem)
    assert chosen.origin == "gguf"
    system = path.name not in REFUSES_SYSTEM
    # strftime-based templates (gpt-oss) only differ across midnight.
    assert render(chosen, conversation(system), bos_token=BOS) == render(
        template_of(path), conversation(system), bos_token=BOS
    )


@pytest.mark.parametrize(
    "name",
    ["Qwen-Qwen3-0.6B.jinja", "google-gemma-4-31B-it.jinja", "openai-gpt-oss-120b.jinja"],
)
def test_llama_cpp_reads_the_embedded_template_unchanged(
    name: str, make_tiny_model: Callable[..., Path]
) -> None:
    source = by_name(name).read_text(encoding="utf-8")
    model = make_tiny_model(chat_template=source)
    assert read_template_with_llama_cpp(model) == source



# --- limits: a template from a downloaded model may be hostile ----------------------------

NESTED_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def render_in_thread(template: ChatTemplate, **kwargs: Any) -> BaseException | str:
    """Render on a thread of its own, so that a render with no limit fails the test
    instead of hanging it."""
    outcome: list[BaseException | str] = []

    def target() -> None:
        try:
            outcome.append(render(template, [{"role": "user", "content": "hi"}], **kwargs))
        except BaseException as err:  # noqa: BLE001 - handed to the test
            outcome.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(20)
    assert outcome, "the render did not stop"
    return outcome[0]


def hostile(source: str) -> ChatTemplate:
    return ChatTemplate(source=source, origin="gguf", reason="test", name="evil-model (from GGUF)")


@pytest.mark.parametrize(
    ("source", "limits", "what"),
    [
        (NESTED_LOOPS, RenderLimits(max_steps=50_000), "50,000 loop steps"),
        (NESTED_LOOPS, RenderLimits(max_seconds=0.3), "0.3 s"),
        ("{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}", RenderLimits(), "characters"),
        ("{{ 'x' * 20000000 }}", RenderLimits(), "repetition"),
        ("{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
         "{% endfor %}{{ ns.s }}", RenderLimits(), "a value of"),
        ("{% set ns = namespace(s=['a']) %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}"
         "{% endfor %}", RenderLimits(), "a value of"),
        ("{{ 'x'.ljust(10000000000) }}", RenderLimits(), "a call asking"),
    ],
)
def test_a_render_past_its_limits_stops_with_a_clear_error(
    source: str, limits: RenderLimits, what: str
) -> None:
    outcome = render_in_thread(hostile(source), limits=limits)
    assert isinstance(outcome, TemplateLimitError), outcome
    assert isinstance(outcome, TemplateError)
    assert "evil-model (from GGUF)" in str(outcome) and what in str(outcome)


def test_the_output_limit_follows_the_context_length() -> None:
    assert RenderLimits.for_context(4096).max_output_chars == 32 * 4096
    assert RenderLimits.for_context(16).max_output_chars == 1 << 16
    source = "{% for i in range(500) %}{{ 'z' * 200 }}{% endfor %}"
    assert isinstance(render_in_thread(hostile(source), limits=RenderLimits.for_context(4096)), str)
    outcome = render_in_thread(hostile(source), limits=RenderLimits.for_context(1024))
    assert isinstance(outcome, TemplateLimitError)


def test_tool_detection_of_a_looping_template_gives_up_within_the_limit() -> None:
    started = time.perf_counter()
    assert template_supports_tools(NESTED_LOOPS + "{{ tools }}") is False
    assert time.perf_counter() - started < RenderLimits().max_seconds + 5
