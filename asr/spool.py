"""Chunk audio parked on disk while the language of a whole file is decided.

With `source_lang` auto, no chunk can be transcribed before every chunk has been scored (the
file's language is the duration-weighted mean over all of them), so their normalised audio waits.
Keeping it in memory would grow with the recording (about 230 MB per hour of speech); a temporary
file keeps the process flat, and reading a batch back costs far less than transcribing it.
"""

from __future__ import annotations

import tempfile

import numpy as np


class ChunkSpool:
    """Append float32 arrays, read any of them back by index. Deleted when closed."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="asr-spool-")
        self._index: list[tuple[int, int]] = []  # (byte offset, samples)
        self._end = 0

    def __enter__(self) -> "ChunkSpool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._index)

    def add(self, samples: np.ndarray) -> int:
        """Store a copy of `samples`; returns its index."""
        data = np.ascontiguousarray(samples, dtype=np.float32)
        self._file.seek(self._end)
        self._file.write(data.tobytes())
        self._index.append((self._end, data.size))
        self._end += data.nbytes
        return len(self._index) - 1

    def get(self, i: int) -> np.ndarray:
        offset, n = self._index[i]
        out = np.empty(n, dtype=np.float32)
        self._file.seek(offset)
        self._file.readinto(memoryview(out).cast("B"))
        return out

    def close(self) -> None:
        self._file.close()
