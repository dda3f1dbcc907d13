"""`act` with LM Studio's keywords, tool forms and callbacks, on the tiny model.

The model is random, so where a test needs particular calls a grammar writes them in
the default `[TOOL_REQUEST]` format the tiny model's template is taught: the model,
the parser and the loop are all real."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engine as lms


def forced(*calls: dict[str, Any]) -> str:
    """A grammar whose only sentence is these calls, in the default format."""
    text = "".join(f"[TOOL_REQUEST]{json.dumps(c)}[END_TOOL_REQUEST]" for c in calls)
    return f"root ::= {json.dumps(text)}"


@pytest.fixture(scope="module")
def model(tiny_model_path: Path) -> Iterator[lms.LLM]:
    handle = lms.llm(str(tiny_model_path), config={"contextLength": 2048})
    yield handle
    handle.unload()


def test_dict_tool_with_implementation_runs(model: lms.LLM) -> None:
    seen: list[tuple[float, float]] = []

    def multiply(a: float, b: float) -> float:
        seen.append((a, b))
        return a * b

    tool = {
        "name": "multiply",
        "description": "Multiply two numbers.",
        "parameters": {"a": float, "b": {"type": float, "default": 1.0}},
        "implementation": multiply,
    }
    config = {"grammar": forced({"name": "multiply", "arguments": {"a": 6, "b": 7}}), "seed": 1}
    chat = lms.Chat()
    result = model.act("What is 6 times 7?", [tool], config, max_prediction_rounds=2,
                       on_message=chat.append)
    assert seen == [(6.0, 7.0)]
    assert result.rounds == 2 and result.total_time_seconds > 0
    assert [m.role for m in chat.messages] == ["assistant", "tool", "assistant"]
    assert chat.messages[1].content == "42.0"


def test_tool_function_def_and_default_parameter(model: lms.LLM) -> None:
    seen: list[dict[str, Any]] = []
    tool = lms.ToolFunctionDef(
        name="greet",
        description="Greet someone.",
        parameters={"who": str, "times": {"type": int, "default": 2}},
        implementation=lambda who, times: seen.append({"who": who, "times": times}) or "ok",
    )
    config = {"grammar": forced({"name": "greet", "arguments": {"who": "Ada"}})}
    model.act("Greet Ada", [tool], config, max_prediction_rounds=2)
    assert seen == [{"who": "Ada", "times": 2}]


def test_final_round_offers_no_tools_and_callbacks_get_the_round(model: lms.LLM) -> None:
    def ping() -> str:
        """Ping."""
        return "pong"

    log: list[Any] = []
    fragments: set[int] = set()
    completed: list[lms.PredictionRoundResult] = []
    config = {"grammar": forced({"name": "ping", "arguments": {}}), "seed": 2}
    result = model.act(
        "ping", [ping], config,
        max_prediction_rounds=3,
        on_round_start=lambda n: log.append(("start", n)),
        on_round_end=lambda n: log.append(("end", n)),
        on_prediction_fragment=lambda fragment, n: fragments.add(n),
        on_prediction_completed=completed.append,
        on_first_token=lambda n: log.append(("first", n)),
    )
    # Rounds 0 and 1 call ping (the grammar writes the call); round 2 offers no tools,
    # so the same text is an answer and the loop ends there.
    assert result.rounds == 3 and result.reason == "answered"
    assert log == [
        ("start", 0), ("first", 0), ("end", 0),
        ("start", 1), ("first", 1), ("end", 1),
        ("start", 2), ("first", 2), ("end", 2),
    ]
    # Rounds 0 and 1 wrote only a call (tool-call events, no text fragments).
    assert fragments == {2}
    assert [r.round_index for r in completed] == [0, 1, 2]
    assert [len(r.tool_calls) for r in completed] == [1, 1, 0]


def test_several_calls_run_in_parallel_and_report_in_order(model: lms.LLM) -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def slow(n: int) -> str:
        """Wait a little, then echo n."""
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.3 if n == 1 else 0.05)  # the first finishes last
        with lock:
            running -= 1
        return f"done {n}"

    calls = [{"name": "slow", "arguments": {"n": n}} for n in (1, 2, 3)]
    messages: list[Any] = []
    model.act("go", [slow], {"grammar": forced(*calls)}, max_prediction_rounds=2,
              max_parallel_tool_calls=3, on_message=messages.append)
    assert peak == 3
    results = [m.content for m in messages if m.role == "tool"]
    assert results == ["done 1", "done 2", "done 3"]
    # One at a time by default, as the SDK does.
    peak = 0
    model.act("go", [slow], {"grammar": forced(*calls)}, max_prediction_rounds=2)
    assert peak == 1


def test_handle_invalid_tool_request_replaces_the_message(model: lms.LLM) -> None:
    def boom(x: int) -> str:
        """Always fails."""
        raise RuntimeError("kaput")

    seen: list[tuple[str, str | None]] = []

    def handler(error: Exception, request: Any) -> str:
        assert isinstance(error, lms.LMStudioPredictionError)
        seen.append((str(error), request.name if request else None))
        return "try something else"

    config = {"grammar": forced({"name": "boom", "arguments": {"x": 1}},
                                {"name": "nosuch", "arguments": {}})}
    messages: list[Any] = []
    model.act("go", [boom], config, max_prediction_rounds=2,
              handle_invalid_tool_request=handler, on_message=messages.append)
    # A call of a tool that does not exist is not read as a call: the handler hears of
    # it while the reply streams, without a request (as the SDK's failed-parse case).
    assert seen == [("Failed to parse tool call request: unknown tool 'nosuch'", None),
                    ("RuntimeError: kaput", "boom")]
    assert [m.content for m in messages if m.role == "tool"] == ["try something else"]


def test_a_handler_that_raises_stops_act(model: lms.LLM) -> None:
    def boom() -> str:
        """Always fails."""
        raise RuntimeError("kaput")

    def handler(error: Exception, request: Any) -> str:
        raise error

    with pytest.raises(lms.LMStudioPredictionError, match="kaput"):
        model.act("go", [boom], {"grammar": forced({"name": "boom", "arguments": {}})},
                  max_prediction_rounds=2, handle_invalid_tool_request=handler)


def test_on_message_as_the_chats_own_append_adds_each_message_once(model: lms.LLM) -> None:
    def ping() -> str:
        """Ping."""
        return "pong"

    chat = lms.Chat("system")
    chat.add_user_message("ping")
    model.act(chat, [ping], {"grammar": forced({"name": "ping", "arguments": {}})},
              max_prediction_rounds=2, on_message=chat.append)
    assert [m.role for m in chat.messages] == ["system", "user", "assistant", "tool", "assistant"]


def test_bad_tools_are_clear_errors(model: lms.LLM) -> None:
    with pytest.raises(lms.ToolError, match="needs implementation"):
        model.act("x", [{"name": "f", "description": "d", "parameters": {}}])
    with pytest.raises(lms.ToolError, match="two tools are named 'f'"):
        def f() -> None:
            """F."""
        model.act("x", [f, f])
    with pytest.raises(ValueError, match="at least 1"):
        model.act("x", [f], max_prediction_rounds=0)
