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
from . import batching, boosting, confidence, runtime, subsampling
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
        batching.cast_for_inference(model, device)
        subsampling.spare_masks(model)
        _compute_timestamps(model)
        self.staging = batching.HostStaging(device)
        self.stages = runtime.StageTimer()
        langs = frozenset(languages or config_languages(model))
        self.capabilities = Capabilities(
            languages=langs, picks_language=len(langs) != 1, translation_pairs=frozenset(),
            timestamps="native", word_timestamps=True, needs_prompt=False,
            boosting=boosting.can_boost(model), cased=boosting.writes_capitals(model),
        )
        self.boosted = boosting.BoostedDecodings(model, self.family, device) if self.capabilities.boosting else None
        self.confidence = True
        """Word confidence (asr.models.confidence); benchmarks turn it off to measure its cost."""

    def release(self) -> None:
        runtime.release(self.device)

    def transcribe(self, audios: Sequence[np.ndarray], request: Request) -> list[ChunkResult]:
        """Own batch path (asr.models.batching): pinned batch, features and encoder on the device in
        the weights' dtype, then NeMo's own decoding (label-looping with CUDA graphs where the
        checkpoint's config asks for it) with timestamps always on (switching them per call
        rebuilds NeMo's decoder each time)."""
        import torch
        from nemo.collections.asr.parts.utils.timestamp_utils import process_timestamp_outputs

        if not audios:
            return []
        batch = pad_short(audios)
        model = self.model
        with torch.inference_mode(), runtime.quiet_nemo():
            stages = self.stages
            _, feats, feat_lens = batching.prepare(self.staging, model.preprocessor, batch, stages)
            encoded, encoded_len = model.encoder(audio_signal=feats.to(batching.compute_dtype(model.encoder)),
                                                 length=feat_lens)
            stages.mark("encoder")
            del feats
            decoding = model.decoding
            if request.hotwords is not None:
                if self.boosted is None:
                    raise ValueError(f"{self.name} cannot boost hotwords")  # the pipeline checks first
                decoding = self.boosted.get(request.hotwords, request.source_lang)
            out, evidence = self._decode(encoded, encoded_len, decoding)
            stages.mark("decoder")
            if isinstance(out, tuple):  # (best, n-best) from some decoders
                out = out[0]
            if len(out) != len(batch):
                raise RuntimeError(f"{self.name} returned {len(out)} results for {len(batch)} chunks")
            words = self._confidences(out, evidence) if self.confidence else [None] * len(out)
            del evidence
            stages.mark("confidence")
            out = process_timestamp_outputs(out, model.encoder.subsampling_factor,
                                            model.cfg["preprocessor"]["window_stride"])
        return [hypothesis_result(h, request.timestamps, confidences=c) for h, c in zip(out, words)]

    def _decode(self, encoded, encoded_len, decoding):
        """(hypotheses of `decoding` (the model's own, or a boosted one) for the encoder output,
        the evidence `_confidences` scores them from)."""
        raise NotImplementedError

    def _confidences(self, hyps, evidence) -> list[list[float] | None]:
        """One confidence per word of each hypothesis (asr.models.confidence)."""
        raise NotImplementedError

    def _words(self, ids: list[list[int]], logprobs) -> list[list[float] | None]:
        tok = getattr(self.model, "tokenizer", None)
        if tok is None:  # a character model: its vocabulary's labels, a space between words
            labels = list(self.model.decoder.vocabulary)

            class _Chars:
                def ids_to_tokens(self, ids):
                    return [labels[i] if i < len(labels) else "" for i in ids]

            tok = _Chars()
        return [confidence.word_confidences(tok, i, lp) for i, lp in zip(ids, logprobs)]
