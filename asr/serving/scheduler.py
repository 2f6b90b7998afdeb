"""One thread that owns the models and the GPU, batching the chunks of every running prediction.

Predictions (`Session`s) submit chunks tagged with a `BatchKey` (model + prompt + decoding
options). The loop picks the next batch like this:

- which key: round robin between sessions that have a *ready* key, so a 10 s clip that arrives
  while a 4-hour file is queued is in the very next batch (its chunks are taken first in their
  session's turn, and every session with the same key fills the rest of the batch);
- ready: a full batch is waiting, or a session that has it will submit nothing more, or its
  oldest chunk has waited `max_wait_s`, or the queue's byte budget is full. A part-full batch
  therefore waits only while more chunks are still coming, and never longer than `max_wait_s`;
- which chunks: the longest waiting chunk of the session whose turn it is, and with it the
  waiting chunks of that key (any session's) nearest it in length: the window of the length-sorted
  queue that holds it and pads least. Fair, since every session's turn puts one of its chunks in,
  and cheap, since a batch's cost is its longest chunk times its size: taking chunks in turn
  regardless of length padded the 16-clip load run's batches by half their audio.

Only this thread calls the models; language identification and diarization run here too, as
exclusive jobs between batches (`call`), so nothing else touches the GPU. Results go back
through `concurrent.futures.Future`s, which a thread waits on directly and asyncio wraps.

Isolation: a failed batch fails the futures of exactly the chunks in it; a cancelled session's
queued chunks are dropped. A device fault (CUDA illegal access, device-side assert) leaves the
CUDA context unusable, so the scheduler then refuses new work with a clear error and reports
itself unhealthy, for the supervisor to restart the worker (README "Running it safely").
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelFailure, Stopped
from ..types import ChunkResult
from .work import BatchKey, BatchRecord, WorkItem

log = logging.getLogger(__name__)

DEFAULT_QUEUE_BYTES = 512 * 2**20
"""Audio waiting for the model, all predictions together: 512 MiB is ~2.3 h of 16 kHz float32,
several full batches of the largest batch size."""
DEFAULT_MAX_WAIT_S = 0.05
"""How long a part-full batch waits for more chunks while its predictions are still sending."""
_DEVICE_FAULTS = ("illegal memory access", "device-side assert", "unspecified launch failure",
                  "CUDA error: misaligned address", "cudaErrorLaunchFailure", "CUBLAS_STATUS_EXECUTION_FAILED",
                  "an illegal instruction")


def is_device_fault(error: BaseException) -> bool:
    """A CUDA error after which the context is unusable (out-of-memory is not one)."""
    text = f"{type(error).__name__}: {error}"
    return any(s in text for s in _DEVICE_FAULTS)


@dataclass
class SessionStats:
    """What one prediction's chunks cost on the scheduler."""

    model_s: float = 0.0
    """Wall time of the batches that held its chunks (a shared batch counts in full)."""
    batches: int = 0
    idle_s: float = 0.0
    """Time the model sat idle while this prediction was open: waiting for its front end."""
    jobs_s: float = 0.0
    """Exclusive jobs (language identification, diarization) run for it."""


@dataclass(eq=False)
class _SessionState:
    id: int
    name: str
    waiting: deque[WorkItem] = field(default_factory=deque)
    finished: bool = False
    """No more chunks will come: its part-full batches need not wait."""
    cancelled: bool = False
    stats: SessionStats = field(default_factory=SessionStats)
    on_batch: Callable[[int], None] | None = None


@dataclass(eq=False)
class _Job:
    fn: Callable[[], object]
    future: Future
    session: _SessionState | None


class Session:
    """One prediction's handle on the scheduler. Use as a context manager: leaving it (normally,
    by an error or by cancellation) drops whatever of its work is still queued."""

    def __init__(self, scheduler: "Scheduler", state: _SessionState, cancel: threading.Event | None):
        self._scheduler = scheduler
        self._state = state
        self._cancel = cancel

    @property
    def id(self) -> int:
        return self._state.id

    def submit(self, index: int, audio: np.ndarray, key: BatchKey) -> "Future[ChunkResult]":
        """Queue one chunk; blocks while the queue's byte budget is full (back-pressure on the
        front end), except that a session with nothing queued may always add one chunk."""
        return self._scheduler._submit(self._state, index, audio, key, self._cancel)

    def call(self, fn: Callable[[], object]) -> Future:
        """Run `fn` on the scheduler's thread between batches (GPU work other than ASR)."""
        return self._scheduler._call(fn, self._state)

    def finish(self) -> None:
        """Nothing more will be submitted: what is queued may run in part-full batches now."""
        self._scheduler._finish(self._state)

    def wait(self, futures: list[Future]) -> list:
        """The futures' results in order; raises the first failure, or `Stopped` when the
        prediction's cancel event is set (checked four times a second)."""
        out = []
        for f in futures:
            while True:
                if self._cancel is not None and self._cancel.is_set():
                    raise Stopped("the prediction was cancelled")
                try:
                    out.append(f.result(timeout=0.25))
                    break
                except TimeoutError:
                    continue
        return out

    def cancel(self) -> None:
        self._scheduler._drop(self._state)

    @property
    def stats(self) -> SessionStats:
        return self._state.stats

    def close(self) -> None:
        self._scheduler._close_session(self._state)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Scheduler:
    """See the module docstring. `models` is an `asr.models.ModelSet` (anything with `get(name)`
    returning a model with `transcribe(audios, request)`, `batch_size` and `release()`)."""

    def __init__(self, models, queue_bytes: int = DEFAULT_QUEUE_BYTES, max_wait_s: float = DEFAULT_MAX_WAIT_S,
                 history: int = 4096):
        self._models = models
        self.queue_bytes = int(queue_bytes)
        self.max_wait_s = float(max_wait_s)
        self._cond = threading.Condition()
        self._sessions: dict[int, _SessionState] = {}
        self._turns: deque[int] = deque()
        """Session ids in round-robin order."""
        self._jobs: deque[_Job] = deque()
        self._queued_bytes = 0
        self._ids = itertools.count(1)
        self._closed = False
        self._fault: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.history: deque[BatchRecord] = deque(maxlen=history)
        """The latest batches run (for benchmarks and tests)."""
        self.busy_s = 0.0
        self.idle_s = 0.0
        """Idle while at least one session was open."""

    # -- the predictions' side -------------------------------------------------------------

    def open(self, name: str = "", cancel: threading.Event | None = None,
             on_batch: Callable[[int], None] | None = None) -> Session:
        """A session for one prediction. `cancel`: when set, its waits raise `Stopped`.
        `on_batch(n)`: called on the scheduler's thread when n of its chunks are done."""
        with self._cond:
            self._check_usable()
            state = _SessionState(next(self._ids), name, on_batch=on_batch)
            self._sessions[state.id] = state
            self._turns.append(state.id)
            self._start()
            self._cond.notify_all()
        return Session(self, state, cancel)

    @property
    def fault(self) -> BaseException | None:
        """The device fault that made this scheduler unusable, if any."""
        return self._fault

    @property
    def healthy(self) -> bool:
        return self._fault is None and not self._closed

    def queued(self) -> tuple[int, int]:
        """(chunks, bytes) waiting, all sessions together."""
        with self._cond:
            return sum(len(s.waiting) for s in self._sessions.values()), self._queued_bytes

    def close(self) -> None:
        """Stop the loop; queued work fails with `Stopped`."""
        with self._cond:
            self._closed = True
            for state in list(self._sessions.values()):
                self._drop_locked(state, Stopped("the service is shutting down"))
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _check_usable(self) -> None:
        if self._fault is not None:
            raise ModelFailure(
                "the GPU reported a fault earlier and this worker can no longer run the model; it reports "
                "itself unhealthy so that it is restarted: retry shortly"
            ) from self._fault
        if self._closed:
            raise Stopped("the service is shutting down")

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="asr-scheduler", daemon=True)
            self._thread.start()

    def _submit(self, state: _SessionState, index: int, audio: np.ndarray, key: BatchKey,
                cancel: threading.Event | None) -> Future:
        future: Future = Future()
        item = WorkItem(state.id, index, audio, key, future, time.monotonic())
        with self._cond:
            while True:
                self._check_usable()
                if state.cancelled or (cancel is not None and cancel.is_set()):
                    raise Stopped("the prediction was cancelled")
                if not state.waiting or self._queued_bytes + item.nbytes <= self.queue_bytes:
                    break
                self._cond.wait(timeout=0.25)
            state.waiting.append(item)
            self._queued_bytes += item.nbytes
            self._cond.notify_all()
        return future

    def _call(self, fn: Callable[[], object], state: _SessionState | None) -> Future:
        future: Future = Future()
        with self._cond:
            self._check_usable()
            self._jobs.append(_Job(fn, future, state))
            self._start()
            self._cond.notify_all()
        return future

    def _finish(self, state: _SessionState) -> None:
        with self._cond:
            state.finished = True
            self._cond.notify_all()

    def _drop(self, state: _SessionState) -> None:
        with self._cond:
            self._drop_locked(state, None)

    def _drop_locked(self, state: _SessionState, error: BaseException | None) -> None:
        state.cancelled = True
        while state.waiting:
            item = state.waiting.popleft()
            self._queued_bytes -= item.nbytes
            if error is None:
                item.future.cancel()
            elif not item.future.done():
                item.future.set_exception(error)
        for job in [j for j in self._jobs if j.session is state]:
            self._jobs.remove(job)
            job.future.cancel()
        self._cond.notify_all()

    def _close_session(self, state: _SessionState) -> None:
        with self._cond:
            self._drop_locked(state, None)
            self._sessions.pop(state.id, None)
            try:
                self._turns.remove(state.id)
            except ValueError:
                pass
            self._cond.notify_all()

    # -- the loop ----------------------------------------------------------------------------

    def _loop(self) -> None:
        prefer_job = True
        while True:
            with self._cond:
                t_wait = time.monotonic()
                while True:
                    if self._closed:
                        return
                    batch = self._pick_batch()
                    job = self._jobs[0] if self._jobs else None
                    if batch is not None or job is not None:
                        break
                    self._cond.wait(timeout=self._next_deadline())
                waited = time.monotonic() - t_wait
                if self._sessions:
                    self.idle_s += waited
                    for s in self._sessions.values():
                        s.stats.idle_s += waited
                if job is not None and (batch is None or prefer_job):
                    self._jobs.popleft()
                    batch = None
                else:
                    job = None
                prefer_job = not prefer_job
            if job is not None:
                self._run_job(job)
            else:
                self._run_batch(*batch)

    def _ready(self, key: BatchKey, now: float) -> bool:
        items = [i for s in self._sessions.values() for i in s.waiting if i.key == key]
        if not items:
            return False
        if len(items) >= self._batch_size(key):
            return True
        if self._queued_bytes >= self.queue_bytes:
            return True
        owners = {i.session_id for i in items}
        if any(self._sessions[o].finished for o in owners):
            return True
        return now - min(i.enqueued_s for i in items) >= self.max_wait_s

    def _batch_size(self, key: BatchKey) -> int:
        return max(1, int(self._models.get(key.model).batch_size))

    def _next_deadline(self) -> float:
        oldest = [s.waiting[0].enqueued_s for s in self._sessions.values() if s.waiting]
        if not oldest:
            return 0.5
        return max(0.001, min(oldest) + self.max_wait_s - time.monotonic())

    def _pick_batch(self) -> tuple[BatchKey, list[WorkItem]] | None:
        """Under the lock: the next batch by the rules in the module docstring, taken out of
        the queues; or None when nothing is ready."""
        now = time.monotonic()
        checked: set[BatchKey] = set()
        for turn, sid in enumerate(self._turns):
            state = self._sessions[sid]
            for item in state.waiting:
                if item.key in checked:
                    continue
                checked.add(item.key)
                if self._ready(item.key, now):
                    self._turns.rotate(-(turn + 1))  # the next batch starts with the next session
                    return item.key, self._take(item.key, sid)
        return None

    def _take(self, key: BatchKey, first: int) -> list[WorkItem]:
        waiting = [i for sid in self._turns for i in self._sessions[sid].waiting if i.key == key]
        waiting.sort(key=lambda i: (-i.audio.size, i.enqueued_s, i.session_id, i.index))
        taken = waiting[_least_padded_window(waiting, first, self._batch_size(key))]
        chosen = set(map(id, taken))
        for sid in {i.session_id for i in taken}:
            state = self._sessions[sid]
            state.waiting = deque(i for i in state.waiting if id(i) not in chosen)
        self._queued_bytes -= sum(i.nbytes for i in taken)
        self._cond.notify_all()  # room for blocked submitters
        return taken

    def _run_job(self, job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        t = time.perf_counter()
        try:
            result = job.fn()
        except BaseException as e:  # noqa: BLE001 - handed to the waiting prediction
            self._note_fault(e)
            job.future.set_exception(e)
        else:
            job.future.set_result(result)
        finally:
            dt = time.perf_counter() - t
            self.busy_s += dt
            if job.session is not None:
                job.session.stats.jobs_s += dt

    def _run_batch(self, key: BatchKey, items: list[WorkItem]) -> None:
        items = [i for i in items if i.future.set_running_or_notify_cancel()]
        if not items:
            return
        items.sort(key=lambda i: i.audio.size, reverse=True)  # the adapters expect longest first
        model = self._models.get(key.model)
        started = time.monotonic()
        t = time.perf_counter()
        try:
            results = model.transcribe([i.audio for i in items], key.request)
            if len(results) != len(items):
                raise RuntimeError(f"{model.name} returned {len(results)} results for {len(items)} chunks")
        except BaseException as e:  # noqa: BLE001 - fails exactly this batch's predictions
            log.exception("a batch of %d chunks failed on %s", len(items), key.model)
            self._note_fault(e)
            error = ModelFailure(f"the model failed on a batch holding this file's audio: {type(e).__name__}: {e}")
            error.__cause__ = e
            for i in items:
                i.future.set_exception(error)
            try:
                model.release()
            except Exception:  # noqa: BLE001 - after a device fault even this can fail
                log.exception("releasing model memory failed")
            results = None
        dt = time.perf_counter() - t
        self.busy_s += dt
        sessions = tuple(dict.fromkeys(i.session_id for i in items))
        self.history.append(BatchRecord(key, len(items), sessions, started, dt))
        counts: dict[int, int] = {}
        for i in items:
            counts[i.session_id] = counts.get(i.session_id, 0) + 1
        with self._cond:
            states = {sid: self._sessions.get(sid) for sid in sessions}
        for sid, state in states.items():
            if state is not None:
                state.stats.model_s += dt
                state.stats.batches += 1
        if results is not None:
            for i, r in zip(items, results):
                i.future.set_result(r)
        for sid, state in states.items():
            if state is not None and state.on_batch is not None:
                try:
                    state.on_batch(counts[sid])
                except Exception:  # noqa: BLE001 - progress must never fail the model loop
                    log.exception("progress callback failed")

    def _note_fault(self, error: BaseException) -> None:
        if is_device_fault(error):
            log.critical("device fault: the model can no longer run in this worker: %s", error)
            with self._cond:
                self._fault = error
                for state in list(self._sessions.values()):
                    self._drop_locked(state, ModelFailure(f"the GPU reported a fault: {error}"))
                for job in list(self._jobs):
                    self._jobs.remove(job)
                    if job.future.set_running_or_notify_cancel():
                        job.future.set_exception(ModelFailure(f"the GPU reported a fault: {error}"))


def _least_padded_window(ordered: list[WorkItem], session_id: int, limit: int) -> slice:
    """`ordered`: one key's waiting chunks, longest first. The run of up to `limit` of them that
    holds `session_id`'s longest chunk and wastes the fewest padded samples (ties: the longer run,
    which holds the costlier chunks)."""
    n = min(limit, len(ordered))
    anchor = next(k for k, i in enumerate(ordered) if i.session_id == session_id)
    sizes = [i.audio.size for i in ordered]
    best, best_pad = anchor, None
    for start in range(max(0, anchor - n + 1), min(anchor, len(ordered) - n) + 1):
        pad = n * sizes[start] - sum(sizes[start:start + n])
        if best_pad is None or pad < best_pad:
            best, best_pad = start, pad
    return slice(best, best + n)
