"""One step of the batching scheduler as llama.cpp sees it: a `llama_batch` and its decode.

A step holds the next token of every generating sequence and prompt chunks of the
sequences still evaluating, each token tagged with its sequence and position; the
rows whose logits are wanted (a sampled token's, a finished prompt's last) get an
output index, which is what each sequence samples from.

`StepCosts` learns what a decode of n single tokens takes. On a GPU a batch of n costs
little more than one token; on some CPUs the kernels for more than one token are slower
per step by far more than n (here: 1 token 20 ms, 2 tokens 70 ms, 8 tokens 100 ms), and
then the generating sequences are decoded in smaller batches, one after another.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

PROBE_EVERY = 64
"""Steps between two decodes of all generating tokens in one batch, when smaller batches
were found faster: costs change (other load, deeper contexts), so they are measured again."""


class StepBatch:
    """A reusable `llama_batch` of up to `capacity` tokens."""

    def __init__(self, capacity: int, n_seq_max: int) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self.capacity = capacity
        self._batch: Any = llama_cpp.llama_batch_init(capacity, 0, n_seq_max)
        self.n_tokens = 0
        self._outputs = 0

    def clear(self) -> None:
        self.n_tokens = 0
        self._outputs = 0

    @property
    def room(self) -> int:
        return self.capacity - self.n_tokens

    def add(self, tokens: Sequence[int], start: int, seq_id: int, logits: bool) -> int:
        """Add `tokens` at positions from `start`; the index of the last one's logits
        (when `logits`), -1 otherwise."""
        batch = self._batch
        n = self.n_tokens
        for i, token in enumerate(tokens):
            j = n + i
            batch.token[j] = token
            batch.pos[j] = start + i
            batch.n_seq_id[j] = 1
            batch.seq_id[j][0] = seq_id
            batch.logits[j] = False
        self.n_tokens = n + len(tokens)
        if not logits:
            return -1
        last = self.n_tokens - 1
        batch.logits[last] = True
        self._outputs += 1
        return last

    def decode(self, ctx: Any) -> int:
        """Decode the batch; llama.cpp's return code (0 done, 1 no room in the KV cache)."""
        self._batch.n_tokens = self.n_tokens
        return int(self._llama_cpp.llama_decode(ctx, self._batch))

    def close(self) -> None:
        if self._batch is not None:
            self._llama_cpp.llama_batch_free(self._batch)
            self._batch = None


class StepCosts:
    """Seconds a decode of n single tokens takes (a moving average per n)."""

    def __init__(self) -> None:
        self._seconds: dict[int, float] = {}
        self._steps = 0

    def record(self, tokens: int, seconds: float) -> None:
        known = self._seconds.get(tokens)
        self._seconds[tokens] = seconds if known is None else 0.8 * known + 0.2 * seconds

    def group_size(self, generating: int) -> int:
        """How many of `generating` single tokens to decode per batch: all at once,
        unless smaller batches were measured to take less time for them all."""
        self._steps += 1
        whole = self._seconds.get(generating)
        if whole is None or self._steps % PROBE_EVERY == 0:
            return generating
        best, best_time = generating, whole
        for size, seconds in self._seconds.items():
            if size < generating and math.ceil(generating / size) * seconds < best_time:
                best, best_time = size, math.ceil(generating / size) * seconds
        return best
