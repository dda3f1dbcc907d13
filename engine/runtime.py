"""`LoadedModel`: one llama.cpp model on one dedicated thread.

llama.cpp calls block and a `Llama` is not thread-safe, so every call on a model
runs on that model's own thread, one request at a time, in order. Results travel
back as events through a sink (a queue for the sync API, the event loop for the
async one). Prompt processing is ours: we find the prefix already in the KV
cache, evaluate the rest in batches, report progress and check for cancellation
between batches.
"""

from __future__ import annotations

from engine.errors import ModelLoadError, PredictionCancelled

import asyncio
import concurrent.futures
import queue
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .load_config import LoadConfig
from .logbus import LOG_BUS, install_llama_log_hook
from .prediction import (
    ContentDelta,
    Event,
    Failed,
    Finished,
    FirstToken,
    Log,
    LogRecord,
    ModelInfo,
    PredictionConfig,
    PredictionConfigError,
    PredictionResult,
    PredictionStats,
    PromptProgress,
    ReasoningDelta,
    StopReason,
    ToolCallFinished,
)
from .textstream import EndOfGeneration, StopStringMatcher, TokenPieces, Utf8Decoder

if TYPE_CHECKING:
    from .chat import Chat

Sink = Callable[[Event], None]

_KV_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "bf16": 30}
_OFFLOAD_LINE = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")

# Our engine defaults, used where neither the request nor the settings say.
ENGINE_DEFAULTS = PredictionConfig(
    temperature=0.8,
    max_tokens=-1,
    top_k=40,
    top_p=0.95,
    min_p=0.05,
    repeat_penalty=1.1,
)






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


@dataclass(slots=True)
class Offload:
    """What llama.cpp reported offloading to the GPU at load time."""

    layers: int = 0
    total_layers: int = 0
    gpu_supported: bool = False

    def describe(self) -> str:
        if not self.gpu_supported:
            return "CPU only (llama.cpp built without GPU support)"
        return f"{self.layers}/{self.total_layers} layers on GPU"


class _ModelThread:
    """A single worker thread that runs a model's jobs in order."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]] | None]
        self._jobs = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((job, future))
        return future

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as err:  # delivered to whoever waits on the future
                future.set_exception(err)

    def stop(self) -> None:
        self._jobs.put(None)

    @property
    def is_current(self) -> bool:
        return threading.current_thread() is self._thread


@dataclass
class PredictionControl:
    """A handle on a queued or running prediction."""

    cancelled: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancelled.set()


def check_gguf_file(path: Path) -> None:
    """Fail early, naming the file, for what llama.cpp would report badly or not at all."""
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"model path is not a file: {path}")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as err:
        raise ModelLoadError(f"cannot read model file {path}: {err.strerror}") from None
    if magic != b"GGUF":
        raise ModelLoadError(
            f"{path} is not a GGUF model file (it starts with {magic!r}, not b'GGUF')"
        )


class LoadedModel:
    """A model loaded by llama.cpp, owned by its own thread."""

    def __init__(self, path: Path, config: LoadConfig, key: str = "") -> None:
        self.path = path
        self.config = config
        self.key = key or path.stem
        self._thread = _ModelThread(f"llama:{path.name}")
        self._llama: Any = None
        self._pieces: TokenPieces | None = None
        self._eog: EndOfGeneration | None = None
        self._info: ModelInfo | None = None
        self.offload = Offload()
        self.metadata: dict[str, str] = {}
        self.chat_template: Any = None
        self.bos_text = ""
        self.eos_text = ""
        self._closed = False
        self._active: dict[int, PredictionControl] = {}
        self._active_lock = threading.Lock()

    # --- what the ChatModel contract asks of every model -----------------------

    is_remote = False

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise ModelLoadError(f"model {self.path} has not finished loading")
        return self._info

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def placement(self) -> str:
        return self.offload.describe()

    def cancel(self) -> None:
        """Stop every queued or running prediction (each finishes as userStopped)."""
        with self._active_lock:
            controls = list(self._active.values())
        for control in controls:
            control.cancel()

    # --- loading ------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        config: LoadConfig | None = None,
        key: str = "",
        *,
        on_progress: LoadProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> LoadedModel:
        """Load a model, blocking the caller (not the model thread's other work).

        `on_progress(fraction)` is called on the loading thread as the weights load
        (0.0 to 1.0); setting `cancel` aborts the load with a `ModelLoadError`."""
        model = cls(Path(path).expanduser(), config or LoadConfig(), key)
        try:
            model._thread.submit(lambda: model._load(on_progress, cancel)).result()
        except BaseException:
            model._thread.stop()
            raise
        return model

    @classmethod
    async def load_async(
        cls,
        path: str | Path,
        config: LoadConfig | None = None,
        key: str = "",
        *,
        on_progress: LoadProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> LoadedModel:
        """`load` for an event loop; cancelling the awaiting task also aborts the load."""
        model = cls(Path(path).expanduser(), config or LoadConfig(), key)
        cancel = cancel if cancel is not None else threading.Event()
        try:
            await asyncio.wrap_future(
                model._thread.submit(lambda: model._load(on_progress, cancel))
            )
        except asyncio.CancelledError:
            # The load goes on on the model thread unless told to stop; whatever it
            # got as far as is freed there, after it.
            cancel.set()
            model._closed = True

            def free() -> None:
                if model._llama is not None:
                    model._llama.close()
                    model._llama = None

            model._thread.submit(free)
            model._thread.stop()
            raise
        except BaseException:
            model._thread.stop()
            raise
        return model

    def _load(
        self, on_progress: LoadProgress | None = None, cancel: threading.Event | None = None
    ) -> None:
        import llama_cpp

        install_llama_log_hook()
        check_gguf_file(self.path)
        cfg = self.config
        if cancel is not None and cancel.is_set():
            raise ModelLoadError(f"loading {self.path} was cancelled")
        LOG_BUS.emit("info", "load", f"loading {self.path}", path=str(self.path), **_jsonable(cfg))
        started = time.perf_counter()
        progress = _ProgressReporter(self.path, on_progress, cancel)
        with LOG_BUS.capture() as records, _load_progress(llama_cpp, progress.callback):
            try:
                self._llama = llama_cpp.Llama(
                    model_path=str(self.path),
                    n_ctx=cfg.context_length,
                    n_batch=cfg.batch_size,
                    n_ubatch=cfg.batch_size,
                    n_threads=cfg.n_threads,
                    n_threads_batch=cfg.n_threads,
                    n_gpu_layers=cfg.n_gpu_layers,
                    flash_attn=cfg.flash_attention,
                    type_k=_KV_TYPES[cfg.kv_cache_type],
                    type_v=_KV_TYPES[cfg.kv_cache_type],
                    use_mmap=cfg.use_mmap,
                    use_mlock=cfg.use_mlock,
                    seed=cfg.seed if cfg.seed >= 0 else llama_cpp.LLAMA_DEFAULT_SEED,
                    swa_full=cfg.swa_full,
                    logits_all=False,
                    verbose=False,
                )
            except Exception as err:  # noqa: BLE001 - llama-cpp-python raises ValueError and others
                if progress.cancelled:
                    LOG_BUS.emit("info", "load", f"cancelled loading {self.path}")
                    raise ModelLoadError(f"loading {self.path} was cancelled") from None
                errors = [r.message for r in records if r.level == "error"]
                detail = "; ".join(errors[-3:]) or str(err)
                raise ModelLoadError(f"llama.cpp could not load {self.path}: {detail}") from None
        if cancel is not None and cancel.is_set():
            # Cancelled after the weights were in (while the context was made): free it all.
            self._llama.close()
            self._llama = None
            LOG_BUS.emit("info", "load", f"cancelled loading {self.path}")
            raise ModelLoadError(f"loading {self.path} was cancelled")
        progress.finish()
        llama = self._llama
        self._pieces = TokenPieces(llama._model.vocab)
        self._eog = EndOfGeneration(llama._model.vocab)
        self.metadata = dict(llama.metadata)
        self.offload = _offload_from(records, llama_cpp.llama_supports_gpu_offload())
        n_ctx_train = int(llama._model.n_ctx_train())
        self._select_template(llama_cpp)
        self._info = ModelInfo(
            display_name=self.metadata.get("general.name") or self.path.stem,
            path=str(self.path),
            architecture=self.metadata.get("general.architecture", "unknown"),
            context_length=llama.n_ctx(),
            trained_context_length=n_ctx_train,
            model_key=self.key,
            chat_template=self.chat_template.name,
            chat_template_reason=self.chat_template.reason,
        )
        LOG_BUS.emit(
            "info",
            "template",
            f"chat template: {self.chat_template.name}: {self.chat_template.reason}",
            path=str(self.path),
        )
        LOG_BUS.emit(
            "info",
            "load",
            f"loaded {self._info.display_name} in {time.perf_counter() - started:.2f}s: "
            f"context {llama.n_ctx()}, {cfg.n_threads} threads, {self.offload.describe()}",
            path=str(self.path),
        )

    def _select_template(self, llama_cpp: Any) -> None:
        from .templates import TemplateError, select_template

        vocab = self._llama._model.vocab
        self.bos_text = _token_text(llama_cpp, vocab, llama_cpp.llama_vocab_bos(vocab))
        self.eos_text = _token_text(llama_cpp, vocab, llama_cpp.llama_vocab_eos(vocab))
        try:
            self.chat_template = select_template(
                gguf_template=self.metadata.get("tokenizer.chat_template"),
                architecture=self.metadata.get("general.architecture", ""),
                model_name=self.metadata.get("general.name", ""),
                override_file=self.config.chat_template_file,
                hint=f"{self.path.name} {self.eos_text} "
                + _token_text(llama_cpp, vocab, llama_cpp.llama_vocab_eot(vocab)),
            )
        except TemplateError as err:
            self._llama.close()
            self._llama = None
            raise ModelLoadError(str(err)) from None

    def unload(self) -> None:
        """Free the model. Predictions still queued finish as cancelled."""
        if self._closed:
            return
        self._closed = True

        def close() -> None:
            if self._llama is not None:
                self._llama.close()
                self._llama = None
            LOG_BUS.emit("info", "load", f"unloaded {self.path}")

        future = self._thread.submit(close)
        self._thread.stop()
        if not self._thread.is_current:
            future.result()

    @property
    def is_loaded(self) -> bool:
        return not self._closed and self._llama is not None

    # --- helpers that run on the model thread ---------------------------------

    def run(self, job: Callable[[Any], Any]) -> concurrent.futures.Future[Any]:
        """Run `job(llama)` on the model's thread, after queued predictions."""
        self._require_open()
        return self._thread.submit(lambda: job(self._llama))

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return self.run(lambda llama: _tokenize(llama, text, add_special)).result()

    def reset_cache(self) -> None:
        """Forget the KV cache: the next prediction evaluates its whole prompt."""

        def reset(llama: Any) -> None:
            llama.reset()
            llama._ctx.kv_cache_seq_rm(-1, 0, -1)

        self.run(reset).result()

    @property
    def cached_tokens(self) -> int:
        """How many tokens the KV cache holds now (for tests and stats)."""
        return int(self._llama.n_tokens) if self._llama is not None else 0

    def _require_open(self) -> None:
        if self._closed:
            raise ModelLoadError(f"model {self.path} has been unloaded")

    # --- predictions ----------------------------------------------------------

    def start_prediction(
        self,
        prompt: str | PromptSource,
        config: PredictionConfig,
        sink: Sink,
        *,
        parser: OutputParser | None = None,
        add_special: bool = True,
    ) -> PredictionControl:
        """Queue a prediction; events go to `sink` from the model thread."""
        self._require_open()
        control = PredictionControl()
        job = _PredictionJob(self, prompt, config, sink, parser or PlainText(), add_special, control)
        with self._active_lock:
            self._active[id(control)] = control

        def done(_: concurrent.futures.Future[Any]) -> None:
            with self._active_lock:
                self._active.pop(id(control), None)
            control.done.set()

        future = self._thread.submit(job.run)
        future.add_done_callback(done)
        return control

    def respond_events(
        self,
        chat: Chat | dict[str, Any] | str,
        config: PredictionConfig | dict[str, Any] | None = None,
        *,
        defaults: PredictionConfig = ENGINE_DEFAULTS,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = "auto",
        template_kwargs: dict[str, Any] | None = None,
    ) -> EventStream:
        """One assistant reply as an async stream of events. Call from a running event loop.

        The chat template renders on the model thread (see engine.conversation)."""
        from .conversation import start_reply

        stream = EventStream(asyncio.get_running_loop())
        start_reply(stream, self, chat, config, defaults, tools, tool_choice, template_kwargs)
        return stream

    def respond_sync(
        self,
        chat: Chat | dict[str, Any] | str,
        config: PredictionConfig | dict[str, Any] | None = None,
        *,
        defaults: PredictionConfig = ENGINE_DEFAULTS,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = "auto",
        template_kwargs: dict[str, Any] | None = None,
    ) -> SyncEventStream:
        """One assistant reply as a blocking stream of events."""
        from .conversation import start_reply

        stream = SyncEventStream()
        start_reply(stream, self, chat, config, defaults, tools, tool_choice, template_kwargs)
        return stream

    def complete_events(
        self,
        prompt: str,
        config: PredictionConfig | dict[str, Any] | None = None,
        *,
        parser: OutputParser | None = None,
        add_special: bool = True,
    ) -> EventStream:
        """Raw completion as an async stream of events. Call from a running event loop."""
        stream = EventStream(asyncio.get_running_loop())
        self._start_completion(stream, prompt, config, parser, add_special)
        return stream

    def complete_sync(
        self,
        prompt: str,
        config: PredictionConfig | dict[str, Any] | None = None,
        *,
        parser: OutputParser | None = None,
        add_special: bool = True,
    ) -> SyncEventStream:
        """Raw completion as a blocking stream of events."""
        stream = SyncEventStream()
        self._start_completion(stream, prompt, config, parser, add_special)
        return stream

    def _start_completion(
        self,
        stream: EventStream | SyncEventStream,
        prompt: str,
        config: PredictionConfig | dict[str, Any] | None,
        parser: OutputParser | None,
        add_special: bool,
    ) -> None:
        stream.control = self.start_prediction(
            prompt,
            PredictionConfig.parse(config).merged_over(ENGINE_DEFAULTS),
            stream.sink,
            parser=parser,
            add_special=add_special,
        )


def _token_text(llama_cpp: Any, vocab: Any, token: int) -> str:
    if token is None or token < 0:
        return ""
    text = llama_cpp.llama_vocab_get_text(vocab, token)
    return text.decode("utf-8", errors="replace") if text else ""


def _tokenize(llama: Any, text: str, add_special: bool) -> list[int]:
    return list(llama.tokenize(text.encode("utf-8"), add_bos=add_special, special=True))


LoadProgress = Callable[[float], None]
"""Called with the fraction of a model loaded, 0.0 to 1.0, on the loading thread."""

# `Llama.__init__` offers no progress callback, so for the length of a load we wrap
# the function it gets its model parameters from. The wrapper is process-wide, so
# loads take turns, and it sets the callback only for calls from the loading thread.
_PROGRESS_LOCK = threading.Lock()


@contextmanager
def _load_progress(llama_cpp: Any, callback: Callable[[float], bool]) -> Iterator[None]:
    module = llama_cpp.llama_cpp
    original = module.llama_model_default_params
    loading_thread = threading.get_ident()
    c_callback = module.llama_progress_callback(lambda fraction, _user_data: callback(fraction))

    def default_params() -> Any:
        params = original()
        if threading.get_ident() == loading_thread:
            params.progress_callback = c_callback
        return params

    with _PROGRESS_LOCK:
        module.llama_model_default_params = default_params
        try:
            yield
        finally:
            module.llama_model_default_params = original


class _ProgressReporter:
    """Turns llama.cpp's progress calls into `on_progress` calls; answers False to cancel."""

    def __init__(
        self, path: Path, on_progress: LoadProgress | None, cancel: threading.Event | None
    ) -> None:
        self.path = path
        self.on_progress = on_progress
        self.cancel = cancel
        self.cancelled = False
        self.last = -1.0

    def callback(self, fraction: float) -> bool:
        # Runs inside a ctypes callback: an exception here would abort the load silently.
        try:
            if self.cancel is not None and self.cancel.is_set():
                self.cancelled = True
                return False
            self._report(min(max(float(fraction), 0.0), 1.0))
        except Exception as err:  # noqa: BLE001 - a broken progress display must not fail the load
            self._warn(err)
        return True

    def finish(self) -> None:
        try:
            self._report(1.0)
        except Exception as err:  # noqa: BLE001 - as above
            self._warn(err)

    def _warn(self, err: Exception) -> None:
        LOG_BUS.emit("warning", "load", f"load progress callback failed: {err!r}")

    def _report(self, fraction: float) -> None:
        if fraction <= self.last:
            return
        self.last = fraction
        if self.on_progress is not None:
            self.on_progress(fraction)


def _offload_from(records: Sequence[LogRecord], gpu_supported: bool) -> Offload:
    offload = Offload(gpu_supported=gpu_supported)
    for record in records:
        match = _OFFLOAD_LINE.search(record.message)
        if match:
            offload.layers, offload.total_layers = int(match[1]), int(match[2])
    return offload


def _jsonable(config: LoadConfig) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in config.model_dump().items()}


class _PredictionJob:
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

    def run(self) -> None:
        started = time.perf_counter()
        try:
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
        self.sink(Log(LOG_BUS.emit(level, kind, message, **data)))

    def _predict(self, started: float) -> PredictionResult:
        model = self.model
        llama = model._llama
        if llama is None:
            raise ModelLoadError(f"model {model.path} has been unloaded")
        pieces = model._pieces
        assert pieces is not None and model.info is not None
        cfg = self.config
        n_ctx = llama.n_ctx()

        tokens = self._prepare(llama, n_ctx)
        n_prompt = len(tokens)
        if n_prompt >= n_ctx:
            self._log(
                "warning",
                "context",
                f"prompt of {n_prompt} tokens does not fit the context of {n_ctx}",
            )
            return self._result(started, "contextLengthReached", n_prompt, 0, 0, None, None)

        # The sampler first: a bad grammar fails before any prompt work is done.
        llama.set_seed(cfg.seed if cfg.seed is not None and cfg.seed >= 0 else _random_seed())
        sampler = _sampler(llama, cfg)
        reused = self._reuse_cache(llama, tokens)
        to_eval = tokens[reused:]
        self.sink(PromptProgress(0.0))
        batch = max(1, model.config.batch_size)
        for start in range(0, len(to_eval), batch):
            if self.control.cancelled.is_set():
                return self._result(started, "userStopped", n_prompt, start, 0, None, None)
            llama.eval(to_eval[start : start + batch])
            self.sink(PromptProgress(min(1.0, (start + batch) / len(to_eval))))
        prompt_done = time.perf_counter()
        n_evaluated = len(to_eval)

        max_tokens = cfg.max_tokens if cfg.max_tokens and cfg.max_tokens > 0 else None
        ctx = llama._ctx
        is_eog = model._eog
        assert is_eog is not None
        decoder = Utf8Decoder()
        stops = StopStringMatcher(cfg.stop_strings or ())
        ttft: float | None = None
        n_predicted = 0
        stop_reason: StopReason
        while True:
            if self.control.cancelled.is_set():
                stop_reason = "userStopped"
                break
            if llama.n_tokens >= n_ctx:
                stop_reason = "contextLengthReached"
                break
            token = sampler.sample(ctx, -1)
            if ttft is None:
                ttft = time.perf_counter() - started
                self.sink(FirstToken(ttft))
            if is_eog(token):
                stop_reason = "eosFound"
                break
            n_predicted += 1
            piece = pieces(token)
            text = decoder.feed(piece)
            if text:
                self.raw.append(text)
                self._emit(self.parser.feed(stops.feed(text)), 1)
                if stops.found is not None:
                    stop_reason = "stopStringFound"
                    break
            if max_tokens is not None and n_predicted >= max_tokens:
                stop_reason = "maxPredictedTokensReached"
                break
            llama.eval([token])
        if stop_reason != "stopStringFound":
            tail = decoder.finish()
            self.raw.append(tail)
            self._emit(self.parser.feed(stops.feed(tail) + stops.flush()), 0)
        self._emit(self.parser.finish(), 0)
        if stop_reason == "eosFound" and self.tool_calls:
            stop_reason = "toolCalls"
        raw = "".join(self.raw)
        self._log("info", "raw_output", "raw output", text=raw, stop_reason=stop_reason)
        return self._result(
            started,
            stop_reason,
            n_prompt,
            n_evaluated,
            n_predicted,
            ttft,
            (prompt_done, stops.found),
        )

    def _prepare(self, llama: Any, n_ctx: int) -> list[int]:
        """Build (for chats) and tokenise the prompt; log the exact text the model sees."""
        source = self.prompt_source
        if isinstance(source, str):
            prepared = PreparedPrompt(source, self.add_special)
        else:
            prepared = source(lambda text, special: _tokenize(llama, text, special), n_ctx)
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
        return _tokenize(llama, self.prompt, self.add_special)

    def _reuse_cache(self, llama: Any, tokens: list[int]) -> int:
        """Keep the longest common prefix in the KV cache; return how many tokens it covers."""
        cached = llama.input_ids[: llama.n_tokens]
        prefix = 0
        for a, b in zip(cached, tokens):
            if a != b:
                break
            prefix += 1
        # The last prompt token is always evaluated again: its logits are what we sample from.
        prefix = min(prefix, len(tokens) - 1)
        if prefix < llama.n_tokens:
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
        )


def _random_seed() -> int:
    import random

    return random.randrange(0, 2**31 - 1)


def _sampler(llama: Any, cfg: PredictionConfig) -> Any:
    """The sampler chain of `Llama._init_sampler` (so that benchmarks against raw
    llama-cpp-python compare like with like), with the logit bias applied first, as
    llama.cpp's own server does."""
    from llama_cpp._internals import LlamaSampler

    n_vocab = llama.n_vocab()
    grammar = _grammar(cfg.grammar, llama._model.vocab)
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
        penalty_freq=0.0,
        penalty_present=0.0,
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


def _grammar(text: str | None, vocab: Any) -> Any:
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


# --- consumers of the event stream -----------------------------------------------


class EventStream:
    """The async face of a prediction: `async for event in stream`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self.control = PredictionControl()
        self.result: PredictionResult | None = None
        self.error: BaseException | None = None
        self._finished = False
        # Events from the model thread wait here until the loop takes them. One wake-up
        # of the loop is in flight at a time: while the loop is busy (a UI drawing),
        # the tokens that arrive meanwhile ride on it, instead of each paying for a
        # write to the loop's self-pipe, a syscall that hands the GIL away.
        self._pending: list[Event] = []
        self._pending_lock = threading.Lock()
        self._wake_scheduled = False

    def sink(self, event: Event) -> None:
        with self._pending_lock:
            self._pending.append(event)
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.control.cancel()

    def _deliver(self) -> None:
        with self._pending_lock:
            events, self._pending = self._pending, []
            self._wake_scheduled = False
        for event in events:
            self._queue.put_nowait(event)

    def cancel(self) -> None:
        self.control.cancel()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._finished:
            raise StopAsyncIteration
        event = await self._queue.get()
        if isinstance(event, Finished):
            self._finished = True
            self.result = event.result
        elif isinstance(event, Failed):
            self._finished = True
            self.error = event.error
        return event

    async def aclose(self) -> None:
        """Stop listening: cancels the prediction and drains it to the end."""
        if not self._finished:
            self.cancel()
            async for _ in self:
                pass

    async def wait_for_result(self) -> PredictionResult:
        async for _ in self:
            pass
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class SyncEventStream:
    """The blocking face of a prediction, for the sync API and the CLI."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.control = PredictionControl()
        self.result: PredictionResult | None = None
        self.error: BaseException | None = None
        self._finished = False

    def sink(self, event: Event) -> None:
        self._queue.put(event)

    def cancel(self) -> None:
        self.control.cancel()

    @property
    def finished(self) -> bool:
        return self._finished

    def __iter__(self) -> Iterator[Event]:
        while not self._finished:
            event = self._queue.get()
            if isinstance(event, Finished):
                self._finished = True
                self.result = event.result
            elif isinstance(event, Failed):
                self._finished = True
                self.error = event.error
            yield event
