"""Conversations parked in host memory, for when there are more of them than slots.

When a request needs a slot that holds another conversation's cache, that cache is
copied out (`llama_state_seq_get_data_ext`) before the slot is reused; a later request
that continues the parked conversation copies it back into a free slot
(`llama_state_seq_set_data_ext`) and evaluates only its new tokens. The least recently
parked states go first once the host memory allowed for them is spent.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass

from ..logbus import LOG_BUS
from .slots import Checkpoint, KvCache, Slot, common_prefix

PARK_BYTES = 1 << 30
"""Host memory parked conversations may take, per model."""
PARK_MIN_TOKENS = 32
"""A slot's cache is parked only when at least this many of its tokens would be lost."""


@dataclass(slots=True, eq=False)
class Parked:
    tokens: list[int]
    fresh: int
    state: ctypes.Array[ctypes.c_uint8]
    checkpoints: list[Checkpoint]


class Parking:
    """The parked states of one context's sequences, newest last."""

    def __init__(self, cache: KvCache, limit_bytes: int = PARK_BYTES) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self._cache = cache
        self._ctx = cache.llama._ctx.ctx
        self.limit_bytes = limit_bytes
        self.parked: list[Parked] = []

    @property
    def size(self) -> int:
        return sum(len(p.state) + sum(len(c.state) for c in p.checkpoints) for p in self.parked)

    def worth_parking(self, slot: Slot, kept: int) -> bool:
        """Whether reusing `slot` for a prompt sharing `kept` tokens loses a conversation."""
        return len(slot.tokens) - kept >= PARK_MIN_TOKENS and kept < len(slot.tokens) // 2

    def park(self, slot: Slot) -> None:
        """Copy `slot`'s cache out to host memory (the slot itself is left as it is)."""
        lib = self._llama_cpp
        size = int(lib.llama_state_seq_get_size_ext(self._ctx, slot.seq_id, 0))
        if size <= 0 or size > self.limit_bytes:
            return
        state = (ctypes.c_uint8 * size)()
        if not lib.llama_state_seq_get_data_ext(self._ctx, state, size, slot.seq_id, 0):
            return
        self.parked.append(Parked(list(slot.tokens), slot.fresh, state, list(slot.checkpoints)))
        while self.size > self.limit_bytes:
            self.parked.pop(0)
        LOG_BUS.emit(
            "debug", "cache", f"parked {len(slot.tokens)} tokens of slot {slot.seq_id} "
            f"in host memory ({size} bytes; {len(self.parked)} parked)",
            slot=slot.seq_id, tokens=len(slot.tokens), bytes=size,
        )

    def best(self, tokens: Sequence[int]) -> tuple[Parked, int] | None:
        found: tuple[Parked, int] | None = None
        for parked in self.parked:
            shared = common_prefix(parked.tokens, tokens)
            if shared and (found is None or shared > found[1]):
                found = (parked, shared)
        return found

    def restore(self, parked: Parked, slot: Slot) -> bool:
        """Put a parked cache back into `slot`'s sequence; False if llama.cpp refused it."""
        self.parked.remove(parked)
        self._cache.clear(slot)
        lib = self._llama_cpp
        size = len(parked.state)
        if lib.llama_state_seq_set_data_ext(self._ctx, parked.state, size, slot.seq_id, 0) == 0:
            self._cache.clear(slot)
            return False
        slot.tokens = parked.tokens
        slot.fresh = parked.fresh
        slot.checkpoints = parked.checkpoints
        LOG_BUS.emit(
            "debug", "cache", f"restored {len(slot.tokens)} parked tokens into slot {slot.seq_id}",
            slot=slot.seq_id, tokens=len(slot.tokens),
        )
        return True

    def clear(self) -> None:
        self.parked.clear()
