"""Tool-call cases shared by the parser tests and bench/parser_scaling.py: the tools,
two calls, and how each format (and each variant of a format) writes calls."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather forecast for a place",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
            },
            "required": ["location"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the catalogue",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "filters": {"type": "object"},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["query"],
        },
    },
}
TOOLS = [WEATHER, SEARCH]
NAMES = ["get_weather", "search"]

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("get_weather", {"location": "Paris, France", "days": 3}),
    ("search", {"query": 'llama.cpp "tool" calls', "filters": {"lang": "en"}, "tags": ["a", "b"]}),
]


# --- how each format writes calls ------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _raw(value: Any) -> str:
    """An XML-style parameter value: strings raw, the rest as JSON."""
    return value if isinstance(value, str) else _json(value)


def _gemma(value: Any) -> str:
    if isinstance(value, str):
        return f'<|"|>{value}<|"|>'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_gemma(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_gemma(v) for v in value) + "]"
    return _json(value)


def _python_args(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in arguments.items())


Writer = Callable[[list[tuple[str, dict[str, Any]]]], str]


def _each(template: Callable[[str, dict[str, Any], int], str], sep: str = "") -> Writer:
    return lambda calls: sep.join(template(n, a, i) for i, (n, a) in enumerate(calls))


WRITERS: dict[str, Writer] = {
    "default": _each(
        lambda n, a, i: f"[TOOL_REQUEST]{_json({'name': n, 'arguments': a})}[END_TOOL_REQUEST]",
        "\n",
    ),
    "hermes": _each(
        lambda n, a, i: f"<tool_call>\n{_json({'name': n, 'arguments': a})}\n</tool_call>", "\n"
    ),
    "llama3": _each(lambda n, a, i: _json({"name": n, "parameters": a}), "\n"),
    "mistral": _each(lambda n, a, i: f"[TOOL_CALLS]{n}[ARGS]{_json(a)}"),
    "qwen3_coder": _each(
        lambda n, a, i: f"<tool_call>\n<function={n}>\n"
        + "".join(f"<parameter={k}>\n{_raw(v)}\n</parameter>\n" for k, v in a.items())
        + "</function>\n</tool_call>",
        "\n",
    ),
    "seed_oss": _each(
        lambda n, a, i: f"<seed:tool_call>\n<function={n}>\n"
        + "".join(f"<parameter={k}>{_raw(v)}</parameter>\n" for k, v in a.items())
        + "</function>\n</seed:tool_call>",
        "\n",
    ),
    "minimax": lambda calls: "<minimax:tool_call>\n"
    + "".join(
        f'<invoke name="{n}">\n'
        + "".join(f'<parameter name="{k}">{_raw(v)}</parameter>\n' for k, v in a.items())
        + "</invoke>\n"
        for n, a in calls
    )
    + "</minimax:tool_call>",
    "glm": _each(
        lambda n, a, i: f"<tool_call>{n}\n"
        + "".join(f"<arg_key>{k}</arg_key>\n<arg_value>{_raw(v)}</arg_value>\n" for k, v in a.items())
        + "</tool_call>",
        "\n",
    ),
    "deepseek_r1": lambda calls: "<｜tool▁calls▁begin｜>"
    + "".join(
        f"<｜tool▁call▁begin｜>function<｜tool▁sep｜>{n}\n```json\n{_json(a)}\n```<｜tool▁call▁end｜>"
        for n, a in calls
    )
    + "<｜tool▁calls▁end｜>",
    "deepseek_v3": lambda calls: "<｜tool▁calls▁begin｜>"
    + "".join(f"<｜tool▁call▁begin｜>{n}<｜tool▁sep｜>{_json(a)}<｜tool▁call▁end｜>" for n, a in calls)
    + "<｜tool▁calls▁end｜>",
    "kimi_k2": lambda calls: "<|tool_calls_section_begin|>"
    + "".join(
        f"<|tool_call_begin|>functions.{n}:{i}<|tool_call_argument_begin|>{_json(a)}<|tool_call_end|>"
        for i, (n, a) in enumerate(calls)
    )
    + "<|tool_calls_section_end|>",
    "granite": lambda calls: "<|tool_call|>"
    + _json([{"name": n, "arguments": a} for n, a in calls]),
    "nemotron": lambda calls: "<TOOLCALL>"
    + _json([{"name": n, "arguments": a} for n, a in calls])
    + "</TOOLCALL>",
    "firefunction": lambda calls: " functools"
    + _json([{"name": n, "arguments": a} for n, a in calls]),
    "functionary_v3_1": _each(lambda n, a, i: f"<function={n}>{_json(a)}</function>"),
    # Every call after its `>>>` (the prompt writes the first one; a reply may repeat it).
    "functionary_v3_2": _each(lambda n, a, i: f">>>{n}\n{_json(a)}"),
    "command_r7b": lambda calls: "<|START_ACTION|>[\n"
    + ",\n".join(
        "    " + _json({"tool_call_id": str(i), "tool_name": n, "parameters": a})
        for i, (n, a) in enumerate(calls)
    )
    + "\n]<|END_ACTION|>",
    "command_r_plus": lambda calls: "Action:\n```json\n"
    + _json([{"tool_name": n, "parameters": a} for n, a in calls])
    + "\n```",
    "gpt_oss": _each(
        lambda n, a, i: (
            f"<|channel|>commentary to=functions.{n} <|constrain|>json<|message|>{_json(a)}<|call|>"
            if i % 2 == 0
            else f"<|start|>assistant to=functions.{n}<|channel|>commentary json<|message|>"
            f"{_json(a)}<|call|>"
        )
    ),
    "lfm2": lambda calls: "<|tool_call_start|>["
    + ", ".join(f"{n}({_python_args(a)})" for n, a in calls)
    + "]<|tool_call_end|>",
    "gemma4": _each(lambda n, a, i: f"<|tool_call>call:{n}{_gemma(a)}<tool_call|>"),
}

# Other ways the same formats write calls.
VARIANTS: dict[str, tuple[str, Writer]] = {
    "mistral_nemo": (
        "mistral",
        lambda calls: "[TOOL_CALLS]"
        + _json([{"name": n, "arguments": a, "id": "abcDEF123"} for n, a in calls]),
    ),
    "mistral_call_id": (
        "mistral",
        _each(lambda n, a, i: f"[TOOL_CALLS]{n}[CALL_ID]call{i}xyz0[ARGS]{_json(a)}"),
    ),
    "qwen3_coder_json": ("qwen3_coder", WRITERS["hermes"]),
    "qwen3_coder_bare_function": (
        "qwen3_coder",
        _each(
            lambda n, a, i: f"<function={n}>\n"
            + "".join(f"<parameter={k}>\n{_raw(v)}\n</parameter>\n" for k, v in a.items())
            + "</function>",
            "\n",
        ),
    ),
    "glm_flash": (
        "glm",
        _each(
            lambda n, a, i: f"<tool_call>{n}"
            + "".join(f"<arg_key>{k}</arg_key><arg_value>{_raw(v)}</arg_value>" for k, v in a.items())
            + "</tool_call>"
        ),
    ),
    "deepseek_v3_as_r1": ("deepseek_r1", WRITERS["deepseek_v3"]),
    "deepseek_no_section": (
        "deepseek_v3",
        lambda calls: "".join(
            f"<｜tool▁call▁begin｜>{n}<｜tool▁sep｜>{_json(a)}<｜tool▁call▁end｜>" for n, a in calls
        ),
    ),
    "functionary_v3_2_after_prompt": (
        "functionary_v3_2",
        lambda calls: "\n>>>".join(f"{n}\n{_json(a)}" for n, a in calls),
    ),
    "llama3_python_tag_json": (
        "llama3",
        _each(lambda n, a, i: "<|python_tag|>" + _json({"name": n, "parameters": a}), "\n"),
    ),
}

CASES: dict[str, tuple[str, Writer]] = {fmt: (fmt, w) for fmt, w in WRITERS.items()} | VARIANTS
