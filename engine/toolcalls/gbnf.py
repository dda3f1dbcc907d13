"""GBNF for forced tool calls: a tool's JSON schema as grammar rules (through
llama-cpp-python's own schema-to-GBNF converter, with caps that keep a weak model
from writing forever), and the kinds of wrapper a format's record names to put those
rules inside its native call syntax."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llama_cpp.llama_grammar import json_schema_to_gbnf

from engine.toolcalls.tool_specs import function_of

# Caps that keep a weak model from writing a string or list forever inside a call.
MAX_STRING = 200
MAX_ITEMS = 8
MAX_ENUM_RANGE = 2000
MAX_PARALLEL = 4
"""The most calls a parallel grammar allows in one reply."""


class CallGrammar(Protocol):
    """How a format writes forced calls: builds the whole grammar for the chosen tools,
    exactly one call, or (`parallel`) one to MAX_PARALLEL of them."""

    def build(self, tools: Sequence[dict[str, Any]], parallel: bool = False) -> str: ...


def _repeated(unit: str, separator: str, parallel: bool) -> str:
    """`unit` once, or one to MAX_PARALLEL times with `separator` between."""
    if not parallel:
        return unit
    sep = f"{_literal(separator)} " if separator else ""
    return f"{unit} ({sep}{unit}){{0,{MAX_PARALLEL - 1}}}"


@dataclass(frozen=True, slots=True)
class JsonCallGrammar:
    """One JSON object `{"name": ..., <arguments_key>: {...}}` between `before` and `after`.
    Parallel calls: the whole repeats with `separator` between, or, `in_list`, the
    objects repeat inside the list that `before` opens and `after` closes."""

    before: str
    after: str
    arguments_key: str = "arguments"
    separator: str = "\n"
    in_list: bool = False

    def build(self, tools: Sequence[dict[str, Any]], parallel: bool = False) -> str:
        before = [_literal(self.before)] if self.before else []
        after = [_literal(self.after)] if self.after else []
        if self.in_list:
            body = " ".join([*before, _repeated("tool-call", self.separator, parallel), *after])
        else:
            body = _repeated(" ".join([*before, "tool-call", *after]), self.separator, parallel)
        return f"root ::= {body}\n" + _call_object(tools, self.arguments_key)


@dataclass(frozen=True, slots=True)
class NamedCallGrammar:
    """`head` (the tool's name in place of `{name}`), the arguments object, then `tail`:
    Functionary's `<function=NAME>{args}</function>`, Mistral's `[TOOL_CALLS]NAME[ARGS]{args}`."""

    head: str
    tail: str = ""
    separator: str = ""

    def build(self, tools: Sequence[dict[str, Any]], parallel: bool = False) -> str:
        lines, alternatives = [], []
        for n, tool in enumerate(tools):
            name = function_of(tool)["name"]
            rule = f"args{n}"
            lines.append(rules(_parameters(tool), rule))
            alternative = f"{_literal(self.head.replace('{name}', name))} {rule}"
            if self.tail:
                alternative += f" {_literal(self.tail)}"
            alternatives.append(alternative)
        # Each sub-grammar defines the same helper rules (space, string, ...) identically;
        # keep the first definition of each.
        call = " | ".join(f"({a})" for a in alternatives)
        if parallel:
            return f"root ::= {_repeated('one-call', self.separator, True)}\none-call ::= {call}\n" + _dedupe(lines)
        return "root ::= " + call + "\n" + _dedupe(lines)


@dataclass(frozen=True, slots=True)
class XmlCallGrammar:
    """One tag per parameter (Qwen3-Coder): required parameters in order, values as plain
    text or numbers. `{name}` and `{key}` stand for the tool's and the parameter's names."""

    function_open: str = "<tool_call>\n<function={name}>\n"
    parameter_open: str = "<parameter={key}>\n"
    parameter_close: str = "\n</parameter>\n"
    function_close: str = "</function>\n</tool_call>"
    separator: str = "\n"

    def build(self, tools: Sequence[dict[str, Any]], parallel: bool = False) -> str:
        alternatives = []
        for tool in tools:
            function = function_of(tool)
            params = _parameters(tool)
            props: dict[str, Any] = params.get("properties", {})
            required = params.get("required", list(props))
            body = [_literal(self.function_open.replace("{name}", function["name"]))]
            for key in required:
                body.append(_literal(self.parameter_open.replace("{key}", key)))
                body.append(_xml_value(props.get(key, {})))
                body.append(_literal(self.parameter_close))
            body.append(_literal(self.function_close))
            alternatives.append(" ".join(body))
        call = " | ".join(f"({a})" for a in alternatives)
        root = f"{_repeated('one-call', self.separator, True)}\none-call ::= {call}" if parallel else call
        return (
            "root ::= " + root + "\n"
            'xml-text ::= [^<\\n] [^<\\n]{0,199}\n'
            'xml-int ::= "-"? [0-9] [0-9]{0,15}\n'
            'xml-number ::= "-"? [0-9] [0-9]{0,15} ("." [0-9]{1,8})?\n'
            'xml-bool ::= "true" | "false"\n'
        )


def tight(schema: Any) -> Any:
    """The schema with length limits added where it has none, and no stray properties."""
    if not isinstance(schema, dict):
        return schema
    out = {k: tight(v) if isinstance(v, dict) else v for k, v in schema.items()}
    kind = out.get("type")
    if kind == "string" and not {"maxLength", "enum", "const", "pattern", "format"} & out.keys():
        out["maxLength"] = MAX_STRING
    if kind == "integer" and {"minimum", "maximum"} <= out.keys():
        # llama-cpp-python's converter ignores integer bounds; a small range becomes an
        # enum it does enforce. Wider ranges rely on argument validation before a run.
        low, high = int(out["minimum"]), int(out["maximum"])
        if 0 <= high - low <= MAX_ENUM_RANGE:
            out = {"enum": list(range(low, high + 1))}
    if kind == "array":
        out.setdefault("maxItems", MAX_ITEMS)
        if isinstance(out.get("items"), dict):
            out["items"] = tight(out["items"])
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: tight(v) for k, v in out["properties"].items()}
        out.setdefault("additionalProperties", False)
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(out.get(key), list):
            out[key] = [tight(v) for v in out[key]]
    return out


def rules(schema: dict[str, Any], rule: str, order: Sequence[str] = ()) -> str:
    """GBNF for `schema`, its root renamed to `rule` so that we can wrap it."""
    gbnf = json_schema_to_gbnf(json.dumps(schema), prop_order=list(order))
    return re.sub(r"^root ::=", f"{rule} ::=", gbnf, count=1, flags=re.MULTILINE)


def _parameters(tool: dict[str, Any]) -> dict[str, Any]:
    params = function_of(tool).get("parameters") or {"type": "object", "properties": {}}
    return tight(params)


def _call_object(tools: Sequence[dict[str, Any]], arguments_key: str) -> str:
    alternatives = [
        {
            "type": "object",
            "properties": {
                "name": {"const": function_of(t)["name"]},
                arguments_key: _parameters(t),
            },
            "required": ["name", arguments_key],
            "additionalProperties": False,
        }
        for t in tools
    ]
    schema = alternatives[0] if len(alternatives) == 1 else {"oneOf": alternatives}
    return rules(schema, "tool-call", ["name", arguments_key])


def _literal(text: str) -> str:
    return json.dumps(text)


def _xml_value(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "(" + " | ".join(_literal(str(v)) for v in schema["enum"]) + ")"
    return {"integer": "xml-int", "number": "xml-number", "boolean": "xml-bool"}.get(
        schema.get("type", "string"), "xml-text"
    )


def _dedupe(grammars: Sequence[str]) -> str:
    seen: set[str] = set()
    out = []
    for grammar in grammars:
        for line in grammar.splitlines():
            name = line.split("::=", 1)[0].strip()
            if "::=" in line and name in seen:
                continue
            seen.add(name)
            out.append(line)
    return "\n".join(out) + "\n"
