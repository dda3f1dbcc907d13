"""`BatchScheduler`: several predictions on one context, one `llama_decode` per step.

Runs on the model's thread, one step per turn of that thread's queue (so that other
calls on the model, a tokenisation, slip in between steps). Each step:

1. takes the predictions that arrived (their prompts built and tokenised, their
   samplers made) and the cancelled ones out (each leaves at once, alone);
2. gives waiting predictions a free slot: the one whose cache shares the longest
   prefix with the prompt, or a parked conversation restored into one (`parking`);
3. builds one batch: the next token of every generating sequence, then prompt chunks
   of the sequences still evaluating, up to `batch_size` tokens in all (chunked
   prefill: a long prompt never stalls generation for more than a step);
4. decodes it, then samples each sequence with its own sampler chain from its own
   row of logits and sends its events to its own stream.

OpenAI `n > 1`: predictions queued `together()` with the same prompt evaluate it once;
the others follow it and share its cells (`llama_memory_seq_cp`).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError
from ..prediction import PredictionResult
from .batch_step import StepBatch, StepCosts
from .job import PredictionJob
from .model_thread import ModelThread
from .parking import Parking
from .running import Running
from .slots import KvCache, Slot, common_prefix

if TYPE_CHECKING:
    from .model import LoadedModel

NO_ROOM = 1
"""llama_decode's answer when the KV cache has no room for the batch."""
ABORTED = 2
"""llama_decode's answer when the abort callback stopped it."""


class BatchScheduler:
    """Continuous batching over `slots` sequences of one llama.cpp context."""

    def __init__(self, thread: ModelThread, model: LoadedModel, slots: int) -> None:
        self._thread = thread
        self._model = model
        self.n_slots = slots
        self._lock = threading.Lock()
        self._incoming: list[Running] = []
        self._held: list[Running] | None = None
        self._hold_depth = 0
        self._pumping = False
        self._waiting: deque[Running] = deque()
        self._active: list[Running] = []
        self._cache: KvCache | None = None
        self._parking: Parking | None = None
        self._batch: StepBatch | None = None
        self._costs = StepCosts()
        self._turn = 0
        self._threads: tuple[int, int] | None = None
        """The thread counts last set on the context (see _apply_threads)."""

    # --- from any thread --------------------------------------------------------

    def schedule(self, job: PredictionJob) -> concurrent.futures.Future[None]:
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._lock:
            if self._held is not None:
                run = Running(job, future, group=self._held)
                self._held.append(run)
                return future
            self._incoming.append(Running(job, future))
            self._wake()
        return future

    @contextmanager
    def together(self) -> Iterator[None]:
        """Predictions queued inside start in the same step; those with the same prompt
        evaluate it once."""
        with self._lock:
            self._hold_depth += 1
            if self._held is None:
                self._held = []
        try:
            yield
        finally:
            with self._lock:
                self._hold_depth -= 1
                if self._hold_depth == 0:
                    held, self._held = self._held or [], None
                    self._incoming.extend(held)
                    if held:
                        self._wake()

    def _wake(self) -> None:
        """Make sure a step is queued on the model thread (call with the lock held)."""
        if not self._pumping:
            self._pumping = True
            self._thread.submit(self._pump)

    # --- on the model thread ------------------------------------------------------

    def _pump(self) -> None:
        try:
            self._step()
        except Exception as err:  # noqa: BLE001 - a bug here must not strand the streams
            for run in [*self._active, *self._waiting]:
                self._release(run)
                run.fail(err)
            self._active.clear()
            self._waiting.clear()
        with self._lock:
            if self._incoming or self._active or self._waiting:
                self._thread.submit(self._pump)
            else:
                self._pumping = False

    def _setup(self, llama: Any) -> KvCache:
        if self._cache is None or self._cache.llama is not llama:
            self._cache = KvCache(llama, self.n_slots, self._model.config.swa_full)
            self._parking = Parking(self._cache)
            self._batch = StepBatch(max(1, self._model.config.batch_size), self.n_slots)
        return self._cache

    def _step(self) -> None:
        with self._lock:
            arrived, self._incoming = self._incoming, []
        llama = self._model._llama
        if llama is None:
            for run in [*arrived, *self._waiting, *self._active]:
                run.fail(ModelLoadError(f"model {self._model.path} has been unloaded"))
            self._waiting.clear()
            self._active.clear()
            return
        cache = self._setup(llama)
        self._begin(arrived)
        self._drop_cancelled()
        self._admit(cache)
        if self._active:
            self._apply_threads(llama)
            self._decode_step(llama, cache)

    def _apply_threads(self, llama: Any) -> None:
        """One decode serves every sequence: cpuThreads asked by any active prediction
        (the most asked) holds while it runs; none asked, the model's own count."""
        asked = max((r.job.config.cpu_threads or 0 for r in self._active), default=0)
        wanted = (asked, asked) if asked else (llama.n_threads, llama.n_threads_batch)
        if wanted != self._threads:
            import llama_cpp

            llama_cpp.llama_set_n_threads(llama._ctx.ctx, *wanted)
            self._threads = wanted

    def _begin(self, arrived: list[Running]) -> None:
        """Build and tokenise each new prompt; pair those of a group with the same prompt."""
        leaders: dict[tuple[int, tuple[int, ...]], Running] = {}
        for run in arrived:
            run.started = time.perf_counter()
            try:
                begun = run.job.begin(run.started)
            except Exception as err:  # noqa: BLE001 - every failure reaches the consumer
                run.fail(err)
                continue
            if isinstance(begun, PredictionResult):
                run.finish_early(begun)
                continue
            run.tokens, run.sampler = begun
            if run.group is not None:
                key = (id(run.group), tuple(run.tokens))
                leader = leaders.setdefault(key, run)
                if leader is not run:
                    run.leader = leader
            self._waiting.append(run)

    def _drop_cancelled(self) -> None:
        for run in [r for r in self._waiting if r.cancelled]:
            self._waiting.remove(run)
            self._detach(run)
            run.finish("userStopped")
        for run in [r for r in self._active if r.cancelled]:
            self._leave(run, "userStopped")

    def _leave(self, run: Running, stop_reason: Any, error: Exception | None = None) -> None:
        if run in self._active:
            self._active.remove(run)
        self._detach(run)
        llama = self._model._llama
        if llama is not None and run.job.config.cpu_threads:
            self._apply_threads(llama)  # before its result is out: the count is back by then
        if error is not None:
            run.fail(error)
        else:
            run.finish(stop_reason)
        self._release(run)

    def _release(self, run: Running) -> None:
        if run.slot is not None:
            run.slot.busy = False
            run.slot.touch()

    def _detach(self, run: Running) -> None:
        """A prediction leaves: those following its prompt evaluate their own."""
        if run.leader is not None and run in run.leader.followers:
            run.leader.followers.remove(run)
        run.leader = None
        for follower in run.followers:
            follower.leader = None
            if follower.slot is not None:
                follower.reused = 0
                follower.job.sink(follower.progress())
        run.followers = []

    def _admit(self, cache: KvCache) -> None:
        while self._waiting and cache.free_slots():
            run = self._waiting[0]
            leader = run.leader
            if leader is not None and leader.future.done():
                leader = run.leader = None
            if leader is not None and leader.slot is None:
                break  # in order: its leader is admitted first
            self._waiting.popleft()
            if leader is not None and leader.evaluating:
                slot = cache.emptiest_free()
                self._park_if_worth(slot, 0)
                cache.clear(slot)
                self._take(run, slot)
                leader.followers.append(run)
                run.reused = len(run.tokens)
                self._log_slot(run, "follows the prompt evaluation of another choice")
                continue
            run.leader = None
            self._place(cache, run)

    def _place(self, cache: KvCache, run: Running) -> None:
        tokens = run.tokens
        found = cache.best_free(tokens)
        assert found is not None
        slot, shared = found
        parking = self._parking
        assert parking is not None
        parked = parking.best(tokens)
        if parked is not None and parked[1] > shared:
            slot = cache.emptiest_free()
            self._park_if_worth(slot, common_prefix(slot.tokens, tokens))
            if parking.restore(parked[0], slot):
                shared = common_prefix(slot.tokens, tokens)
            else:
                shared = 0
        else:
            self._park_if_worth(slot, shared)
        batch = max(1, self._model.config.batch_size)
        # The last prompt token is always evaluated again: its logits are what we sample from.
        prefix = min(shared, len(tokens) - 1)
        if run.job.config.reproducible:
            prefix = min(prefix, slot.fresh)
            prefix -= prefix % batch
        kept = cache.cut_to(slot, prefix)
        if kept < prefix or cache.restored is not None:
            run.job._log(
                "info", "cache", f"slot {slot.seq_id} cannot keep {prefix} cached tokens "
                "as they are (a sliding window has dropped cells they need): "
                + (f"back to its checkpoint at {kept}" if cache.restored else "evaluating anew"),
                kept=kept,
            )
        slot.fresh = min(slot.fresh, kept - kept % batch)
        run.reused = kept
        self._take(run, slot)
        run.job._log(
            "debug", "cache", f"reusing {kept} cached tokens, evaluating {len(tokens) - kept}",
            reused=kept, evaluate=len(tokens) - kept, slot=slot.seq_id,
        )
        self._log_slot(run, "")

    def _park_if_worth(self, slot: Slot, kept: int) -> None:
        assert self._parking is not None
        if slot.tokens and self._parking.worth_parking(slot, kept):
            self._parking.park(slot)

    def _take(self, run: Running, slot: Slot) -> None:
        slot.busy = True
        slot.touch()
        run.slot = slot
        self._active.append(run)
        run.job.sink(run.progress())

    def _log_slot(self, run: Running, note: str) -> None:
        assert run.slot is not None
        active = len(self._active)
        run.job._log(
            "info", "slot",
            f"slot {run.slot.seq_id} of {self.n_slots} serves this prediction "
            f"({active} active{', ' + note if note else ''})",
            slot=run.slot.seq_id, active=active, slots=self.n_slots,
        )

    def _decode_step(self, llama: Any, cache: KvCache) -> None:
        generating = [r for r in self._active if r.pending is not None]
        if generating:
            # Round robin, in case there are more sequences than tokens in a batch.
            self._turn = (self._turn + 1) % len(generating)
            generating = generating[self._turn :] + generating[: self._turn]
        if len(generating) < 2 or any(r.evaluating for r in self._active):
            # With prompt work in the step, the tokens of generation ride along: one batch.
            self._decode(llama, cache, generating, prompts=True)
            return
        size = self._costs.group_size(len(generating))
        for start in range(0, len(generating), size):
            self._decode(llama, cache, generating[start : start + size], prompts=False)

    def _decode(
        self, llama: Any, cache: KvCache, generating: list[Running], prompts: bool
    ) -> None:
        """One decode: the next tokens of `generating`, and (`prompts`) prompt chunks of
        the sequences evaluating; then each sequence with logits samples."""
        step = self._batch
        assert step is not None
        n_ctx = llama.n_ctx()
        batch_size = max(1, self._model.config.batch_size)
        step.clear()
        outputs: list[tuple[Running, int]] = []
        chunks: list[tuple[Running, list[int]]] = []
        for run in generating:
            if not step.room:
                break
            assert run.slot is not None and run.pending is not None
            index = step.add([run.pending], run.position, run.slot.seq_id, True)
            chunks.append((run, [run.pending]))
            outputs.append((run, index))
        for run in self._active if prompts else ():
            if not step.room:
                break
            if not run.evaluating:
                continue
            assert run.slot is not None
            position = run.position
            # Chunks of batch_size from where the evaluation starts, as the one-slot path
            # makes them (the same chunks give the same logits); for a reproducible
            # prediction that start is on a batch boundary (see Slot.fresh).
            offset = (position - run.reused) % batch_size
            count = min(len(run.tokens) - position, step.room, batch_size - offset)
            chunk = run.tokens[position : position + count]
            last = position + count == len(run.tokens)
            index = step.add(chunk, position, run.slot.seq_id, last)
            chunks.append((run, chunk))
            if last:
                outputs.append((run, index))
        if not chunks:
            return
        evaluating = [r for r, chunk in chunks if r.generation is None and len(chunk) > 1]
        with self._abortable(llama, evaluating):
            started = time.perf_counter()
            rc = step.decode(llama._ctx.ctx)
            if rc == 0 and len(outputs) == len(chunks):  # single tokens only
                self._costs.record(len(chunks), time.perf_counter() - started)
            if rc == NO_ROOM and self._evict_idle(cache):
                rc = step.decode(llama._ctx.ctx)
        if rc != 0:
            for run, _chunk in chunks:
                assert run.slot is not None
                cache.drop_from(run.slot, run.position)
            if rc == ABORTED:
                # A prediction evaluating its prompt was cancelled inside the decode: it
                # leaves; the others of the step do its work again in the next.
                for run in evaluating:
                    if run.cancelled:
                        self._leave(run, "userStopped")
                return
            if rc == NO_ROOM:
                # The active sequences alone fill the shared context: the longest stops.
                longest = max(self._active, key=lambda r: r.position)
                self._leave(longest, "contextLengthReached")
                return
            error = RuntimeError(f"llama_decode returned {rc}")
            for run in {r for r, _ in chunks}:
                self._leave(run, "userStopped", error)
            return
        now = time.perf_counter()
        for run, chunk in chunks:
            slot = run.slot
            assert slot is not None
            position = len(slot.tokens)
            if slot.fresh == position and len(chunk) == batch_size and run.generation is None:
                slot.fresh += batch_size
            slot.tokens.extend(chunk)
            if run.generation is None:
                run.job.sink(run.progress())
        for run, index in outputs:
            if run.generation is None:
                assert run.slot is not None
                cache.checkpoint(run.slot)
                run.start_generating(llama, now)
                for follower in run.followers:
                    assert follower.slot is not None and run.slot is not None
                    cache.copy(run.slot, follower.slot)
                    follower.leader = None
                    follower.job.sink(follower.progress(finished=True))
                    follower.start_generating(llama, now)
                    self._sample(follower, index, n_ctx, llama)
                run.followers = []
            self._sample(run, index, n_ctx, llama)

    @contextmanager
    def _abortable(self, llama: Any, prompts: list[Running]) -> Iterator[None]:
        """While inside, a cancel of one of `prompts` aborts the decode (within it).

        Only for steps with prompt chunks: llama.cpp asks a few dozen times per decode,
        each ask taking the GIL, which is nothing next to a prompt chunk but not next to
        a step of single tokens (see job.abort_on)."""
        if not prompts:
            yield
            return
        import llama_cpp

        controls = [r.job.control.cancelled for r in prompts]
        callback = llama_cpp.ggml_abort_callback(
            lambda _data: any(c.is_set() for c in controls)
        )
        llama_cpp.llama_set_abort_callback(llama._ctx.ctx, callback, None)
        try:
            yield
        finally:
            llama_cpp.llama_set_abort_callback(
                llama._ctx.ctx, llama_cpp.ggml_abort_callback(), None
            )

    def _sample(self, run: Running, index: int, n_ctx: int, llama: Any) -> None:
        assert run.generation is not None
        run.pending = None
        if run.position >= n_ctx:
            self._leave(run, "contextLengthReached")
            return
        try:
            token = run.sampler.sample(llama._ctx, index)
            stop = run.generation.take(token, index)
        except Exception as err:  # noqa: BLE001 - this prediction fails, not the others
            self._leave(run, "userStopped", err)
            return
        if stop is not None:
            self._leave(run, stop)
        else:
            run.pending = token

    def _evict_idle(self, cache: KvCache) -> bool:
        """Make room in the shared cache: park and drop the idle slots' cells."""
        idle = [s for s in cache.slots if not s.busy and s.tokens]
        for slot in sorted(idle, key=lambda s: s.last_used):
            self._park_if_worth(slot, 0)
            cache.clear(slot)
        return bool(idle)

    # --- on the model thread, for the model -----------------------------------------

    def close(self) -> None:
        """The model is being freed: every prediction left ends now, as stopped."""
        with self._lock:
            arrived, self._incoming = self._incoming, []
        for run in arrived:
            run.finish_early(run.job._result(run.started, "userStopped", 0, 0, 0, None, None))
        for run in [*self._waiting, *self._active]:
            self._detach(run)
            run.finish("userStopped")
        self._waiting.clear()
        self._active.clear()
        if self._batch is not None:
            self._batch.close()
            self._batch = None
        if self._parking is not None:
            self._parking.clear()
        self._cache = None

    def reset(self) -> None:
        """Forget the cache of every idle slot, and every parked conversation."""
        if self._cache is None:
            return
        for slot in self._cache.slots:
            if not slot.busy:
                self._cache.clear(slot)
        if self._parking is not None:
            self._parking.clear()

    def cached_sequences(self) -> list[list[int]]:
        """The tokens each slot's sequence holds (for tests and stats)."""
        if self._cache is None:
            return []
        return [list(s.tokens) for s in self._cache.slots]

    @property
    def parked(self) -> int:
        return len(self._parking.parked) if self._parking is not None else 0
