"""The one interface the pipeline uses for every ASR family, and what the adapters share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..types import SAMPLE_RATE, ChunkResult, Request, TimedText
from .capabilities import Capabilities

MIN_INPUT_S = 1.0
"""NeMo pads shorter inputs on both sides (which would shift timestamps); adapters pad on the
right to this length themselves, so chunk time 0 stays the first sample."""


@runtime_checkable
class SpeechModel(Protocol):
    """A loaded speech model of any family."""

    name: str
    capabilities: Capabilities
    batch_size: int
    """Chunks per `transcribe` call the pipeline should send."""
    device: str

    def transcribe(self, audios: Sequence[np.ndarray], request: Request) -> list[ChunkResult]:
        """One batch of 16 kHz mono float32 chunks; one result per chunk, in input order, times in
        seconds from each chunk's first sample."""
        ...

    def release(self) -> None:
        """Give cached accelerator memory back (after a failed or cancelled request)."""
        ...


def pad_short(audios: Sequence[np.ndarray], min_s: float = MIN_INPUT_S) -> list[np.ndarray]:
    """Right-pad chunks shorter than `min_s` with silence."""
    min_n = int(min_s * SAMPLE_RATE)
    return [a if a.size >= min_n else np.pad(a, (0, min_n - a.size)) for a in audios]


def hypothesis_result(hyp, timestamps: bool, words: bool = True) -> ChunkResult:
    """A NeMo Hypothesis -> ChunkResult. Times arrive as floats or numpy scalars (transducers and
    CTC in NeMo 3.0): cast to float so the output is plain JSON."""
    text = (hyp.text if isinstance(hyp.text, str) else str(hyp.text or "")).strip()
    stamps = getattr(hyp, "timestamp", None)
    if not timestamps or not isinstance(stamps, dict):
        return ChunkResult(text=text)

    def timed(entries, key: str) -> tuple[TimedText, ...]:
        out = []
        for e in entries or []:
            t = str(e.get(key, "")).strip()
            if not t:
                continue
            start, end = float(e.get("start", 0.0)), float(e.get("end", 0.0))
            out.append(TimedText(start_s=start, end_s=max(start, end), text=t))
        return tuple(out)

    return ChunkResult(
        text=text,
        words=timed(stamps.get("word"), "word") if words else (),
        segments=timed(stamps.get("segment"), "segment"),
    )
