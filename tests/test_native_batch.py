"""Transducer and CTC adapters on their own batch path give exactly what NeMo's transcribe()
gives: text, word and segment times, chunk by chunk in a batch of different lengths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr.models import runtime
from asr.models.base import hypothesis_result, pad_short
from asr.models.ctc import CTCModel
from asr.models.transducer import TransducerModel
from asr.types import SAMPLE_RATE, Request


def make_chunks() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    out = []
    for k, seconds in enumerate((11.0, 6.5, 3.1, 0.8)):
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        bursts = (np.sin(2 * np.pi * (1.0 + 0.3 * k) * t) > 0).astype(np.float32)
        out.append((0.3 * bursts * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32))
    return out


@pytest.mark.parametrize("kind,adapter", [("parakeet-tdt", TransducerModel), ("ctc", CTCModel)])
def test_batch_path_equals_nemo_transcribe(kind, adapter):
    from tests.service import ensure_tiny_model

    path = ensure_tiny_model(kind)
    chunks = make_chunks()
    engine = adapter(runtime.restore(str(path), "cpu"), kind, "cpu", batch_size=len(chunks))
    engine.confidence = False  # NeMo's transcribe() has none to compare with (tests/test_confidence.py)
    ours = engine.transcribe(chunks, Request("en", "en"))
    with torch.inference_mode(), runtime.quiet_nemo():
        hyps = engine.model.transcribe(pad_short(chunks), batch_size=len(chunks), return_hypotheses=True,
                                       timestamps=True, num_workers=0, verbose=False)
    if isinstance(hyps, tuple):
        hyps = hyps[0]
    theirs = [hypothesis_result(h, True) for h in hyps]
    assert ours == theirs
    assert sum(bool(r.words) for r in ours) >= 2, "the tiny models say words for these chunks"
