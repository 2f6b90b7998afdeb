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
import time

import numpy as np

from .policy import SEGMENT_SAMPLES
from .protocol import HEADER, ChildRequest, ChunkDone, ChunkJob, Credit, Kind, Release, Written, decode_payload, write
from .shared import TimelineWindow

NOTICE_SAMPLES = SEGMENT_SAMPLES
"""Audio written between two `Written` notices at most (progress); one also precedes every
other message, so the parent never reads probabilities for audio it has not been told about."""


class ChildLink:
    """The child's two channels to its parent and its view of the shared timeline."""

    def __init__(self, request: ChildRequest, out_fd: int, in_fd: int = 0):
        self.fd = out_fd
        self._in = in_fd
        self._inbox = bytearray()
        self._eof = False
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
        while end > self.credit and not self._eof:
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
        if self._eof:
            return
        ready, _, _ = select.select([self._in], [], [], None if block else 0)
        if not ready:
            return
        data = os.read(self._in, 1 << 16)
        if not data:
            self._eof = True
            return
        self._inbox += data
        while len(self._inbox) >= HEADER.size:
            kind, length = HEADER.unpack_from(self._inbox)
            if len(self._inbox) < HEADER.size + length:
                break
            body = bytes(self._inbox[HEADER.size : HEADER.size + length])
            del self._inbox[: HEADER.size + length]
            self._command(decode_payload(Kind(kind), body))

    def _command(self, message) -> None:
        if isinstance(message, Credit):
            self.credit = max(self.credit, message.until_sample)
        elif isinstance(message, Release):
            assert self.jobs_window is not None
            self.jobs_window.release_before(message.before_sample)
        elif isinstance(message, ChunkJob):
            self.send(Kind.CHUNK, self.finish(message))

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
        """After decoding: finish chunks until the parent closes the stream."""
        self._notify()
        while not self._eof:
            self.poll(block=True)
