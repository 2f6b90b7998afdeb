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
from . import aed_decoder, batching, boosting, confidence, runtime, subsampling, xattn_cache
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
        boosting=boosting.can_boost(model), cased=boosting.writes_capitals(model),
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


def use_greedy(model, delta: int) -> None:
    """Greedy decoding capped at encoder length + delta steps. Canary's config ships the `beam`
    strategy with beam size 1, which decodes the same tokens through NeMo's slower beam search."""
    from omegaconf import OmegaConf, open_dict

    if not model.cfg.get("decoding"):
        return
    cfg = OmegaConf.create(OmegaConf.to_container(model.cfg.decoding, resolve=True))
    with open_dict(cfg):
        cfg.strategy = "greedy"
        greedy = dict(cfg.get("greedy") or {})
        greedy["max_generation_delta"] = delta
        cfg.greedy = greedy
        if cfg.get("beam") is not None:
            cfg.beam.max_generation_delta = delta
    with runtime.quiet_nemo():
        model.change_decoding_strategy(cfg)


class AEDModel:
    """A loaded EncDecMultiTaskModel behind the SpeechModel interface, on its own batch path
    (asr.models.batching) with the fast greedy decoder (asr.models.aed_decoder)."""

    def __init__(self, model, name: str, device: str, batch_size: int | None = None,
                 languages: frozenset[str] | None = None):
        self.model = model
        self.name = name
        self.device = device
        self.batch_size = batch_size or runtime.default_batch_size(device)
        aligner = getattr(model, "timestamps_asr_model", None)
        if aligner is not None:  # not a registered submodule: model.to() does not move it
            aligner.to(model.device).eval()
        batching.cast_for_inference(model, device)
        subsampling.spare_masks(model)
        use_greedy(model, DEFAULT_MAX_GENERATION_DELTA)
        self.fast_decoder = None
        infer = model.decoding.decoding
        generator = getattr(infer, "greedy_search", None)
        why = aed_decoder.supported(generator) if generator is not None else "no greedy generator"
        if why is None and settings.fast_decoder():
            self.fast_decoder = aed_decoder.GreedyDecoder(generator, graphs=settings.cuda_graphs())
            infer.greedy_search = self.fast_decoder
        else:
            log.info("%s decodes with NeMo's own generator (%s)", name, why or "ASR_FAST_DECODER=0")
            if settings.xattn_cache():
                xattn_cache.install(model)
        self.capabilities = capabilities(model, languages)
        self.staging = batching.HostStaging(device)
        self.stages = runtime.StageTimer()
        self._prompts: dict[tuple, object] = {}
        aligner = getattr(model, "timestamps_asr_model", None)
        self._shared_features = aligner is not None and _same_preprocessor(model, aligner)
        self.boosted = boosting.BoostedDecodings(model, "aed", device)
        self.confidence = True

    @property
    def confidence(self) -> bool:
        """Word confidence (asr.models.confidence); benchmarks turn it off to measure its cost."""
        return self._confidence

    @confidence.setter
    def confidence(self, on: bool) -> None:
        self._confidence = bool(on)
        if self.fast_decoder is not None:
            self.fast_decoder.keep_probs = self._confidence

    def release(self) -> None:
        runtime.release(self.device)

    def transcribe(self, audios: Sequence[np.ndarray], request: Request) -> list[ChunkResult]:
        import torch

        if not audios:
            return []
        batch = pad_short(audios)
        aligned = request.timestamps and self.capabilities.timestamps == "aligner"
        token_stamps = request.timestamps and not aligned
        model = self.model
        try:
            with torch.inference_mode(), runtime.quiet_nemo():
                stages = self.stages
                data, feats, feat_lens = batching.prepare(self.staging, model.preprocessor, batch, stages)
                states, mask = self._encode(feats, feat_lens)
                stages.mark("encoder")
                prompt = self._prompt(request, token_stamps, len(batch))
                decoding = (model.decoding if request.hotwords is None
                            else self.boosted.get(request.hotwords, request.source_lang))
                hyps = decoding.decode_predictions_tensor(
                    encoder_hidden_states=states, encoder_input_mask=mask,
                    decoder_input_ids=prompt, return_hypotheses=True,
                )
                if isinstance(hyps, tuple):  # (best, n-best) from some strategies
                    hyps = hyps[0]
                stages.mark("decoder")
                logprobs = None
                if self.confidence:  # kept by our greedy decoder; scored again after a beam search
                    logprobs = (confidence.kept_token_logprobs(hyps)
                                or confidence.aed_token_logprobs(model, states, mask, prompt, hyps))
                stages.mark("confidence")
                del states, mask
                if aligned:
                    hyps = self._align(hyps, data, (feats, feat_lens) if self._shared_features else None)
                    stages.mark("alignment")
                elif token_stamps:
                    from nemo.collections.asr.parts.utils.timestamp_utils import process_aed_timestamp_outputs

                    hyps = process_aed_timestamp_outputs(hyps, model.encoder.subsampling_factor,
                                                         model.cfg["preprocessor"]["window_stride"])
        finally:
            xattn_cache.clear(model)  # NeMo's generator path: do not hold a batch's encoder output
        words = ([confidence.word_confidences(model.tokenizer, confidence.token_ids(h), lp)
                  for h, lp in zip(hyps, logprobs)] if logprobs is not None else [None] * len(hyps))
        return [hypothesis_result(h, request.timestamps, confidences=c) for h, c in zip(hyps, words)]

    def _encode(self, feats, feat_lens):
        """EncDecMultiTaskModel.forward's encoder half, in the weights' dtype."""
        from nemo.collections.asr.models.aed_multitask_models import lens_to_mask

        model = self.model
        encoded, encoded_len = model.encoder(audio_signal=feats.to(batching.compute_dtype(model.encoder)),
                                             length=feat_lens)
        states = model.encoder_decoder_proj(encoded.permute(0, 2, 1))
        mask = lens_to_mask(encoded_len, states.shape[1]).to(states.dtype)
        if model.use_transf_encoder:
            states = model.transf_encoder(encoder_states=states, encoder_mask=mask)
        return states, mask

    def _prompt(self, request: Request, token_stamps: bool, batch: int):
        """The decoder's prompt ids for this request, (batch, P), built as NeMo's transcribe()
        builds them (slot defaults filled in) and kept on the device."""
        key = (request.source_lang, request.target_lang, request.pnc, token_stamps)
        ids = self._prompts.get(key)
        if ids is None:
            from nemo.collections.asr.models.aed_multitask_models import parse_multitask_prompt

            turns = parse_multitask_prompt({
                "source_lang": request.source_lang, "target_lang": request.target_lang,
                "pnc": "yes" if request.pnc else "no", "timestamp": "yes" if token_stamps else "no",
            })
            defaults = self.model.prompt.get_default_dialog_slots()
            for turn in turns:
                mine = [t for t in defaults if t["role"] == turn["role"]]
                if mine:
                    turn["slots"] = {**{k: v for k, v in mine[0]["slots"].items()},
                                     **{k: v for k, v in turn["slots"].items() if v is not None}}
            ids = self.model.prompt.encode_dialog(turns=turns)["context_ids"].to(self.model.device)
            self._prompts[key] = ids
        return ids.unsqueeze(0).repeat(batch, 1)

    def _align(self, hyps, data, shared_features):
        """Word and segment times from the auxiliary CTC model, run once on the whole batch in
        this path (features shared with the main model when their front ends are the same), then
        a batched Viterbi on the device (asr.models.alignment)."""
        from .alignment import align_hypotheses

        ctc = self.model.timestamps_asr_model
        feats, feat_lens = shared_features or batching.features(ctc.preprocessor, data)
        encoded, encoded_len = ctc.encoder(audio_signal=feats.to(batching.compute_dtype(ctc.encoder)), length=feat_lens)
        # the CTC head and its log-softmax in fp32: bf16 log-probs tie more often and move word times
        log_probs = ctc.decoder(encoder_output=encoded.to(batching.compute_dtype(ctc.decoder)))
        # lengths left on the device: the text work runs while the aligner is still computing
        return align_hypotheses(ctc, log_probs, encoded_len, hyps, timestamp_type=("word", "segment"))


def _same_preprocessor(model, aligner) -> bool:
    """The aligner's mel front end is configured as the main model's (Canary-1B-v2: yes), so
    the features computed once serve both."""
    try:
        from omegaconf import OmegaConf

        a = OmegaConf.to_container(model.cfg.preprocessor, resolve=True)
        b = OmegaConf.to_container(aligner.cfg.preprocessor, resolve=True)
    except Exception:  # noqa: BLE001 - any doubt means compute them separately
        return False
    return a == b
