"""`LoadedModel`: one llama.cpp model on one dedicated thread, as a `ChatModel`.

llama.cpp calls block and a `Llama` is not thread-safe, so every call on a model
runs on that model's own thread (`ModelThread`), predictions in the order the
`Scheduler` picks. Results travel back as events through a sink (a queue for the
sync API, the event loop for the async one).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from ..errors import ModelLoadError
from ..load_config import LoadConfig
from ..logbus import LOG_BUS, install_llama_log_hook
from ..prediction import ModelInfo, PredictionConfig
from .batching import BatchScheduler
from .channels import EventStream, PredictionControl, Sink, SyncEventStream
from .decoding import EndOfGeneration, TokenPieces
from .job import OutputParser, PlainText, PredictionJob, PromptSource, tokenize_text
from .loading import (
    KV_TYPES,
    LoadProgress,
    Offload,
    ProgressReporter,
    check_gguf_file,
    load_progress_hook,
    offload_from_log,
    sequence_params_hook,
)
from .model_thread import ModelThread
from .sampler import ENGINE_DEFAULTS
from .scheduler import Scheduler, SerialScheduler

if TYPE_CHECKING:
    from ..contract import ToolChoice
    from ..formatting.conversation import ChatInput, ConfigInput, ReplyOptions


class LoadedModel:
    """A model loaded by llama.cpp, owned by its own thread."""

    def __init__(self, path: Path, config: LoadConfig, key: str = "") -> None:
        self.path = path
        self.config = config
        self.key = key or path.stem
        self._thread = ModelThread(f"llama:{path.name}")
        self._batching: BatchScheduler | None = None
        self._scheduler: Scheduler = SerialScheduler(self._thread)
        if config.parallel > 1:
            self._batching = BatchScheduler(self._thread, self, config.parallel)
            self._scheduler = self._batching
        self._llama: Any = None
        self._pieces: TokenPieces | None = None
        self._eog: EndOfGeneration | None = None
        self._fresh_prefix = 0
        """Leading cached tokens evaluated as a fresh prompt would be (see PredictionJob)."""
        self._info: ModelInfo | None = None
        self.offload = Offload()
        self.metadata: dict[str, str] = {}
        self.chat_template: Any = None
        self.tool_format = "default"
        """The template's tool-call format, found at load (see formatting.conversation)."""
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
        progress = ProgressReporter(self.path, on_progress, cancel)
        slots = cfg.parallel
        with (
            LOG_BUS.capture() as records,
            load_progress_hook(llama_cpp, progress.callback),
            sequence_params_hook(llama_cpp, slots, kv_unified=slots > 1),
        ):
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
                    type_k=KV_TYPES[cfg.kv_cache_type],
                    type_v=KV_TYPES[cfg.kv_cache_type],
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
        self.offload = offload_from_log(records, llama_cpp.llama_supports_gpu_offload())
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
            # A template that does not parse still says the model was tuned to chat.
            has_chat_template=self.chat_template.origin != "fallback"
            or bool(self.metadata.get("tokenizer.chat_template")),
            parallel=slots,
            kv_unified=slots > 1,
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
            f"context {llama.n_ctx()}"
            + (f" shared by {slots} slots" if slots > 1 else "")
            + f", {cfg.n_threads} threads, {self.offload.describe()}",
            path=str(self.path),
        )

    def _select_template(self, llama_cpp: Any) -> None:
        from ..formatting.templates import TemplateError, select_template

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
        from ..formatting.conversation import template_tool_format

        self.tool_format = template_tool_format(self.chat_template)

    def unload(self) -> None:
        """Free the model: the running prediction stops within a token or a prompt
        batch, queued ones finish as cancelled without running, then memory is freed."""
        if self._closed:
            return
        self._closed = True
        self.cancel()

        def close() -> None:
            if self._batching is not None:
                self._batching.close()
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
        return self.run(lambda llama: tokenize_text(llama, text, add_special)).result()

    def reset_cache(self) -> None:
        """Forget the KV cache: the next prediction evaluates its whole prompt."""

        def reset(llama: Any) -> None:
            if self._batching is not None:
                self._batching.reset()
                return
            llama.reset()
            llama._ctx.kv_cache_seq_rm(-1, 0, -1)

        self.run(reset).result()

    @property
    def cached_tokens(self) -> int:
        """How many tokens the KV cache holds now, all slots together (for tests and stats)."""
        return sum(len(tokens) for tokens in self.cached_sequences())

    def cached_sequences(self) -> list[list[int]]:
        """The tokens each slot's cache holds (one list when `parallel` is 1)."""

        def contents(llama: Any) -> list[list[int]]:
            if self._batching is not None:
                return self._batching.cached_sequences()
            return [list(llama.input_ids[: llama.n_tokens])]

        if self._llama is None:
            return []
        return self.run(contents).result()  # type: ignore[no-any-return]

    def together(self) -> AbstractContextManager[None]:
        """Predictions started inside begin in the same step; those with the same prompt
        (OpenAI `n > 1`) evaluate it once and share its cache. One at a time with
        `parallel = 1`."""
        if self._batching is not None:
            return self._batching.together()
        return nullcontext()

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
        job = PredictionJob(self, prompt, config, sink, parser or PlainText(), add_special, control)
        with self._active_lock:
            self._active[id(control)] = control

        def done(_: concurrent.futures.Future[Any]) -> None:
            with self._active_lock:
                self._active.pop(id(control), None)
            control.done.set()

        future = self._scheduler.schedule(job)
        future.add_done_callback(done)
        return control

    def respond_events(
        self,
        chat: ChatInput,
        config: ConfigInput = None,
        *,
        defaults: PredictionConfig = ENGINE_DEFAULTS,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: ToolChoice = "auto",
        template_kwargs: dict[str, Any] | None = None,
    ) -> EventStream:
        """One assistant reply as an async stream of events. Call from a running event loop.

        The chat template renders on the model thread (see engine.formatting.conversation).
        The ChatModel contract's method, so its arguments are spelt out here; the other
        ways to ask for a reply take them as `ReplyOptions`."""
        from ..formatting.conversation import start_reply

        options: ReplyOptions = {
            "defaults": defaults,
            "tools": tools,
            "tool_choice": tool_choice,
            "template_kwargs": template_kwargs,
        }
        return start_reply(EventStream(asyncio.get_running_loop()), self, chat, config, options)

    def respond_sync(
        self, chat: ChatInput, config: ConfigInput = None, **options: Unpack[ReplyOptions]
    ) -> SyncEventStream:
        """`respond_events` as a blocking stream of events: the same arguments."""
        from ..formatting.conversation import start_reply

        return start_reply(SyncEventStream(), self, chat, config, options)

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


def _jsonable(config: LoadConfig) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in config.model_dump().items()}
