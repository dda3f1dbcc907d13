"""Readers for calls between special tokens inside a section: DeepSeek V3 / R1 and
Kimi K2."""

from __future__ import annotations

from engine.toolcalls.json_readers import JsonArgsReader
from engine.toolcalls.scanner import MAX_NAME, NAME_CHARS
from engine.toolcalls.tool_specs import Context


class SectionReader(JsonArgsReader):
    """Calls between special tokens inside a section: DeepSeek's
    `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>…<｜tool▁call▁end｜><｜tool▁calls▁end｜>` and
    Kimi K2's `<|tool_calls_section_begin|><|tool_call_begin|>…<|tool_calls_section_end|>`."""

    call_begin = ""
    separator = ""
    call_end = ""
    section_end = ""
    after_args = "call_end"

    def __init__(self, ctx: Context, pos: int) -> None:
        super().__init__(ctx, pos)
        self.phase = "calls"
        self._after_call: int | None = None

    def name_from_header(self, header: str) -> str | None:
        raise NotImplementedError

    def fail_call(self, reason: str) -> None:
        # Only this call fails: its raw text runs through its own end, and the section
        # reads on from there.
        self.phase = "calls"
        self.fail_through(reason, self.call_end, close_block=False)

    def _phase_calls(self) -> bool:
        # Where the last call (or the block's start) ended, kept while waiting: if no
        # call follows, the whitespace skipped here is not the call's.
        if self._after_call is None:
            self._after_call = self.pos
        after_call = self._after_call
        self.skip_ws()
        found = self.expect(self.call_begin, self.section_end)
        if found is None:
            return False
        self._after_call = None
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
            self.fail_call("bad tool-call header")
            return True
        if name:
            self.begin(name)
            self.start_args()
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
            self.fail_call(f"unexpected text before {self.call_end}")
        return True

    def conclude(self) -> None:
        if self.phase == "call_end":  # the call's end went missing: the call is whole
            self.end_call(self.arguments, len(self.text))
            self.close(len(self.text))
        elif self.phase == "calls" and self.settled:
            self.close(len(self.text))
        else:
            super().conclude()


class DeepSeekReader(SectionReader):
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
            return name if NAME_CHARS.fullmatch(name) and name else None
        self.phase = "r1_name"
        return ""

    def _phase_r1_name(self) -> bool:
        if not self.more():
            return False
        if self.text[self.pos] == "{":  # V3 with a tool that is called "function"
            self.begin("function")
            self.start_args()
            return True
        found = self.until("\n", limit=MAX_NAME)
        if found is None:
            return False
        name = found[0].strip() if found else ""
        if not name or not NAME_CHARS.fullmatch(name):
            self.fail_call("bad tool name")
            return True
        self.begin(name)
        self.phase = "r1_fence"
        return True

    def _phase_r1_fence(self) -> bool:
        self.skip_ws()
        found = self.expect("```json", "```")
        if found is None:
            return False
        self.start_args()
        return True


class KimiReader(SectionReader):
    call_begin = "<|tool_call_begin|>"
    separator = "<|tool_call_argument_begin|>"
    call_end = "<|tool_call_end|>"
    section_end = "<|tool_calls_section_end|>"

    def name_from_header(self, header: str) -> str | None:
        # The header is the call id, `functions.NAME:INDEX`.
        name = header.strip()
        name = name.removeprefix("functions.")
        name = name.rsplit(":", 1)[0] if ":" in name else name
        return name if name and NAME_CHARS.fullmatch(name) else None
