"""What transducer and CTC adapters share: no prompt, frame-offset ("native") timestamps.

These checkpoints carry no language tokens. Their languages come, in this order, from an
annotation in ASR_MODEL (`nvidia/stt_hi_conformer_ctc_medium[hi]`), or from a `languages` list in
the checkpoint's config (`model.cfg.languages`, which a fine-tuning recipe can set); otherwise the
model is undeclared. A model with exactly one language transcribes only that language; with
several or none it picks the language itself (`picks_language`), and `source_lang` only labels
the output. None of them translate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..languages import NAMES
from ..types import ChunkResult, Request
from . import runtime
from .base import hypothesis_result, pad_short
from .capabilities import Capabilities

log = logging.getLogger(__name__)


def config_languages(model) -> frozenset[str]:
    """The `languages` list of the checkpoint's config, if it has one."""
    declared = model.cfg.get("languages", None) if hasattr(model.cfg, "get") else None
    if not declared:
        return frozenset()
    if isinstance(declared, str):
        declared = [declared]
    unknown = [str(c) for c in declared if str(c).lower() not in NAMES]
    if unknown:
        log.warning("ignoring unknown language codes in the checkpoint's config: %s", ", ".join(unknown))
    return frozenset(str(c).lower() for c in declared if str(c).lower() in NAMES)


def _compute_timestamps(model) -> None:
    """Turn on NeMo's timestamp computation once at load; `transcribe(timestamps=True)` would
    otherwise rebuild the decoder on the first call."""
    from omegaconf import open_dict

    if model.cfg.decoding.get("compute_timestamps", None) is True:
        return
    with open_dict(model.cfg.decoding):
        model.cfg.decoding.compute_timestamps = True
    with runtime.quiet_nemo():
        model.change_decoding_strategy(model.cfg.decoding, verbose=False)


class NativeTimestampModel:
    """A model whose `transcribe(arrays, timestamps=True, return_hypotheses=True)` gives word and
    segment offsets in seconds (transducers, CTC)."""

    family = "native"

    def __init__(self, model, name: str, device: str, batch_size: int | None = None,
                 languages: frozenset[str] | None = None):
        self.model = model
        self.name = name
        self.device = device
        self.batch_size = batch_size or runtime.default_batch_size(device)
        _compute_timestamps(model)
        langs = frozenset(languages or config_languages(model))
        self.capabilities = Capabilities(
            languages=langs, picks_language=len(langs) != 1, translation_pairs=frozenset(),
            timestamps="native", word_timestamps=True, needs_prompt=False,
        )

    def release(self) -> None:
        runtime.release(self.device)

    def transcribe(self, audios: Sequence[np.ndarray], request: Request) -> list[ChunkResult]:
        import torch

        if not audios:
            return []
        batch = pad_short(audios)
        # Timestamps always on: switching them per call rebuilds NeMo's decoder each time.
        with runtime.autocast(self.device), torch.inference_mode(), runtime.quiet_nemo():
            out = self.model.transcribe(batch, batch_size=len(batch), return_hypotheses=True,
                                        timestamps=True, num_workers=0, verbose=False)
        if isinstance(out, tuple):  # (best, n-best) from some decoders
            out = out[0]
        if len(out) != len(batch):
            raise RuntimeError(f"{self.name} returned {len(out)} results for {len(batch)} chunks")
        return [hypothesis_result(h, request.timestamps) for h in out]
