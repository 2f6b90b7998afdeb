"""Phrase boosting through NeMo's own mechanism (GPU-PB: a boosting tree of the phrases' tokens,
`BoostingTreeModelConfig.key_phrases_list`), one decoding object per phrase set.

- Canary (AED): NeMo's beam search with the boosting tree (`strategy=beam`, BEAM_SIZE beams,
  `depth_scaling` 1.0 as NeMo's AED config sets it); NeMo's AED greedy decoder has no boosting.
- Transducers and CTC: NeMo's batched greedy decoders with the boosting tree as a fusion model
  (`depth_scaling` 2.0, NeMo's value for them).

A request without hotwords never comes here: it keeps the model's own decoding object (for Canary
our CUDA-graph greedy decoder). The objects are built from the model's decoding config with only
the boosting fields changed, share the model's modules, and are kept for the most recent phrase
sets (CACHED), since clients tend to send the same list with every file.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from ..types import Hotwords

log = logging.getLogger(__name__)

BEAM_SIZE = 4
"""Canary's beam with hotwords (NeMo's word-boosting example for AED models)."""
CACHED = 8


def can_boost(model) -> bool:
    """NeMo builds the tree from the tokenizer's ids: models without a subword tokenizer (character
    CTC and RNN-T) cannot boost."""
    return hasattr(model, "tokenizer") and hasattr(getattr(model, "tokenizer", None), "text_to_ids")


def writes_capitals(model) -> bool:
    """Whether the tokenizer has any upper-case letter (a lower-case model has none)."""
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        vocab = [str(v) for v in getattr(getattr(model, "decoder", None), "vocabulary", []) or []]
    else:
        try:
            vocab = [str(t) for t in tok.ids_to_tokens(list(range(tok.vocab_size)))]
        except Exception:  # noqa: BLE001 - an unusual tokenizer: assume it writes capitals
            return True
    return any(c.isupper() for piece in vocab if not piece.startswith("<") for c in piece)


def _tree(hotwords: Hotwords, source_lang: str, depth_scaling: float, device: str) -> dict:
    return {
        "key_phrases_list": list(hotwords.phrases), "source_lang": source_lang, "context_score": 1.0,
        "depth_scaling": depth_scaling, "use_triton": device.startswith("cuda") and _has_triton(),
    }


def _has_triton() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _head_width(model) -> int:
    """Classes of the AED's output head: NeMo sizes it to the tokenizer's vocabulary rounded up to
    a multiple of 8."""
    import torch

    linears = [m for m in model.log_softmax.modules() if isinstance(m, torch.nn.Linear)]
    return int(linears[-1].out_features) if linears else int(model.tokenizer.vocab_size)


def _head_sized(tokenizer, width: int):
    """The tokenizer, reporting the head's width as its vocabulary size: NeMo's beam search adds the
    boosting tree's scores (one per tokenizer id) to the head's log-probs (one per head class), so
    the two must agree; the padding classes are no token and get no boost."""
    if int(tokenizer.vocab_size) == width:
        return tokenizer
    import copy

    sized = copy.copy(tokenizer)
    if "vocab_size" in vars(sized):  # SentencePieceTokenizer keeps it on the instance
        sized.vocab_size = width
    else:
        sized.__class__ = type(f"HeadSized{type(tokenizer).__name__}", (type(tokenizer),), {"vocab_size": width})
    return sized


def _merged(schema, cfg):
    """The config over its schema's defaults, as NeMo's `change_decoding_strategy` merges it (the
    schema as a plain dict: keys a checkpoint adds are kept)."""
    from omegaconf import OmegaConf

    return OmegaConf.merge(OmegaConf.create(OmegaConf.to_container(OmegaConf.structured(schema))), cfg)


class BoostedDecodings:
    """The decoding objects of one loaded model, by (phrase set, source language)."""

    def __init__(self, model, family: str, device: str):
        if family not in ("aed", "transducer", "ctc"):
            raise ValueError(f"no phrase boosting for the {family} family")
        self.model = model
        self.family = family
        self.device = device
        self._cache: OrderedDict[tuple, object] = OrderedDict()

    def get(self, hotwords: Hotwords, source_lang: str):
        key = (hotwords, source_lang)
        decoding = self._cache.get(key)
        if decoding is None:
            decoding = self._build(hotwords, source_lang)
            self._cache[key] = decoding
            while len(self._cache) > CACHED:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return decoding

    def _build(self, hotwords: Hotwords, source_lang: str):
        from omegaconf import OmegaConf, open_dict

        from .runtime import quiet_nemo

        model = self.model
        cfg = OmegaConf.create(OmegaConf.to_container(model.cfg.decoding, resolve=True))
        with open_dict(cfg), quiet_nemo():
            if self.family == "aed":
                from nemo.collections.asr.parts.submodules.multitask_decoding import (
                    MultiTaskDecoding, MultiTaskDecodingConfig,
                )

                cfg.strategy = "beam"
                beam = dict(cfg.get("beam") or {})
                beam.update(beam_size=BEAM_SIZE, boosting_tree=_tree(hotwords, source_lang, 1.0, self.device),
                            boosting_tree_alpha=hotwords.boost, return_best_hypothesis=True)
                beam["max_generation_delta"] = (cfg.get("greedy") or {}).get("max_generation_delta",
                                                                          beam.get("max_generation_delta", -1))
                cfg.beam = beam
                merged = _merged(MultiTaskDecodingConfig, cfg)
                return MultiTaskDecoding(decoding_cfg=merged, transformer_decoder=model.transf_decoder,
                                         log_softmax_module=model.log_softmax,
                                         tokenizer=_head_sized(model.tokenizer, _head_width(model)))
            cfg.strategy = "greedy_batch"
            greedy = dict(cfg.get("greedy") or {})
            greedy.update(boosting_tree=_tree(hotwords, source_lang, 2.0, self.device),
                          boosting_tree_alpha=hotwords.boost)
            cfg.greedy = greedy
            if self.family == "transducer":
                from nemo.collections.asr.parts.submodules.rnnt_decoding import (
                    RNNTBPEDecoding, RNNTBPEDecodingConfig,
                )

                merged = _merged(RNNTBPEDecodingConfig, cfg)
                if hasattr(model, "set_decoding_type_according_to_loss"):
                    merged = model.set_decoding_type_according_to_loss(merged)
                return RNNTBPEDecoding(decoding_cfg=merged, decoder=model.decoder, joint=model.joint,
                                       tokenizer=model.tokenizer)
            from nemo.collections.asr.parts.submodules.ctc_decoding import CTCBPEDecoding, CTCBPEDecodingConfig

            merged = _merged(CTCBPEDecodingConfig, cfg)
            return CTCBPEDecoding(decoding_cfg=merged, tokenizer=model.tokenizer)
