"""Argument values written in syntaxes other than JSON: raw XML parameter text typed
by the tool's schema, Python keyword arguments, and Gemma 4's `{key:value}` syntax."""

from __future__ import annotations

import ast
import json
import math
from typing import Any


def typed_value(raw: str, schema: Any) -> Any:
    """A parameter written as raw text (Qwen3-Coder, GLM, MiniMax, Seed), as the value its
    JSON schema asks for; without a schema, JSON if it parses, else the text."""
    kinds = _schema_types(schema)
    if not kinds:
        return guess_value(raw)
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
        value = guess_value(text)
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


def guess_value(raw: str) -> Any:
    try:
        value = json.loads(raw.strip(), strict=False)
    except (ValueError, RecursionError):
        return raw
    if isinstance(value, float) and not math.isfinite(value):
        return raw
    return value


def trim_newline(value: str) -> str:
    """Templates write XML parameter values on their own lines; those newlines are not
    part of the value."""
    if value.startswith("\n"):
        value = value[1:]
    if value.endswith("\n"):
        value = value[:-1]
    return value


_PY_NAMES = {"True": True, "False": False, "None": None, "true": True, "false": False, "null": None}


def python_kwargs(argument_text: str) -> tuple[dict[str, Any] | None, str]:
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


GEMMA_QUOTE = '<|"|>'


class GemmaValue:
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
        if self.text.startswith(GEMMA_QUOTE, self.pos):
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
        value = guess_value(token)
        return value if not isinstance(value, (dict, list)) else token

    def _quoted(self) -> str:
        start = self.pos + len(GEMMA_QUOTE)
        end = self.text.find(GEMMA_QUOTE, start)
        if end == -1:
            raise ValueError("unclosed string")
        self.pos = end + len(GEMMA_QUOTE)
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
        if self.text.startswith(GEMMA_QUOTE, self.pos):
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
