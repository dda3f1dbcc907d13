"""A prediction as the batching scheduler holds it: its prompt, its slot, where it is.

Between the scheduler's steps a `Running` is one of: waiting for a slot (no `slot`),
evaluating its prompt (`generation` is None), following another prediction's prompt
evaluation (`leader` set: OpenAI `n > 1`, the prompt evaluated once and its cells
shared), or generating (`pending` holds the sampled token the next step decodes).
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import Any

from ..prediction import Failed, Finished, PredictionResult, PromptProgress, StopReason
from .generation import Generation
from .job import PredictionJob
from .slots import Slot


@dataclass(eq=False)
class Running:
    job: PredictionJob
    future: concurrent.futures.Future[None]
    group: object | None = None
    started: float = field(default_factory=time.perf_counter)
    tokens: list[int] = field(default_factory=list)
    sampler: Any = None
    slot: Slot | None = None
    reused: int = 0
    """Prompt tokens taken from the cache rather than evaluated."""
    generation: Generation | None = None
    prompt_done: float = 0.0
    pending: int | None = None
    leader: Running | None = None
    followers: list[Running] = field(default_factory=list)

    @property
    def cancelled(self) -> bool:
        return self.job.control.cancelled.is_set()

    @property
    def evaluating(self) -> bool:
        return self.slot is not None and self.generation is None and self.leader is None

    @property
    def position(self) -> int:
        """The next position of its sequence (its cells so far)."""
        assert self.slot is not None
        return len(self.slot.tokens)

    def progress(self, finished: bool = False) -> PromptProgress:
        """How far its prompt's evaluation is, in tokens (those the cache held not counted)."""
        todo = max(0, len(self.tokens) - self.reused)
        if finished:
            return PromptProgress(1.0, todo, todo)
        done = min(todo, max(0, self.position - self.reused)) if self.slot is not None else 0
        return PromptProgress(min(1.0, done / todo) if todo else 0.0, done, todo)

    def start_generating(self, llama: Any, now: float) -> None:
        self.prompt_done = now
        self.generation = Generation(self.job, llama, self.started)

    def result(self, stop_reason: StopReason) -> PredictionResult:
        n_prompt = len(self.tokens)
        if self.generation is None:
            evaluated = max(0, self.position - self.reused) if self.slot is not None else 0
            return self.job._result(self.started, stop_reason, n_prompt, evaluated, 0, None, None)
        return self.job.conclude(
            stop_reason, self.generation, n_prompt, n_prompt - self.reused, self.prompt_done
        )

    def finish(self, stop_reason: StopReason) -> None:
        try:
            self.job.sink(Finished(self.result(stop_reason)))
        except Exception as err:  # noqa: BLE001 - every failure reaches the consumer
            self.fail(err)
            return
        self._done()

    def fail(self, err: Exception) -> None:
        self.job._log("error", "prediction", f"prediction failed: {err}")
        self.job.sink(Failed(err))
        self._done()

    def finish_early(self, result: PredictionResult) -> None:
        self.job.sink(Finished(result))
        self._done()

    def _done(self) -> None:
        if not self.future.done():
            self.future.set_result(None)
