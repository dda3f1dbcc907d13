"""When each prediction runs on the model thread: the seam for batching.

With `parallel = 1` predictions run one after another, each to its end
(`SerialScheduler`, the path of old, kept as it was). With more, the batching scheduler
(`batching.BatchScheduler`: slots, one `llama_batch` per step for all active sequences)
implements the same `Scheduler` protocol, so `LoadedModel`'s consumers do not change.
"""

from __future__ import annotations

import concurrent.futures
from typing import TYPE_CHECKING, Protocol

from .model_thread import ModelThread

if TYPE_CHECKING:
    from .job import PredictionJob


class Scheduler(Protocol):
    """Decides when queued predictions run on a model's thread."""

    def schedule(self, job: PredictionJob) -> concurrent.futures.Future[None]:
        """Queue `job`; the future is done once the job has finished (or failed)."""
        ...


class SerialScheduler:
    """One prediction at a time, in the order they came, each run to its end."""

    def __init__(self, thread: ModelThread) -> None:
        self._thread = thread

    def schedule(self, job: PredictionJob) -> concurrent.futures.Future[None]:
        return self._thread.submit(job.run)
