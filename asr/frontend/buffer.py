"""Sample buffers for the front end's parent side."""

from __future__ import annotations

import numpy as np

from ..types import SAMPLE_RATE


class SlidingBuffer:
    """The recent part of the recording, indexed by global sample position: `buf[lo:hi]` is
    samples lo..hi of the whole file, valid from `start` (what was released is gone) to `end`.
    Memory is bounded by what is still needed, not by the recording's length."""

    def __init__(self, capacity: int = SAMPLE_RATE * 60):
        self._data = np.empty(max(1, capacity), dtype=np.float32)
        self._off = 0  # position of global sample `start` in self._data
        self.start = 0
        self.end = 0

    def append(self, block: np.ndarray) -> None:
        live = self.end - self.start
        if self._off + live + block.size > self._data.size:
            need = live + block.size
            if need * 2 > self._data.size:  # grow, keeping room to slide
                grown = np.empty(max(need * 2, self._data.size * 2), dtype=np.float32)
                grown[:live] = self._data[self._off : self._off + live]
                self._data = grown
            else:  # slide the live part to the front
                self._data[:live] = self._data[self._off : self._off + live]
            self._off = 0
        self._data[self._off + live : self._off + live + block.size] = block
        self.end += block.size

    def release_before(self, sample: int) -> None:
        """Forget samples before `sample` (global index); the space is reused by later appends."""
        sample = min(max(sample, self.start), self.end)
        self._off += sample - self.start
        self.start = sample

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("SlidingBuffer supports plain slices only")
        lo = self.start if key.start is None else key.start
        hi = self.end if key.stop is None else min(key.stop, self.end)
        if lo < self.start:
            raise IndexError(f"samples before {self.start} were already released (asked for {lo})")
        return self._data[self._off + lo - self.start : self._off + max(lo, hi) - self.start]

    @property
    def nbytes(self) -> int:
        return self._data.nbytes


class SampleBuffer:
    """A growable float32 array: amortised O(1) appends without holding a list of blocks."""

    def __init__(self, capacity: int = SAMPLE_RATE * 60):
        self._data = np.empty(max(1, capacity), dtype=np.float32)
        self._size = 0

    def append(self, block: np.ndarray) -> None:
        need = self._size + block.size
        if need > self._data.size:
            grown = np.empty(max(need, self._data.size * 2), dtype=np.float32)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : need] = block
        self._size = need

    def __len__(self) -> int:
        return self._size

    def array(self) -> np.ndarray:
        """The samples so far (a view while nothing else is appended)."""
        return self._data[: self._size]
