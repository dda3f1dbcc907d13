"""The real `lmstudio` SDK, unmodified, against llamaterm's server on the tiny model.

What a script does with a model: complete, respond (streamed, multi-turn, cancelled,
structured), act with Python functions, tokenize, read its info and template, on the
sync and the async client. LM Studio's documented snippets run as they are, with
`import lmstudio as lms` and the server's address configured. The server, its wire
and its models are tested in test_lmstudio_server.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmstudio as lms
import pytest
from gguf_factory import write_tiny_gguf
from lmstudio import LMStudioServerError
from lmstudio_sdk_server import (  # noqa: F401 - fixtures, used by name
    DEFAULTS,
    LOAD,
    Prompts,
    Served,
    UvicornThread,
    catalog_dir,
    client,
    host,
    model,
    prompts,
    sdk_app,
    served,
)

from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.serve.models import ModelRegistry, ServedModel
from engine.toolcalls.grammar import tool_call_grammar

SNIPPETS = Path(__file__).parent / "snippets"
TEMPLATES = Path(__file__).resolve().parents[1] / "data" / "chat-templates"


# --- text completion (seed 000) --------------------------------------------------


def test_complete_is_a_raw_completion(model: Any, prompts: Prompts) -> None:
    result = model.complete("My name is", config={"maxTokens": 8})
    assert isinstance(result.content, str)
    assert result.stats.predicted_tokens_count <= 8
    assert result.stats.stop_reason in ("maxPredictedTokensReached", "eosFound")
    assert result.model_info.display_name == "tiny-test-model"
    assert result.stats.time_to_first_token_sec is not None
    # No chat template around it: the model saw exactly the text.
    assert prompts.texts[-1] == "My name is"
    assert result.prediction_config.max_tokens == 8
    assert result.load_config.context_length == 2048


def test_terminal_simulation_stops_before_the_prompt_sign(model: Any) -> None:
    history = "$ ls -la"
    for _ in range(2):
        stream = model.complete_stream(history, config={"stopStrings": ["$"], "maxTokens": 40})
        text = "".join(fragment.content for fragment in stream)
        result = stream.result()
        assert "$" not in text and text == result.content
        stopped = ("stopStringFound", "maxPredictedTokensReached", "eosFound")
        assert result.stats.stop_reason in stopped
        history += "\n" + result.content + "\n$ pwd"


def test_prompt_processing_progress_goes_from_0_to_1(model: Any) -> None:
    seen: list[float] = []
    model.complete("My name is", on_prompt_processing_progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert seen == sorted(seen)


# --- chat (seeds 001, 002) ---------------------------------------------------------


def test_respond_and_respond_stream(model: Any, prompts: Prompts) -> None:
    chat = lms.Chat("You are a resident AI philosopher.")
    chat.add_user_message("What is the meaning of life?")
    result = model.respond(chat)
    assert result.stats.predicted_tokens_count <= DEFAULTS.max_tokens
    # The chat template rendered the history (ChatML, the tiny model's).
    assert "<|im_start|>system\nYou are a resident AI philosopher." in prompts.texts[-1]
    fragments = []
    stream = model.respond_stream(chat, config={"temperature": 0.6, "maxTokens": 10})
    for fragment in stream:
        assert fragment.reasoning_type == "none" and not fragment.contains_drafted
        fragments.append(fragment.content)
    assert "".join(fragments) == stream.result().content
    assert stream.result().stats.predicted_tokens_count <= 10


def test_multi_turn_with_on_message_append(model: Any, prompts: Prompts) -> None:
    chat = lms.Chat("You are a task focused AI assistant")
    replies = []
    for question in ("Hello", "How are you?"):
        chat.add_user_message(question)
        stream = model.respond_stream(chat, on_message=chat.append)
        replies.append("".join(f.content for f in stream))
    last = prompts.texts[-1]
    # The second request carried the first reply, appended by on_message.
    assert "Hello" in last and "How are you?" in last
    assert f"<|im_start|>assistant\n{replies[0]}" in last


def test_cancel_stops_the_prediction(model: Any) -> None:
    stream = model.respond_stream("Tell me a long story", config={"maxTokens": False})
    count = 0
    for _ in stream:
        count += 1
        if count == 1:
            stream.cancel()
    result = stream.result()
    assert result.stats.stop_reason == "userStopped"
    assert result.stats.predicted_tokens_count < 2000


def test_structured_output_with_a_pydantic_model(model: Any) -> None:
    class Book(lms.BaseModel):
        title: str
        year: int

    result = model.respond("A book, please", response_format=Book, config={"maxTokens": -1})
    assert isinstance(result.parsed, dict), result.content
    assert set(result.parsed) == {"title", "year"}
    assert isinstance(result.parsed["year"], int)


def test_structured_output_with_a_json_schema(model: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "maxLength": 12}, "ok": {"type": "boolean"}},
        "required": ["answer", "ok"],
    }
    result = model.complete("JSON:", response_format=schema, config={"maxTokens": -1})
    assert isinstance(result.parsed, dict), result.content
    assert isinstance(result.parsed["ok"], bool)
    assert json.loads(result.content) == result.parsed


def add(a: int, b: int) -> int:
    """Given two numbers a and b, returns the sum of them."""
    return a + b


def test_act_calls_a_python_function_and_sends_its_result(model: Any, prompts: Prompts) -> None:
    # The random-weight model never chooses a tool: a grammar makes it call `add`, in the
    # [TOOL_REQUEST] format the tiny model's template gets, with one-digit numbers (it would
    # write digits forever). The last round has no tools.
    digit = {"type": "integer", "enum": [1, 2, 3]}
    tools = [{"type": "function", "function": {"name": "add", "parameters": {
        "type": "object", "properties": {"a": digit, "b": digit}, "required": ["a", "b"]}}}]
    grammar = tool_call_grammar(tools, {"type": "function", "function": {"name": "add"}}, "default")
    messages: list[Any] = []
    calls: list[tuple[int, int]] = []

    def add_logged(a: int, b: int) -> int:
        """Given two numbers a and b, returns the sum of them."""
        calls.append((a, b))
        return a + b

    add_logged.__name__ = "add"
    config = {"structured": {"type": "gbnf", "gbnfGrammar": grammar}, "maxTokens": 200}
    rounds: list[Any] = []
    result = model.act("What is the sum of 1 and 2?", [add_logged], on_message=messages.append,
                       max_prediction_rounds=2, config=config,
                       on_prediction_completed=rounds.append)
    assert result.rounds == 2
    assert rounds[0].stats.stop_reason == "toolCalls"
    assert len(calls) == 1
    request, tool_result = messages[0], messages[1]
    assert request.role == "assistant" and tool_result.role == "tool"
    call = request.content[-1].tool_call_request
    assert call.name == "add" and call.id
    assert tool_result.content[0].tool_call_id == call.id
    # The second round's prompt holds the tool's answer.
    assert str(sum(calls[0])) in prompts.texts[-1]


# --- the model's own calls ------------------------------------------------------------


def test_tokenize_and_count_tokens(model: Any, served: Served) -> None:
    registry, _ = served
    engine_model = registry.get("tiny")
    assert engine_model is not None
    tokens = model.tokenize("Hello world")
    assert tokens == engine_model.model.tokenize("Hello world", add_special=False)
    assert model.count_tokens("Hello world") == len(tokens)
    assert model.tokenize(["a", "b"]) == [model.tokenize("a"), model.tokenize("b")]


def test_get_info_and_context_length(model: Any, tiny_model_path: Path) -> None:
    info = model.get_info()
    assert info.identifier == "tiny"
    assert info.model_key == "tiny-test-model"
    assert info.path == str(tiny_model_path)
    assert info.context_length == 2048
    assert model.get_context_length() == 2048
    assert model.get_load_config().context_length == 2048


def test_apply_prompt_template(model: Any) -> None:
    chat = lms.Chat("Be brief.")
    chat.add_user_message("Hi")
    text = model.apply_prompt_template(chat)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")


def test_a_failed_prediction_is_an_error_not_a_hang(model: Any) -> None:
    with pytest.raises(LMStudioServerError):
        model.respond("Hi", config={"structured": {"type": "gbnf", "gbnfGrammar": "root ::= ("}})
    # The connection is still good.
    assert model.complete("Hi", config={"maxTokens": 2}).content is not None


# --- reasoning ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedModel]:
    path = write_tiny_gguf(tmp_path_factory.mktemp("sdk-qwen3") / "tiny-qwen3.gguf",
                           chat_template=(TEMPLATES / "Qwen-Qwen3-0.6B.jinja").read_text())
    model = LoadedModel.load(path, LOAD)
    yield model
    model.unload()


def test_reasoning_arrives_framed_by_tag_fragments(qwen3: LoadedModel) -> None:
    registry = ModelRegistry([ServedModel("qwen3", qwen3, DEFAULTS)])
    # The random model never thinks by itself: a grammar makes it write a block, then answer.
    grammar = 'root ::= "<think>" [a-z]{1,6} "</think>" [a-z]{1,6}'
    with UvicornThread(sdk_app(registry, None)) as address, lms.Client(address) as sdk_client:
        config = {"structured": {"type": "gbnf", "gbnfGrammar": grammar}, "maxTokens": 40}
        stream = sdk_client.llm.model("qwen3").respond_stream("Think first", config=config)
        fragments = [(f.reasoning_type, f.content) for f in stream]
    kinds = [kind for kind, _ in fragments]
    assert kinds[0] == "reasoningStartTag" and fragments[0][1] == "<think>"
    end = kinds.index("reasoningEndTag")
    assert fragments[end][1] == "</think>"
    assert set(kinds[1:end]) == {"reasoning"}
    assert set(kinds[end + 1 :]) <= {"none"}


def test_reasoning_parsing_off_keeps_the_block_in_the_text(qwen3: LoadedModel) -> None:
    registry = ModelRegistry([ServedModel("qwen3", qwen3, DEFAULTS)])
    grammar = 'root ::= "<think>" [a-z]{1,6} "</think>" [a-z]{1,6}'
    with UvicornThread(sdk_app(registry, None)) as address, lms.Client(address) as sdk_client:
        config = {
            "structured": {"type": "gbnf", "gbnfGrammar": grammar}, "maxTokens": 40,
            "reasoningParsing": {"enabled": False, "startString": "<think>", "endString": "</think>"},
        }
        stream = sdk_client.llm.model("qwen3").respond_stream("Think first", config=config)
        fragments = [(f.reasoning_type, f.content) for f in stream]
        result = stream.result()
    assert {kind for kind, _ in fragments} == {"none"}
    text = "".join(content for _, content in fragments)
    assert text.startswith("<think>") and "</think>" in text
    assert result.content == text


def test_the_async_client(host: str) -> None:
    async def main() -> tuple[str, int]:
        async with lms.AsyncClient(host) as async_client:
            model = await async_client.llm.model("tiny")
            result = await model.respond("Hello", config={"maxTokens": 4})
            tokens = await model.count_tokens("Hello world")
            return result.content, tokens

    content, tokens = asyncio.run(main())
    assert isinstance(content, str) and tokens >= 1


# --- LM Studio's snippets, unchanged but for the address ------------------------------


@pytest.fixture
def run_snippet(
    host: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Any]:
    def run(name: str, stdin: str = "") -> str:
        source = (SNIPPETS / name).read_text()
        # Our copies import the engine; LM Studio's import lmstudio. The rest is as documented.
        lmstudio = f"import lmstudio as lms\nlms.configure_default_client({host!r})"
        source = source.replace("import engine as lms", lmstudio).split("# Not in the guide")[0]
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        lms.sync_api._reset_default_client()
        capsys.readouterr()
        exec(compile(source, name, "exec"), {"__name__": "__main__"})  # noqa: S102 - our own files
        return capsys.readouterr().out

    yield run
    lms.sync_api._reset_default_client()


def test_text_completion_snippet(run_snippet: Any) -> None:
    out = run_snippet("text_completion.py")
    assert "Model used: tiny-test-model" in out
    assert 1 <= int(out.split("Predicted tokens:")[1].split()[0]) <= 100
    assert "Stop reason: " in out and "Custom params stop reason: " in out


def progress_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.endswith("% complete")]


def test_progress_callbacks_snippet(run_snippet: Any) -> None:
    lines = progress_lines(run_snippet("progress_callbacks.py"))
    assert lines[0] == "0.0% complete" and lines[-1] == "100.0% complete"


def test_terminal_simulation_snippet(run_snippet: Any) -> None:
    out = run_snippet("terminal_simulation.py", stdin="ls -la\npwd\nexit\n")
    assert out.count("$ ") == 3
    assert all("$" not in reply for reply in out.split("$ ")[1:-1])


def test_chat_snippets(run_snippet: Any) -> None:
    assert run_snippet("chat_respond.py").strip()
    out = run_snippet("chat_object.py")
    assert "Model used: tiny-test-model" in out
    assert 1 <= int(out.split("Predicted tokens:")[1].split()[0]) <= 50
    lines = progress_lines(run_snippet("chat_progress.py"))
    assert lines[0] == "0.0% complete" and lines[-1] == "100.0% complete"


def test_chat_loop_snippet(run_snippet: Any, prompts: Prompts) -> None:
    out = run_snippet("chat_loop.py", stdin="Hello\nHow are you?\n\n")
    assert out.count("Bot: ") == 2
    assert "Hello" in prompts.texts[-1] and "How are you?" in prompts.texts[-1]


# --- the starter model (Gemma 3 270M): real text through the real SDK -------------------


@pytest.mark.starter
def test_the_starter_model_through_the_sdk(starter_model_path: Path) -> None:
    gemma = LoadedModel.load(starter_model_path, LoadConfig(context_length=1024))
    registry = ModelRegistry([ServedModel("gemma-3-270m", gemma)])
    try:
        with UvicornThread(sdk_app(registry, None)) as address, lms.Client(address) as sdk_client:
            model = sdk_client.llm.model("gemma-3-270m")
            completion = model.complete("The capital of France is",
                                        config={"maxTokens": 8, "temperature": 0})
            assert "Paris" in completion.content or "France" in completion.content
            chat = lms.Chat("You answer in one short sentence.")
            chat.add_user_message("What is the capital of France?")
            reply = model.respond(chat, config={"maxTokens": 12, "temperature": 0})
            assert reply.content.strip() and reply.stats.predicted_tokens_count <= 12
            assert reply.model_info.architecture == "gemma3"

            class City(lms.BaseModel):
                name: str
                country: str

            city = model.respond("Name a famous city in France, as JSON.", response_format=City,
                                 config={"maxTokens": 60, "temperature": 0})
            assert isinstance(city.parsed, dict) and set(city.parsed) == {"name", "country"}
    finally:
        gemma.unload()
