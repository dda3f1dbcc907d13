"""One step of the batching scheduler as llama.cpp sees it: a `llama_batch` and its decode.

A step holds the next token of every generating sequence and prompt chunks of the
sequences still evaluating, each token tagged with its sequence and position; the
rows whose logits are wanted (a sampled token's, a finished prompt's last) get an
output index, which is what each sequence samples from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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
