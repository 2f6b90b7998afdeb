"""Pieces the tiny transducer and CTC builders share: tokenizer, front end, encoder config."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..types import SAMPLE_RATE


def train_tokenizer(work: Path, words: list[str], vocab_size: int, seed: int) -> Path:
    """A SentencePiece BPE tokenizer (NeMo's own trainer) in which every word is one token."""
    import sentencepiece

    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    rng = np.random.default_rng(seed)
    corpus = work / "corpus.txt"
    with open(corpus, "w") as f:
        for _ in range(3000):
            f.write(" ".join(rng.choice(words, size=8)) + "\n")
    sentencepiece.set_min_log_level(2)  # its trainer prints every symbol otherwise
    out = work / "tokenizer"
    create_spt_model(str(corpus), vocab_size=vocab_size, sample_size=-1, do_lower_case=False,
                     tokenizer_type="bpe", output_dir=str(out))
    return out


def preprocessor(features: int = 80) -> dict:
    """Parakeet's front end: 80 log-mel bins every 10 ms."""
    return {
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "sample_rate": SAMPLE_RATE, "normalize": "per_feature", "window_size": 0.025,
        "window_stride": 0.01, "window": "hann", "features": features, "n_fft": 512, "log": True,
        "frame_splicing": 1, "dither": 1.0e-05, "pad_to": 0, "pad_value": 0.0,
    }


def encoder(d_model: int, n_layers: int, features: int = 80) -> dict:
    """A FastConformer (8x depthwise-striding subsampling) as in Parakeet, with absolute positions
    so the tiny model can say where it is (see timed_words)."""
    return {
        "_target_": "nemo.collections.asr.modules.ConformerEncoder",
        "feat_in": features, "feat_out": -1, "n_layers": n_layers, "d_model": d_model,
        "subsampling": "dw_striding", "subsampling_factor": 8, "subsampling_conv_channels": 32,
        "causal_downsampling": False, "ff_expansion_factor": 4, "self_attention_model": "abs_pos",
        "n_heads": 4, "att_context_size": [-1, -1], "xscaling": False, "pos_emb_max_len": 5000,
        "conv_kernel_size": 9, "conv_norm_type": "batch_norm",
        "dropout": 0.0, "dropout_pre_encoder": 0.0, "dropout_emb": 0.0, "dropout_att": 0.0,
    }


def single_token_ids(tokenizer, words: list[str]) -> list[int]:
    ids = []
    for w in words:
        t = tokenizer.text_to_ids(w)
        if len(t) != 1:
            raise ValueError(f"tiny-model word {w!r} is {len(t)} tokens; the tokenizer needs it as one")
        ids.append(t[0])
    return ids
