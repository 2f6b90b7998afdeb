"""The one interface the pipeline uses for every ASR family, and what the adapters share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
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


def hypothesis_result(hyp, timestamps: bool, words: bool = True,
                      confidences: Sequence[float] | None = None) -> ChunkResult:
    """A NeMo Hypothesis -> ChunkResult. Times arrive as floats or numpy scalars (transducers and
    CTC in NeMo 3.0): cast to float so the output is plain JSON. `confidences`: one per word of
    the text (asr.models.confidence.word_confidences); each timed word takes its own, each
    segment the mean of its words'."""
    from .confidence import attach, mean

    text = (hyp.text if isinstance(hyp.text, str) else str(hyp.text or "")).strip()
    confidences = list(confidences) if confidences is not None else None
    whole = mean(confidences) if confidences is not None else None
    stamps = getattr(hyp, "timestamp", None)
    if not timestamps or not isinstance(stamps, dict):
        return ChunkResult(text=text, confidence=whole)

    def timed(entries, key: str) -> list[TimedText]:
        out = []
        for e in entries or []:
            t = str(e.get(key, "")).strip()
            if not t:
                continue
            start, end = float(e.get("start", 0.0)), float(e.get("end", 0.0))
            out.append(TimedText(start_s=start, end_s=max(start, end), text=t))
        return out

    word_list = timed(stamps.get("word"), "word")
    segment_list = timed(stamps.get("segment"), "segment")
    if confidences is not None:
        per_word = attach([w.text for w in word_list], confidences)
        word_list = [replace(w, confidence=c) for w, c in zip(word_list, per_word)]
        segment_list = _segment_confidences(segment_list, confidences, whole)
    return ChunkResult(text=text, words=tuple(word_list) if words else (), segments=tuple(segment_list),
                       confidence=whole)


def _segment_confidences(segments: list[TimedText], confidences: list[float], whole: float | None):
    """Each segment the mean of its words' confidences, its words being the next ones of the text
    (segments split the text in order); the text's mean where the counts do not add up."""
    from .confidence import mean

    counts = [len(s.text.split()) for s in segments]
    if sum(counts) != len(confidences):
        return [replace(s, confidence=whole) for s in segments]
    out, k = [], 0
    for s, n in zip(segments, counts):
        out.append(replace(s, confidence=mean(confidences[k: k + n])))
        k += n
    return out
