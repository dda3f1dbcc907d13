"""Structured output through `import engine as lms`: response_format and `structured`,
sampled under the schema's grammar, on the tiny random-weight model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pydantic
import pytest

import engine as lms


class Book(lms.BaseModel):
    """Structured information about a published book."""

    title: str
    author: str
    year: int


class Pet(pydantic.BaseModel):
    name: str
    legs: int


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 20}, "rain": {"type": "boolean"}},
    "required": ["city", "rain"],
}


@pytest.fixture(scope="module")
def model(tiny_model_path: Path) -> Iterator[lms.LLM]:
    handle = lms.llm(str(tiny_model_path), config={"contextLength": 4096})
    yield handle
    handle.unload()


@pytest.mark.parametrize("seed", [0, 1])
def test_lms_base_model_response_format_gives_a_parsed_dict(model: lms.LLM, seed: int) -> None:
    result = model.respond("Tell me about The Hobbit", response_format=Book, config={"seed": seed})
    assert result.structured
    assert isinstance(result.parsed, dict)
    jsonschema.validate(result.parsed, Book.model_json_schema())
    # The schema's own property order, not the converter's alphabetical one.
    assert list(result.parsed) == ["title", "author", "year"]
    assert result.prediction_config is not None and result.prediction_config.grammar


def test_pydantic_model_and_json_schema_dict_and_structured_key(model: lms.LLM) -> None:
    pet = model.respond("A pet?", response_format=Pet, config={"seed": 3})
    jsonschema.validate(pet.parsed, Pet.model_json_schema())
    weather = model.respond("Weather?", response_format=SCHEMA, config={"seed": 4})
    jsonschema.validate(weather.parsed, SCHEMA)
    keyed = model.respond(
        "Weather?", config={"seed": 4, "structured": {"type": "json", "jsonSchema": SCHEMA}}
    )
    assert keyed.parsed == weather.parsed  # the same seed, the same grammar


def test_complete_takes_a_response_format_too(model: lms.LLM) -> None:
    result = model.complete("{", response_format=SCHEMA, config={"seed": 5})
    jsonschema.validate(result.parsed, SCHEMA)


def test_unstructured_parsed_is_the_content(model: lms.LLM) -> None:
    result = model.respond("Hi", config={"maxTokens": 5, "seed": 1})
    assert result.parsed == result.content and not result.structured


def test_gbnf_structured_that_is_not_json_stays_text(model: lms.LLM) -> None:
    result = model.respond(
        "Say yes", config={"structured": {"type": "gbnf", "gbnfGrammar": 'root ::= "yes"'}}
    )
    assert result.content == "yes" and result.parsed == "yes" and not result.structured


def test_response_format_and_structured_together_are_refused(model: lms.LLM) -> None:
    with pytest.raises(lms.PredictionConfigError, match="response_format or the config"):
        model.respond("x", response_format=Book, config={"structured": {"type": "none"}})


def test_bad_response_format_is_a_clear_error(model: lms.LLM) -> None:
    with pytest.raises(lms.PredictionConfigError, match="response_format"):
        model.respond("x", response_format=42)
