"""Readers for XML-style calls with one tag per parameter: Qwen3-Coder, Seed-OSS,
MiniMax (one reader, told the tags), and GLM's key/value tags."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.toolcalls.json_readers import TaggedJsonReader
from engine.toolcalls.scanner import MAX_NAME, NAME_CHARS
from engine.toolcalls.steps import Args, Reader
from engine.toolcalls.tool_specs import Context
from engine.toolcalls.values import trim_newline, typed_value


@dataclass(frozen=True, slots=True)
class XmlTags:
    function_open: str
    function_name_end: str
    function_close: str
    parameter_open: str
    parameter_name_end: str
    parameter_close: str = "</parameter>"


QWEN_XML = XmlTags("<function=", ">", "</function>", "<parameter=", ">")
MINIMAX_XML = XmlTags('<invoke name="', '">', "</invoke>", '<parameter name="', '">')


class XmlReader(Reader):
    """Functions with one tag per parameter: Qwen3-Coder / Qwen3.5 / Nemotron 3
    (`<function=NAME><parameter=K>V</parameter></function>` in `<tool_call>`), Seed-OSS
    (the same in `<seed:tool_call>`), MiniMax (`<invoke name="NAME"><parameter name="K">`).
    Values are raw text, typed by the tool's schema."""

    def __init__(
        self,
        ctx: Context,
        pos: int,
        tags: XmlTags,
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
            self.delegate(TaggedJsonReader(self.ctx, self.pos, self.block_close))
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
        found = self.until(self.tags.function_name_end, limit=MAX_NAME)
        if found is None:
            return False
        name = found[0].strip() if found else ""
        if not name or not NAME_CHARS.fullmatch(name):
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
            self.emit(Args("}" if self.arguments else "{}"))
            self.end_call(dict(self.arguments), self.pos)
            self.function_end = self.pos
            self.phase = "function"
        else:
            self.fail_through("expected a parameter or the function's end", self._skip_target())
        return True

    def _phase_key(self) -> bool:
        found = self.until(self.tags.parameter_name_end, limit=MAX_NAME)
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
        raw = trim_newline(found[0])
        value = typed_value(raw, self.ctx.parameter_schema(self.name, self.key))
        self._add_argument(self.key, value)
        self.phase = "parameters"
        return True

    def _add_argument(self, key: str, value: Any) -> None:
        prefix = ", " if self.arguments else "{"
        pair = f"{json.dumps(key, ensure_ascii=False)}: {json.dumps(value, ensure_ascii=False)}"
        self.emit(Args(prefix + pair))
        self.arguments[key] = value

    def conclude(self) -> None:
        if self.phase == "function" and self.settled:
            self.close(len(self.text))
        else:
            super().conclude()


_GLM_NAME_ENDS = ("\n", "<arg_key>", "</tool_call>")


class GlmReader(XmlReader):
    """GLM 4.6 / 4.7: `<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value></tool_call>`
    (4.6 puts each on its own line)."""

    def __init__(self, ctx: Context, pos: int) -> None:
        super().__init__(ctx, pos, QWEN_XML, "</tool_call>")
        self.phase = "glm_name"

    def _phase_glm_name(self) -> bool:
        self.skip_ws()
        found = self.search(_GLM_NAME_ENDS, MAX_NAME)
        if found is False:
            self.fail_through("bad tool name", "</tool_call>")
            return True
        if found is None:
            return False
        reach = found[0]
        name = self.text[self.pos : reach].strip()
        if not name or not NAME_CHARS.fullmatch(name):
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
        found = self.until("</arg_key>", limit=MAX_NAME)
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
        value = typed_value(trim_newline(found[0]), self.ctx.parameter_schema(self.name, self.key))
        self._add_argument(self.key, value)
        self.phase = "glm_args"
        return True

    def _finish(self, end: int) -> None:
        self.emit(Args("}" if self.arguments else "{}"))
        self.end_call(dict(self.arguments), end)
        self.close(end)

    def conclude(self) -> None:
        if self.phase == "glm_args":
            self._finish(len(self.text))
        else:
            Reader.conclude(self)
