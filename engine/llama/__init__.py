"""The llama.cpp back end: one model, one thread, predictions streamed as events.

- `model.py`: `LoadedModel`, the `ChatModel` for a GGUF file in this process
- `loading.py`: file checks, load progress and cancel, what was offloaded
- `model_thread.py`: the thread every llama.cpp call of a model runs on
- `scheduler.py`: when each prediction runs: the protocol, and one at a time (`parallel = 1`)
- `batching.py`: several at once (`parallel > 1`): one `llama_decode` per step for all
- `running.py`, `slots.py`, `parking.py`, `batch_step.py`: its predictions, its slots
  (one sequence each, cache kept per conversation), conversations parked in host
  memory, the batch of one step
- `job.py`: one prediction: prompt, KV cache reuse, prompt batches, token loop, stats
- `generation.py`: a prediction's sampled tokens to events, and when it stops
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
