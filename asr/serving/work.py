"""The typed values that travel between predictions and the scheduler."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from ..types import ChunkResult, Request


@dataclass(frozen=True)
class BatchKey:
    """What every chunk of one batch must share: the model and its prompt and decoding options.
    Chunks of different predictions with equal keys are batched together."""

    model: str
    request: Request


@dataclass(eq=False)
class WorkItem:
    """One chunk of one prediction, waiting for the model."""

    session_id: int
    index: int
    """The chunk's position in its prediction (results are handed back by it)."""
    audio: np.ndarray = field(repr=False)
    key: BatchKey
    future: "Future[ChunkResult]" = field(repr=False)
    enqueued_s: float
    """`time.monotonic()` when submitted: the oldest waiting item bounds how long a part-full
    batch may wait."""

    @property
    def nbytes(self) -> int:
        return int(self.audio.nbytes)


@dataclass(frozen=True)
class BatchRecord:
    """One model call, as the scheduler ran it (for timings and the load benchmark)."""

    key: BatchKey
    size: int
    sessions: tuple[int, ...]
    started_s: float
    model_s: float
