"""Structured output: a reply that must be JSON of a schema (or text of a GBNF grammar).

LM Studio's SDK takes `response_format=` (a pydantic model, an `lms.BaseModel` subclass,
a JSON-schema dict, or `{"type": "json", "jsonSchema": ...}` / `{"type": "gbnf",
"gbnfGrammar": ...}`) or the `structured` prediction config key. Either way the reply is
sampled under a grammar (llama-cpp-python's schema converter, the one the server uses),
and `result.parsed` is the reply parsed as a JSON object.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pydantic
from pydantic import ConfigDict, Field, field_validator

from engine.errors import PredictionConfigError


class BaseModel(pydantic.BaseModel):
    """The base class of a structured response's schema, as `lms.BaseModel` in the SDK:
    its fields (and docstring) become the JSON schema the reply is sampled under."""


class StructuredSetting(pydantic.BaseModel):
    """LM Studio's `structured` setting: `{"type": "json", "jsonSchema": {...}}`,
    `{"type": "gbnf", "gbnfGrammar": "..."}` or `{"type": "none"}`.

    The schema is kept as JSON text so that a prediction config stays hashable."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    type: Literal["json", "gbnf", "none"]
    json_schema: str | None = Field(default=None, alias="jsonSchema")
    gbnf_grammar: str | None = Field(default=None, alias="gbnfGrammar")

    @field_validator("json_schema", mode="before")
    @classmethod
    def _schema_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False)
        return value

    @property
    def schema_object(self) -> dict[str, Any]:
        return json.loads(self.json_schema) if self.json_schema else {"type": "object"}

    @property
    def is_on(self) -> bool:
        return self.type != "none"


def structured_setting(response_format: Any) -> StructuredSetting:
    """The setting for an SDK `response_format`; PredictionConfigError for what is none."""
    if isinstance(response_format, StructuredSetting):
        return response_format
    if isinstance(response_format, type) and hasattr(response_format, "model_json_schema"):
        return StructuredSetting(type="json", json_schema=response_format.model_json_schema())
    if isinstance(response_format, dict):
        if response_format.get("type") in ("json", "gbnf", "none") and (
            {"jsonSchema", "gbnfGrammar"} & response_format.keys()
            or response_format.get("type") == "none"
        ):
            try:
                return StructuredSetting.model_validate(response_format)
            except pydantic.ValidationError as err:
                raise PredictionConfigError(f"response_format: {err.errors()[0]['msg']}") from None
        if "type" in response_format or "properties" in response_format:
            # Any other dict with a type is a JSON schema itself, as the SDK reads it.
            return StructuredSetting(type="json", json_schema=response_format)
    raise PredictionConfigError(
        "response_format: expected a pydantic model class, an lms.BaseModel subclass, "
        f"a JSON-schema dict or {{'type': 'json', 'jsonSchema': ...}}; got {response_format!r}"
    )


def structured_grammar(setting: StructuredSetting) -> str | None:
    """The GBNF grammar a reply of this setting is sampled under (None: unconstrained)."""
    if setting.type == "none":
        return None
    if setting.type == "gbnf":
        if not setting.gbnf_grammar or not setting.gbnf_grammar.strip():
            raise PredictionConfigError("structured: gbnfGrammar is empty")
        return setting.gbnf_grammar
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    schema = setting.schema_object
    # The schema's own property order (the converter's default is alphabetical).
    order = list(schema.get("properties") or {}) if isinstance(schema, dict) else []
    try:
        return str(json_schema_to_gbnf(json.dumps(schema), prop_order=order))
    except Exception as err:  # noqa: BLE001 - the converter raises anything on odd schemas
        raise PredictionConfigError(
            f"structured: cannot turn this JSON schema into a grammar: {err}"
        ) from None


def parse_structured(content: str) -> dict[str, Any] | None:
    """The reply as a JSON object, or None when it is not one (as the SDK, which then
    reports the content unparsed: a GBNF grammar need not write JSON)."""
    try:
        value = json.loads(content)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
