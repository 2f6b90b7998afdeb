"""The recording's 16 kHz timeline in memory shared by the parent and its decoder children.

One anonymous memory file (`memfd_create`) holds float32 sample i of the whole recording at
byte 4*i. It is sparse: only what was written takes memory, and the parent gives stretches back
(`release_before`) once no chunk can need them, so memory stays flat in the recording's length.
The children write decoded audio into it and normalised chunks back over the stretch they came
from; the parent reads with zero-copy views. No audio passes through a pipe, nothing has a name
(no /dev/shm entry, so nothing leaks when a process is killed, and Docker's 64 MB /dev/shm does
not apply), and the memory is freed when the last process holding the file lets go of it.
"""

from __future__ import annotations

import mmap
import os

import numpy as np

from ..errors import AudioTooLongError
from ..types import SAMPLE_RATE, AudioLimits
from . import policy

BYTES_PER_SAMPLE = 4
_PAGE = mmap.ALLOCATIONGRANULARITY


def capacity_samples(limits: AudioLimits) -> int:
    """Room for the longest recording the limits accept, plus what a child decodes past the cap
    before it notices (a block, and a grid segment of slack)."""
    cap_s = limits.max_duration_s + policy.CAP_TOLERANCE_S
    return int(cap_s * SAMPLE_RATE) + 2 * policy.SEGMENT_SAMPLES


class SharedTimeline:
    """The parent's side: creates the memory file, maps all of it, and releases what is done."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.fd = os.memfd_create("asr-timeline", os.MFD_CLOEXEC)
        try:
            os.ftruncate(self.fd, capacity * BYTES_PER_SAMPLE)
            self._map = mmap.mmap(self.fd, capacity * BYTES_PER_SAMPLE)
        except BaseException:
            os.close(self.fd)
            raise
        self.samples = np.frombuffer(self._map, dtype=np.float32)
        """Sample i of the recording at index i (a view; zeros where nothing was written)."""
        self.released = 0

    def release_before(self, sample: int) -> None:
        """Give back the memory of samples before `sample` (whole pages; reads there give zeros)."""
        end = min(sample, self.capacity) * BYTES_PER_SAMPLE // _PAGE * _PAGE
        start = self.released * BYTES_PER_SAMPLE // _PAGE * _PAGE
        if end > start and not self._map.closed:
            self._map.madvise(mmap.MADV_REMOVE, start, end - start)
            self.released = end // BYTES_PER_SAMPLE

    def read(self, start: int, count: int) -> np.ndarray:
        """A private copy of samples [start, start + count), read from the file rather than
        through the mapping, so the parent's page tables never map the pages (no faults, and
        nothing to unmap when they are released)."""
        out = np.empty(count, dtype=np.float32)
        view = memoryview(out).cast("B")
        done = 0
        while done < view.nbytes:
            n = os.preadv(self.fd, [view[done:]], start * BYTES_PER_SAMPLE + done)
            if n <= 0:
                raise OSError(f"short read from the shared timeline at sample {start}")
            done += n
        return out

    def close(self) -> None:
        """Close the file; its memory goes once the mapping (kept alive by any view) goes too."""
        if self.fd >= 0:
            self.release_before(self.capacity)
            os.close(self.fd)
            self.fd = -1


class TimelineWindow:
    """A child's access to the timeline: maps only the pages it touches (its address space is
    limited), one region at a time."""

    def __init__(self, fd: int, capacity: int, name: str, limits: AudioLimits):
        self.fd = fd
        self.capacity = capacity
        self.name = name
        self.limits = limits
        self._region: tuple[int, int] | None = None
        self._map: mmap.mmap | None = None
        self._view: np.ndarray | None = None

    def view(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end) as a writable view, valid until the next call."""
        if end > self.capacity:
            policy.check_duration(self.name, end, self.limits)  # past the cap: the usual error
            raise AudioTooLongError(f"'{self.name}' does not fit the decoder's buffer")
        if self._region is None or not (self._region[0] <= start and end <= self._region[1]):
            self.close()
            lo = start * BYTES_PER_SAMPLE // _PAGE * _PAGE
            # map a grid segment at least, so a range's writes reuse one mapping
            hi = max(end * BYTES_PER_SAMPLE, lo + policy.SEGMENT_SAMPLES * BYTES_PER_SAMPLE)
            hi = min(-(-hi // _PAGE) * _PAGE, self.capacity * BYTES_PER_SAMPLE)
            self._map = mmap.mmap(self.fd, hi - lo, offset=lo)
            self._view = np.frombuffer(self._map, dtype=np.float32)
            self._region = (lo // BYTES_PER_SAMPLE, hi // BYTES_PER_SAMPLE)
        assert self._view is not None
        first = self._region[0]
        return self._view[start - first : end - first]

    def release_before(self, sample: int) -> None:
        """Punch out the file's memory before `sample` (whole pages) for every process at once:
        done here, in a child, so the parent's CPU time does not pay for freeing pages."""
        end = min(sample, self.capacity) * BYTES_PER_SAMPLE // _PAGE * _PAGE
        if end > 0:
            _punch_hole(self.fd, 0, end)

    def write(self, start: int, samples: np.ndarray) -> None:
        self.view(start, start + samples.size)[:] = samples

    def close(self) -> None:
        self._view = None
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a view is still held somewhere: unmapped when it goes
                pass
        self._map = None
        self._region = None


def _punch_hole(fd: int, offset: int, length: int) -> None:
    """fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE): free the pages, keep the size."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.fallocate(ctypes.c_int(fd), ctypes.c_int(0x02 | 0x01), ctypes.c_long(offset), ctypes.c_long(length)):
        errno = ctypes.get_errno()
        raise OSError(errno, f"could not release shared audio memory: {os.strerror(errno)}")
