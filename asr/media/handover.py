"""The decoder child's side of the hand-over: writing audio into the shared timeline within its
credit, telling the parent what is ready, and finishing chunks the parent asks for.

The parent plans chunks (it alone sees every span in order, which the plan needs: spans are
packed greedily across the whole file and long ones are cut at their quietest moment). The
work per sample, laying a chunk's spans end to end, measuring its loudness, normalising and
limiting it, runs here, in whichever child the parent picks; the finished chunk goes back into
the timeline over the chunk's own stretch, and the parent gets one small message per chunk.
Commands (credits and chunk jobs) are read between decoded blocks, so a chunk asked for while
this child is still decoding is finished within a block's time, not after the whole range.
"""

from __future__ import annotations

import os
import select
import socket
import time

import numpy as np

from ..errors import DecoderBug
from .policy import SEGMENT_SAMPLES
from .protocol import (
    HEADER, ChildRequest, ChunkDone, ChunkJob, Credit, End, Kind, Message, Release, Written, decode_payload, write,
)
from .shared import TimelineWindow

NOTICE_SAMPLES = SEGMENT_SAMPLES
"""Audio written between two `Written` notices at most (progress); one also precedes every
other message, so the parent never reads probabilities for audio it has not been told about."""


class Commands:
    """The child's end of its command socket, for its whole life: frames from the parent, and
    the descriptors that come with them (a file's timeline, with its request)."""

    def __init__(self, fd: int = 0):
        self._sock = socket.socket(fileno=fd)
        self._inbox = bytearray()
        self._fds: list[int] = []
        self.eof = False
        """The parent closed its end: it is gone, or wants this child to exit."""

    def poll(self, block: bool) -> list[Message]:
        """The commands that have arrived (with block, wait for at least one read, or the end)."""
        if self.eof:
            return []
        ready, _, _ = select.select([self._sock], [], [], None if block else 0)
        if not ready:
            return []
        data, fds, _flags, _addr = socket.recv_fds(self._sock, 1 << 16, 4, socket.MSG_CMSG_CLOEXEC)
        self._fds += fds
        if not data:
            self.eof = True
            return []
        self._inbox += data
        out = []
        while len(self._inbox) >= HEADER.size:
            kind, length = HEADER.unpack_from(self._inbox)
            if len(self._inbox) < HEADER.size + length:
                break
            body = bytes(self._inbox[HEADER.size : HEADER.size + length])
            del self._inbox[: HEADER.size + length]
            out.append(decode_payload(Kind(kind), body))
        return out

    def next_request(self) -> tuple[ChildRequest, int] | None:
        """Wait for the next file: its request and its timeline's descriptor (-1 if none came),
        or None when the parent has gone. Anything else between files is a protocol error."""
        while True:
            for message in self.poll(block=True):
                if not isinstance(message, ChildRequest):
                    raise DecoderBug(f"decoder protocol error: {type(message).__name__} between files")
                fd = self._fds.pop(0) if self._fds else -1
                self.close_stray_fds()
                return message, fd
            if self.eof:
                return None

    def close_stray_fds(self) -> None:
        """Descriptors that came with no request (none should): closed, never kept."""
        while self._fds:
            os.close(self._fds.pop())


class ChildLink:
    """The child's two channels to its parent and its view of the shared timeline, for one file."""

    def __init__(self, request: ChildRequest, out_fd: int, commands: Commands):
        self.fd = out_fd
        self.commands = commands
        self.ended = False
        """The parent has sent END: the file is over."""
        self.request = request
        self.credit = request.credit_samples
        self.audio_window = self.jobs_window = None
        if request.timeline_fd >= 0:
            args = (request.timeline_fd, request.capacity_samples, request.display_name, request.limits)
            self.audio_window = TimelineWindow(*args)
            self.jobs_window = TimelineWindow(*args)
        self._written: tuple[int, int] | None = None

    def send(self, kind: Kind, payload: object) -> None:
        self._notify()
        write(self.fd, kind, payload)

    def audio(self, start: int, samples: np.ndarray) -> None:
        """Put decoded samples into the timeline at `start`, waiting for credit if the parent is
        behind (chunk jobs are still served while waiting)."""
        end = start + samples.size
        while end > self.credit and not self.commands.eof:
            if self.ended:
                raise DecoderBug(f"the parent ended '{self.request.display_name}' before its audio was written")
            self._notify()  # the parent may be waiting to hear of this before it grants more
            self.poll(block=True)
        assert self.audio_window is not None, "the parent gave no shared timeline"
        self.audio_window.write(start, samples)
        if self._written is None:
            self._written = (start, end)
        else:
            self._written = (self._written[0], end)
        if end - self._written[0] >= NOTICE_SAMPLES:
            self._notify()
        self.poll(block=False)

    def _notify(self) -> None:
        if self._written is not None:
            start, end = self._written
            self._written = None
            write(self.fd, Kind.AUDIO, Written(start, end))

    def poll(self, block: bool) -> None:
        """Read and carry out the commands that have arrived (with block, wait for at least one
        read, or the end of the parent's stream)."""
        for message in self.commands.poll(block):
            self._command(message)
        self.commands.close_stray_fds()

    def _command(self, message) -> None:
        if isinstance(message, End):
            self.ended = True
        elif self.ended:
            raise DecoderBug(f"decoder protocol error: {type(message).__name__} after the file's end")
        elif isinstance(message, Credit):
            self.credit = max(self.credit, message.until_sample)
        elif isinstance(message, Release):
            assert self.jobs_window is not None
            self.jobs_window.release_before(message.before_sample)
        elif isinstance(message, ChunkJob):
            self.send(Kind.CHUNK, self.finish(message))
        else:
            raise DecoderBug(f"decoder protocol error: {type(message).__name__} during a file")

    def finish(self, job: ChunkJob) -> ChunkDone:
        from ..frontend import loudness

        t = time.perf_counter()
        assert self.jobs_window is not None, "the parent gave no shared timeline"
        first, last = job.spans[0][0], job.spans[-1][1]
        view = self.jobs_window.view(first, last)
        samples = np.concatenate([view[a - first : b - first] for a, b in job.spans])
        result = loudness.normalise(samples, self.request.loudness)
        view[: result.samples.size] = result.samples
        del view
        return ChunkDone(job.id, int(result.samples.size), result.lufs, result.gain_db, time.perf_counter() - t)

    def serve(self) -> None:
        """After decoding: finish chunks until the parent ends the file (or goes away)."""
        self._notify()
        while not (self.ended or self.commands.eof):
            self.poll(block=True)

    def close(self) -> None:
        """Unmap the file's timeline (the descriptor is the caller's to close)."""
        for window in (self.audio_window, self.jobs_window):
            if window is not None:
                window.close()
