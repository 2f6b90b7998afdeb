"""The parent's side of decoding: start the decoder children for one file, enforce the deadline,
turn their deaths into clear errors, and merge their output into one stream in timeline order.

Each child has a reader thread that drains its pipe into a bounded queue, so a child that runs
ahead of the consumer holds at most about one range of audio before its pipe blocks it: memory
stays flat in the recording's length. Every child is killed and reaped on close.
"""

from __future__ import annotations

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
from ..types import AudioLimits
from . import policy
from .protocol import (
    ChildRequest, ErrorInfo, Kind, RangePlan, RangeSummary, StreamInfo, decode_payload, read,
)

log = logging.getLogger(__name__)

_POLL_S = 0.25
_QUEUE_MESSAGES = int(policy.SEGMENT_SAMPLES / 16_384 * 2.5) + 32
"""Messages (about 1 s of audio each, plus VAD blocks) a child may run ahead of the consumer."""


@dataclass(frozen=True, eq=False)
class Audio:
    """16 kHz mono samples, continuing the timeline."""

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
    """One decoder child and the thread that drains its pipe."""

    def __init__(self, request: ChildRequest, deadline: float, stop: threading.Event | None):
        self.request = request
        self.name = request.display_name
        self.deadline = deadline
        self.stop = stop
        self._closed = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=_QUEUE_MESSAGES)
        self._stderr: list[bytes] = []
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        # One core per child: its native libraries stay single-threaded.
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self._proc: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-m", child_module(), request.to_json()],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, close_fds=True, start_new_session=True,
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
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
        self._returncode = proc.returncode

    def _put(self, item) -> None:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _read_loop(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()  # stays open until this thread has finished (see close)
        try:
            while not self._closed.is_set():
                frame = read(fd)
                if frame is None:
                    break
                self._put(frame)
        except (OSError, ValueError):
            pass
        finally:
            self._put(None)  # end of stream

    def _drain_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        try:
            for line in proc.stderr:
                if len(self._stderr) < 200:
                    self._stderr.append(line)
        except (OSError, ValueError):
            pass

    def next_message(self):
        """The next typed message; raises on the deadline, a stop, an error or the child's death.
        Returns None at a clean end of stream."""
        while True:
            if self.stop is not None and self.stop.is_set():
                raise Stopped(f"decoding '{self.name}' was stopped")
            remaining = self.deadline - time.monotonic()
            try:
                # Short waits: an asynchronous exception (Cog's cancel) lands between them.
                frame = self._queue.get(timeout=min(max(0.0, remaining), _POLL_S))
            except queue.Empty:
                if remaining > _POLL_S:
                    continue
                raise DecoderFailure(
                    f"decoding '{self.name}' took longer than {self.request.limits.decode_timeout_s:g} s and "
                    f"was stopped; the file may be damaged or built to stall the decoder"
                ) from None
            if frame is None:
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
    """Decodes one file with `workers` children and yields, in timeline order: StreamInfo, the
    RangePlan, then per range its Audio and Probabilities blocks and its RangeSummary. A range
    that reports a truncated file ends the stream (what came before is kept), as the sequential
    decoder would. Use as a context manager, or call close()."""

    def __init__(self, path: str | os.PathLike, display_name: str, limits: AudioLimits, workers: int = 1,
                 with_vad: bool = True, stop: threading.Event | None = None):
        self.path = os.fspath(path)
        self.name = display_name
        self.limits = limits
        self.workers = max(1, workers)
        self.with_vad = with_vad
        self.stop = stop
        self._children: list[DecoderProcess] = []

    def __enter__(self) -> "MediaStream":
        deadline = time.monotonic() + self.limits.decode_timeout_s
        try:
            for j in range(self.workers):
                request = ChildRequest(path=self.path, display_name=self.name, limits=self.limits,
                                       worker=j, workers=self.workers, with_vad=self.with_vad)
                self._children.append(DecoderProcess(request, deadline, self.stop))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for child in self._children:
            child.close()

    def _expect(self, child: DecoderProcess):
        message = child.next_message()
        if message is None:
            raise child.death()
        return message

    def __iter__(self) -> Iterator[Event]:
        first = self._children[0]
        info = self._expect(first)
        plan = self._expect(first)
        if not isinstance(info, StreamInfo) or not isinstance(plan, RangePlan):
            raise DecoderBug(f"decoder protocol error for '{self.name}': expected the stream info and plan")
        yield info
        yield plan
        for r in plan.ranges:
            child = self._children[r.index % self.workers]
            while True:
                message = self._expect(child)
                if isinstance(message, RangeSummary):
                    if message.index != r.index:
                        raise DecoderBug(f"decoder protocol error for '{self.name}': range {message.index} "
                                         f"arrived where {r.index} was expected")
                    yield message
                    break
                kind, values = message
                yield Audio(values) if kind is Kind.AUDIO else Probabilities(values)
            if message.truncated_at_s is not None:
                break
        self.close()
