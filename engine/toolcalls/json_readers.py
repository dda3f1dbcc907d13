"""Readers for calls written as JSON: one object between tags (Hermes, the default
format, Llama 3), a JSON list (Mistral Nemo, Granite, Nemotron, FireFunction, Command
R7B and R+), and a name followed by a JSON arguments object (Functionary v3.1,
gpt-oss, Mistral's `NAME[ARGS]{...}`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from engine.toolcalls.scanner import (
    ARGUMENT_KEYS,
    JSON_WS,
    NAME_KEYS,
    JsonScanner,
    member_name,
    member_span,
)
from engine.toolcalls.steps import (
    Args,
    Begin,
    CallListReader,
    End,
    Fail,
    OneCallReader,
    Reader,
    Step,
)
from engine.toolcalls.tool_specs import Context


class JsonCall:
    """One call written as a JSON object, `{"name": ..., "arguments": {...}}`, followed as
    it streams: the name as soon as it is complete, the arguments' raw text as it comes."""

    def __init__(self, start: int) -> None:
        self.scanner = JsonScanner(start)
        self.name: str | None = None
        self._key: str | None = None
        self._sent: int | None = None

    def advance(self, text: str) -> list[Step]:
        scanner = self.scanner
        scanner.scan(text)
        steps: list[Step] = []
        if self.name is None:
            self.name = member_name(text, scanner)
            if self.name is None:
                return steps
            steps.append(Begin(self.name))
        if scanner.error is not None:
            return steps
        delta = self._argument_text(text)
        if delta:
            steps.append(Args(delta))
        return steps

    def _argument_text(self, text: str) -> str:
        # Only an object is streamed raw; arguments written as a JSON string are decoded
        # at the end and sent whole.
        span = member_span(self.scanner, (self._key,) if self._key else ARGUMENT_KEYS)
        if span is None or text[span[1]] != "{":
            return ""
        self._key, start, end = span
        upto = end if end is not None else self.scanner.pos
        sent = start if self._sent is None else self._sent
        self._sent = max(sent, upto)
        return text[sent:upto]

    def result(self, text: str) -> End | Fail:
        scanner = self.scanner
        assert scanner.begin is not None and scanner.end is not None
        try:
            value = json.loads(text[scanner.begin : scanner.end], strict=False)
        except (ValueError, RecursionError) as err:
            return Fail(f"invalid JSON: {err}", scanner.end)
        # Two names (or two argument objects) are ambiguous, and a stream would already
        # have announced the first: such a call fails, whether streamed or not.
        for keys in (NAME_KEYS, ARGUMENT_KEYS):
            written = [k for k in keys if k in scanner.members]
            if len(written) > 1 or scanner.repeated.intersection(keys):
                return Fail(f"the tool call has more than one {keys[0]!r}", scanner.end)
        return _call_from_object(value, scanner.end)


def follow_json_call(
    reader: Reader, call: JsonCall | None, read: Callable[[End | Fail], None]
) -> bool:
    """One move of a reader's phase that reads `call`'s JSON object: stream what the text
    so far shows of it (its name, its arguments), and once it is whole, with the cursor
    at its end, hand `read` the call it makes."""
    assert call is not None
    reader.emit_all(call.advance(reader.text))
    return reader.settle_scan(call.scanner, "invalid JSON", lambda: read(call.result(reader.text)))


def _call_from_object(value: Any, end: int) -> End | Fail:
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        value = value["function"]  # the OpenAI shape, as some models echo it
    if not isinstance(value, dict):
        return Fail("a tool call must be a JSON object", end)
    name = next((value[k] for k in NAME_KEYS if isinstance(value.get(k), str) and value[k]), None)
    if name is None:
        return Fail('the tool call has no "name"', end)
    key = next((k for k in ARGUMENT_KEYS if k in value), None)
    arguments = value[key] if key else {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments, strict=False) if arguments.strip() else {}
        except (ValueError, RecursionError):
            return Fail("the arguments string is not JSON", end)
    if not isinstance(arguments, dict):
        return Fail("the arguments are not a JSON object", end)
    return End(name, arguments, end)


class JsonArgs:
    """An arguments object written as raw JSON, streamed as it arrives."""

    def __init__(self, start: int) -> None:
        self.scanner = JsonScanner(start)
        self._sent: int | None = None

    def advance(self, text: str) -> list[Step]:
        scanner = self.scanner
        scanner.scan(text)
        if scanner.error is not None or scanner.begin is None:
            return []
        upto = scanner.end if scanner.end is not None else scanner.pos
        sent = scanner.begin if self._sent is None else self._sent
        self._sent = max(sent, upto)
        return [Args(text[sent:upto])] if upto > sent else []

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
    while i < len(text) and text[i] in JSON_WS and i - pos <= 32:
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


class JsonAfterOpener(Reader):
    """What the tagged and the list readers share: JSON written after an opener, up to
    `closer` (None: there is none). When `rejectable`, the opener may turn out not to
    start a call at all (Llama 3's bare `{`, FireFunction's plain word `functools`): it
    does not when the output ends before anything follows it."""

    def __init__(self, ctx: Context, pos: int, closer: str | None, rejectable: bool) -> None:
        super().__init__(ctx, pos)
        self.closer = closer
        self.rejectable = rejectable
        self.call: JsonCall | None = None
        self.phase = "open"

    def conclude(self) -> None:
        if self.phase == "open" and self.rejectable:
            self.reject()
        else:
            super().conclude()


class TaggedJsonReader(JsonAfterOpener, OneCallReader):
    """One JSON call object after an opener, up to a closer: Hermes/Qwen's
    `<tool_call>{...}</tool_call>`, the default `[TOOL_REQUEST]{...}[END_TOOL_REQUEST]`,
    Llama 3's bare `{...}` (no closer)."""

    def __init__(
        self, ctx: Context, pos: int, closer: str | None, *, reject_non_calls: bool = False
    ) -> None:
        super().__init__(ctx, pos, closer, reject_non_calls)
        self.closers = () if closer is None else (closer,)

    def _phase_open(self) -> bool:
        self.skip_ws()
        if not self.more():
            return False
        if self.rejectable:
            verdict = _looks_like_call(self.text, self.pos)
            if verdict is None:
                return False
            if not verdict:
                self.reject()
                return True
        if self.text[self.pos] != "{":
            self.fail("expected a JSON object after the tool-call marker")
            return True
        self.call = JsonCall(self.pos)
        self.phase = "object"
        return True

    def _phase_object(self) -> bool:
        return follow_json_call(self, self.call, self._object_read)

    def _object_read(self, result: End | Fail) -> None:
        if isinstance(result, Fail):
            self.fail_call(result.reason)
        else:
            self.name, self.arguments = result.name, result.arguments
            self.phase = "closer"


class JsonArrayReader(JsonAfterOpener, CallListReader):
    """Calls as a JSON list of objects after an opener: Mistral Nemo's `[TOOL_CALLS][...]`,
    Granite's `<|tool_call|>[...]`, Nemotron's `<TOOLCALL>[...]</TOOLCALL>`, FireFunction's
    `functools[...]`, Command R7B's `<|START_ACTION|>[...]<|END_ACTION|>`."""

    def __init__(
        self, ctx: Context, pos: int, closer: str | None, *, reject_non_lists: bool = False
    ) -> None:
        super().__init__(ctx, pos, closer, reject_non_lists)

    def _phase_open(self) -> bool:
        self.skip_ws()
        if not self.more():
            return False
        if self.text[self.pos] != "[":
            if self.rejectable:
                self.reject()  # FireFunction's marker is a plain word: "functools.partial"
            else:
                self.fail("expected a JSON list of tool calls")
            return True
        self.pos += 1
        self.phase = "element"
        return True

    def _phase_element(self) -> bool:
        return self._between_calls(
            "{", self._start_call, "expected a JSON object for each tool call"
        )

    def _start_call(self) -> None:
        self.next_call(self.pos)
        self.call = JsonCall(self.pos)
        self.phase = "call"

    def _phase_call(self) -> bool:
        return follow_json_call(self, self.call, self._call_read)

    def _call_read(self, result: End | Fail) -> None:
        if isinstance(result, End):
            self.name = result.name
        self.emit(result)
        self.phase = "separator"

    def _phase_separator(self) -> bool:
        return self._between_calls(",", self._after_comma, "expected ',' or ']' between tool calls")

    def _after_comma(self) -> None:
        self.pos += 1
        self.phase = "element"

    def _between_calls(self, char: str, then: Callable[[], None], problem: str) -> bool:
        """One move between the list's calls: at the next character after white space,
        `char` lets `then` go on and `]` ends the list; anything else fails the call
        with `problem`."""
        self.skip_ws()
        if not self.more():
            return False
        found = self.text[self.pos]
        if found == char:
            then()
        elif found == "]":
            self.pos += 1
            self.end_list()
        else:
            self.fail_call(problem)
        return True


class JsonArgsReader(Reader):
    """A reader whose calls carry their arguments as one raw JSON object after a header
    (the tool name, a call id): the object streams as it arrives; once it is whole, the
    reader moves on to `after_args`, where only the call's closer is left to read."""

    after_args = "closer"

    def __init__(self, ctx: Context, pos: int) -> None:
        super().__init__(ctx, pos)
        self.args: JsonArgs | None = None
        self.arguments: Any = None

    def start_args(self) -> None:
        self.args = JsonArgs(self.pos)
        self.phase = "args"

    def _phase_args(self) -> bool:
        assert self.args is not None
        self.emit_all(self.args.advance(self.text))
        return self.settle_scan(self.args.scanner, "invalid JSON in the arguments", self._args_read)

    def _args_read(self) -> None:
        assert self.args is not None
        value, problem = self.args.value(self.text)
        if problem:
            self.fail_call(problem)
        else:
            self.arguments = value
            self.phase = self.after_args


class NamedJsonReader(JsonArgsReader, OneCallReader):
    """A tool name, a header, then the arguments as a raw JSON object, then a closer:
    Functionary v3.1's `<function=NAME>{...}</function>`, gpt-oss's
    `to=functions.NAME<|channel|>commentary json<|message|>{...}<|call|>`, Mistral's
    `[TOOL_CALLS]NAME[ARGS]{...}`."""

    stray_text = "unexpected text after the arguments"

    def __init__(self, ctx: Context, pos: int) -> None:
        super().__init__(ctx, pos)
        self.closer = self.closers[0] if self.closers else None
        self.phase = "name"

    def header(self) -> bool | None:
        """Read what lies between name and arguments: True when done, None to wait, False
        when it failed or moved to another phase itself."""
        return True

    def _phase_name(self) -> bool:
        return self.begin_named_call("header", self.fail)

    def _phase_header(self) -> bool:
        verdict = self.header()
        if verdict is None:
            return False
        if verdict:
            self.start_args()
        return True


class FunctionaryReader(NamedJsonReader):
    closers = ("</function>",)

    def header(self) -> bool | None:
        found = self.expect(">")
        if found is None:
            return None
        if not found:
            self.fail("expected '>' after the function name")
            return False
        return True


class HarmonyReader(NamedJsonReader):
    """gpt-oss: the recipient comes either in the message header
    (`<|start|>assistant to=functions.NAME<|channel|>commentary json<|message|>`) or in the
    channel (`<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>`), on the
    commentary or the analysis channel. A message to anything but `functions.*` is for a
    built-in tool (`container.exec`, `browser.search`, `python`) that we never offer:
    dropped whole, as llama.cpp drops it. A `to=` without a message header is prose."""

    closers = ("<|call|>", "<|end|>")

    def _phase_name(self) -> bool:
        name = self.read_name()
        if name is None:
            return False
        function = name.removeprefix("functions.")
        if name.startswith("functions.") and function:
            self.begin(function)
            self.phase = "header"
        elif name:
            self.phase = "builtin"
        else:
            self.reject()
        return True

    def header(self) -> bool | None:
        found = self.until("<|message|>", limit=80)
        if found is None:
            return None
        if found is False:
            self.fail("expected <|message|> after the recipient")
            return False
        return True

    def _phase_builtin(self) -> bool:
        found = self.until("<|message|>", limit=80)
        if found is None:
            return False
        if found is False:
            self.reject()
        else:
            self.phase = "unsolicited"
        return True

    def _phase_unsolicited(self) -> bool:
        found = self.search(self.closers)
        if not found:
            return False
        self.drop(found[0] + len(found[1]))
        return True

    def conclude(self) -> None:
        if self.phase == "unsolicited":
            self.drop(len(self.text))
        elif self.phase == "builtin":
            self.reject()
        else:
            super().conclude()


class MistralReader(NamedJsonReader):
    """After `[TOOL_CALLS]`: a JSON list (Nemo), or NAME[ARGS]{...} (Small 3.2, Devstral,
    Ministral 3), possibly with [CALL_ID]id before [ARGS]."""

    def _phase_name(self) -> bool:
        self.skip_ws()
        if not self.more():
            return False
        if self.text[self.pos] == "[":
            self.delegate(JsonArrayReader(self.ctx, self.pos, None))
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
            self.start_args()
        return True

class CommandRPlusReader(Reader):
    """Command R+: `Action: ```json [ {"tool_name": ..., "parameters": ...} ] ````."""

    def __init__(self, ctx: Context, pos: int) -> None:
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
            self.delegate(JsonArrayReader(self.ctx, self.pos, "```"))
        return True

    def conclude(self) -> None:
        self.reject()
