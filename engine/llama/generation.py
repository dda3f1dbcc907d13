"""The token side of one prediction: each sampled token to events, and when to stop.

Shared by both ways a prediction runs (alone, `PredictionJob.run`; beside others, the
batching scheduler): given a sampled token, `Generation.take` reports the first token,
scores it when log-probabilities were asked for, decodes its text across UTF-8 splits,
holds back stop strings, feeds the output parser, and says whether generation ends.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..prediction import FirstToken, StopReason
from .decoding import StopStringMatcher, Utf8Decoder
from .sampler import Logprobs

if TYPE_CHECKING:
    from .job import PredictionJob


class Generation:
    """The state of one prediction's token loop."""

    def __init__(self, job: PredictionJob, llama: Any, started: float) -> None:
        model = job.model
        cfg = job.config
        assert model._pieces is not None and model._eog is not None
        self.job = job
        self.started = started
        self.max_tokens = cfg.max_tokens if cfg.max_tokens and cfg.max_tokens > 0 else None
        self.is_eog = model._eog
        self.pieces = model._pieces
        self.decoder = Utf8Decoder()
        self.stops = StopStringMatcher(cfg.stop_strings or ())
        self.ttft: float | None = None
        self.n_predicted = 0
        self.logprobs = (
            Logprobs(llama._ctx.ctx, llama.n_vocab(), self.pieces, cfg.top_logprobs)
            if cfg.top_logprobs is not None
            else None
        )

    def take(self, token: int, index: int = -1) -> StopReason | None:
        """Account for `token`, sampled from the logits at `index`; a reason to stop, or None."""
        job = self.job
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.started
            job.sink(FirstToken(self.ttft))
        if self.is_eog(token):
            return "eosFound"
        self.n_predicted += 1
        if self.logprobs is not None:
            # Before the token's text, so that a writer can attach it to that text.
            scored = self.logprobs(token, index)
            job.logprobs.append(scored)
            job.sink(scored)
        text = self.decoder.feed(self.pieces(token))
        if text:
            job.raw.append(text)
            job._emit(job.parser.feed(self.stops.feed(text)), 1)
            if self.stops.found is not None:
                return "stopStringFound"
        if self.max_tokens is not None and self.n_predicted >= self.max_tokens:
            return "maxPredictedTokensReached"
        return None

    def finish(self, stop_reason: StopReason) -> StopReason:
        """Flush what was held back; the stop reason the result reports."""
        job = self.job
        if stop_reason != "stopStringFound":
            tail = self.decoder.finish()
            job.raw.append(tail)
            job._emit(job.parser.feed(self.stops.feed(tail) + self.stops.flush()), 0)
        job._emit(job.parser.finish(), 0)
        if stop_reason == "eosFound" and job.tool_calls:
            stop_reason = "toolCalls"
        return stop_reason
