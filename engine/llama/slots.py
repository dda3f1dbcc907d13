"""The slots of a batching context: one llama.cpp sequence each, and what its KV cache holds.

A slot remembers the tokens whose cells its sequence holds, so that a request can take
the free slot sharing the longest prefix with its prompt (a chat's next turn lands back
on its own slot) and evaluate only the rest. `cut_to` drops a sequence's cells past a
prefix, falling back to a fresh sequence where the cache cannot keep that prefix (a
sliding-window layer has already forgotten cells the prefix's last tokens attend to).

SWA checkpoints (as llama-server's): with the window-sized cache of a sliding-window
model, each finished prompt evaluation saves the sliding-window layers' cells of its
sequence (`LLAMA_STATE_SEQ_FLAGS_SWA_ONLY`, a few MB); a later cut further back than the
window restores the latest checkpoint at or before the cut and evaluates from there,
rather than from the start.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SWA_ONLY = 1
"""LLAMA_STATE_SEQ_FLAGS_SWA_ONLY: a sequence's state of the sliding-window layers only."""
CHECKPOINTS = 3
"""SWA checkpoints kept per slot (llama-server keeps a few, too)."""
_USES = itertools.count(1)
"""Ticks of a clock that orders slots by last use (least recently used is parked first)."""


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def window_keeps(llama_cpp: Any, memory: Any, seq_id: int, prefix: int, n_swa: int) -> bool:
    """Whether sequence `seq_id` still holds every cell that a token after `prefix` needs.

    With a sliding window of `n_swa` and the SWA cache not kept whole (`swa_full=False`),
    cells older than the window are dropped as the sequence grows; cutting back to
    `prefix` is only sound while the cells from `prefix - n_swa` on are there (what
    llama-server checks before it reuses a slot's cache)."""
    if prefix <= 0 or n_swa <= 0:
        return True
    pos_min = llama_cpp.llama_memory_seq_pos_min(memory, seq_id)
    return pos_min <= max(0, prefix - n_swa)


@dataclass(slots=True, eq=False)
class Checkpoint:
    """The sliding-window layers' cells of a sequence when it held `position` tokens."""

    position: int
    state: ctypes.Array[ctypes.c_uint8]


@dataclass(slots=True, eq=False)
class Slot:
    """One sequence of the context and the tokens its cells hold, in order from 0."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    fresh: int = 0
    """Leading tokens whose cells were computed as a fresh evaluation computes them:
    whole batches from position 0 (see `PredictionConfig.reproducible`)."""
    busy: bool = False
    last_used: int = 0
    checkpoints: list[Checkpoint] = field(default_factory=list)

    def forget_past(self, length: int) -> None:
        """The sequence now holds `length` tokens: checkpoints beyond them are void."""
        self.checkpoints = [c for c in self.checkpoints if c.position <= length]

    def touch(self) -> None:
        self.last_used = next(_USES)


class KvCache:
    """The context's sequences as slots, and the sequence-level cache operations on them."""

    def __init__(self, llama: Any, slots: int, swa_full: bool = False) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self.llama = llama
        self._ctx = llama._ctx.ctx
        self.memory = llama_cpp.llama_get_memory(self._ctx)
        self.n_swa = int(llama_cpp.llama_model_n_swa(llama._model.model))
        self.checkpointing = self.n_swa > 0 and not swa_full
        self.restored: int | None = None
        """Where the last `cut_to` went back to a checkpoint, if it did."""
        self.slots = [Slot(i) for i in range(slots)]

    def free_slots(self) -> list[Slot]:
        return [s for s in self.slots if not s.busy]

    def best_free(self, tokens: Sequence[int]) -> tuple[Slot, int] | None:
        """The free slot for a prompt of `tokens`, and how many tokens its cache shares.

        The one sharing the longest prefix, among those whose cache that prefix is at
        least half of (as llama-server's slot similarity): a prompt that shares only a
        system prompt's first words with another conversation must not take that
        conversation's slot. Failing that, an empty slot, else the least recently used."""
        free = self.free_slots()
        if not free:
            return None
        best: tuple[Slot, int] | None = None
        for slot in free:
            shared = common_prefix(slot.tokens, tokens)
            if shared and 2 * shared >= len(slot.tokens) and (best is None or shared > best[1]):
                best = (slot, shared)
        if best is not None:
            return best
        slot = self.emptiest_free()
        return slot, common_prefix(slot.tokens, tokens)

    def emptiest_free(self) -> Slot:
        """A free slot to overwrite: an empty one, else the least recently used."""
        return min(self.free_slots(), key=lambda s: (bool(s.tokens), s.last_used))

    def cut_to(self, slot: Slot, prefix: int) -> int:
        """Keep the first `prefix` tokens of `slot`'s sequence; how many were kept."""
        self.restored = None
        if prefix < len(slot.tokens):
            keeps = window_keeps(self._llama_cpp, self.memory, slot.seq_id, prefix, self.n_swa)
            if prefix > 0 and not keeps:
                prefix = self._restore_checkpoint(slot, prefix)
            if prefix <= 0 or not self._rm(slot.seq_id, prefix):
                self.clear(slot)
                return 0
            del slot.tokens[prefix:]
            slot.fresh = min(slot.fresh, prefix)
            slot.forget_past(prefix)
        return min(prefix, len(slot.tokens))

    def checkpoint(self, slot: Slot) -> None:
        """Save `slot`'s sliding-window cells now, if it is past the window (see above)."""
        position = len(slot.tokens)
        if not self.checkpointing or position <= self.n_swa:
            return
        if slot.checkpoints and slot.checkpoints[-1].position == position:
            return
        lib = self._llama_cpp
        size = int(lib.llama_state_seq_get_size_ext(self._ctx, slot.seq_id, SWA_ONLY))
        state = (ctypes.c_uint8 * size)()
        if size and lib.llama_state_seq_get_data_ext(self._ctx, state, size, slot.seq_id, SWA_ONLY):
            slot.checkpoints = [*slot.checkpoints, Checkpoint(position, state)][-CHECKPOINTS:]

    def _restore_checkpoint(self, slot: Slot, prefix: int) -> int:
        """Put back the latest checkpoint at or before `prefix`; its position, or 0."""
        usable = [c for c in slot.checkpoints if c.position <= prefix]
        if not usable:
            return 0
        found = usable[-1]
        size = len(found.state)
        lib = self._llama_cpp
        if lib.llama_state_seq_set_data_ext(self._ctx, found.state, size, slot.seq_id, SWA_ONLY) == 0:
            return 0
        self.restored = found.position
        return found.position

    def clear(self, slot: Slot) -> None:
        self._rm(slot.seq_id, -1)
        slot.tokens.clear()
        slot.fresh = 0
        slot.checkpoints = []

    def copy(self, source: Slot, target: Slot) -> None:
        """Make `target`'s sequence share every cell of `source`'s (no evaluation)."""
        self.clear(target)
        self._llama_cpp.llama_memory_seq_cp(self.memory, source.seq_id, target.seq_id, -1, -1)
        target.tokens = list(source.tokens)
        target.fresh = source.fresh
        target.checkpoints = list(source.checkpoints)

    def drop_from(self, slot: Slot, position: int) -> None:
        """Forget cells from `position` on, after a failed decode left them undefined."""
        if not self._rm(slot.seq_id, position):
            self.clear(slot)
            return
        del slot.tokens[position:]
        slot.fresh = min(slot.fresh, position)
        slot.forget_past(position)

    def cached_tokens(self) -> int:
        return sum(len(s.tokens) for s in self.slots)

    def _rm(self, seq_id: int, start: int) -> bool:
        return bool(self._llama_cpp.llama_memory_seq_rm(self.memory, seq_id, start, -1))
