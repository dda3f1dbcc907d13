"""The synchronous Python API, shaped like LM Studio's SDK so its snippets run as they are.

    import engine as lms
    model = lms.llm("gemma-3-270m")
    result = model.complete("My name is", config={"maxTokens": 100})

`llm()` loads a model (or finds it loaded) into this process; `LLM` is the handle with
the SDK's prediction methods (`complete`, `respond`, their `_stream` forms, `act`) and
model methods (`tokenize`, `apply_prompt_template`, `get_info`...). The scoped
`Client` and the async API are in engine.client; the act loop in engine.agent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec

from engine.errors import (
    LMStudioPredictionError,
    PredictionConfigError,
    PredictionNotFinished,  # noqa: F401  (re-exported: older imports)
)
from engine.formatting.conversation import as_chat, chat_prompt, respond_sync
from engine.llama import LoadedModel, SyncEventStream

from .agent import ActFinished, RoundFinished, RoundStarted, act_events
from .chat import Chat, ToolCall
from .load_config import LoadConfig, parse_load_overrides
from .models.loader import load_model, resolve_load
from .prediction import (
    ContentDelta,
    FirstToken,
    ModelInfo,
    PredictionConfig,
    PredictionFragment,
    PredictionResult,
    PredictionRoundResult,
    PromptProgress,
    ReasoningDelta,
)
from .prediction_stream import (
    FragmentCallback,
    PredictionStream,
    ProgressCallback,
    _Callbacks,
    _IdleUnload,
)
from .structured import structured_grammar, structured_setting

P = ParamSpec("P")

_loaded: dict[Path, LoadedModel] = {}
_instances: dict[str, LoadedModel] = {}
"""Further instances of a model (`load_new_instance`), by identifier."""
_loaded_lock = threading.Lock()


def _settings() -> Any:
    from .settings import load_settings

    return load_settings()


def llm(
    model_key: str | None = None,
    *,
    ttl: float | None = None,
    config: LoadConfig | dict[str, Any] | None = None,
    settings: Any = None,
) -> LLM:
    """A handle on a model, loading it if it is not loaded yet.

    `model_key` is a local catalog key ("gemma-3-270m"), a file name or a path;
    without one, the configured default model, else the starter model. The load
    settings are the config's, then those remembered from the app's Models screen,
    then `config` (a dict changes only what it names, in LM Studio's keys or ours;
    a LoadConfig is used as it is): engine.models.loader, as every other surface
    loads. A key llama.cpp cannot honour is a LoadConfigError naming it.

    `ttl`: seconds the model may sit idle before it is unloaded (None: it stays);
    the handle loads it again when next used.
    """
    settings = settings if settings is not None else _settings()
    handle = LLM(_load(model_key, config, settings), settings.prediction_defaults())
    handle._reload = lambda: _load(model_key, config, settings)
    if ttl is not None:
        handle._keep_for(ttl)
    return handle


def _load(
    model_key: str | None,
    config: Any,
    settings: Any,
    *,
    instance: str | None = None,
    on_progress: Callable[[float], Any] | None = None,
) -> LoadedModel:
    """The loaded model for `model_key` (loading it if it is not), or with `instance`, a
    new instance of it known by that identifier (LM Studio's `load_new_instance`)."""
    overrides = config
    if isinstance(config, dict):
        overrides = parse_load_overrides(
            config, lambda: _block_count(resolve_load(model_key, settings).path)
        )
    plan = resolve_load(model_key, settings, overrides=overrides)
    with _loaded_lock:
        if instance is not None:
            taken = _instances.get(instance)
            if instance == plan.key or (taken is not None and taken.is_loaded):
                raise ValueError(f"a model instance is already loaded as {instance!r}")
            model = load_model(dataclasses.replace(plan, key=instance), on_progress)
            _instances[instance] = model
            return model
        cached = _loaded.get(plan.path)
        if cached is not None and cached.is_loaded:
            return cached
        model = load_model(plan, on_progress)
        _loaded[plan.path] = model
    return model


def new_instance_identifier(model_key: str) -> str:
    """LM Studio's identifier for another instance of a model: `key:2`, `key:3`..."""
    with _loaded_lock:
        taken = {m.key for m in (*_loaded.values(), *_instances.values()) if m.is_loaded}
    n = 2
    while f"{model_key}:{n}" in taken:
        n += 1
    return f"{model_key}:{n}"


def _block_count(path: Path) -> int | None:
    from .models.catalog import read_model_info

    shape = read_model_info(path).shape
    return shape.block_count if shape else None


def list_loaded_models(namespace: str | None = None) -> list[LLM]:
    """The models this process holds (LM Studio's namespaces: "llm" or None; llamaterm
    has no embedding models, so "embedding" lists none)."""
    if namespace not in (None, "llm", "embedding"):
        raise ValueError(f"unknown model namespace {namespace!r}: 'llm' or 'embedding'")
    if namespace == "embedding":
        return []
    return [LLM(m, PredictionConfig()) for m in loaded_models()]


def loaded_models() -> list[LoadedModel]:
    """Every model `llm()` and the clients loaded that is still loaded."""
    with _loaded_lock:
        return [m for m in (*_loaded.values(), *_instances.values()) if m.is_loaded]


def _forget(model: LoadedModel) -> None:
    with _loaded_lock:
        if _loaded.get(model.path) is model:
            _loaded.pop(model.path, None)
        if _instances.get(model.key) is model:
            _instances.pop(model.key, None)


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


def prediction_config(
    config: PredictionConfig | dict[str, Any] | None,
    defaults: PredictionConfig,
    *,
    response_format: Any = None,
    preset: str | None = None,
    tools_offered: bool = False,
) -> PredictionConfig:
    """The config a prediction runs with: `config` over `defaults`, `response_format` as
    its `structured` setting and that as a grammar, the prompt template's stop strings
    and (with tools offered) `toolCallStopStrings` among the stop strings."""
    if preset is not None:
        raise PredictionConfigError(
            f"preset {preset!r}: presets are LM Studio app settings; give the config instead"
        )
    cfg = PredictionConfig.parse(config)
    if response_format is not None:
        if cfg.structured is not None:
            raise PredictionConfigError(
                "give either response_format or the config's structured setting, not both"
            )
        cfg = cfg.model_copy(update={"structured": structured_setting(response_format)})
    merged = cfg.merged_over(defaults)
    updates: dict[str, Any] = {}
    if merged.structured is not None and merged.structured.is_on:
        if merged.grammar:
            raise PredictionConfigError("give either structured or grammar, not both")
        updates["grammar"] = structured_grammar(merged.structured)
    stops = list(merged.stop_strings or ())
    if merged.prompt_template is not None:
        stops += merged.prompt_template.stop_strings
    if tools_offered and merged.tool_call_stop_strings:
        stops += merged.tool_call_stop_strings
    if stops != list(merged.stop_strings or ()):
        updates["stop_strings"] = tuple(dict.fromkeys(stops))
    return merged.model_copy(update=updates) if updates else merged


def instance_info(model: LoadedModel, info: ModelInfo | None = None) -> ModelInfo:
    """`info` (the model's own by default) with LM Studio's instance fields filled in."""
    try:
        size = Path(model.path).stat().st_size
    except OSError:
        size = 0
    return dataclasses.replace(
        info or model.info,
        size_bytes=size,
        identifier=model.key,
        instance_reference=model.key,
        params_string=model.metadata.get("general.size_label") or None,
        trained_for_tool_use=model.tool_format != "default",
    )


def raw_tools(
    config: PredictionConfig | dict[str, Any] | None, defaults: PredictionConfig
) -> list[dict[str, Any]] | None:
    """The tools a config's `rawTools` offers (None: it sets none)."""
    return PredictionConfig.parse(config).merged_over(defaults).raw_tool_list


class LLM:
    """A loaded model, with LM Studio's prediction and model methods."""

    def __init__(self, model: LoadedModel, defaults: PredictionConfig) -> None:
        self._model = model
        self._defaults = defaults
        self._reload: Callable[[], LoadedModel] | None = None
        self._idle: _IdleUnload | None = None

    def __repr__(self) -> str:
        return f"LLM(identifier={self.identifier!r})"

    @property
    def identifier(self) -> str:
        return self._model.key

    @property
    def loaded_model(self) -> LoadedModel:
        return self._live()

    def _live(self) -> LoadedModel:
        """The model; one its ttl unloaded is loaded again (an explicit unload is final)."""
        if not self._model.is_loaded and self._reload is not None and self._idle is not None:
            self._model = self._reload()
            self._idle.model = self._model
        return self._model

    def _keep_for(self, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be a positive number of seconds (got {ttl!r})")
        self._idle = _IdleUnload(self._model, ttl)
        self._idle.touch()

    # --- the model ----------------------------------------------------------------

    def get_info(self) -> ModelInfo:
        """What the model is, with LM Studio's LlmInstanceInfo fields (model_key, format,
        display_name, path, size_bytes, architecture, vision, trained_for_tool_use,
        max_context_length, context_length, identifier, instance_reference, params_string)."""
        return instance_info(self._live())

    def get_load_config(self) -> LoadConfig:
        """The settings the model was loaded with."""
        return self._live().config

    def get_context_length(self) -> int:
        return self._live().info.context_length

    def tokenize(self, input: str | Iterable[str]) -> list[int] | list[list[int]]:
        """Token ids of a string, or of each string of a list (LM Studio's name: input)."""
        model = self._live()
        if isinstance(input, str):
            return model.tokenize(input)
        return [model.tokenize(text) for text in input]

    def count_tokens(self, input: str) -> int:
        return len(self._live().tokenize(input))

    def apply_prompt_template(
        self,
        history: Chat | dict[str, Any] | str,
        opts: dict[str, Any] | None = None,
        *,
        config: PredictionConfig | dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> str:
        """The exact prompt text a reply to `history` would evaluate: the model's template
        rendered in the sandbox, the context policy applied. `opts` are LM Studio's
        (`omitBosToken`, `omitEosToken`, `toolDefinitions`)."""
        opts = dict(opts or {})
        unknown = sorted(opts.keys() - {"omitBosToken", "omitEosToken", "toolDefinitions"})
        if unknown:
            raise ValueError(f"apply_prompt_template: unknown option(s) {', '.join(unknown)}")
        tools = tools or opts.get("toolDefinitions") or None
        model = self._live()
        cfg = prediction_config(config, self._defaults, tools_offered=bool(tools))
        source = chat_prompt(model, as_chat(history).copy(), cfg, tools=tools)
        from .llama.job import tokenize_text

        prepared = model.run(
            lambda llama: source(lambda t, s: tokenize_text(llama, t, s), llama.n_ctx())
        ).result()
        text = prepared.text
        if prepared.add_special and model.bos_text and not opts.get("omitBosToken"):
            text = model.bos_text + text  # the BOS token tokenising adds
        if opts.get("omitBosToken") and model.bos_text:
            text = text.removeprefix(model.bos_text)
        if opts.get("omitEosToken") and model.eos_text:
            text = text.removesuffix(model.eos_text)
        return text

    def unload(self) -> None:
        model = self._model
        self._reload = None
        if self._idle is not None:
            self._idle.stop()
        _forget(model)
        model.unload()

    # --- predictions --------------------------------------------------------------

    def _stream(
        self, events: SyncEventStream, cfg: PredictionConfig, callbacks: _Callbacks
    ) -> PredictionStream:
        model = self._model
        layers = float(model.offload.layers)
        idle = self._idle
        if idle is not None:
            idle.begin()

        def finish(result: PredictionResult) -> PredictionResult:
            stats = dataclasses.replace(result.stats, num_gpu_layers=layers)
            return dataclasses.replace(
                result, stats=stats, prediction_config=cfg, load_config=model.config,
                model_info=instance_info(model, result.model_info),
            )

        return PredictionStream(events, callbacks, finish, idle.end if idle else None)

    def complete_stream(
        self,
        prompt: str,
        config: PredictionConfig | dict[str, Any] | None = None,
        *,
        response_format: Any = None,
        preset: str | None = None,
        on_prompt_processing_progress: ProgressCallback | None = None,
        on_first_token: Callable[[], Any] | None = None,
        on_prediction_fragment: FragmentCallback | None = None,
        on_message: Callable[[Any], Any] | None = None,
    ) -> PredictionStream:
        """Start completing `prompt`; iterate the returned stream for fragments (or use it
        as a context manager: leaving the block early cancels the prediction)."""
        model = self._live()
        cfg = prediction_config(
            config, self._defaults, response_format=response_format, preset=preset
        )
        events = model.complete_sync(prompt, cfg)
        callbacks = _Callbacks(
            on_prompt_processing_progress, on_first_token, on_prediction_fragment, on_message
        )
        return self._stream(events, cfg, callbacks)

    complete = _blocking(complete_stream, "Complete `prompt` and return the result (blocking).")

    def respond_stream(
        self,
        history: Chat | dict[str, Any] | str,
        config: PredictionConfig | dict[str, Any] | None = None,
        *,
        response_format: Any = None,
        preset: str | None = None,
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
        keeps a multi-turn chat going. `response_format` (a pydantic model class, an
        `lms.BaseModel` subclass or a JSON schema) makes the reply JSON of that schema:
        `result.parsed` is the object. `tools` (OpenAI function schemas, or the config's
        `rawTools`) are offered in the model's own format or the default one; the
        result's `tool_calls` holds what the model asked for (use `act` to run them).
        """
        model = self._live()
        if tools is None:
            tools = raw_tools(config, self._defaults)
        cfg = prediction_config(
            config, self._defaults, response_format=response_format, preset=preset,
            tools_offered=bool(tools),
        )
        events = respond_sync(
            model, history, cfg, defaults=self._defaults, tools=tools, tool_choice=tool_choice
        )
        callbacks = _Callbacks(
            on_prompt_processing_progress, on_first_token, on_prediction_fragment, on_message
        )
        return self._stream(events, cfg, callbacks)

    respond = _blocking(respond_stream, "The assistant's reply to a chat (blocking).")

    def act(
        self,
        chat: Chat | dict[str, Any] | str,
        tools: Iterable[Any],
        config: PredictionConfig | dict[str, Any] | None = None,
        *,
        max_prediction_rounds: int | None = None,
        max_parallel_tool_calls: int | None = 1,
        preset: str | None = None,
        on_message: Callable[[Any], Any] | None = None,
        on_first_token: Callable[[int], Any] | None = None,
        on_prediction_fragment: Callable[[PredictionFragment, int], Any] | None = None,
        on_round_start: Callable[[int], Any] | None = None,
        on_round_end: Callable[[int], Any] | None = None,
        on_prediction_completed: Callable[[PredictionRoundResult], Any] | None = None,
        on_prompt_processing_progress: Callable[[float, int], Any] | None = None,
        handle_invalid_tool_request: Callable[[Exception, ToolCall | None], str | None]
        | None = None,
        on_event: Callable[[Any], Any] | None = None,
        approve: Callable[[Any, Any], bool] | None = None,
        max_rounds: int | None = None,
        tool_choice: Any = "auto",
        allowed_roots: Iterable[Path] = (),
    ) -> ActResult:
        """Respond, run the tools the model calls, and respond again until it answers.

        LM Studio's keywords: with `max_prediction_rounds`, the last round offers no
        tools, so it answers; the calls of a round run `max_parallel_tool_calls` at a
        time, their results going back in order; the callbacks get the round index;
        `handle_invalid_tool_request(error, call)` may replace the message a failed call
        sends back (or raise to stop). `tools` are plain functions, `ToolFunctionDef`s,
        LM Studio's dict form or ToolDefinitions (from the tools file). Ours besides:
        `max_rounds` (a limit that still offers tools), `tool_choice` (round one only),
        `approve(call, tool)` for tools that need approval (refused without it),
        `on_event` for every event of the loop.

        `chat` (a Chat) is extended in place with every assistant message and tool
        result, unless `on_message` is that chat's own `append` (the SDK's idiom): then
        the loop works on a copy and `on_message` adds each message once.
        """
        started = time.perf_counter()
        if max_prediction_rounds is not None and max_prediction_rounds < 1:
            raise ValueError(
                f"max_prediction_rounds must be at least 1 ({max_prediction_rounds!r} given)"
            )
        conversation = as_chat(chat)
        if getattr(on_message, "__self__", None) is conversation:
            conversation = conversation.copy()
        model = self._live()
        by_rounds = max_prediction_rounds is not None
        limit = max_prediction_rounds or max_rounds or 8
        # Tools are offered in every round but (with max_prediction_rounds) the last.
        cfg = prediction_config(config, self._defaults, preset=preset, tools_offered=True)
        events: list[Any] = []
        state = {"round": 0}

        def invalid(call: ToolCall | None, message: str, err: Exception | None) -> str | None:
            if handle_invalid_tool_request is None:
                return None
            error = LMStudioPredictionError(message)
            error.__cause__ = err
            return handle_invalid_tool_request(error, call)

        def dispatch(event: Any) -> None:
            index = state["round"]
            match event:
                case RoundStarted(index=n):
                    if n > 0 and on_round_end is not None:
                        on_round_end(n - 1)
                    state["round"] = n
                    if on_round_start is not None:
                        on_round_start(n)
                case ContentDelta(text=text, tokens_count=count) if on_prediction_fragment:
                    on_prediction_fragment(PredictionFragment(text, "content", count), index)
                case ReasoningDelta(text=text, tokens_count=count) if on_prediction_fragment:
                    on_prediction_fragment(PredictionFragment(text, "reasoning", count), index)
                case FirstToken() if on_first_token is not None:
                    on_first_token(index)
                case PromptProgress(fraction=fraction) if on_prompt_processing_progress:
                    on_prompt_processing_progress(fraction, index)
                case RoundFinished(index=n, result=result) if on_prediction_completed:
                    on_prediction_completed(
                        PredictionRoundResult(
                            **{f.name: getattr(result, f.name) for f in dataclasses.fields(result)},
                            round_index=n,
                        )
                    )
                case ActFinished() if on_round_end is not None:
                    on_round_end(index)
            if on_event is not None:
                on_event(event)

        async def run() -> None:
            act = act_events(
                model,
                conversation,
                tools,
                config=cfg,
                defaults=self._defaults,
                approve=approve,
                on_message=on_message,
                max_rounds=limit,
                tool_choice=tool_choice,
                allowed_roots=list(allowed_roots),
                max_parallel_tool_calls=max_parallel_tool_calls or 1,
                on_invalid_tool=invalid,
                tools_in_final_round=not by_rounds,
            )
            try:
                async for event in act:
                    events.append(event)
                    dispatch(event)
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
            total_time_seconds=time.perf_counter() - started,
        )


@dataclass(frozen=True)
class ActResult:
    """What `act` did: how many rounds and how long (LM Studio's fields), why it ended,
    the last result, the chat and every event."""

    rounds: int
    reason: str
    result: PredictionResult | None
    chat: Chat
    events: list[Any]
    total_time_seconds: float = 0.0


def _run_coroutine(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to the end from sync code, even when this thread runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(make())
        return
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(make())
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            failure.append(err)

    worker = threading.Thread(target=target)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
