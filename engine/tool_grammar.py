"""Grammars that force a tool call: tool_choice "required" or a named function.

The arguments follow each tool's JSON schema (through llama-cpp-python's own
schema-to-GBNF converter), wrapped in the model's native tool-call syntax, so
that even a tiny random model writes a call that parses and validates.
"""

from __future__ import annotations

from engine.errors import UnsupportedToolFormat

import json
import re
from collections.abc import Sequence
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

# Caps that keep a weak model from writing a string or list forever inside a call.
MAX_STRING = 200
MAX_ITEMS = 8
MAX_ENUM_RANGE = 2000




def function_of(tool: dict[str, Any]) -> dict[str, Any]:
    """The function part of an OpenAI tool (`{"type": "function", "function": {...}}`)."""
    return tool.get("function", tool) if isinstance(tool, dict) else {}


def choose_tools(tools: Sequence[dict[str, Any]], tool_choice: Any) -> list[dict[str, Any]]:
    """The tools a forced call may use: all of them, or the one tool_choice names."""
    if tool_choice == "required":
        return list(tools)
    name = tool_choice
    if isinstance(tool_choice, dict):
        name = function_of(tool_choice).get("name")
    chosen = [t for t in tools if function_of(t).get("name") == name]
    if not chosen:
        known = ", ".join(str(function_of(t).get("name")) for t in tools) or "none"
        raise ValueError(f"tool_choice names {name!r}, which is not among the tools ({known})")
    return chosen


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


def _parameters(tool: dict[str, Any]) -> dict[str, Any]:
    params = function_of(tool).get("parameters") or {"type": "object", "properties": {}}
    return tight(params)


def _rules(schema: dict[str, Any], rule: str, order: Sequence[str] = ()) -> str:
    """GBNF for `schema`, its root renamed to `rule` so that we can wrap it."""
    gbnf = json_schema_to_gbnf(json.dumps(schema), prop_order=list(order))
    return re.sub(r"^root ::=", f"{rule} ::=", gbnf, count=1, flags=re.MULTILINE)


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
    return _rules(schema, "tool-call", ["name", arguments_key])


def _literal(text: str) -> str:
    return json.dumps(text)


# Formats whose call is one JSON object {"name": ..., <arguments key>: {...}} between markers.
_JSON_WRAPPERS: dict[str, tuple[str, str, str]] = {
    "default": ("[TOOL_REQUEST]", "[END_TOOL_REQUEST]", "arguments"),
    "hermes": ("<tool_call>\n", "\n</tool_call>", "arguments"),
    "llama3": ("", "", "parameters"),
    "mistral": ("[TOOL_CALLS][", "]", "arguments"),
    "granite": ("<|tool_call|>[", "]", "arguments"),
    "nemotron": ("<TOOLCALL>[", "]</TOOLCALL>", "arguments"),
    "firefunction": (" functools[", "]", "arguments"),
}


def tool_call_grammar(
    tools: Sequence[dict[str, Any]], tool_choice: Any, tool_format: str
) -> str:
    """A GBNF grammar whose every sentence is one call of a chosen tool in `tool_format`."""
    chosen = choose_tools(tools, tool_choice)
    if not chosen:
        raise ValueError("tool_choice requires a tool call, but no tools were given")
    if tool_format in _JSON_WRAPPERS:
        before, after, key = _JSON_WRAPPERS[tool_format]
        parts = [_literal(before)] if before else []
        parts.append("tool-call")
        if after:
            parts.append(_literal(after))
        return f"root ::= {' '.join(parts)}\n" + _call_object(chosen, key)
    if tool_format in ("functionary_v3_1", "mistral_v11"):
        return _named_prefix_grammar(chosen, tool_format)
    if tool_format in ("qwen3_coder",):
        return _xml_grammar(chosen)
    raise UnsupportedToolFormat(f"no grammar for the {tool_format!r} tool-call format")


def _named_prefix_grammar(tools: Sequence[dict[str, Any]], tool_format: str) -> str:
    """`<function=NAME>{args}</function>` (Functionary) or `[TOOL_CALLS]NAME[ARGS]{args}`."""
    lines, alternatives = [], []
    for n, tool in enumerate(tools):
        name = function_of(tool)["name"]
        rule = f"args{n}"
        lines.append(_rules(_parameters(tool), rule))
        if tool_format == "functionary_v3_1":
            alternatives.append(f"{_literal(f'<function={name}>')} {rule} {_literal('</function>')}")
        else:
            alternatives.append(f"{_literal(f'[TOOL_CALLS]{name}[ARGS]')} {rule}")
    # Each sub-grammar defines the same helper rules (space, string, ...) identically;
    # keep the first definition of each.
    return "root ::= " + " | ".join(f"({a})" for a in alternatives) + "\n" + _dedupe(lines)


def _xml_grammar(tools: Sequence[dict[str, Any]]) -> str:
    """Qwen3-Coder's XML: required parameters in order, values as plain text or JSON."""
    alternatives = []
    for tool in tools:
        function = function_of(tool)
        params = _parameters(tool)
        props: dict[str, Any] = params.get("properties", {})
        required = params.get("required", list(props))
        body = [_literal(f"<tool_call>\n<function={function['name']}>\n")]
        for key in required:
            body.append(_literal(f"<parameter={key}>\n"))
            body.append(_xml_value(props.get(key, {})))
            body.append(_literal("\n</parameter>\n"))
        body.append(_literal("</function>\n</tool_call>"))
        alternatives.append(" ".join(body))
    return (
        "root ::= " + " | ".join(f"({a})" for a in alternatives) + "\n"
        'xml-text ::= [^<\\n] [^<\\n]{0,199}\n'
        'xml-int ::= "-"? [0-9] [0-9]{0,15}\n'
        'xml-number ::= "-"? [0-9] [0-9]{0,15} ("." [0-9]{1,8})?\n'
        'xml-bool ::= "true" | "false"\n'
    )


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
