"""The tool-call formats: one record per family, the one place to add a model.

A record says everything about its family (as llama.cpp's `xml_tool_call_format`
struct does): how to tell it from a chat template, the markers that open a block of
calls in the output, the reader that reads such a block, and the grammar wrapper that
forces a call (None where we have none). The scanner and pipeline in
`engine.toolcalls.pipeline`, the detector and the grammar builder all run these
records; none of them names a format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from engine.toolcalls.default_format import TOOL_REQUEST_CLOSE, TOOL_REQUEST_OPEN
from engine.toolcalls.gbnf import CallGrammar, JsonCallGrammar, NamedCallGrammar, XmlCallGrammar
from engine.toolcalls.json_readers import (
    CommandRPlusReader,
    FunctionaryReader,
    HarmonyReader,
    JsonArrayReader,
    MistralReader,
    TaggedJsonReader,
)
from engine.toolcalls.pythonic_readers import (
    FunctionaryV32Reader,
    Gemma4Reader,
    PythonicReader,
    PythonTagReader,
)
from engine.toolcalls.section_readers import DeepSeekReader, KimiReader
from engine.toolcalls.steps import Reader
from engine.toolcalls.tool_specs import Context
from engine.toolcalls.xml_readers import MINIMAX_XML, QWEN_XML, GlmReader, XmlReader

ReaderFactory: TypeAlias = Callable[[str, Context, int], Reader]
"""Makes the reader for a block, given the opener that started it and where it starts."""


@dataclass(frozen=True, slots=True)
class ToolFormat:
    """One tool-call family."""

    name: str
    detect: Callable[[str], bool] | None
    """Does a chat template's source write calls this way? None: never detected."""
    openers: tuple[str, ...]
    """Markers that open a block of calls anywhere in the content."""
    reader: ReaderFactory
    anchored: tuple[str, ...] = ()
    """Openers recognised only at the start of the content or right after a call."""
    grammar: CallGrammar | None = None
    """How a forced call (tool_choice "required" or a named tool) is written."""
    grammar_variants: Mapping[str, CallGrammar] = field(default_factory=dict)
    """Further grammars, by name, for variants this format's reader also reads."""
    detect_unlisted: Callable[[str], bool] | None = None
    """A test for templates that never list the tools, yet write calls in the history:
    their models write calls all the same (DeepSeek V3.1). See `detect_call_format`."""
    starts_in_block: bool = False
    """The generation prompt ends with an opener (Functionary v3.2's `>>>`): the output
    starts inside a block, which its reader may reject as plain text."""
    calls_end_reasoning: bool = False
    """Calls inside a reasoning block that never closes end the reasoning: the text
    before them is reasoning (Kimi K2 Thinking). Otherwise it is content (llama.cpp)."""


def _has(*needles: str) -> Callable[[str], bool]:
    """A template test: every needle is in the source."""
    return lambda source: all(n in source for n in needles)


def _has_any(*needles: str) -> Callable[[str], bool]:
    return lambda source: any(n in source for n in needles)


def _tagged(closer: str) -> ReaderFactory:
    return lambda opener, ctx, at: TaggedJsonReader(ctx, at + len(opener), closer)


def _json_list(closer: str | None, *, reject_non_lists: bool = False) -> ReaderFactory:
    return lambda opener, ctx, at: JsonArrayReader(
        ctx, at + len(opener), closer, reject_non_lists=reject_non_lists
    )


def _after(reader: Callable[[Context, int], Reader]) -> ReaderFactory:
    """A reader that starts right after its opener."""
    return lambda opener, ctx, at: reader(ctx, at + len(opener))


def _llama3(opener: str, ctx: Context, at: int) -> Reader:
    if opener == "{":
        return TaggedJsonReader(ctx, at, None, reject_non_calls=True)
    return PythonTagReader(ctx, at + len(opener), "code_interpreter")


def _functionary(opener: str, ctx: Context, at: int) -> Reader:
    if opener == "<|python_tag|>":
        return PythonTagReader(ctx, at + len(opener), "python")
    return FunctionaryReader(ctx, at + len(opener))


def _functionary_v3_2(opener: str, ctx: Context, at: int) -> Reader:
    return FunctionaryV32Reader(ctx, at + len(opener), first=not opener)


def _qwen3_coder(opener: str, ctx: Context, at: int) -> Reader:
    if opener == "<function=":
        return XmlReader(ctx, at, QWEN_XML, None)
    return XmlReader(ctx, at + len(opener), QWEN_XML, "</tool_call>", json_fallback=True)


_DEEPSEEK_OPENERS = ("<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>")
_KIMI_OPENERS = ("<|tool_calls_section_begin|>", "<|tool_call_begin|>")


def _deepseek(opener: str, ctx: Context, at: int) -> Reader:
    # A reply may skip the section token and start with the first call's.
    return DeepSeekReader(ctx, at + len(opener) if opener == _DEEPSEEK_OPENERS[0] else at)


def _kimi(opener: str, ctx: Context, at: int) -> Reader:
    return KimiReader(ctx, at + len(opener) if opener == _KIMI_OPENERS[0] else at)


# Detection tries the records in this order, most specific first: several templates
# share a token (`<tool_call>` opens Hermes JSON, Qwen3-Coder XML and GLM's key/value
# lines alike). "default" is what a template gets when none matches.
_RECORDS: tuple[ToolFormat, ...] = (
    ToolFormat(
        "default", None, (TOOL_REQUEST_OPEN,), _tagged(TOOL_REQUEST_CLOSE),
        grammar=JsonCallGrammar(TOOL_REQUEST_OPEN, TOOL_REQUEST_CLOSE),
    ),
    ToolFormat(
        "gpt_oss",
        _has("<|channel|>", "<|call|>"),
        (
            "<|start|>assistant to=",
            "<|channel|>commentary to=",
            # A call addressed from the analysis channel (llama.cpp reads it too).
            "<|channel|>analysis to=",
            # The role header's recipient, once the reasoning parser took `<|start|>assistant`.
            "to=",
        ),
        _after(HarmonyReader),
    ),
    ToolFormat("gemma4", _has("<|tool_call>"), ("<|tool_call>",), _after(Gemma4Reader)),
    ToolFormat(
        "minimax",
        _has("<minimax:tool_call>"),
        ("<minimax:tool_call>",),
        lambda op, ctx, at: XmlReader(ctx, at + len(op), MINIMAX_XML, "</minimax:tool_call>"),
    ),
    ToolFormat(
        "seed_oss",
        _has("<seed:tool_call>"),
        ("<seed:tool_call>",),
        lambda op, ctx, at: XmlReader(ctx, at + len(op), QWEN_XML, "</seed:tool_call>"),
    ),
    ToolFormat("glm", _has("<arg_key>"), ("<tool_call>",), _after(GlmReader)),
    ToolFormat(
        "qwen3_coder",
        _has("<function=", "<parameter="),
        ("<tool_call>", "<function="),
        _qwen3_coder,
        grammar=XmlCallGrammar(),
    ),
    ToolFormat(
        "kimi_k2",
        _has("<|tool_calls_section_begin|>"),
        _KIMI_OPENERS,
        _kimi,
        calls_end_reasoning=True,
    ),
    ToolFormat("deepseek_r1", _has("tool▁calls▁begin", "```json"), _DEEPSEEK_OPENERS, _deepseek),
    ToolFormat(
        "deepseek_v3",
        _has("tool▁calls▁begin"),
        _DEEPSEEK_OPENERS,
        _deepseek,
        # V3.1's template writes `NAME<｜tool▁sep｜>{json}` calls but no tool list.
        detect_unlisted=lambda s: "tool▁calls▁begin" in s and "```json" not in s,
    ),
    ToolFormat(
        "lfm2",
        _has_any("<|tool_call_start|>", "<|tool_list_start|>"),
        ("<|tool_call_start|>",),
        _after(PythonicReader),
    ),
    ToolFormat(
        "mistral",
        _has("[TOOL_CALLS]"),
        ("[TOOL_CALLS]",),
        _after(MistralReader),
        grammar=JsonCallGrammar("[TOOL_CALLS][", "]", separator=", ", in_list=True),
        # v11 templates (Small 3.2, Devstral, ...) write `[TOOL_CALLS]NAME[ARGS]{...}`;
        # the reader takes both, the grammar must pick one.
        grammar_variants={"mistral_v11": NamedCallGrammar("[TOOL_CALLS]{name}[ARGS]")},
    ),
    ToolFormat(
        "command_r7b",
        _has("<|START_ACTION|>"),
        ("<|START_ACTION|>",),
        _json_list("<|END_ACTION|>"),
    ),
    ToolFormat(
        "nemotron",
        _has("<TOOLCALL>"),
        ("<TOOLCALL>",),
        _json_list("</TOOLCALL>"),
        grammar=JsonCallGrammar("<TOOLCALL>[", "]</TOOLCALL>", separator=", ", in_list=True),
    ),
    ToolFormat(
        "granite",
        _has("<|tool_call|>"),
        ("<|tool_call|>",),
        _json_list(None),
        grammar=JsonCallGrammar("<|tool_call|>[", "]", separator=", ", in_list=True),
    ),
    ToolFormat(
        "firefunction",
        _has("functools"),
        ("functools",),
        _json_list(None, reject_non_lists=True),
        grammar=JsonCallGrammar(" functools[", "]", separator=", ", in_list=True),
    ),
    ToolFormat(
        "functionary_v3_1",
        _has("<function="),
        ("<function=", "<|python_tag|>"),
        _functionary,
        grammar=NamedCallGrammar("<function={name}>", "</function>"),
    ),
    ToolFormat(
        "functionary_v3_2",
        _has(">>>all"),
        (">>>",),
        _functionary_v3_2,
        grammar=NamedCallGrammar("{name}\n", separator=">>>"),
        starts_in_block=True,
    ),
    ToolFormat(
        "command_r_plus",
        _has("Action:", "```json"),
        ("Action:",),
        _after(CommandRPlusReader),
    ),
    ToolFormat(
        "hermes",
        _has("<tool_call>"),
        ("<tool_call>",),
        _tagged("</tool_call>"),
        grammar=JsonCallGrammar("<tool_call>\n", "\n</tool_call>"),
    ),
    ToolFormat(
        "llama3",
        lambda s: "<|python_tag|>" in s or ("<|start_header_id|>" in s and '"parameters"' in s),
        ("<|python_tag|>",),
        _llama3,
        anchored=("{",),
        grammar=JsonCallGrammar("", "", "parameters"),
    ),
)

FORMATS: dict[str, ToolFormat] = {record.name: record for record in _RECORDS}
"""Every format by name, in detection order ("default" first: it is never detected)."""

TOOL_FORMATS: tuple[str, ...] = tuple(FORMATS)
"""Every format `ToolCallParser` reads."""

def _grammars() -> dict[str, CallGrammar]:
    found: dict[str, CallGrammar] = {}
    for record in _RECORDS:
        if record.grammar is not None:
            found[record.name] = record.grammar
        found.update(record.grammar_variants)
    return found


GRAMMARS: dict[str, CallGrammar] = _grammars()
"""Every grammar wrapper, by the format name `tool_call_grammar` is given."""
