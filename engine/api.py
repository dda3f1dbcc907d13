"""The synchronous Python API, shaped like LM Studio's SDK so its snippets run as they are.

    import engine as lms
    model = lms.llm("gemma-3-270m")
    result = model.complete("My name is", config={"maxTokens": 100})
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec

from engine.errors import PredictionNotFinished
from engine.formatting.conversation import as_chat, respond_sync
from engine.llama import LoadedModel, SyncEventStream

from .agent import ActFinished, act_events
from .chat import AssistantResponse, Chat
from .load_config import LoadConfig
from .models.loader import load_model, resolve_load
from .prediction import (
    ContentDelta,
    FirstToken,
    PredictionConfig,
    PredictionFragment,
    PredictionResult,
    PromptProgress,
    ReasoningDelta,
)

ProgressCallback = Callable[[float], Any]
FragmentCallback = Callable[[PredictionFragment], Any]
P = ParamSpec("P")




_loaded: dict[Path, LoadedModel] = {}
_loaded_lock = threading.Lock()


def _settings() -> Any:
    from .settings import load_settings

    return load_settings()


def llm(
    model_key: str | None = None,
    *,
    config: LoadConfig | dict[str, Any] | None = None,
    settings: Any = None,
) -> LLM:
    """A handle on a model, loading it if it is not loaded yet.

    `model_key` is a local catalog key ("gemma-3-270m"), a file name or a path;
    without one, the configured default model, else the starter model. The load
    settings are the config's, then those remembered from the app's Models screen,
    then `config` (a dict changes only what it names; a LoadConfig is used as it is):
    engine.models.loader, as every other surface loads.
    """
    settings = settings if settings is not None else _settings()
    plan = resolve_load(model_key, settings, overrides=config)
    with _loaded_lock:
        model = _loaded.get(plan.path)
        if model is None or not model.is_loaded:
            model = load_model(plan)
            _loaded[plan.path] = model
    return LLM(model, settings.prediction_defaults())


def list_loaded_models() -> list[LLM]:
    with _loaded_lock:
        return [LLM(m, PredictionConfig()) for m in _loaded.values() if m.is_loaded]


def _blocking(
    stream_method: Callable[P, PredictionStream], doc: str
) -> Callable[P, PredictionResult]:
    """The blocking form of a `*_stream` method: the same parameters, and the stream's result.

    LM Studio's SDK pairs `complete`/`complete_stream` and `respond`/`respond_stream`;
    the parameters are written once, on the stream method, and `inspect.signature`
    (so `help()`) shows them on both."""

    def blocking(*args: P.args, **kwargs: P.kwargs) -> PredictionResult:
        return stream_method(*args, **kwargs).wait_for_result()

    name = stream_method.__name__.removesuffix("_stream")
    blocking.__name__ = name
    blocking.__qualname__ = stream_method.__qualname__.replace(stream_method.__name__, name)
    blocking.__doc__ = doc
    blocking.__signature__ = inspect.signature(stream_method).replace(  # type: ignore[attr-defined]
        return_annotation="PredictionResult"
    )
    return blocking


class LLM:
    """A loaded model, with LM Studio's prediction methods."""

    def __init__(self, model: LoadedModel, defaults: PredictionConfig) -> None:
        self._model = model
        self._defaults = defaults

    @property
    def identifier(self) -> str:
        return self._model.key

    @property
    def loaded_model(self) -> LoadedModel:
        return self._model

    def get_info(self) -> Any:
        return self._model.info

    def get_context_length(self) -> int:
        assert self._model.info is not None
        return self._model.info.context_length

    def tokenize(self, text: str) -> list[int]:
        return self._model.tokenize(text)

    def unload(self) -> None:
        with _loaded_lock:
            _loaded.pop(self._model.path, None)
        self._model.unload()

    def complete_stream(
        self,
        prompt: str,
        config: PredictionConfig | dict[str, Any] | None = None,
        *,
        on_prompt_processing_progress: ProgressCallback | None = None,
        on_first_token: Callable[[], Any] | None = None,
        on_prediction_fragment: FragmentCallback | None = None,
        on_message: Callable[[Any], Any] | None = None,
    ) -> PredictionStream:
        """Start completing `prompt`; iterate the returned stream for fragments."""
        merged = PredictionConfig.parse(config).merged_over(self._defaults)
        events = self._model.complete_sync(prompt, merged)
        callbacks = _Callbacks(
            on_prompt_processing_progress, on_first_token, on_prediction_fragment, on_message
        )
        return PredictionStream(events, callbacks)

    complete = _blocking(complete_stream, "Complete `prompt` and return the result (blocking).")

    def respond_stream(
        self,
        history: Chat | dict[str, Any] | str,
        config: PredictionConfig | dict[str, Any] | None = None,
        *,
        on_prompt_processing_progress: ProgressCallback | None = None,
        on_first_token: Callable[[], Any] | None = None,
        on_prediction_fragment: FragmentCallback | None = None,
        on_message: Callable[[Any], Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = "auto",
    ) -> PredictionStream:
        """Start the assistant's reply to a chat, rendered with the model's own template.

        Fragments carry a kind: "reasoning" for thinking, "content" for the answer.
        `on_message` receives the finished AssistantResponse, so `on_message=chat.append`
        keeps a multi-turn chat going. `tools` (OpenAI function schemas) are offered in
        the model's own format or the default one; the result's `tool_calls` holds what
        the model asked for (use `act` to run them).
        """
        events = respond_sync(
            self._model,
            history,
            config,
            defaults=self._defaults,
            tools=tools,
            tool_choice=tool_choice,
        )
        callbacks = _Callbacks(
            on_prompt_processing_progress, on_first_token, on_prediction_fragment, on_message
        )
        return PredictionStream(events, callbacks)

    respond = _blocking(respond_stream, "The assistant's reply to a chat (blocking).")

    def act(
        self,
        chat: Chat | dict[str, Any] | str,
        tools: Iterable[Any],
        config: PredictionConfig | dict[str, Any] | None = None,
        *,
        on_message: Callable[[Any], Any] | None = None,
        on_event: Callable[[Any], Any] | None = None,
        approve: Callable[[Any, Any], bool] | None = None,
        max_rounds: int = 8,
        tool_choice: Any = "auto",
        allowed_roots: Iterable[Path] = (),
    ) -> ActResult:
        """Respond, run the tools the model calls, and respond again until it answers.

        `tools` are ToolDefinitions (from the tools file) or plain Python functions.
        `tool_choice` applies to the first round. Tools that need approval run only if
        `approve(call, tool)` returns True; without `approve`, they are refused.
        `chat` is extended in place with every assistant message and tool result.
        """
        conversation = as_chat(chat)
        events: list[Any] = []

        async def run() -> None:
            act = act_events(
                self._model,
                conversation,
                tools,
                config=config,
                defaults=self._defaults,
                approve=approve,
                on_message=on_message,
                max_rounds=max_rounds,
                tool_choice=tool_choice,
                allowed_roots=list(allowed_roots),
            )
            try:
                async for event in act:
                    events.append(event)
                    if on_event is not None:
                        on_event(event)
            finally:
                act.cancel()

        _run_coroutine(run)
        finished = next(e for e in reversed(events) if isinstance(e, ActFinished))
        return ActResult(
            rounds=finished.rounds,
            reason=finished.reason,
            result=finished.result,
            chat=conversation,
            events=events,
        )


@dataclass(frozen=True)
class ActResult:
    """What `act` did: how many rounds, why it ended, the last result, every event."""

    rounds: int
    reason: str
    result: PredictionResult | None
    chat: Chat
    events: list[Any]


def _run_coroutine(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to the end from sync code, even when this thread runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(make())
        return
    worker = threading.Thread(target=lambda: asyncio.run(make()))
    worker.start()
    worker.join()


def _assistant_message(result: PredictionResult) -> AssistantResponse:
    return AssistantResponse(
        content=result.content, reasoning=result.reasoning, tool_calls=list(result.tool_calls)
    )


class _Callbacks:
    def __init__(
        self,
        on_progress: ProgressCallback | None = None,
        on_first_token: Callable[[], Any] | None = None,
        on_fragment: FragmentCallback | None = None,
        on_message: Callable[[Any], Any] | None = None,
    ) -> None:
        self.on_progress = on_progress
        self.on_first_token = on_first_token
        self.on_fragment = on_fragment
        self.on_message = on_message


class PredictionStream:
    """Iterate for `PredictionFragment`s; then `result()`. Like LM Studio's PredictionStream."""

    def __init__(self, events: SyncEventStream, callbacks: _Callbacks) -> None:
        self._events = events
        self._callbacks = callbacks
        # One generator, shared: a loop that breaks early and a later
        # wait_for_result() continue the same stream.
        self._fragments = self._generate()

    def __iter__(self) -> Iterator[PredictionFragment]:
        return self._fragments

    def _generate(self) -> Iterator[PredictionFragment]:
        callbacks = self._callbacks
        for event in self._events:
            match event:
                case ContentDelta(text=text, tokens_count=n):
                    fragment = PredictionFragment(text, "content", n)
                case ReasoningDelta(text=text, tokens_count=n):
                    fragment = PredictionFragment(text, "reasoning", n)
                case PromptProgress(fraction=fraction):
                    if callbacks.on_progress:
                        callbacks.on_progress(fraction)
                    continue
                case FirstToken():
                    if callbacks.on_first_token:
                        callbacks.on_first_token()
                    continue
                case _:
                    continue
            if callbacks.on_fragment:
                callbacks.on_fragment(fragment)
            yield fragment
        result = self._events.result
        if result is not None and callbacks.on_message:
            callbacks.on_message(_assistant_message(result))

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
        assert self._events.result is not None
        return self._events.result

    def cancel(self) -> None:
        self._events.cancel()
