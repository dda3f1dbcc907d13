"""The server against hostile web pages and clients (issue 13): real HTTP, real headers.

A page in the person's browser must not drive the server (Host check against DNS
rebinding, JSON bodies only, CORS only for listed origins); a client must not hold it
up (body, header and queue limits) nor get a 500 for anything it sent.
"""

from __future__ import annotations

import json
import socket
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
from engine.serve.models import ModelRegistry, ServedModel
from engine.serve.run import ServerHandle
from engine.serve.settings import ServerSettings

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def tiny(tiny_model_path: Path) -> Iterator[LoadedModel]:
    model = LoadedModel.load(tiny_model_path, LoadConfig.model_validate({"context_length": 1024, "threads": 1}))
    yield model
    model.unload()


def serving(model: LoadedModel, **settings: Any) -> ServerThread:
    registry = ModelRegistry([ServedModel("tiny", model)])
    return ServerThread(ServerHandle(registry, port=0, settings=ServerSettings(**settings)))


@pytest.fixture(scope="module")
def server(tiny: LoadedModel) -> Iterator[ServerHandle]:
    with serving(tiny) as handle:
        yield handle


def chat(server: ServerHandle, body: Any = None, **headers: str) -> httpx.Response:
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 2} if body is None else body
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{server.url}/chat/completions", content=content,
                      headers={**JSON, **headers}, timeout=30)


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error


# --- web pages ------------------------------------------------------------------------------


def test_a_page_on_another_host_cannot_drive_the_server(server: ServerHandle) -> None:
    # The probe from the issue: DNS rebinding, plus a text/plain POST that needs no preflight.
    rebound = chat(server, **{"host": "evil.com", "origin": "http://evil.com",
                              "content-type": "text/plain"})
    assert rebound.status_code == 403
    assert error_of(rebound)["code"] == "host_not_allowed"
    assert "allowed_hosts" in error_of(rebound)["message"]
    assert chat(server, host=f"evil.com:{server.port}").status_code == 403
    health = httpx.get(f"{server.url.removesuffix('/v1')}/health", headers={"host": "evil.com"})
    assert health.status_code == 403


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}",
                                  "LOCALHOST", "127.0.0.1"])
def test_loopback_host_names_are_answered(server: ServerHandle, host: str) -> None:
    response = chat(server, host=host.format(port=server.port))
    assert response.status_code == 200, response.text


def test_allowed_hosts_adds_names(tiny: LoadedModel) -> None:
    with serving(tiny, allowed_hosts=["gpu-box.lan"]) as handle:
        assert chat(handle, host=f"gpu-box.lan:{handle.port}").status_code == 200
        assert chat(handle, host="evil.com").status_code == 403
    with serving(tiny, allowed_hosts=["*"]) as handle:
        assert chat(handle, host="anything.example").status_code == 200


def test_only_json_bodies_are_read(server: ServerHandle) -> None:
    body = json.dumps({"model": "tiny", "messages": MESSAGES, "max_tokens": 2})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        response = httpx.post(f"{server.url}/chat/completions", content=body,
                              headers={"content-type": content_type})
        assert response.status_code == 415, content_type
        assert error_of(response)["code"] == "unsupported_media_type"
    bare = httpx.post(f"{server.url}/completions", content=body)
    assert bare.status_code == 415
    assert chat(server, **{"content-type": "application/json; charset=utf-8"}).status_code == 200


def test_the_responses_and_xinference_routes_are_guarded_too(server: ServerHandle) -> None:
    body = json.dumps({"model": "tiny", "input": "Hi", "max_output_tokens": 2})
    url = f"{server.url}/responses"
    plain = httpx.post(url, content=body, headers={"content-type": "text/plain"})
    assert plain.status_code == 415
    assert error_of(plain)["code"] == "unsupported_media_type"
    assert httpx.post(url, content=body, headers={**JSON, "host": "evil.com"}).status_code == 403
    assert httpx.post(url, content=body, headers=JSON, timeout=30).status_code == 200
    auth = f"{server.url}/cluster/auth"
    assert httpx.get(auth, headers={"host": "evil.com"}).status_code == 403
    assert httpx.post(auth, content=b"{}", headers=JSON).status_code == 405
    assert httpx.get(auth).json() == {"auth": False}


def preflight(server: ServerHandle, origin: str) -> httpx.Response:
    return httpx.options(f"{server.url}/chat/completions", headers={
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, x-stainless-os",
    })


def test_no_cors_headers_by_default(server: ServerHandle) -> None:
    answer = preflight(server, "http://localhost:3000")
    assert answer.status_code >= 400
    assert not any(k.startswith("access-control-") for k in answer.headers)
    reply = chat(server, origin="http://localhost:3000")
    assert reply.status_code == 200
    assert "access-control-allow-origin" not in reply.headers


def test_cors_for_listed_origins_with_preflight(tiny: LoadedModel) -> None:
    origin = "http://localhost:3000"
    with serving(tiny, cors_origins=[origin]) as handle:
        answer = preflight(handle, origin)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == origin
        assert "POST" in answer.headers["access-control-allow-methods"]
        assert "content-type" in answer.headers["access-control-allow-headers"]
        assert "x-stainless-os" in answer.headers["access-control-allow-headers"]
        reply = chat(handle, origin=origin)
        assert reply.status_code == 200
        assert reply.headers["access-control-allow-origin"] == origin
        stranger = preflight(handle, "http://evil.com")
        assert stranger.status_code == 400
        assert "access-control-allow-origin" not in stranger.headers
        assert "access-control-allow-origin" not in chat(handle, origin="http://evil.com").headers


# --- limits ---------------------------------------------------------------------------------


def test_the_body_limit_is_a_setting_and_a_413(tiny: LoadedModel) -> None:
    with serving(tiny, max_body_bytes=4096) as handle:
        big = {"model": "tiny", "messages": [{"role": "user", "content": "x" * 5000}]}
        response = chat(handle, big)
        assert response.status_code == 413
        assert error_of(response)["code"] == "request_too_large"
        assert "max_body_bytes" in error_of(response)["message"]
        assert chat(handle).status_code == 200


@pytest.mark.parametrize("depth", [100_000, 65])
def test_deep_nesting_is_a_400(server: ServerHandle, depth: int) -> None:
    inner = "[" * depth + "]" * depth
    body = f'{{"model": "tiny", "max_tokens": 2, "messages": [{{"role": "user", "content": "hi", "x": {inner}}}]}}'
    response = chat(server, body.encode())
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == "too_deeply_nested"
    assert "nests" in error["message"]
    assert chat(server).status_code == 200


BAD_SCHEMA = {"type": "function", "function": {"name": "broken", "parameters": {"type": "nonsense"}}}
GOOD_TOOL = {"type": "function", "function": {"name": "fine", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("tools", "tool_choice", "param"),
    [
        ([BAD_SCHEMA], "required", "tools[0].function.parameters"),
        ([GOOD_TOOL, BAD_SCHEMA], "required", "tools[1].function.parameters"),
        ([GOOD_TOOL, BAD_SCHEMA], {"type": "function", "function": {"name": "broken"}},
         "tools[1].function.parameters"),
        ([{"type": "function", "function": {"name": "r", "parameters": {"$ref": "#/nowhere"}}}],
         "required", "tools[0].function.parameters"),
    ],
)
def test_an_invalid_tool_schema_for_a_forced_call_is_a_400(
    server: ServerHandle, tools: list[Any], tool_choice: Any, param: str
) -> None:
    response = chat(server, {"model": "tiny", "messages": MESSAGES, "max_tokens": 2,
                             "tools": tools, "tool_choice": tool_choice})
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


def test_a_good_tool_beside_a_bad_one_can_still_be_forced(server: ServerHandle) -> None:
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 40, "tools": [BAD_SCHEMA, GOOD_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "fine"}}}
    assert chat(server, body).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_an_out_of_vocabulary_logit_bias_names_logit_bias(server: ServerHandle, stream: bool) -> None:
    for token in ("99999999", str(10**30)):
        response = chat(server, {"model": "tiny", "messages": MESSAGES, "max_tokens": 2,
                                 "stream": stream, "logit_bias": {token: 5}})
        assert response.status_code == 400, response.text
        error = error_of(response)
        assert error["param"] == "logit_bias"
        assert "vocabulary" in error["message"]


def test_the_queue_limit_answers_503_with_retry_after(tiny_model_path: Path) -> None:
    # A long context, so that the first prediction runs for seconds (~2,000 tokens/s here).
    config = LoadConfig.model_validate({"context_length": 8192, "threads": 1})
    long = LoadedModel.load(tiny_model_path, config)
    with serving(long, queue_limit=1) as handle:
        # End of generation banned: it runs to max_tokens.
        body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 8000, "stream": True,
                "logit_bias": {str(EOS_ID): -100}}
        with httpx.stream("POST", f"{handle.url}/chat/completions", json=body, timeout=30) as first:
            assert first.status_code == 200
            # Keep the iterator: dropping it would close the stream, and so the request.
            lines = first.iter_lines()
            next(lines)
            busy = chat(handle)
            assert busy.status_code == 503
            assert error_of(busy)["code"] == "server_busy"
            assert busy.headers["retry-after"].isdigit()
            with openai.OpenAI(base_url=handle.url, api_key="x", max_retries=0) as client:
                with pytest.raises(openai.InternalServerError):
                    client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=2)
        # The first client left: its slot comes back once the server has seen it go.
        deadline = time.monotonic() + 20
        while (status := chat(handle).status_code) == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status == 200
    long.unload()


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds` (without answering)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_slow_or_silent_clients_are_timed_out(tiny: LoadedModel) -> None:
    with serving(tiny, header_timeout=0.5, keep_alive_timeout=0.5) as handle:
        address = (handle.host, handle.port)
        with socket.create_connection(address) as silent, \
                socket.create_connection(address) as half:
            half.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            started = time.monotonic()
            assert _closed_within(silent, 5)
            assert _closed_within(half, 5)
            assert time.monotonic() - started < 3
        # After a response, an idle keep-alive connection goes too, and so does a second
        # request whose headers never end.
        with socket.create_connection(address) as again:
            again.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            again.settimeout(5)
            assert again.recv(4096).startswith(b"HTTP/1.1 200")
            again.sendall(b"GET /health HTTP/1.1\r\n")
            assert _closed_within(again, 5)
        assert httpx.get(f"{handle.url}/models").status_code == 200


def test_a_body_that_never_ends_gets_408(tiny: LoadedModel) -> None:
    with serving(tiny, body_timeout=0.5) as handle, \
            socket.create_connection((handle.host, handle.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mod")
        sock.settimeout(5)
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            # The whole JSON body is in once the answer ends with its closing brace.
            if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                break
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"body_timeout" in answer
        assert time.monotonic() - started < 3


# --- nothing a client sends is a 500 ----------------------------------------------------------


def with_(**fields: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": MESSAGES, "max_tokens": 2, **fields}


@pytest.mark.parametrize(
    "body",
    [
        with_(seed=2**70),
        with_(top_k=2**70),
        with_(max_tokens=2**70),
        with_(logit_bias={"-1": 5}),
        with_(stop=["x" * 10_000]),
        with_(tools=[BAD_SCHEMA]),
        with_(tools=[BAD_SCHEMA], tool_choice="auto"),
        with_(grammar="root ::= ("),
        with_(response_format={"type": "json_schema", "json_schema": {"schema": {"type": 5}}}),
        with_(messages=[{"role": "tool", "content": "x"}]),
        with_(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
        with_(messages=[{"role": "user", "content": None}]),
        with_(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]),
        with_(messages=[{"role": "user", "content": [5, {"type": "text"}]}]),
        with_(messages=[{"role": "assistant", "content": "", "tool_calls": "nope"}]),
        with_(chat_template_kwargs={"x": "[" * 60 + "]" * 60}),
        with_(stream_options={"include_usage": "maybe"}),
        b'{"model": "tiny", "messages": [{"role": "user", "content": "\\ud800"}], "max_tokens": 2}',
        b"\xff\xfe",
        b"",
    ],
)
def test_nothing_a_client_sends_is_a_500(server: ServerHandle, body: Any) -> None:
    response = chat(server, body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error_of(response)


def responses_with(**fields: Any) -> dict[str, Any]:
    return {"model": "tiny", "input": "Hi", "max_output_tokens": 2, **fields}


@pytest.mark.parametrize(
    "body",
    [
        responses_with(input=5),
        responses_with(input=[5]),
        responses_with(input=[{"type": "message", "role": "user", "content": 5}]),
        responses_with(input=[{"type": "message", "role": "user", "content": [5]}]),
        responses_with(input=[{"type": "message", "role": "user",
                               "content": [{"type": "input_text", "text": 5}]}]),
        responses_with(input=[{"type": "function_call"}]),
        responses_with(input=[{"type": "function_call", "call_id": "a", "name": "f",
                               "arguments": 5}]),
        responses_with(input=[{"type": "function_call_output", "call_id": "a", "output": 5}]),
        responses_with(input=[{"type": "reasoning", "content": "x"}, "Hi"]),
        responses_with(tools=[5]),
        responses_with(tools=[{"type": "function"}]),
        responses_with(tools=[{"type": "function", "name": "f", "parameters": {"type": 5}}],
                       tool_choice="required"),
        responses_with(tool_choice={"type": "function"}),
        responses_with(tool_choice={"type": "function", "name": "missing"}),
        responses_with(text={"format": {"type": "json_schema", "schema": {"type": 5}}}),
        responses_with(text={"format": 5}),
        responses_with(reasoning={"effort": "extreme"}),
        responses_with(previous_response_id="resp_missing"),
        responses_with(stop_token_ids=[2**40]),
        responses_with(background=True),
        b"[]",
    ],
)
def test_nothing_a_responses_client_sends_is_a_500(server: ServerHandle, body: Any) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(f"{server.url}/responses", content=content, headers=JSON, timeout=30)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error_of(response)
