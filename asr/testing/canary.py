"""A tiny model with Canary-1B-v2's structure, for tests, benchmarks and trying the service
without weights (`python -m asr tiny-model OUT.nemo --kind canary`).

Built from NeMo's own classes and configs (EncDecMultiTaskModel with the canary2 prompt format,
a CanaryBPETokenizer with Canary's special and language tokens, FastConformer encoder, pre-LN
transformer decoder, and a CTC aligner packed into the .nemo as Canary-1B-v2 has), at a small
size with random weights. The decoder is set to say TINY_PHRASE for every chunk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..languages import CODES
from ..models.aed import DEFAULT_MAX_GENERATION_DELTA
from ..models.runtime import quiet_nemo as _quiet_nemo
from ..types import SAMPLE_RATE

LANGUAGES = CODES
"""The language tokens the tiny Canary's tokenizer carries (part of the test cache key)."""

TINY_PHRASE = "Hello world! The quick brown fox."
"""What the tiny model says for every chunk (see build_tiny_model)."""
TINY_DOUBT = ("fox", "dog")
"""The one word the tiny model is unsure of, and the word it nearly says instead ("The quick brown
dog."): the rival trails by TINY_DOUBT_MARGIN nats, so word confidence has a low word to find and
phrase boosting ("dog" as a hotword) has a decision to turn."""
TINY_DOUBT_MARGIN = 1.5

_CANARY2_SPECIALS = [
    # Canary's special-token order (ids 1..): the ids NeMo and the real checkpoint agree on.
    "<|nospeech|>", "<pad>", "<|endoftext|>", "<|startoftranscript|>", "<|pnc|>", "<|nopnc|>",
    "<|startofcontext|>", "<|itn|>", "<|noitn|>", "<|timestamp|>", "<|notimestamp|>", "<|diarize|>",
    "<|nodiarize|>", "<|spkchange|>", "<|audioseparator|>", "<|emo:undefined|>", "<|emo:neutral|>",
    "<|emo:happy|>", "<|emo:sad|>", "<|emo:angry|>", "<|unklang|>",
]


@dataclass(frozen=True)
class CanaryDims:
    """The sizes that distinguish Canary-1B-v2 from our tiny test model (everything else is shared)."""

    d_model: int
    encoder_layers: int
    encoder_heads: int
    subsampling_channels: int
    decoder_layers: int
    decoder_heads: int
    vocab_size: int
    aligner_layers: int


TINY_DIMS = CanaryDims(64, 2, 4, 32, 2, 4, 1300, 1)
CANARY_1B_V2_DIMS = CanaryDims(1024, 32, 8, 256, 8, 8, 16384, 24)
"""From Canary-1B-v2's published configuration: 32-layer, 1024-wide FastConformer (8x
depthwise-striding subsampling, 256 channels, kernel 9), 8-layer pre-LN decoder with 8 heads and
4096 inner size, a 16,384-token vocabulary, 128 mel bins, and a 24-layer CTC aligner."""


def build_canary_like(dims: CanaryDims, work_dir: str | os.PathLike, seed: int = 0):
    """(main model, aligner) with Canary-1B-v2's structure at the given sizes, random weights,
    built with NeMo's own classes. The tokenizer (trained here on synthetic text) holds Canary's
    special tokens, all 25 language tokens and the <|0|>..<|899|> timestamp tokens."""
    import sentencepiece
    import torch
    from omegaconf import OmegaConf

    from nemo.collections.asr.models import EncDecCTCModelBPE, EncDecMultiTaskModel
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model


    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    work = Path(work_dir)
    tok_dir = work / "tokenizer"
    corpus = work / "corpus.txt"
    if dims.vocab_size <= 2000:
        words = (
            "Hello world! The quick brown fox. the lazy dog jumps over speech recognition "
            "der die das und ist nicht la le les et est pas el los y es no"
        ).split()
    else:  # enough distinct text for a large vocabulary
        syllables = [a + b for a in "bcdfghjklmnprstvz" for b in "aeiouy"]
        words = ["".join(rng.choice(syllables, size=int(rng.integers(1, 4)))) for _ in range(40_000)]
    with open(corpus, "w") as f:
        f.write(TINY_PHRASE + "\n")
        for _ in range(2000 if dims.vocab_size <= 2000 else 20_000):
            f.write(" ".join(rng.choice(words, size=10 if dims.vocab_size <= 2000 else 12)) + "\n")
    sentencepiece.set_min_log_level(2)  # its trainer prints every symbol otherwise
    specials = (
        _CANARY2_SPECIALS + [f"<|{c}|>" for c in CODES] + [f"<|{i}|>" for i in range(900)]
        + [f"<|spk{i}|>" for i in range(16)]
    )
    create_spt_model(
        str(corpus), vocab_size=dims.vocab_size, sample_size=-1, do_lower_case=False, tokenizer_type="bpe",
        output_dir=str(tok_dir), user_defined_symbols=specials,
    )
    d = dims.d_model
    preprocessor = {  # the real model's front end
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "sample_rate": SAMPLE_RATE, "normalize": "per_feature", "window_size": 0.025,
        "window_stride": 0.01, "window": "hann", "features": 128, "n_fft": 512, "log": True,
        "frame_splicing": 1, "dither": 1.0e-05, "pad_to": 0, "pad_value": 0.0,
    }

    def encoder(n_layers: int, use_bias: bool = True) -> dict:  # FastConformer as in Canary-1B-v2
        return {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": 128, "feat_out": -1, "n_layers": n_layers, "d_model": d,
            "subsampling": "dw_striding", "subsampling_factor": 8,
            "subsampling_conv_channels": dims.subsampling_channels,
            "causal_downsampling": False, "ff_expansion_factor": 4, "self_attention_model": "rel_pos",
            "n_heads": dims.encoder_heads, "att_context_size": [-1, -1], "xscaling": False,
            "untie_biases": True, "pos_emb_max_len": 5000, "conv_kernel_size": 9,
            "conv_norm_type": "batch_norm", "use_bias": use_bias,
            "dropout": 0.0, "dropout_pre_encoder": 0.0, "dropout_emb": 0.0, "dropout_att": 0.0,
        }

    tokenizer = {
        "dir": str(tok_dir), "type": "bpe",
        "custom_tokenizer": {"_target_": "nemo.collections.common.tokenizers.canary_tokenizer.CanaryBPETokenizer"},
    }
    aed_cfg = {
        "sample_rate": SAMPLE_RATE,
        "prompt_format": "canary2",
        "prompt_defaults": [
            {"role": "user", "slots": {
                "decodercontext": "", "source_lang": "<|en|>", "target_lang": "<|en|>",
                "emotion": "<|emo:undefined|>", "pnc": "<|pnc|>", "itn": "<|noitn|>",
                "diarize": "<|nodiarize|>", "timestamp": "<|notimestamp|>"}},
            {"role": "user_partial", "slots": {"decodercontext": ""}},
        ],
        "model_defaults": {"asr_enc_hidden": d, "lm_enc_hidden": d, "lm_dec_hidden": d},
        "tokenizer": tokenizer,
        "preprocessor": preprocessor,
        "encoder": encoder(dims.encoder_layers),
        "transf_encoder": {
            "_target_": "nemo.collections.asr.modules.transformer.transformer_encoders.TransformerEncoder",
            "num_layers": 0, "hidden_size": d, "inner_size": 4 * d, "num_attention_heads": dims.decoder_heads,
            "mask_future": False, "pre_ln": True, "pre_ln_final_layer_norm": True,
        },
        "transf_decoder": {
            "_target_": "nemo.collections.asr.modules.transformer.get_nemo_transformer",
            "model_name": None, "pretrained": False, "encoder": None, "pre_ln_final_layer_norm": True,
            "config_dict": {
                "max_sequence_length": 1024, "num_token_types": 0, "embedding_dropout": 0.0,
                "learn_positional_encodings": False, "hidden_size": d, "inner_size": 4 * d,
                "num_layers": dims.decoder_layers, "num_attention_heads": dims.decoder_heads,
                "ffn_dropout": 0.0, "attn_score_dropout": 0.0, "attn_layer_dropout": 0.0,
                "hidden_act": "relu", "pre_ln": True, "vocab_size": None,
            },
        },
        "head": {
            "_target_": "nemo.collections.asr.parts.submodules.token_classifier.TokenClassifier",
            "num_layers": 1, "activation": "relu", "log_softmax": True, "hidden_size": d,
            "num_classes": None, "dropout": 0.0, "use_transformer_init": True,
        },
        "decoding": {"strategy": "beam", "return_best_hypothesis": True,
                     "beam": {"beam_size": 1, "len_pen": 0.0, "max_generation_delta": DEFAULT_MAX_GENERATION_DELTA}},
        "loss": {"_target_": "nemo.collections.common.losses.smoothed_cross_entropy.SmoothedCrossEntropyLoss",
                 "label_smoothing": 0.0, "pad_id": None},
    }
    with _quiet_nemo():
        aed = EncDecMultiTaskModel(cfg=OmegaConf.create(aed_cfg))
        ctc = EncDecCTCModelBPE(cfg=OmegaConf.create({
            "sample_rate": SAMPLE_RATE,
            "tokenizer": {"dir": str(tok_dir), "type": "bpe"},
            "preprocessor": preprocessor,
            "encoder": encoder(dims.aligner_layers, use_bias=False),
            "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": d,
                        "num_classes": -1, "vocabulary": []},
        }))
    return aed, ctc


def build(out_path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a small .nemo with Canary-1B-v2's structure (see build_canary_like): the aligner is
    packed into the archive under the names NeMo's restore looks for, so it loads through
    ASRModel.restore_from and `transcribe(..., timestamps=True)` force-aligns like the real one.

    Weights are random, except the decoder's: they are set so that it says TINY_PHRASE and stops,
    whatever it hears. That keeps decoding fast and gives the text, spacing and forced-alignment
    paths real words to carry (a random decoder repeats one token up to the length cap).
    """
    import tarfile
    import tempfile

    out = Path(out_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, _quiet_nemo():
        tmp = Path(tmp)
        aed, ctc = build_canary_like(TINY_DIMS, tmp, seed)
        _teach_phrase(aed, TINY_PHRASE)
        main_nemo, ctc_nemo = tmp / "main.nemo", tmp / "ctc.nemo"
        aed.save_to(str(main_nemo))
        ctc.save_to(str(ctc_nemo))
        # NeMo has no API to store the aligner: add its files under the names it restores from.
        partial = out.with_suffix(".part")
        with tarfile.open(main_nemo) as main_tar, tarfile.open(ctc_nemo) as ctc_tar, \
                tarfile.open(partial, "w") as dst:
            names = set()
            for m in main_tar.getmembers():
                names.add(os.path.basename(m.name))
                dst.addfile(m, main_tar.extractfile(m) if m.isfile() else None)
            for m in ctc_tar.getmembers():
                if not m.isfile():
                    continue
                base = os.path.basename(m.name)
                base = {"model_config.yaml": "timestamps_asr_model_config.yaml",
                        "model_weights.ckpt": "timestamps_asr_model_weights.ckpt"}.get(base, base)
                if base in names:
                    continue
                info = tarfile.TarInfo("./" + base)
                info.size = m.size
                dst.addfile(info, ctc_tar.extractfile(m))
        partial.replace(out)
    return out


def _teach_phrase(model, phrase: str, doubt: tuple[str, str] = TINY_DOUBT,
                  margin: float = TINY_DOUBT_MARGIN) -> None:
    """Set the decoder so that, from the prompt's last token, it emits `phrase` then
    <|endoftext|>. Self- and cross-attention outputs are zeroed, so each layer passes the token
    embedding through; the first layer's feed-forward maps token i to token i+1 of the chain
    (one ReLU unit per token), and the tied head reads the result off the embedding.

    `doubt` = (word of the phrase, rival): where the phrase says the word, the rival scores
    `margin` nats below it (calibrated by bisection), and after the rival the chain goes on as
    after the word."""
    import torch

    tok = model.tokenizer
    chain = [tok.token_to_id("<|nodiarize|>")] + list(tok.text_to_ids(phrase)) + [tok.eos]
    if len(set(chain)) != len(chain):
        raise ValueError(f"the tiny phrase must tokenize to distinct tokens, got {tok.ids_to_tokens(chain)}")
    word_ids, rival_ids = tok.text_to_ids(doubt[0]), tok.text_to_ids(doubt[1])
    if len(word_ids) != 1 or len(rival_ids) != 1 or word_ids[0] not in chain or rival_ids[0] in chain:
        raise ValueError(f"the doubtful word and its rival must be single tokens, the word in the phrase: {doubt}")
    at = chain.index(word_ids[0])  # chain position of the doubtful word; the rival branches from at - 1
    dec = model.transf_decoder
    emb = dec.embedding.token_embedding.weight  # tied with the output head
    d = emb.shape[1]
    g = torch.Generator().manual_seed(1)
    basis = torch.randn(d, len(chain) + 1, generator=g)
    basis -= basis.mean(dim=0, keepdim=True)  # zero-mean columns pass LayerNorm unchanged in direction
    basis, _ = torch.linalg.qr(basis)
    u = basis.T  # one orthonormal, zero-mean direction per chain token, then the rival's
    u_rival = u[len(chain)]
    scale = np.sqrt(d)  # LayerNorm output of a unit zero-mean vector
    layers = dec.decoder.layers
    ff = layers[0].third_sub_layer
    with torch.no_grad():
        for k, t in enumerate(chain):
            emb[t] = 100.0 * u[k]
        emb[rival_ids[0]] = 100.0 * u_rival
        for layer in layers:
            for attn in (layer.first_sub_layer, layer.second_sub_layer):
                attn.out_projection.weight.zero_()
                attn.out_projection.bias.zero_()
            layer.third_sub_layer.dense_out.weight.zero_()
            layer.third_sub_layer.dense_out.bias.zero_()
        ff.dense_in.weight.zero_()
        ff.dense_in.bias.fill_(-0.5 * scale)
        for k in range(len(chain) - 1):
            ff.dense_in.weight[k] = u[k]  # fires (~scale/2) only for chain token k
            ff.dense_out.weight[:, k] = (3.0 * scale * u[k + 1] - scale * u[k]) / (0.5 * scale)
        r = len(chain) - 1  # the rival's own unit: after it, the chain goes on as after the word
        ff.dense_in.weight[r] = u_rival
        ff.dense_out.weight[:, r] = (3.0 * scale * u[at + 1] - scale * u_rival) / (0.5 * scale)
    base = ff.dense_out.weight[:, at - 1].clone()
    dec.eval()
    model.log_softmax.eval()

    def rival_gap(c: float) -> float:
        with torch.no_grad():
            ff.dense_out.weight[:, at - 1] = base + c * 3.0 * scale * u_rival / (0.5 * scale)
            ids = torch.tensor([chain[:at]])
            states = torch.zeros(1, 1, d)
            hidden = dec(input_ids=ids, decoder_mask=torch.ones_like(ids), encoder_embeddings=states,
                         encoder_mask=torch.ones(1, 1))
            logits = model.log_softmax(hidden_states=hidden)[0, -1]
            return float(logits[word_ids[0]] - logits[rival_ids[0]])

    lo, hi = 0.0, 1.0  # gap(0) is large and positive, gap(1) negative: bisect to `margin`
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rival_gap(mid) > margin else (lo, mid)
    gap = rival_gap(lo)
    if abs(gap - margin) > 0.05:
        raise ValueError(f"could not set the rival's margin to {margin} (got {gap:.3f})")
