"""The parent's side of decoding: start the decoder children for one file, enforce the deadline,
turn their deaths into clear errors, merge their output into one stream in timeline order, and
pass chunk jobs to them.

Audio never crosses a pipe: the children write it into the shared timeline (asr.media.shared)
and say which stretch is ready, within a credit the parent extends as it consumes the stream,
so a child runs at most about one grid segment per child ahead of the consumer and memory stays
flat in the recording's length. Each child has a reader thread that sorts its small messages:
range events into the child's own queue (consumed in timeline order), finished chunks and
errors into one results queue (consumed as they come). Every child is killed and reaped on close.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DecoderBug, DecoderFailure, Stopped
from ..types import AudioLimits, Chunk, LoudnessOptions
from . import policy
from .protocol import (
    ChildRequest, ChunkDone, ChunkJob, Credit, ErrorInfo, Kind, RangePlan, RangeSummary, Release, StreamInfo,
    Written,
    decode_payload, encode, read,
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


class DecoderProcess:
    """One decoder child, the thread that drains its pipe, and the pipe that sends it commands."""

    def __init__(self, request: ChildRequest, index: int, deadline: float, stop: threading.Event | None,
                 results: queue.Queue, wake: threading.Event):
        self.request = request
        self.index = index
        self.name = request.display_name
        self.deadline = deadline
        self.stop = stop
        self._results = results
        self._wake = wake
        self._closed = threading.Event()
        self._queue: queue.Queue = queue.Queue()  # small messages; the credit bounds how many
        self._stderr: list[bytes] = []
        self._send_lock = threading.Lock()
        self.outstanding = 0
        """Chunk jobs sent and not yet answered."""
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        # One core per child: its native libraries stay single-threaded.
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self._proc: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-m", child_module(), request.to_json()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, close_fds=True, pass_fds=(request.timeline_fd,), start_new_session=True,
        )
        self._threads = [threading.Thread(target=self._read_loop, name="decoder-reader", daemon=True),
                         threading.Thread(target=self._drain_stderr, name="decoder-stderr", daemon=True)]
        try:
            for t in self._threads:
                t.start()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Kill the child, let the threads reading its pipes finish, and only then close the
        pipes, so no thread reads a descriptor number that was closed and perhaps reused."""
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        self._closed.set()
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        with self._send_lock:
            for f in (proc.stdin, proc.stdout, proc.stderr):
                if f is not None:
                    try:
                        f.close()
                    except OSError:  # stdin of a dead child: nothing left to flush
                        pass
        self._returncode = proc.returncode

    def send(self, kind: Kind, payload: object) -> None:
        """A command on the child's stdin; a child that is gone raises its death's error."""
        with self._send_lock:
            proc = self._proc
            if proc is None or proc.stdin is None:
                return
            try:
                os.write(proc.stdin.fileno(), encode(kind, payload))  # small: one atomic pipe write
                return
            except (BrokenPipeError, OSError):
                pass
        raise self.death()

    def _read_loop(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()  # stays open until this thread has finished (see close)
        try:
            while not self._closed.is_set():
                frame = read(fd)
                if frame is None:
                    break
                kind, body = frame
                if kind is Kind.CHUNK:
                    self._results.put((self.index, decode_payload(kind, body)))
                else:
                    if kind is Kind.ERROR:  # also where the parent waits for finished chunks
                        self._results.put((self.index, decode_payload(kind, body)))
                    self._queue.put(frame)
                self._wake.set()
        except (OSError, ValueError):
            pass
        finally:
            self._queue.put(None)  # end of stream
            self._results.put((self.index, None))
            self._wake.set()

    def _drain_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        try:
            for line in proc.stderr:
                if len(self._stderr) < 200:
                    self._stderr.append(line)
        except (OSError, ValueError):
            pass

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
        proc = self._proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = None
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
        self.close()
        tail = b"".join(self._stderr[-5:]).decode("utf-8", "replace").strip()
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
    chunk; `results()` gives the finished ones. Use as a context manager, or call close()."""

    def __init__(self, path: str | os.PathLike, display_name: str, limits: AudioLimits, workers: int = 1,
                 with_vad: bool = True, stop: threading.Event | None = None,
                 loudness: LoudnessOptions | None = None):
        self.path = os.fspath(path)
        self.name = display_name
        self.limits = limits
        self.workers = max(1, workers)
        self.with_vad = with_vad
        self.stop = stop
        self.loudness = loudness or LoudnessOptions()
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

    def __enter__(self) -> "MediaStream":
        self._deadline = time.monotonic() + self.limits.decode_timeout_s
        try:
            self.timeline = SharedTimeline(capacity_samples(self.limits))
            for j in range(self.workers):
                request = ChildRequest(path=self.path, display_name=self.name, limits=self.limits,
                                       worker=j, workers=self.workers, with_vad=self.with_vad,
                                       timeline_fd=self.timeline.fd, capacity_samples=self.timeline.capacity,
                                       credit_samples=self.ahead_samples, loudness=self.loudness)
                self._children.append(DecoderProcess(request, j, self._deadline, self.stop, self._results,
                                                     self._wake))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for child in self._children:
            child.close()
        if self.timeline is not None:
            self.timeline.close()

    def check(self) -> None:
        """Raise if the consumer stopped us or the deadline passed."""
        if self.stop is not None and self.stop.is_set():
            raise Stopped(f"decoding '{self.name}' was stopped")
        if time.monotonic() > self._deadline:
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
                return out
            child = self._children[index]
            if isinstance(message, ChunkDone):
                child.outstanding -= 1
                out.append(message)
            elif isinstance(message, ErrorInfo):
                raise message.exception()
            elif message is None and child.outstanding:
                raise child.death()
