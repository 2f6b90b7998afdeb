"""The parent's side of decoding: take the decoder children for one file from the pool, enforce
the deadline, turn their deaths into clear errors, merge their output into one stream in
timeline order, and pass chunk jobs to them.

Audio never crosses a pipe: the children write it into the shared timeline (asr.media.shared)
and say which stretch is ready, within a credit the parent extends as it consumes the stream,
so a child runs at most about one grid segment per child ahead of the consumer and memory stays
flat in the recording's length. Each child's reader thread (asr.media.pool) sorts its small
messages: range events into the child's own queue (consumed in timeline order), finished chunks
and errors into one results queue (consumed as they come). On close, children whose file ended
cleanly go back to the pool; every other is killed and reaped.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import DecoderBug, DecoderFailure, Stopped
from ..types import AudioLimits, Chunk, LoudnessOptions
from . import policy
from .pool import ChildPool, ChildProcess, shared
from .protocol import (
    ChildRequest, ChildSpec, ChunkDone, ChunkJob, Credit, ErrorInfo, Kind, RangePlan, RangeSummary, Release,
    StreamInfo, Written, decode_payload,
)
from .shared import SharedTimeline, capacity_samples

log = logging.getLogger(__name__)

_POLL_S = 0.25
_RELEASE_STEP_SAMPLES = 20 * 16_000


@dataclass(frozen=True, eq=False)
class Audio:
    """16 kHz mono samples [start_sample, start_sample + samples.size) of the timeline, ready.
    `samples` is a view into the shared timeline, valid until the consumer releases it."""

    start_sample: int
    samples: np.ndarray


@dataclass(frozen=True, eq=False)
class Probabilities:
    """VAD speech probabilities, continuing the VAD frame sequence."""

    values: np.ndarray


Event = StreamInfo | RangePlan | RangeSummary | Audio | Probabilities


def child_module() -> str:
    """The child's entry point; the fault-injecting one only when tests ask for it."""
    from .. import settings

    return "asr.media.faults" if settings.fault_injection() else "asr.media.child"


def prestart(limits: AudioLimits, pool: ChildPool | None = None) -> int:
    """Start warm children for files with these limits now, so the first file finds them ready."""
    return (pool or shared()).prestart(child_module(), ChildSpec.of(limits))


class DecoderProcess:
    """One file's use of a decoder child: the file's request, the queue of its range messages,
    its open chunk jobs; the child goes back to the pool after a clean end."""

    def __init__(self, child: ChildProcess, request: ChildRequest, index: int, timeline_fd: int,
                 results: queue.Queue, wake: threading.Event):
        self.request = request
        self.index = index
        self.name = request.display_name
        self._child: ChildProcess | None = child
        self._results = results
        self._wake = wake
        self._queue: queue.Queue = queue.Queue()  # small messages; the credit bounds how many
        self.outstanding = 0
        """Chunk jobs sent and not yet answered."""
        child.bind(self)
        self.send(Kind.START, request, fd=timeline_fd)

    @property
    def pid(self) -> int | None:
        return None if self._child is None else self._child.pid

    def deliver(self, kind: Kind, body: bytes) -> None:
        """From the child's reader thread."""
        if kind is Kind.CHUNK:
            self._results.put((self.index, decode_payload(kind, body)))
        else:
            if kind is Kind.ERROR:  # also where the parent waits for finished chunks
                self._results.put((self.index, decode_payload(kind, body)))
            self._queue.put((kind, body))
        self._wake.set()

    def ended(self) -> None:
        """From the child's reader thread: its stream ended."""
        self._queue.put(None)
        self._results.put((self.index, None))
        self._wake.set()

    def close(self, pool: ChildPool, reuse: bool) -> None:
        """Give the child back for another file (`reuse`: this one ended cleanly, and the child
        says it let the file go), or kill and reap it."""
        child, self._child = self._child, None
        if child is None:
            return
        idle = child.end_file() if reuse else None
        if idle is None:  # killed and reaped while still bound: its last words land here
            pool.give_back(child, None)
            child.unbind()
        else:  # idle: unbound before another file can take it
            child.unbind()
            pool.give_back(child, idle)

    def send(self, kind: Kind, payload: object, fd: int | None = None) -> None:
        """A command on the child's socket; a child that is gone raises its death's error."""
        child = self._child
        if child is None:
            return
        try:
            child.send(kind, payload, fd)
            return
        except OSError:
            pass
        raise self.death()

    _NOTHING = object()

    def next_message(self):
        """The next typed message, `_NOTHING` if none has arrived, or None at the end of the
        stream; raises the child's error."""
        try:
            frame = self._queue.get_nowait()
        except queue.Empty:
            return self._NOTHING
        if frame is None:
            self._queue.put(None)  # stays at the end
            return None
        kind, body = frame
        message = decode_payload(kind, body)
        if isinstance(message, ErrorInfo):
            raise message.exception()
        return message

    def death(self) -> DecoderFailure:
        """The error for a child that died (or left) in the middle of this file."""
        child = self._child
        code = child.exit_status(timeout_s=10) if child is not None else None
        if code is not None and code < 0:
            try:
                sig = signal.Signals(-code).name
            except ValueError:
                sig = f"signal {-code}"
            how = f"crashed ({sig})"
            if -code in (signal.SIGKILL, signal.SIGXCPU):
                how = f"was stopped ({sig}: over its CPU or memory limit)"
        else:
            how = f"exited unexpectedly (status {code})"
        tail = child.stderr_tail() if child is not None else ""
        if tail:
            log.warning("decoder stderr for '%s': %s", self.name, tail)
        return DecoderFailure(
            f"the decoder {how} while reading '{self.name}'; the file is probably damaged or not "
            f"a supported format (accepted: {policy.ACCEPTED_HINT})"
        )


class MediaStream:
    """Decodes one file with `workers` children into a shared timeline. `next_event()` gives, in
    timeline order: StreamInfo, the RangePlan, then per range its Audio and Probabilities and its
    RangeSummary. A range that reports a truncated file ends the stream (what came before is
    kept), as the sequential decoder would. `finish(chunk)` has a child cut and normalise a
    chunk; `results()` gives the finished ones; after `no_more_jobs()` the children go back to
    the pool as soon as their jobs are answered. Use as a context manager, or call close()."""

    def __init__(self, path: str | os.PathLike, display_name: str, limits: AudioLimits, workers: int = 1,
                 with_vad: bool = True, stop: threading.Event | None = None,
                 loudness: LoudnessOptions | None = None, pool: ChildPool | None = None):
        self.path = os.fspath(path)
        self.name = display_name
        self.limits = limits
        self.workers = max(1, workers)
        """Children asked for; once entered, the children this file has."""
        self.with_vad = with_vad
        self.stop = stop
        self.loudness = loudness or LoudnessOptions()
        self.pool = pool or shared()
        self.ahead_samples = (self.workers + 1) * policy.SEGMENT_SAMPLES
        """How far past what the parent has consumed the children may write."""
        self.timeline: SharedTimeline | None = None
        self.done = False
        """True once every range has been delivered (chunk jobs may still be running)."""
        self._children: list[DecoderProcess] = []
        self._results: queue.Queue = queue.Queue()
        self._wake = threading.Event()
        self._ids = itertools.count()
        self._info: StreamInfo | None = None
        self._plan: RangePlan | None = None
        self._range = 0
        self._credited = 0
        self._deadline = 0.0
        self._truncated = False
        self._last_job = False
        self._let_go = False

    def __enter__(self) -> "MediaStream":
        try:
            self.timeline = SharedTimeline(capacity_samples(self.limits))
            children = self.pool.take(child_module(), ChildSpec.of(self.limits), self.workers, self.stop)
            self.check_stop()
            self.workers = len(children)
            self.ahead_samples = (self.workers + 1) * policy.SEGMENT_SAMPLES
            # The deadline is the decoder's: it starts once the children have the file.
            self._deadline = time.monotonic() + self.limits.decode_timeout_s
            for j, child in enumerate(children):
                request = ChildRequest(path=self.path, display_name=self.name, limits=self.limits,
                                       worker=j, workers=self.workers, with_vad=self.with_vad,
                                       capacity_samples=self.timeline.capacity,
                                       credit_samples=self.ahead_samples, loudness=self.loudness)
                try:
                    self._children.append(DecoderProcess(child, request, j, self.timeline.fd, self._results,
                                                         self._wake))
                except BaseException:
                    for rest in children[j:]:
                        rest.unbind()
                        self.pool.give_back(rest, None)
                    raise
        except BaseException:
            self.close(reuse=False)
            raise
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(reuse=exc_type is None)

    @property
    def pids(self) -> list[int]:
        """The children working on this file now (none once they went back)."""
        return [pid for pid in (c.pid for c in self._children) if pid is not None]

    def _clean(self) -> bool:
        """Whether the file ended so that its children may serve another: every range delivered
        (none cut short), every chunk job answered, not stopped, inside the deadline."""
        return (self.done and not self._truncated and all(c.outstanding == 0 for c in self._children)
                and not (self.stop is not None and self.stop.is_set()) and time.monotonic() <= self._deadline)

    def _return_children(self, reuse: bool) -> None:
        reuse = reuse and self._clean()
        for child in self._children:
            child.close(self.pool, reuse)
        self._let_go = True

    def close(self, reuse: bool = True) -> None:
        """Let the children go (back to the pool only if the file ended cleanly and `reuse`),
        then the timeline."""
        self._return_children(reuse)
        if self.timeline is not None:
            self.timeline.close()

    def no_more_jobs(self) -> None:
        """No chunk job will follow: the children go back to the pool once every range is in
        and every job is answered (`results()` sees to it); the timeline stays readable."""
        self._last_job = True
        self._maybe_let_go()

    def _maybe_let_go(self) -> None:
        if self._last_job and not self._let_go and self._clean():
            self._return_children(reuse=True)

    def check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Stopped(f"decoding '{self.name}' was stopped")

    def check(self) -> None:
        """Raise if the consumer stopped us or the deadline passed."""
        self.check_stop()
        if not self._let_go and time.monotonic() > self._deadline:
            raise DecoderFailure(
                f"decoding '{self.name}' took longer than {self.limits.decode_timeout_s:g} s and "
                f"was stopped; the file may be damaged or built to stall the decoder"
            )

    def wait(self, timeout_s: float = _POLL_S) -> None:
        """Sleep until any child says something (or a short while: an asynchronous exception,
        Cog's cancel, lands between waits)."""
        self._wake.wait(timeout_s)
        self._wake.clear()
        self.check()

    def _message(self, child: DecoderProcess):
        message = child.next_message()
        if message is None:
            raise child.death()
        return message

    def next_event(self) -> Event | None:
        """The next event in timeline order, or None if it has not arrived yet (or `done`)."""
        if self.done:
            return None
        first = self._children[0]
        if self._plan is None:
            if self._info is None:
                info = self._message(first)
                if info is DecoderProcess._NOTHING:
                    return None
                if not isinstance(info, StreamInfo):
                    raise DecoderBug(f"decoder protocol error for '{self.name}': expected the stream info")
                self._info = info
                return info
            plan = self._message(first)
            if plan is DecoderProcess._NOTHING:
                return None
            if not isinstance(plan, RangePlan):
                raise DecoderBug(f"decoder protocol error for '{self.name}': expected the range plan")
            self._plan = plan
            return plan
        if self._range >= len(self._plan.ranges):
            self.done = True
            return None
        r = self._plan.ranges[self._range]
        child = self._children[r.index % self.workers]
        message = self._message(child)
        if message is DecoderProcess._NOTHING:
            return None
        if isinstance(message, RangeSummary):
            if message.index != r.index:
                raise DecoderBug(f"decoder protocol error for '{self.name}': range {message.index} "
                                 f"arrived where {r.index} was expected")
            self._range += 1
            if message.truncated_at_s is not None:
                self._range = len(self._plan.ranges)
                self._truncated = True
            if self._range >= len(self._plan.ranges):
                self.done = True
            else:
                self._credit(self._plan.ranges[self._range].start_sample)
            return message
        if isinstance(message, Written):
            assert self.timeline is not None
            self._credit(message.end_sample)
            return Audio(message.start_sample, self.timeline.samples[message.start_sample : message.end_sample])
        if isinstance(message, np.ndarray):
            return Probabilities(message)
        raise DecoderBug(f"decoder protocol error for '{self.name}': unexpected {type(message).__name__}")

    def _credit(self, consumed: int) -> None:
        """Let the children write up to `ahead_samples` past what has been consumed."""
        if consumed - self._credited < policy.SEGMENT_SAMPLES:
            return
        self._credited = consumed
        for child in self._children:
            child.send(Kind.CREDIT, Credit(consumed + self.ahead_samples))

    def __iter__(self) -> Iterator[Event]:
        """Every event in timeline order (waiting for each)."""
        while not self.done:
            event = self.next_event()
            if event is None:
                if not self.done:
                    self.wait()
                continue
            yield event

    def finish(self, chunk: Chunk) -> int:
        """Send a chunk job to the child with the fewest open jobs; returns its id."""
        if self._last_job:
            raise DecoderBug(f"a chunk job for '{self.name}' after the last one")
        child = min(self._children, key=lambda c: c.outstanding)
        job = next(self._ids)
        child.send(Kind.FINISH, ChunkJob(job, tuple((s.start_sample, s.end_sample) for s in chunk.spans)))
        child.outstanding += 1
        return job

    def release_before(self, sample: int) -> None:
        """No one needs the audio before `sample` any more: a child gives its memory back (in
        steps of a few seconds, so this costs a message now and then)."""
        assert self.timeline is not None
        if sample - self.timeline.released < _RELEASE_STEP_SAMPLES:
            return
        if self._let_go:  # the children have gone back: the parent punches the hole itself
            self.timeline.release_before(sample)
            return
        self.timeline.released = sample
        child = min(self._children, key=lambda c: c.outstanding)
        child.send(Kind.RELEASE, Release(sample))

    def results(self) -> list[ChunkDone]:
        """The chunk jobs finished since the last call; raises a child's error or death if it
        had jobs open."""
        out = []
        while True:
            try:
                index, message = self._results.get_nowait()
            except queue.Empty:
                self._maybe_let_go()
                return out
            child = self._children[index]
            if isinstance(message, ChunkDone):
                child.outstanding -= 1
                out.append(message)
            elif isinstance(message, ErrorInfo):
                raise message.exception()
            elif message is None and child.outstanding:
                raise child.death()
