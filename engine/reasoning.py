"""Old path of engine.formatting.reasoning (reasoning markers), kept while callers move."""

from __future__ import annotations

from .formatting.reasoning import *  # noqa: F403
from .formatting.reasoning import (
    COMMAND_R7B,
    GEMMA4,
    GRANITE,
    HARMONY,
    KNOWN_MARKERS,
    MISTRAL_THINK,
    ReasoningMarkers,
    ReasoningParser,
    SEED_THINK,
    THINK,
    markers_for_template,
    prompt_opens_reasoning,
    split_reasoning,
)

__all__ = [
    "COMMAND_R7B",
    "GEMMA4",
    "GRANITE",
    "HARMONY",
    "KNOWN_MARKERS",
    "MISTRAL_THINK",
    "ReasoningMarkers",
    "ReasoningParser",
    "SEED_THINK",
    "THINK",
    "markers_for_template",
    "prompt_opens_reasoning",
    "split_reasoning",
]
