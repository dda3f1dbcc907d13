"""Readers for calls whose arguments are found by bracket matching: Python calls
(LFM2's list, Llama 3's `<|python_tag|>` built-ins and code) and Gemma 4's
`call:NAME{...}`; and the readers of raw code for the code tool (Functionary v3.2's
recipient messages among them)."""

from __future__ import annotations

import json
import re

from engine.toolcalls.json_readers import NamedJsonReader, TaggedJsonReader
from engine.toolcalls.scanner import BracketScanner, earliest, partial_start
from engine.toolcalls.steps import Args, CallListReader, End, Fail, OneCallReader, Reader
from engine.toolcalls.tool_specs import Context
from engine.toolcalls.values import GEMMA_QUOTE, GemmaValue, python_kwargs

PY_QUOTES = ("'", '"')
_IDENTIFIER = re.compile(r"[A-Za-z_]\w{0,63}")


class PythonicReader(CallListReader):
    """LFM2: `<|tool_call_start|>[name(k=v, ...), ...]<|tool_call_end|>`."""

    closer = "<|tool_call_end|>"

    def __init__(self, ctx: Context, pos: int) -> None:
        super().__init__(ctx, pos)
        self.scanner: BracketScanner | None = None
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
            self.fail_call("expected a call: name(arguments)")
            return True
        self.next_call(start)
        self.begin(name)
        self.scanner = BracketScanner(self.pos, PY_QUOTES, escapes=True)
        self.phase = "arguments"
        return True

    def _phase_arguments(self) -> bool:
        assert self.scanner is not None
        self.scanner.scan(self.text)
        return self.settle_scan(self.scanner, "invalid call", self._arguments_read)

    def _arguments_read(self) -> None:
        assert self.scanner is not None
        arguments, problem = python_kwargs(self.text[self.scanner.start + 1 : self.pos - 1])
        self.emit(Fail(problem, self.pos) if arguments is None else End(self.name, arguments, self.pos))
        self.phase = "separator"

    def _phase_separator(self) -> bool:
        self.skip_ws()
        found = self.expect(",", "]")
        if found is None:
            return False
        if found == ",":
            self.phase = "call"
        elif found:
            self.end_list()
        else:
            self.fail_call("expected ',' or ']' between calls")
        return True


class PythonTagReader(Reader):
    """After `<|python_tag|>` (Llama 3.1, Functionary v3.1): a JSON call, a built-in tool as
    `name.call(k=v)`, or raw code for the code tool, up to the end of the message."""

    code_ends = ("<|eom_id|>", "<|eot_id|>")

    def __init__(self, ctx: Context, pos: int, code_tool: str) -> None:
        super().__init__(ctx, pos)
        self.code_tool = code_tool
        self.scanner: BracketScanner | None = None
        self.code_start = pos
        self.sent = pos
        self.phase = "start"

    def _phase_start(self) -> bool:
        self.skip_ws()
        if not self.more():
            return False
        if self.text[self.pos] == "{":
            self.delegate(TaggedJsonReader(self.ctx, self.pos, None))
            return True
        match = _IDENTIFIER.match(self.text, self.pos)
        end = match.end() if match else self.pos
        rest = self.text[end : end + len(".call(")]
        if match and rest == ".call(":
            self.begin(self.text[self.pos : end])
            self.pos = end + len(".call")
            self.scanner = BracketScanner(self.pos, PY_QUOTES, escapes=True)
            self.phase = "builtin"
            return True
        if match and len(rest) < len(".call(") and ".call(".startswith(rest) and not self.at_end:
            return False
        self._start_code()
        return True

    def _phase_builtin(self) -> bool:
        # No closer: a call that fails here ends the block (Reader.fail_call).
        assert self.scanner is not None
        self.scanner.scan(self.text)
        return self.settle_scan(self.scanner, "invalid call", self._builtin_read)

    def _builtin_read(self) -> None:
        assert self.scanner is not None
        arguments, problem = python_kwargs(self.text[self.scanner.start + 1 : self.pos - 1])
        if arguments is None:
            self.fail(problem)
        else:
            self.end_call(arguments, self.pos)
            self.close()

    def _start_code(self) -> None:
        self.begin(self.code_tool)
        self.emit(Args('{"code": "'))
        self.code_start = self.sent = self.pos
        self.phase = "code"

    def _phase_code(self) -> bool:
        found = earliest(self.text, self.code_ends, self.sent)
        if found is not None:
            at = found[0]
            self._send_code(at)
            self._finish_code(at, at + len(found[1]))
            return True
        hold = partial_start(self.text, self.code_ends, len(self.text), self.sent)
        self._send_code(len(self.text) if hold is None else max(hold, self.sent))
        return False

    def _send_code(self, upto: int) -> None:
        if upto > self.sent:
            piece = json.dumps(self.text[self.sent : upto], ensure_ascii=False)[1:-1]
            self.emit(Args(piece))
            self.sent = upto

    def _finish_code(self, code_end: int, end: int) -> None:
        self.emit(Args('"}'))
        self.end_call({"code": self.text[self.code_start : code_end]}, end)
        self.close(end)

    def conclude(self) -> None:
        if self.phase == "code":
            self._send_code(len(self.text))
            self._finish_code(len(self.text), len(self.text))
        else:
            super().conclude()


class RawCodeReader(PythonTagReader):
    """Raw code for the code tool, from the cursor to the end of the message."""

    def __init__(self, ctx: Context, pos: int, code_tool: str = "python") -> None:
        super().__init__(ctx, pos, code_tool)
        self.phase = "begin"

    def _phase_begin(self) -> bool:
        self._start_code()
        return True


class FunctionaryV32Reader(NamedJsonReader):
    """Functionary v3.2: messages `>>>RECIPIENT\n...`, the first one's `>>>` written by
    the generation prompt. `all` addresses the user (its line is dropped, the text is
    content); `NAME\n{json}` is a call; `python\n` takes raw code up to the end."""

    def __init__(self, ctx: Context, pos: int, *, first: bool = False) -> None:
        super().__init__(ctx, pos)
        self.recipient = ""
        self.phase = "repeated" if first else "name"

    def _phase_repeated(self) -> bool:
        # The output starts after the prompt's `>>>`; a model may write it again.
        if self.expect(">>>") is None:
            return False
        self.phase = "name"
        return True

    def _phase_name(self) -> bool:
        name = self.read_name()
        if name is None:
            return False
        self.recipient = name
        self.phase = "newline"
        if not name:
            self.reject()
        return True

    def _phase_newline(self) -> bool:
        found = self.expect("\n")
        if found is None:
            return False
        if not found:
            self.reject()  # not a recipient line: text
        elif self.recipient == "all":
            self.drop()
        else:
            self.phase = "body"
        return True

    def _phase_body(self) -> bool:
        if not self.more():
            return False
        if self.text[self.pos] == "{":
            self.begin(self.recipient)
            self.start_args()
        elif self.recipient == "python":
            self.delegate(RawCodeReader(self.ctx, self.pos))
        else:
            self.reject()
        return True

    def conclude(self) -> None:
        if self.phase in ("repeated", "name", "newline", "body"):
            self.reject()
        else:
            super().conclude()


class Gemma4Reader(OneCallReader):
    """Gemma 4: `<|tool_call>call:NAME{key:value,...}<tool_call|>`."""

    closer = "<tool_call|>"
    closers = (closer,)

    def __init__(self, ctx: Context, pos: int) -> None:
        super().__init__(ctx, pos)
        self.scanner: BracketScanner | None = None
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
        return self.begin_named_call("brace", self.fail_call)

    def _phase_brace(self) -> bool:
        if not self.more():
            return False
        if self.text[self.pos] != "{":
            self.fail_call("expected '{' after the tool name")
            return True
        self.scanner = BracketScanner(self.pos, (GEMMA_QUOTE,), escapes=False)
        self.phase = "arguments"
        return True

    def _phase_arguments(self) -> bool:
        assert self.scanner is not None
        self.scanner.scan(self.text)
        return self.settle_scan(self.scanner, "invalid arguments", self._arguments_read)

    def _arguments_read(self) -> None:
        assert self.scanner is not None
        try:
            value = GemmaValue(self.text[self.scanner.start : self.pos]).parse()
        except (ValueError, RecursionError) as err:
            self.fail_call(f"invalid arguments: {err}")
            return
        self.arguments = value
        self.phase = "closer"
