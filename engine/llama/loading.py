"""What loading a model involves beside `Llama(...)`: file checks, progress, offload report."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from ..logbus import LOG_BUS
from ..prediction import LogRecord

KV_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "bf16": 30}
"""llama.cpp's ggml type ids for the KV cache types a load config may name."""
_OFFLOAD_LINE = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")


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


def offload_from_log(records: Sequence[LogRecord], gpu_supported: bool) -> Offload:
    offload = Offload(gpu_supported=gpu_supported)
    for record in records:
        match = _OFFLOAD_LINE.search(record.message)
        if match:
            offload.layers, offload.total_layers = int(match[1]), int(match[2])
    return offload


LoadProgress = Callable[[float], None]
"""Called with the fraction of a model loaded, 0.0 to 1.0, on the loading thread."""

# `Llama.__init__` offers no progress callback, so for the length of a load we wrap
# the function it gets its model parameters from. It also compiles every chat
# template in the GGUF into a chat handler we never use (the engine renders templates
# itself), and a template that does not parse makes it refuse the file: that compile
# is skipped too. The wrappers are process-wide, so loads take turns, and they change
# only what calls from the loading thread get.
_PROGRESS_LOCK = threading.Lock()


@contextmanager
def load_progress_hook(llama_cpp: Any, callback: Callable[[float], bool]) -> Iterator[None]:
    module = llama_cpp.llama_cpp
    chat_format = llama_cpp.llama_chat_format
    original = module.llama_model_default_params
    original_formatter = chat_format.Jinja2ChatFormatter
    loading_thread = threading.get_ident()
    c_callback = module.llama_progress_callback(lambda fraction, _user_data: callback(fraction))

    def default_params() -> Any:
        params = original()
        if threading.get_ident() == loading_thread:
            params.progress_callback = c_callback
        return params

    # A subclass, not a function: the class's own code looks itself up by its module
    # name (`Jinja2ChatFormatter.IgnoreGenerationTags`), on other threads too.
    class Formatter(original_formatter):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._skipped = threading.get_ident() == loading_thread
            if not self._skipped:
                super().__init__(*args, **kwargs)

        def to_chat_handler(self) -> Any:
            if self._skipped:
                return _never_called
            return super().to_chat_handler()

    with _PROGRESS_LOCK:
        module.llama_model_default_params = default_params
        chat_format.Jinja2ChatFormatter = Formatter
        try:
            yield
        finally:
            module.llama_model_default_params = original
            chat_format.Jinja2ChatFormatter = original_formatter


def _never_called(*_args: Any, **_kwargs: Any) -> Any:
    """The chat handler of a template llama-cpp-python was kept from compiling."""
    raise RuntimeError("llamaterm renders chat templates itself (engine.formatting)")


class ProgressReporter:
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


# `Llama.__init__` takes no `n_seq_max` or `kv_unified` either: for the length of a load
# the context's default parameters come with them, on the loading thread only.
_CONTEXT_LOCK = threading.Lock()


@contextmanager
def sequence_params_hook(llama_cpp: Any, n_seq_max: int, kv_unified: bool) -> Iterator[None]:
    """While inside, contexts made on this thread hold `n_seq_max` sequences."""
    module = llama_cpp.llama_cpp
    original = module.llama_context_default_params
    loading_thread = threading.get_ident()

    def default_params() -> Any:
        params = original()
        if threading.get_ident() == loading_thread:
            params.n_seq_max = n_seq_max
            params.kv_unified = kv_unified
        return params

    with _CONTEXT_LOCK:
        module.llama_context_default_params = default_params
        try:
            yield
        finally:
            module.llama_context_default_params = original
