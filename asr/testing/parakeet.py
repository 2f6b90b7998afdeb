"""A tiny Parakeet-TDT model (NeMo `EncDecRNNTBPEModel` with TDT decoding, the class of
parakeet-tdt-0.6b-v3), for tests and trying the service without weights
(`python -m asr tiny-model OUT.nemo --kind parakeet-tdt`).

FastConformer encoder, SentencePiece BPE tokenizer, LSTM prediction network, RNNTJoint with five
token-duration outputs (0-4 frames), TDT loss and NeMo's greedy TDT decoding with word and segment
offsets. Like parakeet-tdt-0.6b-v3 it declares 25 languages (in its config, `languages`) and picks
the language itself. It says English numbers: word k at k - 0.5 s, each with duration 1 (see
asr.testing.timed_words), so `expected_words(duration_s)` predicts the text of any chunk.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..languages import CODES
from ..models.runtime import quiet_nemo
from ..types import SAMPLE_RATE
from . import _common, timed_words

LANGUAGES = CODES
WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
         "twenty")
D_MODEL = 64
PRED_HIDDEN = 32
DURATIONS = [0, 1, 2, 3, 4]


def expected_words(duration_s: float) -> list[str]:
    """The words the tiny Parakeet model says for a chunk of `duration_s` seconds."""
    return timed_words.words_for(duration_s, WORDS)


@dataclass(frozen=True)
class ParakeetDims:
    """The sizes that tell parakeet-tdt-0.6b from the tiny test model (the structure is shared)."""

    d_model: int
    layers: int
    heads: int
    subsampling_channels: int
    features: int
    pred_hidden: int
    joint_hidden: int
    vocab_size: int


TINY_DIMS = ParakeetDims(D_MODEL, 2, 4, 32, 80, PRED_HIDDEN, 2 * D_MODEL, 128)
PARAKEET_TDT_0_6B_DIMS = ParakeetDims(1024, 24, 8, 256, 128, 640, 640, 8192)
"""parakeet-tdt-0.6b-v3's published configuration: a 24-layer, 1024-wide FastConformer (8x
depthwise-striding subsampling, 256 channels, 128 mel bins), a 640-wide LSTM prediction network
and joint, an 8,192-piece vocabulary and durations 0-4."""


def build_parakeet_like(dims: ParakeetDims, work_dir: str | os.PathLike, seed: int = 0):
    """A Parakeet-TDT (EncDecRNNTBPEModel, TDT decoding) of the given sizes, random weights."""
    import torch
    from omegaconf import OmegaConf

    from nemo.collections.asr.models import EncDecRNNTBPEModel

    torch.manual_seed(seed)
    if dims.vocab_size <= len(WORDS) * 8:
        words = list(WORDS)
    else:  # enough distinct text for a large vocabulary
        syllables = [a + b for a in "bcdfghjklmnprstvz" for b in "aeiouy"]
        words = sorted({x + y + z for x in syllables for y in syllables for z in ("", "n", "s")})
    tok_dir = _common.train_tokenizer(Path(work_dir), words, vocab_size=dims.vocab_size, seed=seed)
    encoder = _common.encoder(dims.d_model, n_layers=dims.layers, features=dims.features)
    encoder.update(n_heads=dims.heads, subsampling_conv_channels=dims.subsampling_channels)
    with quiet_nemo():
        return EncDecRNNTBPEModel(cfg=OmegaConf.create({
            "sample_rate": SAMPLE_RATE,
            "languages": list(LANGUAGES),
            "model_defaults": {"enc_hidden": dims.d_model, "pred_hidden": dims.pred_hidden,
                               "joint_hidden": dims.joint_hidden, "tdt_durations": DURATIONS,
                               "num_tdt_durations": len(DURATIONS)},
            "tokenizer": {"dir": str(tok_dir), "type": "bpe"},
            "preprocessor": _common.preprocessor(dims.features),
            "encoder": encoder,
            "decoder": {"_target_": "nemo.collections.asr.modules.RNNTDecoder", "normalization_mode": None,
                        "random_state_sampling": False, "blank_as_pad": True,
                        "prednet": {"pred_hidden": dims.pred_hidden, "pred_rnn_layers": 1 if dims is TINY_DIMS else 2,
                                    "t_max": None, "dropout": 0.0}},
            "joint": {"_target_": "nemo.collections.asr.modules.RNNTJoint", "log_softmax": None,
                      "preserve_memory": False, "fuse_loss_wer": False, "fused_batch_size": -1,
                      "num_extra_outputs": len(DURATIONS),
                      "jointnet": {"joint_hidden": dims.joint_hidden, "activation": "relu", "dropout": 0.0,
                                   "encoder_hidden": dims.d_model, "pred_hidden": dims.pred_hidden}},
            "decoding": {"strategy": "greedy_batch", "model_type": "tdt", "durations": DURATIONS,
                         "greedy": {"max_symbols": 10}},
            "loss": {"loss_name": "tdt", "tdt_kwargs": {"fastemit_lambda": 0.0, "clamp": -1.0,
                                                        "durations": DURATIONS, "sigma": 0.02, "omega": 0.1}},
        }))


def build(out_path: str | os.PathLike, seed: int = 0) -> Path:
    import torch

    out = Path(out_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, quiet_nemo():
        model = build_parakeet_like(TINY_DIMS, tmp, seed)
        model.eval()
        ids, weights, biases = timed_words.word_detectors(model, WORDS)
        joint = model.joint
        vocab = model.decoder.blank_idx  # blank follows the tokens; the durations follow it
        with torch.no_grad():
            # relu([E; -E]) keeps E exactly; the prediction network's part is zero, so the joint
            # sees only where the frame is.
            joint.enc.weight.copy_(torch.cat([torch.eye(D_MODEL), -torch.eye(D_MODEL)]))
            joint.enc.bias.zero_()
            joint.pred.weight.zero_()
            joint.pred.bias.zero_()
            out_layer = joint.joint_net[-1]
            out_layer.weight.zero_()
            out_layer.bias.fill_(-50.0)
            out_layer.bias[vocab] = 0.0  # blank
            out_layer.bias[vocab + 1:] = 0.0
            out_layer.bias[vocab + 1 + DURATIONS.index(1)] = 10.0  # every step moves one frame on
            for i, t in enumerate(ids):
                out_layer.weight[t] = torch.cat([weights[i], -weights[i]])
                out_layer.bias[t] = biases[i]
        partial = out.with_suffix(".part")
        model.save_to(str(partial))
        partial.replace(out)
    return out
