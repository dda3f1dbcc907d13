"""The tools a request offers, in the shapes the formats need: OpenAI's
`{"type": "function", "function": {...}}` wrapper, name -> function spec, and
`Context`, what a reader may ask about them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def openai_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool in OpenAI's {"type": "function", "function": {...}} shape."""
    if isinstance(tool.get("function"), dict):
        return {"type": tool.get("type", "function"), "function": tool["function"]}
    return {"type": "function", "function": tool}


def function_specs(tools: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Tool name -> its function spec (name, description, parameters)."""
    specs: dict[str, dict[str, Any]] = {}
    for tool in tools or []:
        if not isinstance(tool, dict):
            continue
        function = openai_tool(tool)["function"]
        name = function.get("name")
        if isinstance(name, str) and name:
            specs[name] = function
    return specs

def function_of(tool: dict[str, Any]) -> dict[str, Any]:
    """The function part of an OpenAI tool (`{"type": "function", "function": {...}}`)."""
    return tool.get("function", tool) if isinstance(tool, dict) else {}

@dataclass(frozen=True, slots=True)
class Context:
    """What readers may need to know about the tools."""

    functions: dict[str, dict[str, Any]]

    def parameter_schema(self, tool: str, key: str) -> Any:
        parameters = self.functions.get(tool, {}).get("parameters")
        if isinstance(parameters, dict) and isinstance(parameters.get("properties"), dict):
            return parameters["properties"].get(key)
        return None
