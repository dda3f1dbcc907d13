"""The llama.cpp back end: one model, one thread, predictions streamed as events.

- `model.py`: `LoadedModel`, the `ChatModel` for a GGUF file in this process
- `loading.py`: file checks, load progress and cancel, what was offloaded
- `model_thread.py`: the thread every llama.cpp call of a model runs on
- `scheduler.py`: when each prediction runs (serial now; the seam for batching)
- `job.py`: one prediction: prompt, KV cache reuse, prompt batches, token loop, stats
- `sampler.py`: the native sampler chain, grammars, the engine's prediction defaults
- `decoding.py`: tokens to text: pieces, UTF-8 across tokens, stop strings
- `channels.py`: `EventStream` / `SyncEventStream`, how events reach their consumer
"""

from __future__ import annotations

from .channels import EventStream, PredictionControl, Sink, SyncEventStream
from .job import OutputParser, PlainText, PreparedPrompt, PromptSource, Tokenizer
from .loading import LoadProgress, Offload, check_gguf_file
from .model import LoadedModel
from .sampler import ENGINE_DEFAULTS
from .scheduler import Scheduler, SerialScheduler

__all__ = [
    "ENGINE_DEFAULTS",
    "EventStream",
    "LoadProgress",
    "LoadedModel",
    "Offload",
    "OutputParser",
    "PlainText",
    "PredictionControl",
    "PreparedPrompt",
    "PromptSource",
    "Scheduler",
    "SerialScheduler",
    "Sink",
    "SyncEventStream",
    "Tokenizer",
    "check_gguf_file",
]
