"""One prediction on the model thread: prompt, cache reuse, prompt batches, the token loop.

Prompt processing is ours: the job finds the prefix already in the KV cache,
evaluates the rest in `n_batch` chunks, reports `PromptProgress` after each and
checks for cancellation between them (and, through llama.cpp's abort callback,
inside them); then it samples token by token, decodes
UTF-8 safely, holds back stop strings and builds the result with its stats.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ModelLoadError, TemplateError
from ..formatting.limits import renders_cancelled_by
from ..logbus import LOG_BUS
from ..prediction import (
    ContentDelta,
    Event,
    Failed,
    Finished,
    Log,
    PredictionConfig,
    PredictionResult,
    PredictionStats,
    PromptProgress,
    ReasoningDelta,
    StopReason,
    TokenLogprob,
    ToolCallFinished,
)
from .channels import PredictionControl, Sink
from .generation import Generation
from .sampler import build_sampler, random_seed
from .slots import window_keeps

if TYPE_CHECKING:
    from .model import LoadedModel


class OutputParser(Protocol):
    """Turns generated text into events (plain content, reasoning, tool calls)."""

    def feed(self, text: str) -> list[Event]: ...

    def finish(self) -> list[Event]: ...


@dataclass(slots=True)
class PreparedPrompt:
    """A prompt ready for the model: its text, how to tokenise it, how to parse the output."""

    text: str
    add_special: bool = True
    parser: OutputParser | None = None
    context_note: str | None = None
    """What a context policy did to fit the prompt, if anything."""
    tokens: list[int] | None = None
    """The text already tokenised (saves doing it twice)."""


Tokenizer = Callable[[str, bool], list[int]]
PromptSource = Callable[[Tokenizer, int], PreparedPrompt]
"""Builds the prompt on the model thread, given a tokenizer and the context length,
so that fitting a chat into the context can count real tokens."""


class PlainText:
    """The parser for raw completion: every piece of text is content."""

    def feed(self, text: str) -> list[Event]:
        return [ContentDelta(text)] if text else []

    def finish(self) -> list[Event]:
        return []


@contextmanager
def abort_on(llama: Any, cancelled: threading.Event) -> Iterator[None]:
    """While inside, llama.cpp polls `cancelled` during a decode and aborts it when set.

    For prompt batches only: llama.cpp asks a few dozen times per batch, and each ask
    takes the GIL, which is nothing next to a batch but not next to one token. The CPU
    back end honours it; on a GPU a batch is short anyway.
    """
    import llama_cpp

    callback = llama_cpp.ggml_abort_callback(lambda _data: cancelled.is_set())
    llama_cpp.llama_set_abort_callback(llama._ctx.ctx, callback, None)
    try:
        yield
    finally:
        llama_cpp.llama_set_abort_callback(llama._ctx.ctx, llama_cpp.ggml_abort_callback(), None)


@contextmanager
def threads_for(llama: Any, threads: int | None) -> Iterator[None]:
    """While inside, llama.cpp computes with `threads` CPU threads (LM Studio's
    `cpuThreads` for one prediction); the model's own count comes back after."""
    if not threads or llama is None:
        yield
        return
    import llama_cpp

    ctx = llama._ctx.ctx
    before = (llama_cpp.llama_n_threads(ctx), llama_cpp.llama_n_threads_batch(ctx))
    llama_cpp.llama_set_n_threads(ctx, threads, threads)
    try:
        yield
    finally:
        llama_cpp.llama_set_n_threads(ctx, *before)


def tokenize_text(llama: Any, text: str, add_special: bool) -> list[int]:
    return list(llama.tokenize(text.encode("utf-8"), add_bos=add_special, special=True))


_PREDICTION_NUMBERS = itertools.count(1)
"""Numbers the predictions of this process, so their log records can be told apart."""


class PredictionJob:
    """One prediction, run start to finish on the model thread."""

    def __init__(
        self,
        model: LoadedModel,
        prompt: str | PromptSource,
        config: PredictionConfig,
        sink: Sink,
        parser: OutputParser,
        add_special: bool,
        control: PredictionControl,
    ) -> None:
        self.model = model
        self.prompt_source = prompt
        self.prompt = prompt if isinstance(prompt, str) else ""
        self.context_note: str | None = None
        self.config = config
        self.sink = sink
        self.parser = parser
        self.add_special = add_special
        self.control = control
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.raw: list[str] = []
        self.tool_calls: list[Any] = []
        self.prediction_id = f"p{next(_PREDICTION_NUMBERS)}"
        """On every record this prediction logs (prompt, raw output...), with the model."""
        self.logprobs: list[TokenLogprob] = []

    def run(self) -> None:
        started = time.perf_counter()
        try:
            with threads_for(self.model._llama, self.config.cpu_threads):
                result = self._predict(started)
        except Exception as err:  # every failure reaches the consumer as an event
            self._log("error", "prediction", f"prediction failed: {err}")
            self.sink(Failed(err))
            return
        self.sink(Finished(result))

    def _emit(self, events: list[Event], tokens: int) -> None:
        for event in events:
            if isinstance(event, ContentDelta):
                self.content.append(event.text)
                if tokens != 1:
                    event = ContentDelta(event.text, tokens)
            elif isinstance(event, ReasoningDelta):
                self.reasoning.append(event.text)
            elif isinstance(event, ToolCallFinished):
                self.tool_calls.append(event.call)
            self.sink(event)

    def _log(self, level: str, kind: str, message: str, **data: Any) -> None:
        data = {"prediction": self.prediction_id, "model": self.model.key, **data}
        self.sink(Log(LOG_BUS.emit(level, kind, message, **data)))

    def begin(self, started: float) -> tuple[list[int], Any] | PredictionResult:
        """What every prediction does before prompt work: the prompt's tokens and the
        sampler, or the result of a prediction that ends here (cancelled while queued,
        a prompt longer than the context)."""
        model = self.model
        llama = model._llama
        if llama is None:
            raise ModelLoadError(f"model {model.path} has been unloaded")
        if self.control.cancelled.is_set():
            # Cancelled while queued (or by an unload): no template or prompt work.
            return self._result(started, "userStopped", 0, 0, 0, None, None)
        assert model._pieces is not None and model.info is not None
        cfg = self.config
        n_ctx = llama.n_ctx()
        try:
            with renders_cancelled_by(self.control.cancelled):
                tokens = self._prepare(llama, n_ctx)
        except TemplateError:
            if not self.control.cancelled.is_set():
                raise
            return self._result(started, "userStopped", 0, 0, 0, None, None)
        n_prompt = len(tokens)
        if n_prompt >= n_ctx:
            self._log(
                "warning",
                "context",
                f"prompt of {n_prompt} tokens does not fit the context of {n_ctx}",
            )
            return self._result(started, "contextLengthReached", n_prompt, 0, 0, None, None)
        # The sampler first: a bad grammar fails before any prompt work is done.
        llama.set_seed(cfg.seed if cfg.seed is not None and cfg.seed >= 0 else random_seed())
        return tokens, build_sampler(llama, cfg)

    def conclude(
        self,
        stop_reason: StopReason,
        generation: Generation,
        n_prompt: int,
        n_evaluated: int,
        prompt_done: float,
    ) -> PredictionResult:
        """The result once generation has stopped, its held-back text flushed and logged."""
        stop_reason = generation.finish(stop_reason)
        raw = "".join(self.raw)
        self._log("info", "raw_output", "raw output", text=raw, stop_reason=stop_reason)
        return self._result(
            generation.started,
            stop_reason,
            n_prompt,
            n_evaluated,
            generation.n_predicted,
            generation.ttft,
            (prompt_done, generation.stops.found),
        )

    def _predict(self, started: float) -> PredictionResult:
        """The prediction alone on the context (one slot): the path `parallel = 1` takes."""
        begun = self.begin(started)
        if isinstance(begun, PredictionResult):
            return begun
        tokens, sampler = begun
        model = self.model
        llama = model._llama
        cfg = self.config
        n_ctx = llama.n_ctx()
        n_prompt = len(tokens)
        batch = max(1, model.config.batch_size)
        reused = self._reuse_cache(llama, tokens, batch if cfg.reproducible else None)
        to_eval = tokens[reused:]
        # Cells stay "fresh" (as a fresh evaluation computes them) only while whole
        # batches are evaluated on batch boundaries, as a fresh evaluation evaluates them.
        fresh = min(model._fresh_prefix, reused - reused % batch)
        model._fresh_prefix = fresh
        aligned = fresh == reused
        self.sink(PromptProgress(0.0, 0, len(to_eval)))
        with abort_on(llama, self.control.cancelled):
            for start in range(0, len(to_eval), batch):
                if self.control.cancelled.is_set():
                    return self._result(started, "userStopped", n_prompt, start, 0, None, None)
                chunk = to_eval[start : start + batch]
                try:
                    llama.eval(chunk)
                except RuntimeError:
                    if not self.control.cancelled.is_set():
                        raise
                    # Aborted inside llama_decode: llama.cpp dropped the batch's cells
                    # and llama-cpp-python never counted them, so the cache stays whole.
                    return self._result(started, "userStopped", n_prompt, start, 0, None, None)
                if aligned and len(chunk) == batch:
                    model._fresh_prefix += batch
                done = min(len(to_eval), start + batch)
                self.sink(PromptProgress(done / len(to_eval), done, len(to_eval)))
        prompt_done = time.perf_counter()

        ctx = llama._ctx
        generation = Generation(self, llama, started)
        stop_reason: StopReason | None
        while True:
            if self.control.cancelled.is_set():
                stop_reason = "userStopped"
                break
            if llama.n_tokens >= n_ctx:
                stop_reason = "contextLengthReached"
                break
            token = sampler.sample(ctx, -1)
            stop_reason = generation.take(token)
            if stop_reason is not None:
                break
            llama.eval([token])
        return self.conclude(stop_reason, generation, n_prompt, len(to_eval), prompt_done)

    def _prepare(self, llama: Any, n_ctx: int) -> list[int]:
        """Build (for chats) and tokenise the prompt; log the exact text the model sees."""
        source = self.prompt_source
        if isinstance(source, str):
            prepared = PreparedPrompt(source, self.add_special)
        else:
            prepared = source(lambda text, special: tokenize_text(llama, text, special), n_ctx)
        self.prompt = prepared.text
        self.add_special = prepared.add_special
        if prepared.parser is not None:
            self.parser = prepared.parser
        if prepared.context_note:
            self.context_note = prepared.context_note
            self._log("warning", "context", prepared.context_note)
        self._log("info", "prompt", "prompt", text=self.prompt)
        if prepared.tokens is not None:
            return prepared.tokens
        return tokenize_text(llama, self.prompt, self.add_special)

    def _reuse_cache(self, llama: Any, tokens: list[int], fresh_batch: int | None = None) -> int:
        """Keep the longest common prefix in the KV cache; return how many tokens it covers.

        With `fresh_batch` (a reproducible prediction), keep only what a fresh evaluation of
        these tokens would have computed the same way: whole batches from the start of
        the context. Otherwise a seed would not reproduce: the logits of a token depend,
        in their last bits, on how the cells before it were computed (a generated token
        alone, a prompt token in a batch of n), and on some back ends (GPUs, quantised
        CPU kernels) that is enough to sample another token after a different request.
        """
        cached = llama.input_ids[: llama.n_tokens]
        prefix = 0
        for a, b in zip(cached, tokens):
            if a != b:
                break
            prefix += 1
        # The last prompt token is always evaluated again: its logits are what we sample from.
        prefix = min(prefix, len(tokens) - 1)
        if fresh_batch is not None:
            prefix = min(prefix, self.model._fresh_prefix)
            prefix -= prefix % fresh_batch
        if prefix < llama.n_tokens:
            if prefix > 0 and not self._window_keeps(llama, prefix):
                self._log(
                    "info", "cache", f"cannot keep {prefix} cached tokens (a sliding window "
                    "has dropped cells they need); evaluating anew",
                )
                prefix = 0
            if prefix > 0 and llama._ctx.kv_cache_seq_rm(-1, prefix, -1):
                llama.n_tokens = prefix
            else:
                if prefix > 0:
                    self._log(
                        "warning",
                        "cache",
                        "the KV cache cannot drop a suffix for this model; evaluating anew",
                    )
                prefix = 0
                llama.reset()
                llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        self._log(
            "debug",
            "cache",
            f"reusing {prefix} cached tokens, evaluating {len(tokens) - prefix}",
            reused=prefix,
            evaluate=len(tokens) - prefix,
        )
        return prefix

    @staticmethod
    def _window_keeps(llama: Any, prefix: int) -> bool:
        import llama_cpp

        n_swa = int(llama_cpp.llama_model_n_swa(llama._model.model))
        return window_keeps(llama_cpp, llama._ctx.memory, 0, prefix, n_swa)

    def _result(
        self,
        started: float,
        stop_reason: StopReason,
        n_prompt: int,
        n_evaluated: int,
        n_predicted: int,
        ttft: float | None,
        timing: tuple[float, str | None] | None,
    ) -> PredictionResult:
        ended = time.perf_counter()
        prompt_done, stop_string = timing if timing else (ended, None)
        gen_time = ended - prompt_done
        prompt_time = prompt_done - started
        info = self.model.info
        assert info is not None
        stats = PredictionStats(
            stop_reason=stop_reason,
            prompt_tokens_count=n_prompt,
            predicted_tokens_count=n_predicted,
            time_to_first_token_sec=ttft,
            tokens_per_second=(n_predicted / gen_time) if n_predicted and gen_time > 0 else None,
            prompt_tokens_evaluated=n_evaluated,
            prompt_tokens_per_second=(
                n_evaluated / prompt_time if n_evaluated and prompt_time > 0 else None
            ),
            total_time_sec=ended - started,
            stop_string=stop_string,
            context_overflow=self.context_note,
        )
        return PredictionResult(
            content="".join(self.content),
            reasoning="".join(self.reasoning),
            stats=stats,
            model_info=info,
            prompt=self.prompt,
            raw_text="".join(self.raw),
            tool_calls=tuple(self.tool_calls),
            logprobs=tuple(self.logprobs),
        )
