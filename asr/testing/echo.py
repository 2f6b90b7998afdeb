"""A torch-free speech model for fast tests of everything around the model: its output echoes
the prompt it was called with and a fingerprint of its chunk's audio, so a chunk sent under the
wrong prompt, or a result handed to the wrong chunk or the wrong prediction, shows in seconds.

    text:  "<source>><target> <fingerprint> <n_samples>[ <hotwords>]"   e.g. "en>de 3fa2c91b 320000"
    words: the parts, each an equal share of the chunk's duration

Optional behaviour for scheduler tests: a fixed time per batch and per chunk (a stand-in for the
GPU's cost), a record of every batch it ran, and failure on a chosen fingerprint or on any batch
(to test that a failure fails exactly the predictions whose chunks were in it).
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..models.capabilities import Capabilities
from ..languages import CODES, pivot_pairs
from ..types import SAMPLE_RATE, ChunkResult, Request, TimedText


def fingerprint(audio: np.ndarray) -> str:
    """8 hex digits that tell two chunks' audio apart."""
    return f"{zlib.crc32(np.ascontiguousarray(audio, dtype=np.float32).tobytes()):08x}"


def expected_text(audio: np.ndarray, request: Request) -> str:
    """With hotwords, the phrases follow (joined by '+'), so a chunk batched under another
    request's phrase set shows too."""
    hot = f" {'+'.join(request.hotwords.phrases).replace(' ', '_')}" if request.hotwords else ""
    return f"{request.source_lang}>{request.target_lang} {fingerprint(audio)} {audio.size}{hot}"


@dataclass
class EchoModel:
    """Implements `asr.models.SpeechModel` without torch."""

    name: str = "echo"
    batch_size: int = 4
    device: str = "cpu"
    batch_s: float = 0.0
    """Sleep per batch (what a GPU batch costs whatever its size)."""
    chunk_s: float = 0.0
    """Sleep per chunk in a batch."""
    fail_on: frozenset[str] = frozenset()
    """Fingerprints that make the whole batch holding them fail."""
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(
        languages=frozenset(CODES), picks_language=False, translation_pairs=pivot_pairs(frozenset(CODES)),
        timestamps="native", word_timestamps=True, needs_prompt=True))
    batches: list[tuple[Request, tuple[str, ...]]] = field(default_factory=list)
    """Every batch run: its prompt and its chunks' fingerprints, in call order."""
    released: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def transcribe(self, audios: Sequence[np.ndarray], request: Request) -> list[ChunkResult]:
        prints = tuple(fingerprint(a) for a in audios)
        with self._lock:
            self.batches.append((request, prints))
        if self.batch_s or self.chunk_s:
            time.sleep(self.batch_s + self.chunk_s * len(audios))
        bad = self.fail_on.intersection(prints)
        if bad:
            raise RuntimeError(f"echo model told to fail on {sorted(bad)}")
        return [self._one(a, request) for a in audios]

    @staticmethod
    def _one(audio: np.ndarray, request: Request) -> ChunkResult:
        text = expected_text(audio, request)
        duration_s = audio.size / SAMPLE_RATE
        parts = text.split()
        step = duration_s / len(parts)
        words = tuple(TimedText(round(k * step, 3), round((k + 1) * step, 3), p) for k, p in enumerate(parts))
        stamps = request.timestamps
        return ChunkResult(text=text, words=words if stamps else (),
                           segments=(TimedText(0.0, round(duration_s, 3), text),) if stamps else ())

    def release(self) -> None:
        self.released += 1


class EchoModels:
    """A ModelSet-like holder of echo models (`get(name)`, `default`, `release()`)."""

    def __init__(self, *models: EchoModel):
        self._models = {m.name: m for m in (models or (EchoModel(),))}

    @property
    def default(self) -> EchoModel:
        return next(iter(self._models.values()))

    @property
    def names(self) -> list[str]:
        return list(self._models)

    def __iter__(self):
        return iter(self._models.values())

    def get(self, name: str | None = None) -> EchoModel:
        return self._models[name] if name else self.default

    def release(self) -> None:
        for m in self._models.values():
            m.release()
