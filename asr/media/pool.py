"""Warm decoder children, shared by every file this process decodes.

Starting a child (interpreter, numpy, PyAV, ONNX Runtime, the VAD's session) costs ~0.45 s of
CPU, about ten times the work of decoding and scoring a 30 s clip. So children are not started
per file: a file takes idle children from the pool, and gives each back after a clean END (the
child has unmapped and closed the file's timeline and said IDLE). A child that failed, was
killed, timed out, was stopped, or whose file ended any other way is killed and reaped, never
given another file; so is one that has served `ChildSpec.max_files` files or grew (address
space, open descriptors) past what it held when it had just warmed up.

The pool keeps at most `size` children (busy and idle together; by default the usable cores).
A file gets as many children as it asks for (asr.serving.cores decides how many): idle ones
first, the rest started. When none is idle and the pool is full, files wait in turn for
children to come back: with many short files at once one comes back every fraction of a second,
sooner than a new child would be ready, and starting many children at once on busy cores takes
seconds. A waiting file starts a child only when no child has been handed out or come back for
about what starting one for each waiting file would take on the pool's cores: the busy ones are
then held by long files, and a short file that arrives well after a long one began starts its
child at once.
Children started past `size` are retired when they come back. Idle children retire after
`idle_s`. Each child runs in its own session with its own limits, as before.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from .. import settings
from . import policy
from .protocol import ChildIdle, ChildSpec, End, Kind, decode_payload, encode, read

log = logging.getLogger(__name__)

DEFAULT_WAIT_S = 0.5
"""A child's start-up time (see `ChildPool.wait_s`) until the pool has timed its own children's."""
GROWTH_BYTES = 128 * 2**20
"""Address space a child may gain over its warm size and still be reused (measured: +43 MB over
its first few files, flat after; 60 files of four containers)."""


class FileSink(Protocol):
    """Where a child's messages go while it works on a file (asr.media.supervisor)."""

    def deliver(self, kind: Kind, body: bytes) -> None: ...

    def ended(self) -> None:
        """The child's stream ended (it died or exited)."""


@dataclass(frozen=True)
class PoolOptions:
    size: int
    """Children kept, busy and idle together (0: none kept; every file starts its own)."""
    idle_s: float = 300.0
    """An idle child is retired after this long."""
    max_files: int = 100
    """Files one child serves before it is retired."""
    wait_s: float | None = None
    """How long no child may have come back before a waiting file starts one (None: what
    starting one took lately)."""

    @classmethod
    def from_settings(cls) -> "PoolOptions":
        size = settings.decoder_pool()
        return cls(size=policy.usable_cores() if size is None else size, idle_s=settings.decoder_idle_s())


class ChildProcess:
    """One decoder child for its whole life: the process, the thread that reads its messages
    and hands them to the file it works on, and the socket that sends it commands."""

    def __init__(self, module: str, spec: ChildSpec):
        self.module = module
        self.spec = spec
        self.files = 0
        """Files it finished cleanly."""
        self.warm: ChildIdle | None = None
        """What it held once warmed up (its first IDLE)."""
        self.startup_s: float | None = None
        """From start to warmed up."""
        self.last: ChildIdle | None = None
        """What it held after its last file."""
        self._started = time.monotonic()
        self._sink: FileSink | None = None
        self._sink_lock = threading.Lock()
        self._gone = False
        self._ready: queue.Queue[ChildIdle | None] = queue.Queue()
        """Its IDLE answers after files; None once its stream ended."""
        self._closed = threading.Event()
        self._stderr: collections.deque[bytes] = collections.deque(maxlen=50)
        self._send_lock = threading.Lock()
        self.returncode: int | None = None
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        # One core per child: its native libraries stay single-threaded. One malloc arena: the
        # helper threads that remain would otherwise each reserve 64 MiB of address space under
        # contention, and a reused child must stay as small as a new one (see _unfit).
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_ARENA_MAX="1")
        ours, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", module, spec.to_json()],
                stdin=theirs.fileno(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, close_fds=True, start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        self.pid = self._proc.pid
        self._threads = [threading.Thread(target=self._read_loop, name="decoder-reader", daemon=True),
                         threading.Thread(target=self._drain_stderr, name="decoder-stderr", daemon=True)]
        try:
            for t in self._threads:
                t.start()
        except BaseException:
            self.close()
            raise

    @property
    def alive(self) -> bool:
        return not self._gone and not self._closed.is_set() and self._proc.poll() is None

    def bind(self, sink: FileSink) -> None:
        """Send this child's messages to `sink` until `unbind` (a child already gone says so)."""
        with self._sink_lock:
            self._sink = sink
            gone = self._gone
        self._stderr.clear()
        if gone:
            sink.ended()

    def unbind(self) -> None:
        with self._sink_lock:
            self._sink = None

    def send(self, kind: Kind, payload: object, fd: int | None = None) -> None:
        """A command (with `fd`, the descriptor travels with it); raises OSError if the child is
        gone."""
        data = encode(kind, payload)
        with self._send_lock:
            if self._closed.is_set():
                raise BrokenPipeError("the decoder child was closed")
            if fd is None:
                self._sock.sendall(data)
            else:
                sent = socket.send_fds(self._sock, [data], [fd])
                if sent < len(data):
                    self._sock.sendall(data[sent:])

    def end_file(self, timeout_s: float = 5.0) -> ChildIdle | None:
        """END the file and wait until the child has let it go and says IDLE; None if it did
        not (it died, or answered something else): then it must not be reused."""
        if not self.alive:
            return None
        try:
            self.send(Kind.END, End())
        except OSError:
            return None
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                idle = self._ready.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if idle is None:
                self._ready.put(None)  # stays at the end
                return None
            if idle.files == self.files + 1:
                self.files, self.last = idle.files, idle
                return idle

    def exit_status(self, timeout_s: float) -> int | None:
        """The child's exit status once it has ended (None if it has not within the time)."""
        try:
            return self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stderr_tail(self, lines: int = 5) -> str:
        return b"".join(list(self._stderr)[-lines:]).decode("utf-8", "replace").strip()

    def close(self) -> None:
        """Kill the child, let the threads reading its pipes finish, and only then close the
        pipes, so no thread reads a descriptor number that was closed and perhaps reused."""
        if self._closed.is_set():
            return
        self._closed.set()
        proc = self._proc
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        self.returncode = proc.returncode
        if sys.is_finalizing():  # the threads are frozen now: leave their files to the exit
            return
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        with self._send_lock:
            self._sock.close()
            for thread, f in zip(self._threads, (proc.stdout, proc.stderr)):
                if f is not None and not thread.is_alive():  # a file a thread still reads stays open
                    f.close()

    def _read_loop(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        fd = stdout.fileno()  # stays open until this thread has finished (see close)
        try:
            while not self._closed.is_set():
                frame = read(fd)
                if frame is None:
                    break
                kind, body = frame
                if kind is Kind.IDLE:
                    idle = decode_payload(kind, body)
                    assert isinstance(idle, ChildIdle)
                    if idle.files == 0:
                        self.warm = idle
                        self.startup_s = time.monotonic() - self._started
                    else:
                        self._ready.put(idle)
                    continue
                with self._sink_lock:
                    sink = self._sink
                if sink is not None:
                    sink.deliver(kind, body)
                else:
                    log.warning("decoder child %d sent %s between files", self.pid, kind.name)
        except (OSError, ValueError):
            pass
        finally:
            with self._sink_lock:
                self._gone = True
                sink = self._sink
            self._ready.put(None)
            if sink is not None:
                sink.ended()

    def _drain_stderr(self) -> None:
        stderr = self._proc.stderr
        assert stderr is not None
        try:
            for line in stderr:
                self._stderr.append(line)
        except (OSError, ValueError):
            pass


@dataclass(frozen=True)
class PoolStats:
    live: int
    """Children of the pool alive, busy and idle."""
    idle_pids: tuple[int, ...]
    """Idle children, the one a file takes first last."""
    idle_last: tuple[ChildIdle | None, ...]
    """What each idle child held after its last file (None: it has not served one yet)."""

    @property
    def idle(self) -> int:
        return len(self.idle_pids)


class ChildPool:
    """Idle warm children, and the count of all children the pool has out; thread-safe."""

    def __init__(self, options: PoolOptions):
        self.options = options
        self._cond = threading.Condition()
        self._idle: list[tuple[ChildProcess, float]] = []
        """Idle children and since when, the most recently used last."""
        self._live = 0
        self._closed = False
        self._janitor: threading.Thread | None = None
        self._startup: collections.deque[float] = collections.deque(maxlen=8)
        self._waiters: list[object] = []
        """Files waiting for a child, in turn."""
        self._last_return = 0.0
        """When a child last came back for another file."""
        self._last_take = 0.0
        """When a file last got its children."""

    def stats(self) -> PoolStats:
        with self._cond:
            return PoolStats(self._live, tuple(c.pid for c, _ in self._idle), tuple(c.last for c, _ in self._idle))

    def wait_s(self) -> float:
        """How long no child may have come back before a waiting file starts one: what starting
        one took lately (while children keep coming back, waiting is the sooner)."""
        if self.options.wait_s is not None:
            return self.options.wait_s
        with self._cond:
            recent = list(self._startup)
        return min(2.0, max(0.05, statistics.median(recent))) if recent else DEFAULT_WAIT_S

    def take(self, module: str, spec: ChildSpec, wanted: int,
             stop: threading.Event | None = None) -> list[ChildProcess]:
        """`wanted` children for one file started as `module` with `spec`: idle ones, then new
        ones; when none is idle and the pool is full, first wait in turn for one to come back
        (see the module's docstring). Empty only if `stop` was set."""
        spec = replace(spec, max_files=self.options.max_files)
        wanted = max(1, wanted)
        got: list[ChildProcess] = []
        doomed: list[ChildProcess] = []
        me = object()
        with self._cond:
            try:
                while True:
                    doomed += self._drop_dead()
                    first = not self._waiters or self._waiters[0] is me
                    if first:
                        got = self._pop_idle(module, spec, wanted)
                        if not got:
                            doomed += self._make_room()
                    if got or self._closed or self._live < self.options.size or self.options.size == 0:
                        break
                    if me not in self._waiters:
                        self._waiters.append(me)
                    # no child handed out or given back for this long: the children out are held
                    # by long files (a file that comes after a long one has started needs no wait)
                    quiet = time.monotonic() - max(self._last_take, self._last_return)
                    # starting a child for each waiting file takes that many start-ups per core
                    wait_s = self.wait_s() * max(1.0, len(self._waiters) / max(1, self.options.size))
                    if quiet >= wait_s or (stop is not None and stop.is_set()):
                        break  # children are held by long files: start one
                    self._cond.wait(min(0.05, wait_s - quiet))
            finally:
                if me in self._waiters:
                    self._waiters.remove(me)
                    self._cond.notify_all()
            fresh = 0 if (stop is not None and stop.is_set() and not got) else wanted - len(got)
            self._live += fresh
            if got or fresh:
                self._last_take = time.monotonic()
        for child in doomed:
            child.close()
        started = 0
        try:
            for _ in range(fresh):
                got.append(ChildProcess(module, spec))
                started += 1
        except BaseException:
            with self._cond:
                self._live -= fresh - started
            for child in got:
                self.give_back(child, None)
            raise
        return got

    def _pop_idle(self, module: str, spec: ChildSpec, wanted: int) -> list[ChildProcess]:
        """Up to `wanted` idle children started as `module` with `spec`, the most recent first."""
        got = []
        for i in range(len(self._idle) - 1, -1, -1):
            if len(got) == wanted:
                break
            child, _ = self._idle[i]
            if child.module == module and child.spec == spec:
                got.append(child)
                del self._idle[i]
        return got

    def _make_room(self) -> list[ChildProcess]:
        """With the pool full, the oldest idle child (started for other limits: the caller took
        its own kind first) retires to make room; returned for the caller to reap."""
        if self._live < self.options.size or not self._idle:
            return []
        child, _ = self._idle.pop(0)
        self._live -= 1
        log.debug("decoder child %d retired: room for a file with other limits", child.pid)
        return [child]

    def give_back(self, child: ChildProcess, idle: ChildIdle | None) -> None:
        """A child whose file is over: kept if it ended cleanly (`idle`, its END's answer) and
        may serve again, else killed and reaped."""
        if child.startup_s is not None and child.files <= 1:
            with self._cond:
                self._startup.append(child.startup_s)
        with self._cond:
            why = self._unfit(child, idle)
            keep = why is None
            if keep:
                self._last_return = time.monotonic()
                self._idle.append((child, self._last_return))
                self._start_janitor()
            else:
                self._live -= 1
            self._cond.notify_all()
        if not keep:
            log.debug("decoder child %d retired: %s", child.pid, why)
            child.close()

    def prestart(self, module: str, spec: ChildSpec, count: int | None = None) -> int:
        """Start children now (at server start-up) so the first files find them warm; returns
        how many were started (at most up to the pool's size)."""
        spec = replace(spec, max_files=self.options.max_files)
        with self._cond:
            n = max(0, min(self.options.size if count is None else count, self.options.size - self._live))
            if self._closed:
                n = 0
            self._live += n
        for i in range(n):
            try:
                child = ChildProcess(module, spec)
            except BaseException:
                with self._cond:
                    self._live -= n - i
                raise
            with self._cond:
                self._idle.append((child, time.monotonic()))
                self._start_janitor()
                self._cond.notify_all()
        return n

    def close(self) -> None:
        """Retire every idle child; busy ones are retired when they come back."""
        with self._cond:
            self._closed = True
            idle = [c for c, _ in self._idle]
            self._idle.clear()
            self._live -= len(idle)
            self._cond.notify_all()
        for child in idle:
            child.close()

    def _unfit(self, child: ChildProcess, idle: ChildIdle | None) -> str | None:
        """Why a child that comes back may not serve another file (None: it may). A reused child
        must be held to its limits as a new one would be: so not one that is bigger (address
        space, descriptors) than it was when warm."""
        warm = child.warm
        if idle is None or warm is None:
            return "its file did not end cleanly"
        if self._closed:
            return "the pool is closed"
        if self._live > self.options.size:
            return f"the pool keeps {self.options.size}"
        if not child.alive:
            return "it exited"
        if idle.files >= child.spec.max_files:
            return f"it served {idle.files} files"
        if idle.vm_bytes > warm.vm_bytes + GROWTH_BYTES:
            return f"its address space grew from {warm.vm_bytes >> 20} to {idle.vm_bytes >> 20} MiB"
        if idle.fds > warm.fds:
            return f"it holds {idle.fds} descriptors, {warm.fds} when warm"
        return None

    def _drop_dead(self) -> list[ChildProcess]:
        """Idle children that died (killed from outside, say): out of the pool (caller reaps)."""
        dead = [c for c, _ in self._idle if not c.alive]
        if dead:
            self._idle = [(c, t) for c, t in self._idle if c.alive]
            self._live -= len(dead)
        return dead

    def _start_janitor(self) -> None:
        if self._janitor is None and not self._closed:
            self._janitor = threading.Thread(target=self._retire_idle, name="decoder-pool", daemon=True)
            self._janitor.start()

    def _retire_idle(self) -> None:
        """Retire children idle for `idle_s` (and idle ones that died) until none is idle."""
        while True:
            with self._cond:
                doomed = self._drop_dead()
                now = time.monotonic()
                while self._idle and now - self._idle[0][1] >= self.options.idle_s:
                    doomed.append(self._idle.pop(0)[0])
                    self._live -= 1
                if not self._idle or self._closed:
                    self._janitor = None
                elif not doomed:
                    self._cond.wait(max(0.05, self._idle[0][1] + self.options.idle_s - now))
                    continue
                done = self._janitor is None
            for child in doomed:
                child.close()
            if done:
                return


_shared: ChildPool | None = None
_shared_lock = threading.Lock()


def shared() -> ChildPool:
    """The process's pool (options from the settings), made on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ChildPool(PoolOptions.from_settings())
            atexit.register(_shared.close)
        return _shared
