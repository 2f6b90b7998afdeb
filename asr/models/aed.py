"""Canary and other attention encoder-decoder models (NeMo `EncDecMultiTaskModel`).

- `transcribe` takes a list of 16 kHz float32 arrays; one prompt (languages, task) per call.
- Languages are the `<|xx|>` language tokens of the checkpoint's tokenizer. Translation follows
  Canary's rule: English <-> each other language it knows (canary-1b-v2: 24 x 2 pairs;
  canary-1b-flash, with 4 languages: 3 x 2).
- Timestamps: an auxiliary CTC model inside the .nemo (`timestamps_asr_model_*`, Canary-1B-v2)
  force-aligns the decoded text; without one, checkpoints whose tokenizer has timestamp tokens
  (`<|0|>`, the flash models) are asked for them in the prompt.
- The decoder's length cap is `encoder frames (12.5 per second) + max_generation_delta` per
  batch, so a hypothesis that loops is cut in proportion to the chunk's duration.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np

from .. import settings
from ..languages import NAMES, pivot_pairs
from ..types import ChunkResult, Request
from . import runtime, xattn_cache
from .base import hypothesis_result, pad_short
from .capabilities import Capabilities

log = logging.getLogger(__name__)

DEFAULT_MAX_GENERATION_DELTA = 50
"""Decoder steps allowed beyond the encoder length (80 ms frames): ~4 s of slack per chunk."""
_LANG_TOKEN = re.compile(r"^<\|([a-z]{2,3})\|>$")


def tokenizer_languages(tokenizer) -> frozenset[str]:
    """Language codes the tokenizer has prompt tokens for (`<|de|>`; or an aggregate tokenizer's
    `langs`, canary-1b)."""
    langs = getattr(tokenizer, "langs", None)
    if langs:
        return frozenset(c for c in langs if c in NAMES)
    vocab = getattr(tokenizer, "vocab", None)
    if vocab is None:
        vocab = tokenizer.ids_to_tokens(list(range(tokenizer.vocab_size)))
    return frozenset(m.group(1) for t in vocab if (m := _LANG_TOKEN.match(str(t))) and m.group(1) in NAMES)


def _has_token(tokenizer, token: str) -> bool:
    try:
        ids = tokenizer.text_to_ids(token)
        return len(ids) == 1 and tokenizer.ids_to_tokens(ids) == [token]
    except Exception:  # noqa: BLE001 - tokenizers differ; a failed lookup means "absent"
        return False


def capabilities(model, languages: frozenset[str] | None = None) -> Capabilities:
    """Read from the checkpoint; `languages` (an ASR_MODEL annotation) overrides the tokenizer's."""
    langs = languages or tokenizer_languages(model.tokenizer)
    if getattr(model, "timestamps_asr_model", None) is not None:
        stamps = "aligner"
    elif _has_token(model.tokenizer, "<|0|>"):
        stamps = "tokens"
    else:
        stamps = "none"
    return Capabilities(
        languages=frozenset(langs), picks_language=False, translation_pairs=pivot_pairs(langs),
        timestamps=stamps, word_timestamps=stamps != "none", needs_prompt=True,
    )


def set_generation_cap(model, delta: int) -> None:
    """Cap decoding at encoder length + delta steps, for greedy and beam alike."""
    from omegaconf import OmegaConf, open_dict

    cfg = OmegaConf.create(OmegaConf.to_container(model.cfg.decoding, resolve=True)) if model.cfg.get("decoding") else None
    if cfg is None:
        return
    with open_dict(cfg):
        for strategy in ("greedy", "beam"):
            if strategy in cfg and cfg[strategy] is not None:
                cfg[strategy]["max_generation_delta"] = delta
    with runtime.quiet_nemo():
        model.change_decoding_strategy(cfg)


class AEDModel:
    """A loaded EncDecMultiTaskModel behind the SpeechModel interface."""

    def __init__(self, model, name: str, device: str, batch_size: int | None = None,
                 languages: frozenset[str] | None = None):
        self.model = model
        self.name = name
        self.device = device
        self.batch_size = batch_size or runtime.default_batch_size(device)
        set_generation_cap(model, DEFAULT_MAX_GENERATION_DELTA)
        if settings.xattn_cache():
            xattn_cache.install(model)
        self.capabilities = capabilities(model, languages)

    def release(self) -> None:
        runtime.release(self.device)

    def transcribe(self, audios: Sequence[np.ndarray], request: Request) -> list[ChunkResult]:
        import torch
        from nemo.collections.asr.models.aed_multitask_models import MultiTaskTranscriptionConfig

        if not audios:
            return []
        batch = pad_short(audios)
        aligned = request.timestamps and self.capabilities.timestamps == "aligner"
        prompt = {
            "source_lang": request.source_lang,
            "target_lang": request.target_lang,
            "pnc": "yes" if request.pnc else "no",
            # With the auxiliary aligner the decoder is not asked for timestamp tokens.
            "timestamp": "yes" if request.timestamps and not aligned else "no",
        }
        config = MultiTaskTranscriptionConfig(
            batch_size=len(batch), return_hypotheses=True, num_workers=0, verbose=False, prompt=prompt,
            enable_chunking=False,  # our chunks are already <= 20 s; NeMo's merge would join them
        )
        try:
            with runtime.autocast(self.device), torch.inference_mode():
                hyps = self.model.transcribe(batch, override_config=config, timestamps=request.timestamps or None)
        finally:
            xattn_cache.clear(self.model)  # do not hold a batch's encoder output
        return [hypothesis_result(h, request.timestamps) for h in hyps]
