"""Sampled tokens to text: whole pieces, UTF-8 decoding across tokens, stop strings.

`TokenPieces` asks llama.cpp for each token's bytes with a buffer that grows,
`Utf8Decoder` joins characters split across tokens, `StopStringMatcher` holds back
text until it can no longer become a stop string, and `EndOfGeneration` answers
whether a token ends the reply.
"""

from __future__ import annotations

import codecs
import ctypes
from collections.abc import Sequence


class EndOfGeneration:
    """Token id -> is it an end-of-generation token, cached.

    Not for llama.cpp's sake: every ctypes call releases the GIL, and taking it back
    can cost a whole switch interval when another thread (a UI) is busy, so the token
    loop makes as few of them as it can.
    """

    def __init__(self, vocab: ctypes.c_void_p) -> None:
        import llama_cpp

        self._is_eog = llama_cpp.llama_vocab_is_eog
        self._vocab = vocab
        self._cache: dict[int, bool] = {}

    def __call__(self, token: int) -> bool:
        known = self._cache.get(token)
        if known is None:
            known = self._cache[token] = bool(self._is_eog(self._vocab, token))
        return known


class TokenPieces:
    """Token id -> bytes, cached.

    llama-cpp-python's `detokenize` uses a fixed 32-byte buffer and silently drops
    longer pieces; this asks llama.cpp for the size it needs and retries.
    """

    def __init__(self, vocab: ctypes.c_void_p) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self._vocab = vocab
        self._cache: dict[int, bytes] = {}
        self._buffer = ctypes.create_string_buffer(64)

    def __call__(self, token: int) -> bytes:
        piece = self._cache.get(token)
        if piece is None:
            piece = self._cache[token] = self._piece(token)
        return piece

    def _piece(self, token: int) -> bytes:
        size = len(self._buffer)
        n = self._llama_cpp.llama_token_to_piece(self._vocab, token, self._buffer, size, 0, True)
        if n < 0:
            self._buffer = ctypes.create_string_buffer(-n)
            n = self._llama_cpp.llama_token_to_piece(
                self._vocab, token, self._buffer, -n, 0, True
            )
        return self._buffer.raw[: max(n, 0)]

    def text(self, tokens: Sequence[int]) -> str:
        return b"".join(self(t) for t in tokens).decode("utf-8", errors="replace")


class Utf8Decoder:
    """Decodes a byte stream whose multi-byte characters may be split across tokens."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def finish(self) -> str:
        return self._decoder.decode(b"", final=True)


class StopStringMatcher:
    """Holds back text that could still become a stop string, and finds complete ones.

    `feed` returns the text that is safe to emit. Once a stop string is found,
    `found` names it and the text before it has been returned; nothing after.
    """

    def __init__(self, stop_strings: Sequence[str]) -> None:
        self._stops = tuple(s for s in stop_strings if s)
        self._longest = max((len(s) for s in self._stops), default=0)
        self._held = ""
        self.found: str | None = None

    def feed(self, text: str) -> str:
        if not self._stops:
            return text
        if self.found is not None:
            return ""
        held = self._held + text
        first_at = -1
        for stop in self._stops:
            at = held.find(stop)
            if at != -1 and (first_at == -1 or at < first_at):
                first_at, self.found = at, stop
        if first_at != -1:
            self._held = ""
            return held[:first_at]
        keep = self._partial_suffix(held)
        self._held = held[len(held) - keep :] if keep else ""
        return held[: len(held) - keep]

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest tail of `text` that begins some stop string."""
        for n in range(min(len(text), self._longest - 1), 0, -1):
            tail = text[-n:]
            if any(stop.startswith(tail) for stop in self._stops):
                return n
        return 0

    def flush(self) -> str:
        """Generation ended without completing a stop string: the held text is real output."""
        held, self._held = self._held, ""
        return "" if self.found is not None else held
