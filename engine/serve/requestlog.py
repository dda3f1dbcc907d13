"""One record on the log bus per request: method, path, status, model, duration, token stats."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.logbus import LOG_BUS
from engine.prediction import PredictionResult


@dataclass(slots=True)
class RequestLog:
    """One record on the log bus per request, when it is answered (or abandoned)."""

    method: str
    path: str
    client: str
    started: float = field(default_factory=time.perf_counter)
    model: str | None = None
    stream: bool = False
    done: bool = False
    on_finish: list[Callable[[], None]] = field(default_factory=list)
    """Called once the request is answered or abandoned (a queue slot is given back)."""

    def finish(self, status: int, result: PredictionResult | None = None, **extra: Any) -> None:
        if self.done:
            return
        self.done = True
        for callback in self.on_finish:
            callback()
        duration = time.perf_counter() - self.started
        data: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "status": status,
            "model": self.model,
            "duration": round(duration, 4),
            "client": self.client,
            "stream": self.stream,
            **extra,
        }
        summary = ""
        if result is not None:
            stats = result.stats
            data.update(
                stop_reason=stats.stop_reason,
                prompt_tokens=stats.prompt_tokens_count,
                completion_tokens=stats.predicted_tokens_count,
                tokens_per_second=stats.tokens_per_second,
            )
            summary = f" · {stats.predicted_tokens_count} tokens · {stats.stop_reason}"
        level = "info" if status < 400 else "warning" if status < 500 else "error"
        model = f" {self.model}" if self.model else ""
        message = f"{self.method} {self.path} {status}{model} {duration:.2f}s{summary}"
        LOG_BUS.emit(level, "server", message, **data)
