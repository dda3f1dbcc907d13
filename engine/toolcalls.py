"""Tool calls: which format a model writes them in, the default format for models
that have none, and parsing calls out of generated text as it streams.

The format is told from the chat template (what the template itself writes), never
from the model's name. A template that does not render tools gets LM Studio's
"default" format: a system prompt that teaches
`[TOOL_REQUEST]{"name": ..., "arguments": {...}}[END_TOOL_REQUEST]`.

How the streaming parser is built:

- `ToolCallParser` scans content text for the *openers* of its format (`<tool_call>`,
  `[TOOL_CALLS]`, ...). Text that cannot be part of an opener is emitted as content at
  once; only a possible opener prefix, and trailing whitespace, are held back.
- From an opener on, the text is a *block*, read by a reader object for the format's
  family of syntax (JSON in tags, a JSON list after a prefix, NAME then JSON,
  sections of special tokens, XML functions, Python calls, ...). A reader is handed
  the whole block text so far and returns *steps*: a call began (its name is
  known), argument text arrived, a call ended (with its arguments) or failed, the
  block closed. Readers only report; the parser turns steps into events, ids and
  indexes, and decides what is content.
- Every character of the input ends up either in the content or in the raw text of
  a parsed call (`ToolCallParser.raw_calls`), in order. Whitespace before a call, and
  after the last one, belongs to the call, so that a reply made only of calls has no
  content. A call that does not parse goes back to the content, with a
  `ToolCallParseError`.
"""

from __future__ import annotations

import ast
import json
import math
import random
import re
import string
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeAlias

from engine.chat import ToolCall
from engine.prediction import (
    ContentDelta,
    Event,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallParseError,
    ToolCallStarted,
)
from engine.reasoning import ReasoningMarkers, ReasoningParser, markers_for_template
from engine.templates import template_supports_tools

__all__ = [
    "DEFAULT_TOOL_SYSTEM_PROMPT",
    "TOOL_FORMATS",
    "OutputPipeline",
    "ParsedOutput",
    "ToolCallParser",
    "default_tool_system_prompt",
    "detect_tool_format",
    "parse_output",
    "to_default_format",
]


# --- the default format (LM Studio's "default tool use") ------------------------------

# LM Studio's own wording (its docs show it in `lms log stream`); `$tools` is the tool
# list as JSON. A string.Template placeholder, because the text is full of braces.
DEFAULT_TOOL_SYSTEM_PROMPT = """\
You are a tool-calling AI. You can request calls to available tools with this EXACT format:
[TOOL_REQUEST]{"name": "tool_name", "arguments": {"param1": "value1"}}[END_TOOL_REQUEST]

AVAILABLE TOOLS:
$tools

RULES:
- Only use tools from AVAILABLE TOOLS
- Include all required arguments
- Use one [TOOL_REQUEST] block per tool
- Never use [TOOL_RESULT]
- If you decide to call one or more tools, there should be no other text in your message

Examples:
"Check Paris weather"
[TOOL_REQUEST]{"name": "get_weather", "arguments": {"location": "Paris"}}[END_TOOL_REQUEST]

"Send email to John about meeting and open browser"
[TOOL_REQUEST]{"name": "send_email", "arguments": {"to": "John", "subject": "meeting"}}[END_TOOL_REQUEST]
[TOOL_REQUEST]{"name": "open_browser", "arguments": {}}[END_TOOL_REQUEST]

Respond conversationally if no matching tools exist."""

TOOL_REQUEST_OPEN = "[TOOL_REQUEST]"
TOOL_REQUEST_CLOSE = "[END_TOOL_REQUEST]"
# LM Studio's docs do not show how a result is worded; the prompt's "Never use
# [TOOL_RESULT]" tells that results come back wrapped in that tag.
TOOL_RESULT_OPEN = "[TOOL_RESULT]"
TOOL_RESULT_CLOSE = "[END_TOOL_RESULT]"


def default_tool_system_prompt(tools: list[dict[str, Any]]) -> str:
    """LM Studio's default tool-use system prompt, listing `tools`."""
    listing = {"type": "toolArray", "tools": [_openai_tool(tool) for tool in tools]}
    text = json.dumps(listing, indent=2, ensure_ascii=False)
    return string.Template(DEFAULT_TOOL_SYSTEM_PROMPT).safe_substitute(tools=text)


def to_default_format(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Template messages that any template can render, teaching the default format.

    The tool prompt follows the first system message's text (or becomes the system
    message); `tool` results become user turns; assistant tool calls are written back
    into the assistant's content as `[TOOL_REQUEST]` blocks. Consecutive user turns
    made this way are joined, since many templates insist that roles alternate.
    With no tools (a follow-up request that offers none), the history is converted all
    the same, but no tool prompt is added.
    """
    prompt = default_tool_system_prompt(tools) if tools else None
    out: list[dict[str, Any]] = []
    merged_system = prompt is None
    for message in messages:
        role = message.get("role")
        if role == "system" and not merged_system and prompt is not None:
            out.append(_with_tool_prompt(message, prompt))
            merged_system = True
        elif role == "tool":
            _append_user(out, _tool_result_text(message), from_tool=True)
        elif role == "assistant" and message.get("tool_calls"):
            out.append(_assistant_with_requests(message))
        elif role == "user" and out and out[-1].get("_from_tool"):
            _append_user(out, _plain_text(message.get("content")), from_tool=False)
        else:
            out.append(dict(message))
    if not merged_system and prompt is not None:
        out.insert(0, {"role": "system", "content": prompt})
    for message in out:
        message.pop("_from_tool", None)
    return out


def _with_tool_prompt(message: dict[str, Any], prompt: str) -> dict[str, Any]:
    text = _plain_text(message.get("content"))
    return {**message, "content": f"{text}\n\n{prompt}" if text.strip() else prompt}


def _tool_result_text(message: dict[str, Any]) -> str:
    return f"{TOOL_RESULT_OPEN}{_plain_text(message.get('content'))}{TOOL_RESULT_CLOSE}"


def _append_user(out: list[dict[str, Any]], text: str, *, from_tool: bool) -> None:
    last = out[-1] if out else None
    if last is not None and last.get("role") == "user" and (from_tool or last.get("_from_tool")):
        last["content"] = f"{_plain_text(last.get('content'))}\n{text}"
        last["_from_tool"] = True
        return
    out.append({"role": "user", "content": text, "_from_tool": from_tool})


def _assistant_with_requests(message: dict[str, Any]) -> dict[str, Any]:
    requests = [_tool_request_text(call) for call in message.get("tool_calls") or []]
    text = _plain_text(message.get("content"))
    parts = ([text] if text.strip() else []) + requests
    rest = {k: v for k, v in message.items() if k != "tool_calls"}
    return {**rest, "content": "\n".join(parts)}


def _tool_request_text(call: Any) -> str:
    if hasattr(call, "model_dump"):
        call = call.model_dump()
    function = call.get("function", call) if isinstance(call, dict) else {}
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            pass  # written back as the string the history holds
    body = json.dumps({"name": function.get("name", ""), "arguments": arguments}, ensure_ascii=False)
    return f"{TOOL_REQUEST_OPEN}{body}{TOOL_REQUEST_CLOSE}"


def _plain_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def _openai_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool in OpenAI's {"type": "function", "function": {...}} shape."""
    if isinstance(tool.get("function"), dict):
        return {"type": tool.get("type", "function"), "function": tool["function"]}
    return {"type": "function", "function": tool}


def _function_specs(tools: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Tool name -> its function spec (name, description, parameters)."""
    specs: dict[str, dict[str, Any]] = {}
    for tool in tools or []:
        if not isinstance(tool, dict):
            continue
        function = _openai_tool(tool)["function"]
        name = function.get("name")
        if isinstance(name, str) and name:
            specs[name] = function
    return specs


# --- format detection -----------------------------------------------------------------

# Most specific first: several templates share a token (`<tool_call>` opens Hermes JSON,
# Qwen3-Coder XML and GLM's key/value lines alike).
_DETECTORS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("gpt_oss", lambda s: "<|channel|>" in s and "<|call|>" in s),
    ("gemma4", lambda s: "<|tool_call>" in s),
    ("minimax", lambda s: "<minimax:tool_call>" in s),
    ("seed_oss", lambda s: "<seed:tool_call>" in s),
    ("glm", lambda s: "<arg_key>" in s),
    ("qwen3_coder", lambda s: "<function=" in s and "<parameter=" in s),
    ("kimi_k2", lambda s: "<|tool_calls_section_begin|>" in s),
    ("deepseek_r1", lambda s: "tool▁calls▁begin" in s and "```json" in s),
    ("deepseek_v3", lambda s: "tool▁calls▁begin" in s),
    ("lfm2", lambda s: "<|tool_call_start|>" in s or "<|tool_list_start|>" in s),
    ("mistral", lambda s: "[TOOL_CALLS]" in s),
    ("command_r7b", lambda s: "<|START_ACTION|>" in s),
    ("nemotron", lambda s: "<TOOLCALL>" in s),
    ("granite", lambda s: "<|tool_call|>" in s),
    ("firefunction", lambda s: "functools" in s),
    ("functionary_v3_1", lambda s: "<function=" in s),
    ("command_r_plus", lambda s: "Action:" in s and "```json" in s),
    ("hermes", lambda s: "<tool_call>" in s),
    (
        "llama3",
        lambda s: "<|python_tag|>" in s or ("<|start_header_id|>" in s and '"parameters"' in s),
    ),
)


@lru_cache(maxsize=64)
def detect_tool_format(chat_template_source: str | None) -> str:
    """The tool-call format a chat template's model writes; "default" when the template
    renders no tools, or writes calls in a format we do not parse."""
    if not chat_template_source or not template_supports_tools(chat_template_source):
        return "default"
    for name, matches in _DETECTORS:
        if matches(chat_template_source):
            return name
    return "default"


# --- reader steps ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Begin:
    """A call's name is known."""

    name: str


@dataclass(frozen=True, slots=True)
class _Args:
    """More of the current call's arguments, as JSON text."""

    text: str


@dataclass(frozen=True, slots=True)
class _End:
    """The current call is complete; its raw text ends at `end` (an offset in the block)."""

    name: str
    arguments: Any
    end: int


@dataclass(frozen=True, slots=True)
class _Fail:
    """The current call does not parse; its raw text, up to `end`, is content."""

    reason: str
    end: int


@dataclass(frozen=True, slots=True)
class _Tail:
    """The text up to `end` (a separator between calls) goes with the previous call."""

    end: int


@dataclass(frozen=True, slots=True)
class _Close:
    """The block ends at `end`; what follows is ordinary text again."""

    end: int


@dataclass(frozen=True, slots=True)
class _Reject:
    """The opener was not the start of a call after all (Llama 3's bare `{`)."""


_Step: TypeAlias = _Begin | _Args | _End | _Fail | _Tail | _Close | _Reject


@dataclass(frozen=True, slots=True)
class _Context:
    """What readers may need to know about the tools."""

    functions: dict[str, dict[str, Any]]

    def parameter_schema(self, tool: str, key: str) -> Any:
        parameters = self.functions.get(tool, {}).get("parameters")
        if isinstance(parameters, dict) and isinstance(parameters.get("properties"), dict):
            return parameters["properties"].get(key)
        return None


# --- scanning helpers -----------------------------------------------------------------

_JSON_WS = " \t\r\n"
_JSON_BARE = frozenset("0123456789-+.eEtrufalsnINaiy")  # numbers, true/false/null, NaN, Infinity
_PAIRS = {"{": "}", "[": "]", "(": ")"}
_NAME_CHARS = re.compile(r"[\w.\-]*")
_MAX_NAME = 256
_KEY, _COLON, _VALUE, _IN_VALUE, _AFTER = range(5)


class _JsonScanner:
    """Follows one JSON object or array through a growing text without parsing it: where
    it ends and, for an object, where each top-level member's value lies.

    It checks only what finding the end needs (brackets, strings, stray characters), so
    that garbage is noticed early; json.loads has the last word.
    """

    def __init__(self, start: int) -> None:
        self.pos = start
        self.begin: int | None = None
        self.end: int | None = None
        self.error: str | None = None
        self.members: dict[str, tuple[int, int | None]] = {}
        self._stack: list[str] = []
        self._in_string = False
        self._escape = False
        self._string_start = 0
        self._phase = _KEY
        self._key = ""
        self._kind = ""

    def scan(self, text: str) -> None:
        while self.pos < len(text) and self.end is None and self.error is None:
            self._char(text, self.pos)
            if self.error is None:
                self.pos += 1

    def _in_top_object(self) -> bool:
        return len(self._stack) == 1 and self._stack[0] == "{"

    def _char(self, text: str, i: int) -> None:
        ch = text[i]
        if self._in_string:
            self._string_char(text, i, ch)
            return
        if self.begin is None:
            if ch in _JSON_WS:
                return
            if ch != "{":
                self.error = "expected a JSON object"
                return
            self.begin = i
        top = self._in_top_object()
        if top and self._phase == _IN_VALUE and self._kind == "bare" and ch in ",}" + _JSON_WS:
            self._close_member(i)
        if ch in _JSON_WS:
            return
        if ch == '"':
            self._in_string, self._string_start = True, i
            if top and self._phase == _VALUE:
                self._open_member(i, "string")
            elif top and self._phase != _KEY:
                self.error = "unexpected string"
        elif ch in "{[":
            if top and self._phase == _VALUE:
                self._open_member(i, "container")
            elif top:
                self.error = f"unexpected {ch!r}"
                return
            self._stack.append(ch)
        elif ch in "}]":
            self._closing(ch, i)
        elif ch == ":":
            if top and self._phase != _COLON:
                self.error = "unexpected ':'"
            elif top:
                self._phase = _VALUE
        elif ch == ",":
            if top and self._phase != _AFTER:
                self.error = "unexpected ','"
            elif top:
                self._phase = _KEY
        elif ch not in _JSON_BARE:
            self.error = f"unexpected character {ch!r}"
        elif top and self._phase == _VALUE:
            self._open_member(i, "bare")
        elif top and self._phase != _IN_VALUE:
            self.error = f"unexpected character {ch!r}"

    def _string_char(self, text: str, i: int, ch: str) -> None:
        if self._escape:
            self._escape = False
        elif ch == "\\":
            self._escape = True
        elif ch == '"':
            self._in_string = False
            if not self._in_top_object():
                return
            if self._phase == _KEY:
                try:
                    self._key = json.loads(text[self._string_start : i + 1], strict=False)
                except ValueError:
                    self.error = "bad escape in a key"
                    return
                self._phase = _COLON
            elif self._phase == _IN_VALUE and self._kind == "string":
                self._close_member(i + 1)

    def _closing(self, ch: str, i: int) -> None:
        if not self._stack or _PAIRS[self._stack[-1]] != ch:
            self.error = f"unexpected {ch!r}"
            return
        self._stack.pop()
        if not self._stack:
            self.end = i + 1
        elif self._in_top_object() and self._phase == _IN_VALUE and self._kind == "container":
            self._close_member(i + 1)

    def _open_member(self, i: int, kind: str) -> None:
        self.members[self._key] = (i, None)
        self._phase, self._kind = _IN_VALUE, kind

    def _close_member(self, end: int) -> None:
        self.members[self._key] = (self.members[self._key][0], end)
        self._phase = _AFTER


class _BracketScanner:
    """Finds the bracket that closes the one at `start`, skipping quoted strings (Python
    calls, Gemma 4's argument syntax)."""

    def __init__(self, start: int, quotes: tuple[str, ...], escapes: bool) -> None:
        self.start = start
        self.pos = start
        self.end: int | None = None
        self.error: str | None = None
        self._quotes = quotes
        self._escapes = escapes
        self._stack: list[str] = []
        self._quote: str | None = None
        self._escape = False

    def scan(self, text: str) -> None:
        while self.pos < len(text) and self.end is None and self.error is None:
            step = self._in_quote(text) if self._quote is not None else self._outside(text)
            if not step:
                return

    def _in_quote(self, text: str) -> bool:
        quote = self._quote
        assert quote is not None
        if self._escape:
            self._escape = False
        elif self._escapes and text[self.pos] == "\\":
            self._escape = True
        elif text.startswith(quote, self.pos):
            self.pos += len(quote)
            self._quote = None
            return True
        elif len(text) - self.pos < len(quote) and quote.startswith(text[self.pos :]):
            return False  # a closing quote may be arriving
        self.pos += 1
        return True

    def _outside(self, text: str) -> bool:
        for quote in self._quotes:
            if text.startswith(quote, self.pos):
                self._quote = quote
                self.pos += len(quote)
                return True
            if len(text) - self.pos < len(quote) and quote.startswith(text[self.pos :]):
                return False
        ch = text[self.pos]
        if ch in _PAIRS:
            self._stack.append(ch)
        elif ch in ")]}":
            if not self._stack or _PAIRS[self._stack[-1]] != ch:
                self.error = f"unexpected {ch!r}"
                return False
            self._stack.pop()
            if not self._stack:
                self.end = self.pos + 1
        self.pos += 1
        return True


def _member_span(scanner: _JsonScanner, keys: Sequence[str]) -> tuple[str, int, int | None] | None:
    for key in keys:
        if key in scanner.members:
            start, end = scanner.members[key]
            return key, start, end
    return None


def _member_name(text: str, scanner: _JsonScanner) -> str | None:
    """The call's name, once its member is complete and is a non-empty string."""
    for key in _NAME_KEYS:
        start, end = scanner.members.get(key, (0, None))
        if end is None:
            continue
        try:
            value = json.loads(text[start:end], strict=False)
        except ValueError:
            return None
        return value if isinstance(value, str) and value else None
    return None


def _earliest(buffer: str, needles: Sequence[str]) -> tuple[int, str] | None:
    """The earliest complete needle in the buffer (the longest, on a tie)."""
    best: tuple[int, str] | None = None
    for needle in needles:
        at = buffer.find(needle)
        if at == -1:
            continue
        if best is None or at < best[0] or (at == best[0] and len(needle) > len(best[1])):
            best = (at, needle)
    return best


def _partial_start(buffer: str, needles: Sequence[str], before: int) -> int | None:
    """The earliest index before `before` from which the buffer's tail is a proper prefix
    of a needle: a marker may be arriving there."""
    if not needles:
        return None
    longest = max(len(n) for n in needles)
    for at in range(max(0, len(buffer) - longest + 1), min(before, len(buffer))):
        tail = buffer[at:]
        if any(len(tail) < len(n) and n.startswith(tail) for n in needles):
            return at
    return None


# --- typing XML parameter values by the tool's schema ---------------------------------


def _typed_value(raw: str, schema: Any) -> Any:
    """A parameter written as raw text (Qwen3-Coder, GLM, MiniMax, Seed), as the value its
    JSON schema asks for; without a schema, JSON if it parses, else the text."""
    kinds = _schema_types(schema)
    if not kinds:
        return _guess_value(raw)
    for kind in kinds:
        if kind == "string":
            continue
        ok, value = _convert(raw, kind)
        if ok:
            return value
    return raw


def _schema_types(schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return []
    kinds: list[str] = []
    declared = schema.get("type")
    if isinstance(declared, str):
        kinds.append(declared)
    elif isinstance(declared, list):
        kinds.extend(k for k in declared if isinstance(k, str))
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            kinds.extend(_schema_types(sub))
    if not kinds and isinstance(schema.get("enum"), list):
        kinds.extend(_json_kind(v) for v in schema["enum"])
    if not kinds and "properties" in schema:
        kinds.append("object")
    return list(dict.fromkeys(kinds))


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    return "string"


def _convert(raw: str, kind: str) -> tuple[bool, Any]:
    text = raw.strip()
    if kind in ("integer", "number"):
        value = _guess_value(text)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, None
        if kind == "integer" and isinstance(value, float):
            return (True, int(value)) if value.is_integer() else (False, None)
        return True, value
    if kind == "boolean":
        lowered = text.lower()
        return (True, lowered == "true") if lowered in ("true", "false") else (False, None)
    if kind == "null":
        return (True, None) if text in ("null", "None", "") else (False, None)
    if kind in ("object", "array"):
        wanted = dict if kind == "object" else list
        for parse in (_loads, ast.literal_eval):
            try:
                value = parse(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(value, wanted):
                return True, value
    return False, None


def _loads(text: str) -> Any:
    return json.loads(text, strict=False)


def _guess_value(raw: str) -> Any:
    try:
        value = json.loads(raw.strip(), strict=False)
    except (ValueError, RecursionError):
        return raw
    if isinstance(value, float) and not math.isfinite(value):
        return raw
    return value


def _trim_newline(value: str) -> str:
    """Templates write XML parameter values on their own lines; those newlines are not
    part of the value."""
    if value.startswith("\n"):
        value = value[1:]
    if value.endswith("\n"):
        value = value[:-1]
    return value


# --- Python-style arguments (LFM2, Llama 3 built-ins) ---------------------------------

_PY_NAMES = {"True": True, "False": False, "None": None, "true": True, "false": False, "null": None}


def _python_kwargs(argument_text: str) -> tuple[dict[str, Any] | None, str]:
    """The keyword arguments of a Python call's argument list, as JSON values."""
    try:
        tree = ast.parse(f"f({argument_text})", mode="eval")
        call = tree.body
        if not isinstance(call, ast.Call):
            return None, "the arguments are not a Python argument list"
        if call.args:
            return None, "positional arguments are not supported; name every argument"
        arguments: dict[str, Any] = {}
        for keyword in call.keywords:
            if keyword.arg is None:
                return None, "**arguments are not supported"
            arguments[keyword.arg] = _python_value(keyword.value)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        return None, f"invalid Python arguments: {err}"
    return arguments, ""


def _python_value(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, type(None))):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_python_value(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        result: dict[str, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                raise ValueError("dictionary keys must be strings")
            result[key.value] = _python_value(value)
        return result
    if isinstance(node, ast.Name) and node.id in _PY_NAMES:
        return _PY_NAMES[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _python_value(node.operand)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    raise ValueError(f"unsupported value: {type(node).__name__}")


# --- Gemma 4's argument syntax --------------------------------------------------------

_GEMMA_QUOTE = '<|"|>'


class _GemmaValue:
    """Gemma 4 writes arguments as `{key:value,...}`: bare keys, strings between
    `<|"|>` tokens, JSON-like numbers, booleans, lists and objects."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Any:
        value = self._value()
        self._skip()
        if self.pos != len(self.text):
            raise ValueError(f"unexpected text at {self.pos}")
        return value

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _value(self) -> Any:
        self._skip()
        if self.text.startswith(_GEMMA_QUOTE, self.pos):
            return self._quoted()
        if self.text.startswith("{", self.pos):
            return self._object()
        if self.text.startswith("[", self.pos):
            return self._list()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ",}]":
            self.pos += 1
        token = self.text[start : self.pos].strip()
        if not token:
            raise ValueError(f"missing value at {start}")
        value = _guess_value(token)
        return value if not isinstance(value, (dict, list)) else token

    def _quoted(self) -> str:
        start = self.pos + len(_GEMMA_QUOTE)
        end = self.text.find(_GEMMA_QUOTE, start)
        if end == -1:
            raise ValueError("unclosed string")
        self.pos = end + len(_GEMMA_QUOTE)
        return self.text[start:end]

    def _object(self) -> dict[str, Any]:
        self.pos += 1
        result: dict[str, Any] = {}
        self._skip()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return result
        while True:
            key = self._key()
            result[key] = self._value()
            if self._separator("}"):
                return result

    def _list(self) -> list[Any]:
        self.pos += 1
        result: list[Any] = []
        self._skip()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return result
        while True:
            result.append(self._value())
            if self._separator("]"):
                return result

    def _key(self) -> str:
        self._skip()
        if self.text.startswith(_GEMMA_QUOTE, self.pos):
            key = self._quoted()
        else:
            end = self.text.find(":", self.pos)
            if end == -1:
                raise ValueError("a key without a value")
            key = self.text[self.pos : end].strip()
            self.pos = end
        self._skip()
        if not key or not self.text.startswith(":", self.pos):
            raise ValueError(f"expected 'key:' at {self.pos}")
        self.pos += 1
        return key

    def _separator(self, closer: str) -> bool:
        """After an item: True at the closer, False at a comma."""
        self._skip()
        if self.text.startswith(closer, self.pos):
            self.pos += 1
            return True
        if self.text.startswith(",", self.pos):
            self.pos += 1
            return False
        raise ValueError(f"expected ',' or {closer!r} at {self.pos}")


# --- readers --------------------------------------------------------------------------

_NAME_KEYS = ("name", "tool_name")
_ARGUMENT_KEYS = ("arguments", "parameters")


class _Reader:
    """Reads one block of tool calls, from its opener on, as the block's text grows.

    `advance(text, at_end)` gets the whole block text so far (it only grows) and returns
    the steps that text allows; the reader keeps its own cursor. Subclasses write
    `step()` (one move: True when it made progress, False when it needs more text) and
    may write `conclude()`, which must settle the block at the end of the output.
    """

    def __init__(self, ctx: _Context, pos: int) -> None:
        self.ctx = ctx
        self.pos = pos
        self.done = False
        self.text = ""
        self.at_end = False
        self.name = ""
        self.settled = 0
        """Calls ended or failed so far in this block."""
        self.phase = ""
        self._steps: list[_Step] = []
        self._inner: _Reader | None = None
        self._failing: tuple[str, str, bool] | None = None

    def advance(self, text: str, at_end: bool) -> list[_Step]:
        self.text, self.at_end, self._steps = text, at_end, []
        if self._inner is None:
            self._run()
        if self._inner is not None:  # delegated, now or before
            self._steps.extend(self._inner.advance(text, at_end))
            self.done = self._inner.done
        return self._steps

    def _run(self) -> None:
        while not self.done and self._inner is None:
            progressed = self._skip_failed() if self._failing else self.step()
            if not progressed:
                break
        if self.at_end and not self.done and self._inner is None:
            self.conclude()

    def step(self) -> bool:
        return bool(getattr(self, f"_phase_{self.phase}")())

    def conclude(self) -> None:
        self.fail("the tool call is not closed", len(self.text))

    # -- outcomes

    def emit(self, step: _Step) -> None:
        if isinstance(step, (_End, _Fail)):
            self.settled += 1
        self._steps.append(step)

    def emit_all(self, steps: list[_Step]) -> None:
        for step in steps:
            self.emit(step)

    def end_call(self, arguments: Any, end: int) -> None:
        self.emit(_End(self.name, arguments, end))

    def close(self, end: int | None = None) -> None:
        self.emit(_Close(self.pos if end is None else end))
        self.done = True

    def fail(self, reason: str, end: int | None = None) -> None:
        """The call fails here and the block ends with it."""
        end = self.pos if end is None else end
        self.emit(_Fail(reason, end))
        self.close(end)

    def fail_through(self, reason: str, closer: str | None, *, close_block: bool = True) -> None:
        """The call fails; its raw text runs through `closer` (or to the end of the output),
        since a model that wrote the block's start usually writes its end too."""
        if closer is None:
            self.fail(reason)
        else:
            self._failing = (reason, closer, close_block)

    def reject(self) -> None:
        self.emit(_Reject())
        self.done = True

    def delegate(self, reader: _Reader) -> None:
        """Let another reader, starting at its own cursor, read the rest of the block."""
        self._inner = reader

    def _skip_failed(self) -> bool:
        assert self._failing is not None
        reason, closer, close_block = self._failing
        at = self.text.find(closer, self.pos)
        if at == -1 and not self.at_end:
            return False
        end = len(self.text) if at == -1 else at + len(closer)
        self._failing = None
        self.pos = end
        self.emit(_Fail(reason, end))
        if close_block or at == -1:
            self.close(end)
        return True

    # -- cursor helpers

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def more(self) -> bool:
        return self.pos < len(self.text)

    def expect(self, *options: str) -> str | None:
        """Consume the longest option at the cursor and return it; "" when none can match;
        None when the text so far is too short to tell."""
        best = ""
        undecided = False
        for option in options:
            if self.text.startswith(option, self.pos):
                best = option if len(option) > len(best) else best
            elif len(self.text) - self.pos < len(option) and option.startswith(
                self.text[self.pos :]
            ):
                undecided = True
        if undecided:
            return None
        self.pos += len(best)
        return best

    def until(self, *delims: str, limit: int | None = None) -> tuple[str, str] | bool | None:
        """The text up to the earliest delimiter, consumed with it: (text, delimiter).
        None while no delimiter has arrived; False when none comes within `limit`."""
        best_at, best = -1, ""
        for delim in delims:
            at = self.text.find(delim, self.pos)
            if at != -1 and (best_at == -1 or at < best_at):
                best_at, best = at, delim
        reach = best_at if best_at != -1 else len(self.text)
        if limit is not None and reach - self.pos > limit:
            return False
        if best_at == -1:
            return None
        value = self.text[self.pos : best_at]
        self.pos = best_at + len(best)
        return value, best

    def read_name(self) -> str | None:
        """A tool name at the cursor ("" when there is none); None while it may go on."""
        match = _NAME_CHARS.match(self.text, self.pos)
        end = match.end() if match else self.pos
        if end - self.pos > _MAX_NAME:
            return ""
        if end == len(self.text) and not self.at_end:
            return None
        name = self.text[self.pos : end]
        self.pos = end
        return name

    def begin(self, name: str) -> None:
        self.name = name
        self.emit(_Begin(name))

    def next_call(self, start: int) -> None:
        """A further call starts at `start`: what lies between goes with the previous one."""
        if self.settled:
            self.emit(_Tail(start))


class _JsonCall:
    """One call written as a JSON object, `{"name": ..., "arguments": {...}}`, followed as
    it streams: the name as soon as it is complete, the arguments' raw text as it comes."""

    def __init__(self, start: int) -> None:
        self.scanner = _JsonScanner(start)
        self.name: str | None = None
        self._key: str | None = None
        self._sent: int | None = None

    def advance(self, text: str) -> list[_Step]:
        scanner = self.scanner
        scanner.scan(text)
        steps: list[_Step] = []
        if self.name is None:
            self.name = _member_name(text, scanner)
            if self.name is None:
                return steps
            steps.append(_Begin(self.name))
        if scanner.error is not None:
            return steps
        delta = self._argument_text(text)
        if delta:
            steps.append(_Args(delta))
        return steps

    def _argument_text(self, text: str) -> str:
        # Only an object is streamed raw; arguments written as a JSON string are decoded
        # at the end and sent whole.
        span = _member_span(self.scanner, (self._key,) if self._key else _ARGUMENT_KEYS)
        if span is None or text[span[1]] != "{":
            return ""
        self._key, start, end = span
        upto = end if end is not None else self.scanner.pos
        sent = start if self._sent is None else self._sent
        self._sent = max(sent, upto)
        return text[sent:upto]

    def result(self, text: str) -> _End | _Fail:
        scanner = self.scanner
        assert scanner.begin is not None and scanner.end is not None
        try:
            value = json.loads(text[scanner.begin : scanner.end], strict=False)
        except (ValueError, RecursionError) as err:
            return _Fail(f"invalid JSON: {err}", scanner.end)
        return _call_from_object(value, scanner.end)


def _call_from_object(value: Any, end: int) -> _End | _Fail:
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        value = value["function"]  # the OpenAI shape, as some models echo it
    if not isinstance(value, dict):
        return _Fail("a tool call must be a JSON object", end)
    name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str) and value[k]), None)
    if name is None:
        return _Fail('the tool call has no "name"', end)
    key = next((k for k in _ARGUMENT_KEYS if k in value), None)
    arguments = value[key] if key else {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments, strict=False) if arguments.strip() else {}
        except (ValueError, RecursionError):
            return _Fail("the arguments string is not JSON", end)
    if not isinstance(arguments, dict):
        return _Fail("the arguments are not a JSON object", end)
    return _End(name, arguments, end)


class _JsonArgs:
    """An arguments object written as raw JSON, streamed as it arrives."""

    def __init__(self, start: int) -> None:
        self.scanner = _JsonScanner(start)
        self._sent: int | None = None

    def advance(self, text: str) -> list[_Step]:
        scanner = self.scanner
        scanner.scan(text)
        if scanner.error is not None or scanner.begin is None:
            return []
        upto = scanner.end if scanner.end is not None else scanner.pos
        sent = scanner.begin if self._sent is None else self._sent
        self._sent = max(sent, upto)
        return [_Args(text[sent:upto])] if upto > sent else []

    def value(self, text: str) -> tuple[Any, str]:
        scanner = self.scanner
        assert scanner.begin is not None and scanner.end is not None
        try:
            value = json.loads(text[scanner.begin : scanner.end], strict=False)
        except (ValueError, RecursionError) as err:
            return None, f"invalid JSON in the arguments: {err}"
        if not isinstance(value, dict):
            return None, "the arguments are not a JSON object"
        return value, ""


def _looks_like_call(text: str, pos: int) -> bool | None:
    """Does the `{` at pos open a Llama 3 call (`{"name": ...` or `{"type": ...`)? None
    while too little has arrived to tell."""
    i = pos + 1
    while i < len(text) and text[i] in _JSON_WS and i - pos <= 32:
        i += 1
    if i - pos > 32:
        return False
    head = text[i : i + 6]
    keys = ('"name"', '"type"')
    if any(head.startswith(k) for k in keys):
        return True
    if len(head) < 6 and any(k.startswith(head) for k in keys):
        return None
    return False


class _TaggedJsonReader(_Reader):
    """One JSON call object after an opener, up to a closer: Hermes/Qwen's
    `<tool_call>{...}</tool_call>`, the default `[TOOL_REQUEST]{...}[END_TOOL_REQUEST]`,
    Llama 3's bare `{...}` (no closer)."""

    def __init__(
        self, ctx: _Context, pos: int, closer: str | None, *, reject_non_calls: bool = False
    ) -> None:
        super().__init__(ctx, pos)
        self.closer = closer
        self.reject_non_calls = reject_non_calls
        self.call: _JsonCall | None = None
        self.result: _End | _Fail | None = None
        self.phase = "open"

    def _phase_open(self) -> bool:
        self.skip_ws()
        if not self.more():
            return False
        if self.reject_non_calls:
            verdict = _looks_like_call(self.text, self.pos)
            if verdict is None:
                return False
            if not verdict:
                self.reject()
                return True
        if self.text[self.pos] != "{":
            self.fail("expected a JSON object after the tool-call marker")
            return True
        self.call = _JsonCall(self.pos)
        self.phase = "object"
        return True

    def _phase_object(self) -> bool:
        assert self.call is not None
        self.emit_all(self.call.advance(self.text))
        scanner = self.call.scanner
        if scanner.error is not None:
            self.pos = scanner.pos
            self.fail_through(f"invalid JSON: {scanner.error}", self.closer)
            return True
        if scanner.end is None:
            return False
        self.pos = scanner.end
        self.result = self.call.result(self.text)
        if isinstance(self.result, _Fail):
            self.fail_through(self.result.reason, self.closer)
        else:
            self.name = self.result.name
            self.phase = "closer"
        return True

    def _phase_closer(self) -> bool:
        if self.closer is None:
            self._finish(self.pos)
            return True
        self.skip_ws()
        found = self.expect(self.closer)
        if found is None:
            return False
        if found:
            self._finish(self.pos)
        else:
            self.fail_through(f"unexpected text before {self.closer}", self.closer)
        return True

    def _finish(self, end: int) -> None:
        assert isinstance(self.result, _End)
        self.end_call(self.result.arguments, end)
        self.close(end)

    def conclude(self) -> None:
        if self.phase == "closer":
            self._finish(len(self.text))  # the closer went missing: the call is whole
        elif self.phase == "open" and self.reject_non_calls:
            self.reject()
        else:
            super().conclude()


class _JsonArrayReader(_Reader):
    """Calls as a JSON list of objects after an opener: Mistral Nemo's `[TOOL_CALLS][...]`,
    Granite's `<|tool_call|>[...]`, Nemotron's `<TOOLCALL>[...]</TOOLCALL>`, FireFunction's
    `functools[...]`, Command R7B's `<|START_ACTION|>[...]<|END_ACTION|>`."""

    def __init__(
        self, ctx: _Context, pos: int, closer: str | None, *, reject_non_lists: bool = False
    ) -> None:
        super().__init__(ctx, pos)
        self.closer = closer
        self.reject_non_lists = reject_non_lists
        self.call: _JsonCall | None = None
        self.list_end = pos
        self.phase = "open"

    def _phase_open(self) -> bool:
        self.skip_ws()
        if not self.more():
            return False
        if self.text[self.pos] != "[":
            if self.reject_non_lists:
                self.reject()  # FireFunction's marker is a plain word: "functools.partial"
            else:
                self.fail("expected a JSON list of tool calls")
            return True
        self.pos += 1
        self.phase = "element"
        return True

    def _phase_element(self) -> bool:
        self.skip_ws()
        if not self.more():
            return False
        char = self.text[self.pos]
        if char == "{":
            self.next_call(self.pos)
            self.call = _JsonCall(self.pos)
            self.phase = "call"
        elif char == "]":
            self._end_list()
        else:
            self.fail_through("expected a JSON object for each tool call", self.closer)
        return True

    def _phase_call(self) -> bool:
        assert self.call is not None
        self.emit_all(self.call.advance(self.text))
        scanner = self.call.scanner
        if scanner.error is not None:
            self.pos = scanner.pos
            self.fail_through(f"invalid JSON: {scanner.error}", self.closer)
            return True
        if scanner.end is None:
            return False
        self.pos = scanner.end
        result = self.call.result(self.text)
        if isinstance(result, _End):
            self.name = result.name
        self.emit(result)
        self.phase = "separator"
        return True

    def _phase_separator(self) -> bool:
        self.skip_ws()
        if not self.more():
            return False
        char = self.text[self.pos]
        if char == ",":
            self.pos += 1
            self.phase = "element"
        elif char == "]":
            self._end_list()
        else:
            self.fail_through("expected ',' or ']' between tool calls", self.closer)
        return True

    def _end_list(self) -> None:
        self.pos += 1
        self.list_end = self.pos
        self.phase = "closer"

    def _phase_closer(self) -> bool:
        if self.closer is None:
            self.close()
            return True
        self.skip_ws()
        found = self.expect(self.closer)
        if found is None:
            return False
        # A missing closer is forgiven: the list is whole; what follows is text.
        self.close(self.pos if found else self.list_end)
        return True

    def conclude(self) -> None:
        if self.phase == "closer":
            self.close(len(self.text))
        elif self.phase == "open" and self.reject_non_lists:
            self.reject()
        else:
            super().conclude()


class _NamedJsonReader(_Reader):
    """A tool name, a header, then the arguments as a raw JSON object, then a closer:
    Functionary v3.1's `<function=NAME>{...}</function>`, gpt-oss's
    `to=functions.NAME<|channel|>commentary json<|message|>{...}<|call|>`, Mistral's
    `[TOOL_CALLS]NAME[ARGS]{...}`."""

    closers: tuple[str, ...] = ()

    def __init__(self, ctx: _Context, pos: int) -> None:
        super().__init__(ctx, pos)
        self.args: _JsonArgs | None = None
        self.arguments: Any = None
        self.phase = "name"

    def header(self) -> bool | None:
        """Read what lies between name and arguments: True when done, None to wait, False
        when it failed or moved to another phase itself."""
        return True

    def _closer(self) -> str | None:
        return self.closers[0] if self.closers else None

    def _phase_name(self) -> bool:
        name = self.read_name()
        if name is None:
            return False
        if not name:
            self.fail("expected a tool name")
            return True
        self.begin(name)
        self.phase = "header"
        return True

    def _phase_header(self) -> bool:
        verdict = self.header()
        if verdict is None:
            return False
        if verdict:
            self._start_args()
        return True

    def _start_args(self) -> None:
        self.args = _JsonArgs(self.pos)
        self.phase = "args"

    def _phase_args(self) -> bool:
        assert self.args is not None
        self.emit_all(self.args.advance(self.text))
        scanner = self.args.scanner
        if scanner.error is not None:
            self.pos = scanner.pos
            self.fail_through(f"invalid JSON in the arguments: {scanner.error}", self._closer())
            return True
        if scanner.end is None:
            return False
        self.pos = scanner.end
        value, problem = self.args.value(self.text)
        if problem:
            self.fail_through(problem, self._closer())
        else:
            self.arguments = value
            self.phase = "closer"
        return True

    def _phase_closer(self) -> bool:
        if not self.closers:
            self._finish(self.pos)
            return True
        self.skip_ws()
        found = self.expect(*self.closers)
        if found is None:
            return False
        if found:
            self._finish(self.pos)
        else:
            self.fail_through("unexpected text after the arguments", self._closer())
        return True

    def _finish(self, end: int) -> None:
        self.end_call(self.arguments, end)
        self.close(end)

    def conclude(self) -> None:
        if self.phase == "closer":
            self._finish(len(self.text))
        else:
            super().conclude()


class _FunctionaryReader(_NamedJsonReader):
    closers = ("</function>",)

    def header(self) -> bool | None:
        found = self.expect(">")
        if found is None:
            return None
        if not found:
            self.fail("expected '>' after the function name")
            return False
        return True


class _HarmonyReader(_NamedJsonReader):
    """gpt-oss: the recipient comes either in the message header
    (`<|start|>assistant to=functions.NAME<|channel|>commentary json<|message|>`) or in the
    channel (`<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>`)."""

    closers = ("<|call|>", "<|end|>")

    def header(self) -> bool | None:
        found = self.until("<|message|>", limit=80)
        if found is None:
            return None
        if found is False:
            self.fail("expected <|message|> after the recipient")
            return False
        return True


class _MistralReader(_NamedJsonReader):
    """After `[TOOL_CALLS]`: a JSON list (Nemo), or NAME[ARGS]{...} (Small 3.2, Devstral,
    Ministral 3), possibly with [CALL_ID]id before [ARGS]."""

    def _phase_name(self) -> bool:
        self.skip_ws()
        if not self.more():
            return False
        if self.text[self.pos] == "[":
            self.delegate(_JsonArrayReader(self.ctx, self.pos, None))
            return True
        return super()._phase_name()

    def header(self) -> bool | None:
        found = self.expect("[ARGS]", "[CALL_ID]")
        if found is None:
            return None
        if found == "[CALL_ID]":
            self.phase = "call_id"
            return False
        if not found:
            self.fail("expected [ARGS] after the tool name")
            return False
        return True

    def _phase_call_id(self) -> bool:
        found = self.until("[ARGS]", limit=64)
        if found is None:
            return False
        if found is False:
            self.fail("expected [ARGS] after the call id")
        else:
            self._start_args()
        return True


class _SectionReader(_Reader):
    """Calls between special tokens inside a section: DeepSeek's
    `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>…<｜tool▁call▁end｜><｜tool▁calls▁end｜>` and
    Kimi K2's `<|tool_calls_section_begin|><|tool_call_begin|>…<|tool_calls_section_end|>`."""

    call_begin = ""
    separator = ""
    call_end = ""
    section_end = ""

    def __init__(self, ctx: _Context, pos: int) -> None:
        super().__init__(ctx, pos)
        self.args: _JsonArgs | None = None
        self.arguments: Any = None
        self.phase = "calls"

    def name_from_header(self, header: str) -> str | None:
        raise NotImplementedError

    def _phase_calls(self) -> bool:
        after_call = self.pos
        self.skip_ws()
        found = self.expect(self.call_begin, self.section_end)
        if found is None:
            return False
        if found == self.call_begin:
            self.next_call(self.pos - len(found))
            self.phase = "header"
        elif found:
            self.close()
        elif self.settled:
            self.close(after_call)  # text after the calls, with no section end
        else:
            self.fail(f"expected {self.call_begin}")
        return True

    def _phase_header(self) -> bool:
        found = self.until(self.separator, limit=128)
        if found is None:
            return False
        name = self.name_from_header(found[0]) if found else None
        if name is None:
            self.phase = "calls"
            self.fail_through("bad tool-call header", self.call_end, close_block=False)
            return True
        if name:
            self.begin(name)
            self._start_args()
        return True

    def _start_args(self) -> None:
        self.args = _JsonArgs(self.pos)
        self.phase = "args"

    def _phase_args(self) -> bool:
        assert self.args is not None
        self.emit_all(self.args.advance(self.text))
        scanner = self.args.scanner
        if scanner.error is not None:
            self.pos = scanner.pos
            self.phase = "calls"
            self.fail_through(f"invalid JSON in the arguments: {scanner.error}", self.call_end,
                              close_block=False)
            return True
        if scanner.end is None:
            return False
        self.pos = scanner.end
        value, problem = self.args.value(self.text)
        if problem:
            self.phase = "calls"
            self.fail_through(problem, self.call_end, close_block=False)
        else:
            self.arguments = value
            self.phase = "call_end"
        return True

    def _phase_call_end(self) -> bool:
        self.skip_ws()
        found = self.expect(self.call_end, "```")  # DeepSeek R1 closes a code fence first
        if found is None:
            return False
        if found == self.call_end:
            self.end_call(self.arguments, self.pos)
            self.phase = "calls"
        elif not found:
            self.phase = "calls"
            self.fail_through(f"unexpected text before {self.call_end}", self.call_end,
                              close_block=False)
        return True

    def conclude(self) -> None:
        if self.phase == "call_end":
            self.end_call(self.arguments, len(self.text))
            self.close(len(self.text))
        elif self.phase == "calls" and self.settled:
            self.close(len(self.text))
        else:
            super().conclude()


class _DeepSeekReader(_SectionReader):
    """V3: `<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{json}`; R1:
    `<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\\n```json\\n{json}\\n```` — both read,
    since the two families share their tokens."""

    call_begin = "<｜tool▁call▁begin｜>"
    separator = "<｜tool▁sep｜>"
    call_end = "<｜tool▁call▁end｜>"
    section_end = "<｜tool▁calls▁end｜>"

    def name_from_header(self, header: str) -> str | None:
        name = header.strip()
        if name != "function":
            return name if _NAME_CHARS.fullmatch(name) and name else None
        self.phase = "r1_name"
        return ""

    def _phase_r1_name(self) -> bool:
        if not self.more():
            return False
        if self.text[self.pos] == "{":  # V3 with a tool that is called "function"
            self.begin("function")
            self._start_args()
            return True
        found = self.until("\n", limit=_MAX_NAME)
        if found is None:
            return False
        name = found[0].strip() if found else ""
        if not name or not _NAME_CHARS.fullmatch(name):
            self.phase = "calls"
            self.fail_through("bad tool name", self.call_end, close_block=False)
            return True
        self.begin(name)
        self.phase = "r1_fence"
        return True

    def _phase_r1_fence(self) -> bool:
        self.skip_ws()
        found = self.expect("```json", "```")
        if found is None:
            return False
        self._start_args()
        return True


class _KimiReader(_SectionReader):
    call_begin = "<|tool_call_begin|>"
    separator = "<|tool_call_argument_begin|>"
    call_end = "<|tool_call_end|>"
    section_end = "<|tool_calls_section_end|>"

    def name_from_header(self, header: str) -> str | None:
        # The header is the call id, `functions.NAME:INDEX`.
        name = header.strip()
        name = name.removeprefix("functions.")
        name = name.rsplit(":", 1)[0] if ":" in name else name
        return name if name and _NAME_CHARS.fullmatch(name) else None


@dataclass(frozen=True, slots=True)
class _XmlTags:
    function_open: str
    function_name_end: str
    function_close: str
    parameter_open: str
    parameter_name_end: str
    parameter_close: str = "</parameter>"


_QWEN_XML = _XmlTags("<function=", ">", "</function>", "<parameter=", ">")
_MINIMAX_XML = _XmlTags('<invoke name="', '">', "</invoke>", '<parameter name="', '">')


class _XmlReader(_Reader):
    """Functions with one tag per parameter: Qwen3-Coder / Qwen3.5 / Nemotron 3
    (`<function=NAME><parameter=K>V</parameter></function>` in `<tool_call>`), Seed-OSS
    (the same in `<seed:tool_call>`), MiniMax (`<invoke name="NAME"><parameter name="K">`).
    Values are raw text, typed by the tool's schema."""

    def __init__(
        self,
        ctx: _Context,
        pos: int,
        tags: _XmlTags,
        block_close: str | None,
        *,
        json_fallback: bool = False,
    ) -> None:
        super().__init__(ctx, pos)
        self.tags = tags
        self.block_close = block_close
        self.json_fallback = json_fallback
        self.arguments: dict[str, Any] = {}
        self.key = ""
        self.function_end = pos
        self.phase = "function"

    def _skip_target(self) -> str:
        return self.block_close or self.tags.function_close

    def _phase_function(self) -> bool:
        if self.block_close is None and self.settled:
            self.close()  # opened by a bare <function=...>: one function per block
            return True
        self.skip_ws()
        if not self.more():
            return False
        if self.json_fallback and not self.settled and self.text[self.pos] == "{":
            # Qwen models sometimes fall back to Hermes-style JSON in the same tags.
            self.delegate(_TaggedJsonReader(self.ctx, self.pos, self.block_close))
            return True
        options = (self.tags.function_open,) + ((self.block_close,) if self.block_close else ())
        found = self.expect(*options)
        if found is None:
            return False
        if found == self.tags.function_open:
            self.next_call(self.pos - len(found))
            self.phase = "name"
        elif found:
            self.close()
        elif self.settled:
            self.close(self.function_end)  # text after the functions, with no block end
        else:
            self.fail(f"expected {self.tags.function_open}")
        return True

    def _phase_name(self) -> bool:
        found = self.until(self.tags.function_name_end, limit=_MAX_NAME)
        if found is None:
            return False
        name = found[0].strip() if found else ""
        if not name or not _NAME_CHARS.fullmatch(name):
            self.fail_through("bad function name", self._skip_target())
            return True
        self.begin(name)
        self.arguments = {}
        self.phase = "parameters"
        return True

    def _phase_parameters(self) -> bool:
        self.skip_ws()
        found = self.expect(self.tags.parameter_open, self.tags.function_close)
        if found is None:
            return False
        if found == self.tags.parameter_open:
            self.phase = "key"
        elif found:
            self.emit(_Args("}" if self.arguments else "{}"))
            self.end_call(dict(self.arguments), self.pos)
            self.function_end = self.pos
            self.phase = "function"
        else:
            self.fail_through("expected a parameter or the function's end", self._skip_target())
        return True

    def _phase_key(self) -> bool:
        found = self.until(self.tags.parameter_name_end, limit=_MAX_NAME)
        if found is None:
            return False
        if found is False or not found[0].strip():
            self.fail_through("bad parameter name", self._skip_target())
            return True
        self.key = found[0].strip()
        self.phase = "value"
        return True

    def _phase_value(self) -> bool:
        found = self.until(self.tags.parameter_close)
        if not found:
            return False
        raw = _trim_newline(found[0])
        value = _typed_value(raw, self.ctx.parameter_schema(self.name, self.key))
        self._add_argument(self.key, value)
        self.phase = "parameters"
        return True

    def _add_argument(self, key: str, value: Any) -> None:
        prefix = ", " if self.arguments else "{"
        pair = f"{json.dumps(key, ensure_ascii=False)}: {json.dumps(value, ensure_ascii=False)}"
        self.emit(_Args(prefix + pair))
        self.arguments[key] = value

    def conclude(self) -> None:
        if self.phase == "function" and self.settled:
            self.close(len(self.text))
        else:
            super().conclude()


class _GlmReader(_XmlReader):
    """GLM 4.6 / 4.7: `<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value></tool_call>`
    (4.6 puts each on its own line)."""

    def __init__(self, ctx: _Context, pos: int) -> None:
        super().__init__(ctx, pos, _QWEN_XML, "</tool_call>")
        self.phase = "glm_name"

    def _phase_glm_name(self) -> bool:
        self.skip_ws()
        ends = [self.text.find(d, self.pos) for d in ("\n", "<arg_key>", "</tool_call>")]
        found = [at for at in ends if at != -1]
        reach = min(found) if found else len(self.text)
        if reach - self.pos > _MAX_NAME:
            self.fail_through("bad tool name", "</tool_call>")
            return True
        if not found:
            return False
        name = self.text[self.pos : reach].strip()
        if not name or not _NAME_CHARS.fullmatch(name):
            self.fail_through("bad tool name", "</tool_call>")
            return True
        self.pos = reach
        self.begin(name)
        self.phase = "glm_args"
        return True

    def _phase_glm_args(self) -> bool:
        self.skip_ws()
        found = self.expect("<arg_key>", "</tool_call>")
        if found is None:
            return False
        if found == "<arg_key>":
            self.phase = "glm_key"
        elif found:
            self._finish(self.pos)
        else:
            self.fail_through("expected <arg_key> or </tool_call>", "</tool_call>")
        return True

    def _phase_glm_key(self) -> bool:
        found = self.until("</arg_key>", limit=_MAX_NAME)
        if found is None:
            return False
        if found is False or not found[0].strip():
            self.fail_through("bad argument name", "</tool_call>")
            return True
        self.key = found[0].strip()
        self.phase = "glm_value_open"
        return True

    def _phase_glm_value_open(self) -> bool:
        self.skip_ws()
        found = self.expect("<arg_value>")
        if found is None:
            return False
        if not found:
            self.fail_through("expected <arg_value>", "</tool_call>")
        else:
            self.phase = "glm_value"
        return True

    def _phase_glm_value(self) -> bool:
        found = self.until("</arg_value>")
        if not found:
            return False
        value = _typed_value(_trim_newline(found[0]), self.ctx.parameter_schema(self.name, self.key))
        self._add_argument(self.key, value)
        self.phase = "glm_args"
        return True

    def _finish(self, end: int) -> None:
        self.emit(_Args("}" if self.arguments else "{}"))
        self.end_call(dict(self.arguments), end)
        self.close(end)

    def conclude(self) -> None:
        if self.phase == "glm_args":
            self._finish(len(self.text))
        else:
            _Reader.conclude(self)


_PY_QUOTES = ("'", '"')
_IDENTIFIER = re.compile(r"[A-Za-z_]\w{0,63}")


class _PythonicReader(_Reader):
    """LFM2: `<|tool_call_start|>[name(k=v, ...), ...]<|tool_call_end|>`."""

    closer = "<|tool_call_end|>"

    def __init__(self, ctx: _Context, pos: int) -> None:
        super().__init__(ctx, pos)
        self.scanner: _BracketScanner | None = None
        self.list_end = pos
        self.phase = "open"

    def _phase_open(self) -> bool:
        self.skip_ws()
        found = self.expect("[")
        if found is None:
            return False
        if not found:
            self.fail("expected a list of calls")
        else:
            self.phase = "call"
        return True

    def _phase_call(self) -> bool:
        self.skip_ws()
        start = self.pos
        name = self.read_name()
        if name is None:
            return False
        if not name or not self.text.startswith("(", self.pos):
            if name and self.pos >= len(self.text):
                return False
            self.fail_through("expected a call: name(arguments)", self.closer)
            return True
        self.next_call(start)
        self.begin(name)
        self.scanner = _BracketScanner(self.pos, _PY_QUOTES, escapes=True)
        self.phase = "arguments"
        return True

    def _phase_arguments(self) -> bool:
        assert self.scanner is not None
        self.scanner.scan(self.text)
        if self.scanner.error is not None:
            self.pos = self.scanner.pos
            self.fail_through(f"invalid call: {self.scanner.error}", self.closer)
            return True
        if self.scanner.end is None:
            return False
        self.pos = self.scanner.end
        arguments, problem = _python_kwargs(self.text[self.scanner.start + 1 : self.pos - 1])
        self.emit(_Fail(problem, self.pos) if arguments is None else _End(self.name, arguments, self.pos))
        self.phase = "separator"
        return True

    def _phase_separator(self) -> bool:
        self.skip_ws()
        found = self.expect(",", "]")
        if found is None:
            return False
        if found == ",":
            self.phase = "call"
        elif found:
            self.list_end = self.pos
            self.phase = "closer"
        else:
            self.fail_through("expected ',' or ']' between calls", self.closer)
        return True

    def _phase_closer(self) -> bool:
        self.skip_ws()
        found = self.expect(self.closer)
        if found is None:
            return False
        self.close(self.pos if found else self.list_end)
        return True

    def conclude(self) -> None:
        if self.phase == "closer":
            self.close(len(self.text))
        else:
            super().conclude()


class _PythonTagReader(_Reader):
    """After `<|python_tag|>` (Llama 3.1, Functionary v3.1): a JSON call, a built-in tool as
    `name.call(k=v)`, or raw code for the code tool, up to the end of the message."""

    code_ends = ("<|eom_id|>", "<|eot_id|>")

    def __init__(self, ctx: _Context, pos: int, code_tool: str) -> None:
        super().__init__(ctx, pos)
        self.code_tool = code_tool
        self.scanner: _BracketScanner | None = None
        self.code_start = pos
        self.sent = pos
        self.phase = "start"

    def _phase_start(self) -> bool:
        self.skip_ws()
        if not self.more():
            return False
        if self.text[self.pos] == "{":
            self.delegate(_TaggedJsonReader(self.ctx, self.pos, None))
            return True
        match = _IDENTIFIER.match(self.text, self.pos)
        end = match.end() if match else self.pos
        rest = self.text[end : end + len(".call(")]
        if match and rest == ".call(":
            self.begin(self.text[self.pos : end])
            self.pos = end + len(".call")
            self.scanner = _BracketScanner(self.pos, _PY_QUOTES, escapes=True)
            self.phase = "builtin"
            return True
        if match and len(rest) < len(".call(") and ".call(".startswith(rest) and not self.at_end:
            return False
        self._start_code()
        return True

    def _phase_builtin(self) -> bool:
        assert self.scanner is not None
        self.scanner.scan(self.text)
        if self.scanner.error is not None:
            self.pos = self.scanner.pos
            self.fail(f"invalid call: {self.scanner.error}")
            return True
        if self.scanner.end is None:
            return False
        self.pos = self.scanner.end
        arguments, problem = _python_kwargs(self.text[self.scanner.start + 1 : self.pos - 1])
        if arguments is None:
            self.fail(problem)
        else:
            self.end_call(arguments, self.pos)
            self.close()
        return True

    def _start_code(self) -> None:
        self.begin(self.code_tool)
        self.emit(_Args('{"code": "'))
        self.code_start = self.sent = self.pos
        self.phase = "code"

    def _phase_code(self) -> bool:
        found = _earliest(self.text[self.sent :], self.code_ends)
        if found is not None:
            at = self.sent + found[0]
            self._send_code(at)
            self._finish_code(at, at + len(found[1]))
            return True
        hold = _partial_start(self.text, self.code_ends, len(self.text))
        self._send_code(len(self.text) if hold is None else max(hold, self.sent))
        return False

    def _send_code(self, upto: int) -> None:
        if upto > self.sent:
            piece = json.dumps(self.text[self.sent : upto], ensure_ascii=False)[1:-1]
            self.emit(_Args(piece))
            self.sent = upto

    def _finish_code(self, code_end: int, end: int) -> None:
        self.emit(_Args('"}'))
        self.end_call({"code": self.text[self.code_start : code_end]}, end)
        self.close(end)

    def conclude(self) -> None:
        if self.phase == "code":
            self._send_code(len(self.text))
            self._finish_code(len(self.text), len(self.text))
        else:
            super().conclude()


class _Gemma4Reader(_Reader):
    """Gemma 4: `<|tool_call>call:NAME{key:value,...}<tool_call|>`."""

    closer = "<tool_call|>"

    def __init__(self, ctx: _Context, pos: int) -> None:
        super().__init__(ctx, pos)
        self.scanner: _BracketScanner | None = None
        self.arguments: dict[str, Any] = {}
        self.phase = "prefix"

    def _phase_prefix(self) -> bool:
        found = self.expect("call:")
        if found is None:
            return False
        if not found:
            self.fail("expected call:NAME after <|tool_call>")
        else:
            self.phase = "name"
        return True

    def _phase_name(self) -> bool:
        name = self.read_name()
        if name is None:
            return False
        if not name:
            self.fail_through("expected a tool name", self.closer)
            return True
        self.begin(name)
        self.phase = "brace"
        return True

    def _phase_brace(self) -> bool:
        if not self.more():
            return False
        if self.text[self.pos] != "{":
            self.fail_through("expected '{' after the tool name", self.closer)
            return True
        self.scanner = _BracketScanner(self.pos, (_GEMMA_QUOTE,), escapes=False)
        self.phase = "arguments"
        return True

    def _phase_arguments(self) -> bool:
        assert self.scanner is not None
        self.scanner.scan(self.text)
        if self.scanner.error is not None:
            self.pos = self.scanner.pos
            self.fail_through(f"invalid arguments: {self.scanner.error}", self.closer)
            return True
        if self.scanner.end is None:
            return False
        self.pos = self.scanner.end
        try:
            value = _GemmaValue(self.text[self.scanner.start : self.pos]).parse()
        except (ValueError, RecursionError) as err:
            self.fail_through(f"invalid arguments: {err}", self.closer)
            return True
        self.arguments = value
        self.phase = "closer"
        return True

    def _phase_closer(self) -> bool:
        self.skip_ws()
        found = self.expect(self.closer)
        if found is None:
            return False
        if found:
            self.end_call(self.arguments, self.pos)
            self.close()
        else:
            self.fail_through(f"unexpected text before {self.closer}", self.closer)
        return True

    def conclude(self) -> None:
        if self.phase == "closer":
            self.end_call(self.arguments, len(self.text))
            self.close(len(self.text))
        else:
            super().conclude()


class _CommandRPlusReader(_Reader):
    """Command R+: `Action: ```json [ {"tool_name": ..., "parameters": ...} ] ````."""

    def __init__(self, ctx: _Context, pos: int) -> None:
        super().__init__(ctx, pos)
        self.phase = "fence"

    def _phase_fence(self) -> bool:
        self.skip_ws()
        found = self.expect("```json")
        if found is None:
            return False
        if not found:
            self.reject()  # "Action:" in prose
        else:
            self.delegate(_JsonArrayReader(self.ctx, self.pos, "```"))
        return True

    def conclude(self) -> None:
        self.reject()


# --- formats --------------------------------------------------------------------------

ReaderFactory: TypeAlias = Callable[[str, _Context], _Reader]


@dataclass(frozen=True, slots=True)
class _Syntax:
    openers: tuple[str, ...]
    reader: ReaderFactory
    anchored: tuple[str, ...] = ()
    """Openers recognised only at the start of the content or right after a call."""


def _tagged(closer: str) -> ReaderFactory:
    return lambda opener, ctx: _TaggedJsonReader(ctx, len(opener), closer)


def _json_list(closer: str | None, *, reject_non_lists: bool = False) -> ReaderFactory:
    return lambda opener, ctx: _JsonArrayReader(
        ctx, len(opener), closer, reject_non_lists=reject_non_lists
    )


def _llama3(opener: str, ctx: _Context) -> _Reader:
    if opener == "{":
        return _TaggedJsonReader(ctx, 0, None, reject_non_calls=True)
    return _PythonTagReader(ctx, len(opener), "code_interpreter")


def _functionary(opener: str, ctx: _Context) -> _Reader:
    if opener == "<|python_tag|>":
        return _PythonTagReader(ctx, len(opener), "python")
    return _FunctionaryReader(ctx, len(opener))


def _qwen3_coder(opener: str, ctx: _Context) -> _Reader:
    if opener == "<function=":
        return _XmlReader(ctx, 0, _QWEN_XML, None)
    return _XmlReader(ctx, len(opener), _QWEN_XML, "</tool_call>", json_fallback=True)


_DEEPSEEK_OPENERS = ("<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>")


def _deepseek(opener: str, ctx: _Context) -> _Reader:
    # A reply may skip the section token and start with the first call's.
    return _DeepSeekReader(ctx, len(opener) if opener == _DEEPSEEK_OPENERS[0] else 0)


def _kimi(opener: str, ctx: _Context) -> _Reader:
    return _KimiReader(ctx, len(opener) if opener == "<|tool_calls_section_begin|>" else 0)


_SYNTAXES: dict[str, _Syntax] = {
    "default": _Syntax((TOOL_REQUEST_OPEN,), _tagged(TOOL_REQUEST_CLOSE)),
    "hermes": _Syntax(("<tool_call>",), _tagged("</tool_call>")),
    "llama3": _Syntax(("<|python_tag|>",), _llama3, anchored=("{",)),
    "mistral": _Syntax(("[TOOL_CALLS]",), lambda op, ctx: _MistralReader(ctx, len(op))),
    "qwen3_coder": _Syntax(("<tool_call>", "<function="), _qwen3_coder),
    "seed_oss": _Syntax(
        ("<seed:tool_call>",),
        lambda op, ctx: _XmlReader(ctx, len(op), _QWEN_XML, "</seed:tool_call>"),
    ),
    "minimax": _Syntax(
        ("<minimax:tool_call>",),
        lambda op, ctx: _XmlReader(ctx, len(op), _MINIMAX_XML, "</minimax:tool_call>"),
    ),
    "glm": _Syntax(("<tool_call>",), lambda op, ctx: _GlmReader(ctx, len(op))),
    "deepseek_r1": _Syntax(_DEEPSEEK_OPENERS, _deepseek),
    "deepseek_v3": _Syntax(_DEEPSEEK_OPENERS, _deepseek),
    "kimi_k2": _Syntax(("<|tool_calls_section_begin|>", "<|tool_call_begin|>"), _kimi),
    "granite": _Syntax(("<|tool_call|>",), _json_list(None)),
    "nemotron": _Syntax(("<TOOLCALL>",), _json_list("</TOOLCALL>")),
    "firefunction": _Syntax(("functools",), _json_list(None, reject_non_lists=True)),
    "functionary_v3_1": _Syntax(("<function=", "<|python_tag|>"), _functionary),
    "command_r7b": _Syntax(("<|START_ACTION|>",), _json_list("<|END_ACTION|>")),
    "command_r_plus": _Syntax(("Action:",), lambda op, ctx: _CommandRPlusReader(ctx, len(op))),
    "gpt_oss": _Syntax(
        (
            "<|start|>assistant to=functions.",
            "<|channel|>commentary to=functions.",
            "to=functions.",
        ),
        lambda op, ctx: _HarmonyReader(ctx, len(op)),
    ),
    "lfm2": _Syntax(("<|tool_call_start|>",), lambda op, ctx: _PythonicReader(ctx, len(op))),
    "gemma4": _Syntax(("<|tool_call>",), lambda op, ctx: _Gemma4Reader(ctx, len(op))),
}

TOOL_FORMATS: tuple[str, ...] = tuple(_SYNTAXES)
"""Every format `ToolCallParser` reads."""


# --- the streaming parser -------------------------------------------------------------

_ID_ALPHABET = string.ascii_letters + string.digits


def new_call_id() -> str:
    """A call id: 9 random letters and digits, the shape Mistral's templates demand."""
    return "".join(random.choices(_ID_ALPHABET, k=9))


@dataclass(slots=True)
class _OpenCall:
    index: int
    id: str
    name: str
    doomed: str | None
    """Why the call will fail whatever follows (an unknown tool); nothing is announced."""
    streamed: bool = False


class ToolCallParser:
    """An OutputParser that finds tool calls in content text as it streams.

    Ordinary text passes through as ContentDelta at once (only a possible call marker
    and trailing whitespace are held back). Each call gives ToolCallStarted as soon as
    its name is known, ToolCallArgumentsDelta pieces whose concatenation is the
    arguments' JSON text, and ToolCallFinished when it closes. A call that does not
    parse stays in the content and gives a ToolCallParseError; if it was already
    started, that error cancels it and the next call reuses its index. Never raises.
    """

    def __init__(
        self,
        format: str,  # noqa: A002 - the public name the callers use
        tool_names: Collection[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> None:
        syntax = _SYNTAXES.get(format)
        if syntax is None:
            raise ValueError(
                f"unknown tool-call format {format!r}; known: {', '.join(TOOL_FORMATS)}"
            )
        self.format = format
        self._syntax = syntax
        functions = _function_specs(tools)
        self._ctx = _Context(functions)
        if tool_names is not None:
            self._names: frozenset[str] | None = frozenset(tool_names)
        else:
            self._names = frozenset(functions) if functions else None
        self.raw_calls: list[str] = []
        """The raw text of each parsed call, by index, whitespace around it included."""
        self._buffer = ""
        self._block: str | None = None
        self._reader: _Reader | None = None
        self._opener = ""
        self._lead = ""
        self._consumed = 0
        self._settled = 0
        self._last_ok = False
        self._after_call = False
        self._anchored = True
        self._call: _OpenCall | None = None
        self._broken = False

    def feed(self, text: str) -> list[Event]:
        if not text:
            return []
        return self._guarded(text, at_end=False)

    def finish(self) -> list[Event]:
        return self._guarded("", at_end=True)

    def _guarded(self, text: str, *, at_end: bool) -> list[Event]:
        if self._broken:
            return [ContentDelta(text)] if text else []
        out: list[Event] = []
        try:
            if self._block is not None:
                self._block += text
            else:
                self._buffer += text
            self._pump(out, at_end)
        except Exception as err:  # noqa: BLE001 - a parser bug must not end the prediction
            self._give_up(err, out)
        return _merge(out)

    def _give_up(self, err: Exception, out: list[Event]) -> None:
        """Pass everything through from now on, keeping what is pending as content."""
        pending = self._lead + (self._block or "")[self._consumed :] + self._buffer
        self._broken = True
        self._block, self._buffer, self._lead = None, "", ""
        reason = f"internal error in the {self.format} tool-call parser: {err!r}"
        out.append(ToolCallParseError(pending, reason))
        if pending:
            out.append(ContentDelta(pending))

    def _pump(self, out: list[Event], at_end: bool) -> None:
        while True:
            if self._block is not None:
                if not self._read_block(out, at_end):
                    return
            elif not self._read_text(out, at_end):
                return

    # -- ordinary text

    def _read_text(self, out: list[Event], at_end: bool) -> bool:
        """Emit what is surely content; True when a block opened."""
        buffer = self._buffer
        found, hold = self._find_opener(buffer, at_end)
        if found is None:
            if at_end:
                self._buffer = ""
                self._final_text(buffer, out)
                return False
            safe = buffer[:hold].rstrip()  # whitespace waits to see what follows it
            self._buffer = buffer[len(safe) :]
            self._emit_content(safe, out)
            return False
        at, opener = found
        before = buffer[:at]
        text = before.rstrip()
        self._emit_content(text, out)
        self._lead = before[len(text) :]
        self._open_block(opener, buffer[at:])
        return True

    def _final_text(self, text: str, out: list[Event]) -> None:
        if text and not text.strip() and self._after_call and self.raw_calls:
            self.raw_calls[-1] += text  # the whitespace after the last call is the call's
        else:
            self._emit_content(text, out)

    def _find_opener(self, buffer: str, at_end: bool) -> tuple[tuple[int, str] | None, int]:
        """The earliest opener in the buffer, or None and where a partial one may start."""
        openers = self._syntax.openers
        found = _earliest(buffer, openers)
        limit = found[0] if found else len(buffer)
        anchored = self._syntax.anchored if self._anchored else ()
        start = len(buffer) - len(buffer.lstrip())
        if anchored and start < limit:
            for opener in anchored:
                if buffer.startswith(opener, start):
                    found, limit = (start, opener), start
                    break
        if at_end:
            return found, len(buffer)
        hold = _partial_start(buffer, openers, limit)
        if anchored and start < limit and start < len(buffer):
            tail = buffer[start:]
            if any(len(tail) < len(op) and op.startswith(tail) for op in anchored):
                hold = start if hold is None else min(hold, start)
        if hold is not None and hold < limit:
            return None, hold
        return found, len(buffer)

    def _emit_content(self, text: str, out: list[Event]) -> None:
        if not text:
            return
        out.append(ContentDelta(text))
        self._after_call = False
        if text.strip():
            self._anchored = False

    # -- blocks

    def _open_block(self, opener: str, text: str) -> None:
        self._block = text
        self._buffer = ""
        self._opener = opener
        self._reader = self._syntax.reader(opener, self._ctx)
        self._consumed = 0
        self._settled = 0
        self._last_ok = False

    def _read_block(self, out: list[Event], at_end: bool) -> bool:
        """Apply the reader's steps; True when the block is over."""
        assert self._block is not None and self._reader is not None
        for step in self._reader.advance(self._block, at_end):
            self._apply(step, out)
            if self._block is None:
                return True
        if at_end:  # a reader that did not settle its block: settle it here
            end = len(self._block)
            self._fail("the tool call is not closed", end, out)
            self._close(end, out)
            return True
        return False

    def _apply(self, step: _Step, out: list[Event]) -> None:
        if isinstance(step, _Begin):
            self._begin(step.name, out)
        elif isinstance(step, _Args):
            self._arguments(step.text, out)
        elif isinstance(step, _End):
            self._end(step, out)
        elif isinstance(step, _Fail):
            self._fail(step.reason, step.end, out)
        elif isinstance(step, _Tail):
            if self._last_ok:  # after a failed call, the separator leads the next one
                self._tail(step.end, out)
        elif isinstance(step, _Close):
            self._close(step.end, out)
        else:
            self._reject(out)

    def _begin(self, name: str, out: list[Event]) -> None:
        if self._call is not None:
            return
        known = self._names is None or name in self._names
        doomed = None if known else f"unknown tool {name!r}"
        call = _OpenCall(len(self.raw_calls), new_call_id(), name, doomed)
        self._call = call
        if doomed is None:
            out.append(ToolCallStarted(call.index, call.id, name))

    def _arguments(self, text: str, out: list[Event]) -> None:
        call = self._call
        if call is None or call.doomed or not text:
            return
        out.append(ToolCallArgumentsDelta(call.index, text))
        call.streamed = True

    def _end(self, step: _End, out: list[Event]) -> None:
        problem = self._problem(step)
        if problem:
            self._fail(problem, step.end, out)
            return
        if self._call is None:
            self._begin(step.name, out)
        call = self._call
        assert call is not None
        if not call.streamed:
            self._arguments(json.dumps(step.arguments, ensure_ascii=False), out)
        tool_call = ToolCall(id=call.id, name=call.name, arguments=step.arguments)
        out.append(ToolCallFinished(call.index, tool_call))
        self.raw_calls.append(self._take_raw(step.end))
        self._call = None
        self._settled += 1
        self._last_ok = True

    def _problem(self, step: _End) -> str | None:
        call = self._call
        if call is not None and call.doomed:
            return call.doomed
        if self._names is not None and step.name not in self._names:
            return f"unknown tool {step.name!r}"
        if call is not None and call.name != step.name:
            return "the tool call names two different tools"
        if not isinstance(step.arguments, dict):
            return "the arguments are not a JSON object"
        return None

    def _fail(self, reason: str, end: int, out: list[Event]) -> None:
        raw = self._take_raw(end)
        self._call = None
        self._settled += 1
        self._last_ok = False
        out.append(ToolCallParseError(raw, reason))
        self._emit_content(raw, out)

    def _close(self, end: int, out: list[Event]) -> None:
        assert self._block is not None
        if self._call is not None:
            self._fail("the tool call is not complete", end, out)
        elif self._settled == 0:
            self._fail("no tool call in the block", end, out)
        self._tail(end, out)
        self._buffer = self._block[self._consumed :]
        self._block, self._reader = None, None
        self._after_call = self._last_ok
        if self._last_ok:
            self._anchored = True

    def _tail(self, end: int, out: list[Event]) -> None:
        tail = self._take_raw(end)
        if tail and self._last_ok:
            self.raw_calls[-1] += tail
        else:
            self._emit_content(tail, out)

    def _reject(self, out: list[Event]) -> None:
        assert self._block is not None
        self._call = None
        self._emit_content(self._lead + self._opener, out)
        self._lead = ""
        self._buffer = self._block[len(self._opener) :]
        self._block, self._reader = None, None

    def _take_raw(self, end: int) -> str:
        """The block text from what is accounted for up to `end`, with the whitespace
        that came before the block."""
        assert self._block is not None
        # Never less than the opener: the text after a settled block is scanned again,
        # so it must be shorter than the block was.
        end = max(end, self._consumed, len(self._opener))
        end = min(end, len(self._block))
        raw = self._lead + self._block[self._consumed : end]
        self._lead = ""
        self._consumed = end
        return raw


def _merge(events: list[Event]) -> list[Event]:
    """Join neighbouring content pieces, and argument pieces of one call."""
    merged: list[Event] = []
    for event in events:
        last = merged[-1] if merged else None
        if isinstance(event, ContentDelta) and isinstance(last, ContentDelta):
            merged[-1] = ContentDelta(last.text + event.text)
        elif (
            isinstance(event, ToolCallArgumentsDelta)
            and isinstance(last, ToolCallArgumentsDelta)
            and last.index == event.index
        ):
            merged[-1] = ToolCallArgumentsDelta(event.index, last.text + event.text)
        else:
            merged.append(event)
    return merged


# --- reasoning, then tool calls -------------------------------------------------------


class OutputPipeline:
    """An OutputParser: the reasoning parser first, then its content through the tool-call
    parser; reasoning passes through, in order."""

    def __init__(self, reasoning: ReasoningParser, tools: ToolCallParser | None) -> None:
        self.reasoning = reasoning
        self.tools = tools

    def feed(self, text: str) -> list[Event]:
        return self._route(self.reasoning.feed(text))

    def finish(self) -> list[Event]:
        events = self._route(self.reasoning.finish())
        if self.tools is not None:
            events.extend(self.tools.finish())
        return events

    def _route(self, events: list[Event]) -> list[Event]:
        if self.tools is None:
            return events
        out: list[Event] = []
        for event in events:
            if isinstance(event, ContentDelta):
                out.extend(self.tools.feed(event.text))
            else:
                out.append(event)
        return out


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    """A complete reply taken apart."""

    content: str
    reasoning: str
    tool_calls: list[ToolCall]
    errors: list[ToolCallParseError]


def parse_output(
    raw_text: str,
    *,
    chat_template: str | None = None,
    format: str | None = None,  # noqa: A002 - the public name the callers use
    tools: list[dict[str, Any]] | None = None,
) -> ParsedOutput:
    """Split a model's complete raw output into content, reasoning and tool calls.

    Reasoning markers come from the chat template; the tool-call format is `format`, or
    the one the template implies. Calls that do not parse stay in the content and are
    listed in `errors`.
    """
    markers = markers_for_template(chat_template) if chat_template else None
    tool_format = format or detect_tool_format(chat_template)
    pipeline = OutputPipeline(
        ReasoningParser(markers, starts_in_reasoning=_starts_in_reasoning(raw_text, markers)),
        ToolCallParser(tool_format, tools=tools),
    )
    events = pipeline.feed(raw_text) + pipeline.finish()
    return ParsedOutput(
        content="".join(e.text for e in events if isinstance(e, ContentDelta)),
        reasoning="".join(e.text for e in events if isinstance(e, ReasoningDelta)),
        tool_calls=[e.call for e in events if isinstance(e, ToolCallFinished)],
        errors=[e for e in events if isinstance(e, ToolCallParseError)],
    )


def _starts_in_reasoning(text: str, markers: ReasoningMarkers | None) -> bool:
    """Without the prompt, a close marker with no open marker before it means that the
    template opened the reasoning block (QwQ, the R1 distills, ...)."""
    if markers is None:
        return False
    close = text.find(markers.close)
    if close == -1:
        return False
    opened = text.find(markers.open)
    return opened == -1 or opened > close
