"""The blocking prediction stream of the Python API (LM Studio's PredictionStream), and
the idle timer behind `llm(..., ttl=...)`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from engine.errors import PredictionNotFinished
from engine.llama import SyncEventStream

from .chat import AssistantResponse
from .prediction import (
    ContentDelta,
    FirstToken,
    ModelInfo,
    PredictionFragment,
    PredictionResult,
    PromptProgress,
    ReasoningDelta,
)

if TYPE_CHECKING:
    from .llama import LoadedModel

ProgressCallback = Callable[[float], Any]
FragmentCallback = Callable[[PredictionFragment], Any]


def as_fragment(
    event: object,
    on_progress: Callable[[float], Any] | None,
    on_first_token: Callable[[], Any] | None,
) -> PredictionFragment | None:
    """The SDK's fragment for a text event; for prompt progress and the first token, the
    callback is called and None returned (as for every other event)."""
    match event:
        case ContentDelta(text=text, tokens_count=n):
            return PredictionFragment(text, "content", n)
        case ReasoningDelta(text=text, tokens_count=n):
            return PredictionFragment(text, "reasoning", n)
        case PromptProgress(fraction=fraction):
            if on_progress:
                on_progress(fraction)
        case FirstToken():
            if on_first_token:
                on_first_token()
    return None


def _assistant_message(result: PredictionResult) -> AssistantResponse:
    return AssistantResponse(
        content=result.content, reasoning=result.reasoning, tool_calls=list(result.tool_calls)
    )


@dataclass
class _Callbacks:
    on_progress: ProgressCallback | None = None
    on_first_token: Callable[[], Any] | None = None
    on_fragment: FragmentCallback | None = None
    on_message: Callable[[Any], Any] | None = None


@dataclass
class PredictionStream:
    """Iterate for `PredictionFragment`s; then `result()`. Like LM Studio's PredictionStream,
    also a context manager: leaving the `with` block before the end cancels the prediction."""

    _events: SyncEventStream
    _callbacks: _Callbacks = field(default_factory=_Callbacks)
    _finish: Callable[[PredictionResult], PredictionResult] | None = None
    _on_done: Callable[[], None] | None = None
    _result: PredictionResult | None = None

    def __post_init__(self) -> None:
        # One generator, shared: a loop that breaks early and a later
        # wait_for_result() continue the same stream.
        self._fragments = self._generate()

    def __iter__(self) -> Iterator[PredictionFragment]:
        return self._fragments

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._events.finished:
            self.cancel()
            for _ in self._fragments:  # the rest arrives at once: it stops within a token
                pass

    def _generate(self) -> Iterator[PredictionFragment]:
        callbacks = self._callbacks
        try:
            for event in self._events:
                fragment = as_fragment(event, callbacks.on_progress, callbacks.on_first_token)
                if fragment is None:
                    continue
                if callbacks.on_fragment:
                    callbacks.on_fragment(fragment)
                yield fragment
        finally:
            if self._on_done is not None and self._events.finished:
                self._on_done()
                self._on_done = None
        if self._events.result is not None and callbacks.on_message:
            callbacks.on_message(_assistant_message(self.result()))

    def wait_for_result(self) -> PredictionResult:
        for _ in self:
            pass
        return self.result()

    def result(self) -> PredictionResult:
        """The finished result; raises while the prediction is still running, or if it failed."""
        if not self._events.finished:
            raise PredictionNotFinished(
                "the prediction is still running: iterate the stream or call wait_for_result()"
            )
        if self._events.error is not None:
            raise self._events.error
        if self._result is None:
            result = self._events.result
            assert result is not None
            self._result = self._finish(result) if self._finish else result
        return self._result

    def cancel(self) -> None:
        self._events.cancel()

    @property
    def stats(self) -> Any:
        return self.result().stats if self._events.finished else None

    @property
    def model_info(self) -> ModelInfo | None:
        return self.result().model_info if self._events.finished else None


class _IdleUnload:
    """Unloads a model once it has been idle for `ttl` seconds (LM Studio's `ttl`)."""

    def __init__(self, model: LoadedModel, ttl: float) -> None:
        self.model = model
        self.ttl = ttl
        self._busy = 0
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def begin(self) -> None:
        with self._lock:
            self._busy += 1
            self._cancel()

    def end(self) -> None:
        with self._lock:
            self._busy = max(0, self._busy - 1)
        self.touch()

    def touch(self) -> None:
        with self._lock:
            self._cancel()
            if self._busy == 0:
                self._timer = threading.Timer(self.ttl, self._expire)
                self._timer.daemon = True
                self._timer.start()

    def stop(self) -> None:
        with self._lock:
            self._cancel()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        with self._lock:
            if self._busy:
                return
            model = self.model
        from .api import _forget

        _forget(model)
        model.unload()
