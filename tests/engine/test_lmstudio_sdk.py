"""The real `lmstudio` SDK, unmodified, against llamaterm's server on the tiny model.

The server is the OpenAI app (`engine.server.create_app`) with the LM Studio routes
appended, on uvicorn on a free loopback port in a thread; the SDK talks to it over
its websockets exactly as it talks to LM Studio. LM Studio's documented snippets run
as they are, with `import lmstudio as lms` and the server's address configured.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import lmstudio as lms
import pytest
import uvicorn
from gguf_factory import write_tiny_gguf
from httpx_ws import connect_ws
from lmstudio import LMStudioModelNotFoundError, LMStudioServerError
from starlette.applications import Starlette

from engine.catalog import CatalogSource
from engine.load_config import LoadConfig
from engine.logbus import LOG_BUS
from engine.prediction import LogRecord, PredictionConfig
from engine.runtime import LoadedModel
from engine.serve.lmstudio import CatalogLoader, SdkState, lmstudio_routes
from engine.serve.lmstudio.protocol import LmsError
from engine.serve.lmstudio.sdk_port import DEFAULT_SDK_PORT, bind_sdk_port
from engine.server import ModelRegistry, ServedModel, create_app
from engine.settings import Settings
from engine.tool_grammar import tool_call_grammar

SNIPPETS = Path(__file__).parent / "snippets"
TEMPLATES = Path(__file__).resolve().parents[1] / "data" / "chat-templates"
# One thread: the tiny model gains nothing from more, and busy shared CI cores punish them.
LOAD = LoadConfig.model_validate({"context_length": 2048, "threads": 1})
# The random-weight model rarely stops by itself: replies are capped unless a test says otherwise.
DEFAULTS = PredictionConfig(max_tokens=24)
API_KEY = "sdk-secret"
Served = tuple[ModelRegistry, CatalogLoader]


class UvicornThread:
    """An app on uvicorn on a free loopback port, on its own thread."""

    def __init__(self, app: Starlette, extra: list[socket.socket] | None = None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.sockets = sockets = [self.sock, *(extra or [])]
        config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False,
                                timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: self.server.run(sockets=sockets), daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self.host

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        for sock in self.sockets:
            sock.close()


def sdk_app(
    registry: ModelRegistry, loader: CatalogLoader | None, api_key: str | None = None
) -> Starlette:
    """The server's app with the LM Studio routes plugged in, as the lead's factory will."""
    app = create_app(registry, api_key=api_key)
    app.router.routes.extend(lmstudio_routes(SdkState(registry, api_key=api_key, loader=loader)))
    return app


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models on disk the SDK may load: a spare one, and one under the name the docs ask for."""
    directory = tmp_path_factory.mktemp("sdk-catalog")
    write_tiny_gguf(directory / "spare-model.gguf")
    write_tiny_gguf(directory / "qwen2.5-7b-instruct.gguf")
    return directory


@pytest.fixture(scope="module")
def served(tiny_model_path: Path, catalog_dir: Path) -> Iterator[Served]:
    model = LoadedModel.load(tiny_model_path, LOAD)
    registry = ModelRegistry([ServedModel("tiny", model, DEFAULTS)])
    loader = CatalogLoader(registry, [CatalogSource("configured", catalog_dir)],
                           load_config=lambda entry: LOAD, defaults=DEFAULTS)
    yield registry, loader
    loader.close()
    model.unload()


@pytest.fixture(scope="module")
def host(served: Served) -> Iterator[str]:
    registry, loader = served
    with UvicornThread(sdk_app(registry, loader)) as address:
        yield address


@pytest.fixture(scope="module")
def client(host: str) -> Iterator[lms.Client]:
    with lms.Client(host) as sdk_client:
        yield sdk_client


@pytest.fixture
def model(client: lms.Client) -> Any:
    return client.llm.model("tiny")


class Prompts:
    """The prompts the engine evaluated while a test ran (from the log bus)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, record: LogRecord) -> None:
        if record.kind == "prompt":
            with self._lock:
                self.texts.append(str(record.data.get("text", "")))


@pytest.fixture
def prompts() -> Iterator[Prompts]:
    collected = Prompts()
    unsubscribe = LOG_BUS.subscribe(collected)
    yield collected
    unsubscribe()


# --- finding the server ------------------------------------------------------------


def test_greeting_answers_the_sdk_probe(host: str) -> None:
    assert httpx.get(f"http://{host}/lmstudio-greeting").json() == {"lmstudio": True}
    assert lms.Client.is_valid_api_host(host)


def test_the_openai_routes_still_answer(host: str) -> None:
    assert [m["id"] for m in httpx.get(f"http://{host}/v1/models").json()["data"]] == ["tiny"]


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


# --- models: listing, loading, unloading ---------------------------------------------


def test_list_loaded_and_downloaded(client: lms.Client) -> None:
    assert "tiny" in [m.identifier for m in client.llm.list_loaded()]
    assert "tiny" in [m.identifier for m in client.list_loaded_models()]
    downloaded = {m.model_key: m for m in client.list_downloaded_models()}
    assert {"spare-model", "qwen2.5-7b-instruct"} <= set(downloaded)
    assert downloaded["spare-model"].type == "llm"
    assert [m.model_key for m in client.llm.list_downloaded()] == sorted(downloaded)
    assert client.embedding.list_loaded() == []


def test_load_on_demand_with_progress_then_unload(client: lms.Client) -> None:
    progress: list[float] = []
    spare = client.llm.model("spare-model", on_load_progress=progress.append,
                             config={"contextLength": 1024})
    assert progress[0] == 0.0 and progress[-1] == 1.0 and progress == sorted(progress)
    assert spare.identifier == "spare-model"
    assert spare.get_context_length() == 1024
    # Loaded once: asking again finds it.
    assert client.llm.model("spare-model").identifier == "spare-model"
    assert spare.complete("Hi", config={"maxTokens": 3}).stats.predicted_tokens_count <= 3
    spare.unload()
    assert "spare-model" not in [m.identifier for m in client.llm.list_loaded()]


def test_unknown_model_is_not_found(client: lms.Client) -> None:
    with pytest.raises(LMStudioModelNotFoundError):
        client.llm.model("no-such-model")
    with pytest.raises(LMStudioModelNotFoundError):
        client.llm.get_model_info("no-such-model")


def test_the_apps_own_model_is_not_unloaded_by_a_client(client: lms.Client) -> None:
    with pytest.raises(LMStudioServerError, match="not loaded through the SDK"):
        client.llm.unload("tiny")
    assert "tiny" in [m.identifier for m in client.llm.list_loaded()]


# --- the API key -----------------------------------------------------------------------


class KeyedClient(lms.Client):
    """A client that sends the server's API key as its passkey (the SDK has no option for it)."""

    def _create_auth_message(self) -> dict[str, Any]:
        return self._format_auth_message(client_key=API_KEY)


def test_the_api_key_is_checked_in_the_handshake(served: Served) -> None:
    registry, _ = served
    with UvicornThread(sdk_app(registry, None, api_key=API_KEY)) as address:
        # The greeting stays open: the SDK probes before it authenticates.
        assert httpx.get(f"http://{address}/lmstudio-greeting").json() == {"lmstudio": True}
        with lms.Client(address) as stranger:
            with pytest.raises(LMStudioServerError, match="Authentication failed"):
                stranger.llm.list_loaded()
        with KeyedClient(address) as keyed:
            assert [m.identifier for m in keyed.llm.list_loaded()] == ["tiny"]
            # Without a loader the server serves what the app loaded, and loads nothing:
            # a script's hard-coded name gets the one model there is.
            assert keyed.llm.model("qwen2.5-7b-instruct").identifier == "tiny"
            with pytest.raises(LMStudioServerError, match="does not load"):
                keyed.llm.load_new_instance("spare-model")


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


# --- the SDK's default port: lms.llm() with no set-up ----------------------------------


def test_sdk_port_off_or_taken_is_not_an_error() -> None:
    assert bind_sdk_port(0) is None
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        assert bind_sdk_port(holder.getsockname()[1]) is None


def test_lms_llm_finds_the_server_on_the_sdk_port(served: Served) -> None:
    sdk_sock = bind_sdk_port(DEFAULT_SDK_PORT)
    if sdk_sock is None:
        pytest.skip(f"port {DEFAULT_SDK_PORT} is taken here (LM Studio running?)")
    registry, loader = served
    lms.sync_api._reset_default_client()
    try:
        with UvicornThread(sdk_app(registry, loader), extra=[sdk_sock]):
            model = lms.llm()  # no client set-up: the SDK probes its default ports
            assert model.identifier == "tiny"
            assert model.complete("Hi", config={"maxTokens": 3}).stats.predicted_tokens_count <= 3
    finally:
        lms.sync_api._reset_default_client()


# --- the wire itself: what the SDK cannot send -----------------------------------------


HELLO = {"authVersion": 1, "clientIdentifier": "x", "clientPasskey": "y"}
TINY = {"type": "instanceReference", "instanceReference": "tiny"}


def _exchange(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
    ws.send_json(message)
    reply: dict[str, Any] = ws.receive_json(timeout=30)
    return reply


def test_unknown_fields_and_messages_are_accepted_and_logged(host: str) -> None:
    records: list[LogRecord] = []
    unsubscribe = LOG_BUS.subscribe(lambda r: records.append(r) if r.kind == "server" else None)
    try:
        with connect_ws(f"ws://{host}/llm") as ws:
            assert _exchange(ws, HELLO) == {"success": True}
            ws.send_text("not json")
            ws.send_json({"type": "someFutureMessage"})
            unknown = _exchange(ws, {"type": "rpcCall", "endpoint": "noSuchCall", "callId": 1})
            assert unknown["type"] == "rpcError"
            fields = [
                {"key": "llm.prediction.maxPredictedTokens",
                 "value": {"checked": True, "value": 4}},
                {"key": "llm.prediction.someFutureSetting", "value": {"anything": 1}},
                {"key": "llm.prediction.llama.cpuThreads", "value": 2},
            ]
            user = {"role": "user", "content": [{"type": "text", "text": "Hi"}]}
            ws.send_json({"type": "channelCreate", "endpoint": "predict", "channelId": 1,
                          "creationParameter": {
                              "modelSpecifier": TINY,
                              "history": {"messages": [user]},
                              "predictionConfigStack": {"layers": [
                                  {"layerName": "apiOverride", "config": {"fields": fields}}]},
                          }})
            kinds = []
            while True:
                message = ws.receive_json(timeout=30)
                if message["type"] == "channelClose":
                    break
                kinds.append(message["message"]["type"])
            assert kinds[-1] == "success" and "fragment" in kinds
            # The calls of the embedding namespace: nothing is loaded, the rest is refused.
        with connect_ws(f"ws://{host}/embedding") as ws:
            _exchange(ws, HELLO)
            listed = _exchange(ws, {"type": "rpcCall", "endpoint": "listLoaded", "callId": 1})
            assert listed["result"] == []
            refused = _exchange(ws, {"type": "rpcCall", "endpoint": "embedString", "callId": 2,
                                     "parameter": {"inputString": "x"}})
            assert refused["type"] == "rpcError" and "embedding" in refused["error"]["suggestion"]
    finally:
        unsubscribe()
    warnings = " ".join(r.message for r in records)
    assert "llm.prediction.someFutureSetting" in warnings
    assert "llm.prediction.llama.cpuThreads" in warnings
    assert "someFutureMessage" in warnings


def test_a_failed_prediction_is_an_error_not_a_hang(model: Any) -> None:
    with pytest.raises(LMStudioServerError):
        model.respond("Hi", config={"structured": {"type": "gbnf", "gbnfGrammar": "root ::= ("}})
    # The connection is still good.
    assert model.complete("Hi", config={"maxTokens": 2}).content is not None


def test_load_new_instance_under_an_identifier(client: lms.Client) -> None:
    second = client.llm.load_new_instance("spare-model", "spare-two", config={"contextLength": 512})
    try:
        assert second.identifier == "spare-two"
        assert second.get_info().model_key == "spare-model"
        assert second.get_context_length() == 512
    finally:
        second.unload()
    assert "spare-two" not in [m.identifier for m in client.llm.list_loaded()]


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


# --- the loader a server builds from its config ----------------------------------------


def test_catalog_loader_from_settings(
    catalog_dir: Path, isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing outside the test's directories: no HF cache, no LM Studio folder.
    monkeypatch.setenv("HF_HUB_CACHE", str(isolated_dirs / "hf"))
    monkeypatch.setenv("HOME", str(isolated_dirs / "home"))
    settings = Settings.model_validate({
        "paths": {"model_dirs": [str(catalog_dir)]},
        "load": {"context_length": 768, "threads": 1},
        "prediction": {"max_tokens": 7},
    })
    registry = ModelRegistry()
    loader = CatalogLoader.from_settings(registry, settings)
    assert {"spare-model", "qwen2.5-7b-instruct"} <= {e.key for e in loader.downloaded()}
    with pytest.raises(LmsError, match="no local model matches"):
        loader.entry("missing")
    served = asyncio.run(loader.load("spare", {}, None, lambda fraction: None))
    try:
        assert served.id == "spare-model" and registry.get("spare-model") is served
        assert served.model.config.context_length == 768
        assert served.defaults.max_tokens == 7
    finally:
        loader.close()
    assert registry.get("spare-model") is None and not served.model.is_loaded


def test_a_model_loaded_with_a_ttl_is_unloaded_when_idle(client: lms.Client) -> None:
    spare = client.llm.model("spare-model", ttl=1)
    # Used within its TTL: still there.
    time.sleep(0.6)
    assert spare.complete("Hi", config={"maxTokens": 2}).stats.predicted_tokens_count <= 2
    time.sleep(0.6)
    assert "spare-model" in [m.identifier for m in client.llm.list_loaded()]
    deadline = time.monotonic() + 10
    while "spare-model" in [m.identifier for m in client.llm.list_loaded()]:
        assert time.monotonic() < deadline, "the idle model was never unloaded"
        time.sleep(0.1)
    # The app's own model has no TTL.
    assert "tiny" in [m.identifier for m in client.llm.list_loaded()]


def test_two_clients_asking_at_once_load_the_model_once(host: str, client: lms.Client) -> None:
    handles: list[Any] = []

    def ask() -> None:
        with lms.Client(host) as other:
            handles.append(other.llm.model("spare-model").identifier)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert handles == ["spare-model", "spare-model"]
        loaded = [m.identifier for m in client.llm.list_loaded()]
        assert loaded.count("spare-model") == 1 and "spare-model:2" not in loaded
    finally:
        client.llm.unload("spare-model")


def test_what_is_not_served_says_so(client: lms.Client, tmp_path: Path) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(LMStudioServerError, match="no vision models"):
        client.files.prepare_image(image)
    with pytest.raises(LMStudioServerError, match="search and download"):
        client.repository.search_models("gemma")


def test_the_async_client(host: str) -> None:
    async def main() -> tuple[str, int]:
        async with lms.AsyncClient(host) as async_client:
            model = await async_client.llm.model("tiny")
            result = await model.respond("Hello", config={"maxTokens": 4})
            tokens = await model.count_tokens("Hello world")
            return result.content, tokens

    content, tokens = asyncio.run(main())
    assert isinstance(content, str) and tokens >= 1


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
