"""The sampler chain a prediction samples through, the engine's prediction defaults, and the
log-probabilities of a sampled token."""

from __future__ import annotations

from typing import Any

from ..logbus import LOG_BUS
from ..prediction import PredictionConfig, PredictionConfigError, TokenLogprob

# Our engine defaults, used where neither the request nor the settings say.
ENGINE_DEFAULTS = PredictionConfig(
    temperature=0.8,
    max_tokens=-1,
    top_k=40,
    top_p=0.95,
    min_p=0.05,
    repeat_penalty=1.1,
)


def random_seed() -> int:
    import random

    return random.randrange(0, 2**31 - 1)


def build_sampler(llama: Any, cfg: PredictionConfig) -> Any:
    """The sampler chain of `Llama._init_sampler` (so that benchmarks against raw
    llama-cpp-python compare like with like), with the logit bias applied first, as
    llama.cpp's own server does."""
    from llama_cpp._internals import LlamaSampler

    n_vocab = llama.n_vocab()
    grammar = checked_grammar(cfg.grammar, llama._model.vocab)
    sampler = LlamaSampler()
    if cfg.logit_bias:
        for token, _bias in cfg.logit_bias:
            if token >= n_vocab:
                raise PredictionConfigError(
                    f"logitBias: token id {token} is outside the vocabulary of {n_vocab} tokens"
                )
        sampler.add_logit_bias(n_vocab, dict(cfg.logit_bias))
    sampler.add_penalties(
        n_vocab=n_vocab,
        penalty_last_n=llama.last_n_tokens_size,
        penalty_repeat=cfg.repeat_penalty if cfg.repeat_penalty is not None else 1.0,
        penalty_freq=cfg.frequency_penalty or 0.0,
        penalty_present=cfg.presence_penalty or 0.0,
    )
    if grammar is not None:
        sampler.add_grammar(llama._model, grammar)
    temperature = cfg.temperature if cfg.temperature is not None else 0.8
    if temperature == 0.0:
        sampler.add_greedy()
        return sampler
    sampler.add_top_k(cfg.top_k if cfg.top_k is not None else 40)
    sampler.add_typical(1.0, 1)
    sampler.add_top_p(cfg.top_p if cfg.top_p is not None else 0.95, 1)
    sampler.add_min_p(cfg.min_p if cfg.min_p is not None else 0.05, 1)
    sampler.add_temp(temperature)
    sampler.add_dist(llama._seed)
    return sampler


def checked_grammar(text: str | None, vocab: Any) -> Any:
    """A LlamaGrammar for `text`, checked first: llama.cpp returns no sampler for a
    grammar it cannot parse, and llama-cpp-python would chain that null and crash."""
    if not text:
        return None
    import llama_cpp
    from llama_cpp import LlamaGrammar

    with LOG_BUS.capture() as records:
        probe = llama_cpp.llama_sampler_init_grammar(vocab, text.encode("utf-8"), b"root")
    if not probe:
        detail = "; ".join(r.message for r in records if r.level == "error")
        raise ValueError(f"invalid grammar: {detail or 'llama.cpp could not parse it'}")
    llama_cpp.llama_sampler_free(probe)
    return LlamaGrammar.from_string(text, verbose=False)


class Logprobs:
    """A sampled token's log-probability and the likeliest alternatives, from the logits
    llama.cpp left for the step: one log-softmax over the vocabulary per token, made only
    when a request asks, so the ordinary token loop pays nothing."""

    def __init__(self, ctx: Any, n_vocab: int, pieces: Any, top: int) -> None:
        import llama_cpp
        import numpy as np

        self._np = np
        self._logits_at = llama_cpp.llama_get_logits_ith
        self._ctx = ctx
        self._n_vocab = n_vocab
        self._pieces = pieces
        self._top = top

    def __call__(self, token: int, index: int = -1) -> TokenLogprob:
        """`token`'s scores, from the logits of output `index` of the last decode."""
        np = self._np
        pointer = self._logits_at(self._ctx, index)
        logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).astype(np.float64)
        peak = logits.max()
        logprobs = logits - (peak + np.log(np.exp(logits - peak).sum()))
        top: tuple[tuple[bytes, float], ...] = ()
        if self._top:
            k = min(self._top, self._n_vocab)
            best = np.argpartition(-logprobs, k - 1)[:k]
            best = best[np.argsort(-logprobs[best], kind="stable")]
            top = tuple((self._pieces(int(t)), float(logprobs[t])) for t in best)
        return TokenLogprob(self._pieces(token), float(logprobs[token]), top)
