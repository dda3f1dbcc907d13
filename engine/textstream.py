"""Old path of the token-to-text helpers, kept while callers move to `engine.llama.decoding`."""

from __future__ import annotations

from .llama.decoding import *  # noqa: F403
from .llama.decoding import EndOfGeneration, StopStringMatcher, TokenPieces, Utf8Decoder

__all__ = ["EndOfGeneration", "StopStringMatcher", "TokenPieces", "Utf8Decoder"]
