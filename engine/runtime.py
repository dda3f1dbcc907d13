"""Old path of the llama.cpp back end, kept while callers move to `engine.llama`.

`LoadedModel`, `EventStream`, `ENGINE_DEFAULTS` and the rest live in engine/llama/
now; this module only re-exports them.
"""

from __future__ import annotations

from .errors import ModelLoadError, PredictionCancelled
from .llama import *  # noqa: F403
from .llama import (
    ENGINE_DEFAULTS,
    EventStream,
    LoadedModel,
    LoadProgress,
    Offload,
    OutputParser,
    PlainText,
    PredictionControl,
    PreparedPrompt,
    PromptSource,
    Sink,
    SyncEventStream,
    Tokenizer,
    check_gguf_file,
)

__all__ = [
    "ENGINE_DEFAULTS",
    "EventStream",
    "LoadProgress",
    "LoadedModel",
    "ModelLoadError",
    "Offload",
    "OutputParser",
    "PlainText",
    "PredictionCancelled",
    "PredictionControl",
    "PreparedPrompt",
    "PromptSource",
    "Sink",
    "SyncEventStream",
    "Tokenizer",
    "check_gguf_file",
]
