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


def build(out_path: str | os.PathLike, seed: int = 0) -> Path:
    import torch
    from omegaconf import OmegaConf

    from nemo.collections.asr.models import EncDecRNNTBPEModel

    out = Path(out_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    joint_hidden = 2 * D_MODEL
    with tempfile.TemporaryDirectory() as tmp, quiet_nemo():
        tok_dir = _common.train_tokenizer(Path(tmp), list(WORDS), vocab_size=128, seed=seed)
        model = EncDecRNNTBPEModel(cfg=OmegaConf.create({
            "sample_rate": SAMPLE_RATE,
            "languages": list(LANGUAGES),
            "model_defaults": {"enc_hidden": D_MODEL, "pred_hidden": PRED_HIDDEN, "joint_hidden": joint_hidden,
                               "tdt_durations": DURATIONS, "num_tdt_durations": len(DURATIONS)},
            "tokenizer": {"dir": str(tok_dir), "type": "bpe"},
            "preprocessor": _common.preprocessor(),
            "encoder": _common.encoder(D_MODEL, n_layers=2),
            "decoder": {"_target_": "nemo.collections.asr.modules.RNNTDecoder", "normalization_mode": None,
                        "random_state_sampling": False, "blank_as_pad": True,
                        "prednet": {"pred_hidden": PRED_HIDDEN, "pred_rnn_layers": 1, "t_max": None, "dropout": 0.0}},
            "joint": {"_target_": "nemo.collections.asr.modules.RNNTJoint", "log_softmax": None,
                      "preserve_memory": False, "fuse_loss_wer": False, "fused_batch_size": -1,
                      "num_extra_outputs": len(DURATIONS),
                      "jointnet": {"joint_hidden": joint_hidden, "activation": "relu", "dropout": 0.0,
                                   "encoder_hidden": D_MODEL, "pred_hidden": PRED_HIDDEN}},
            "decoding": {"strategy": "greedy_batch", "model_type": "tdt", "durations": DURATIONS,
                         "greedy": {"max_symbols": 10}},
            "loss": {"loss_name": "tdt", "tdt_kwargs": {"fastemit_lambda": 0.0, "clamp": -1.0,
                                                        "durations": DURATIONS, "sigma": 0.02, "omega": 0.1}},
        }))
        model.eval()
        timed_words.position_only_encoder(model.encoder)
        ids = _common.single_token_ids(model.tokenizer, list(WORDS))
        frames = [timed_words.word_frame(k) for k in range(1, len(WORDS) + 1)]
        vectors = timed_words.frame_vectors(model, frames[-1] + 60)
        weights, biases = timed_words.detector_weights(vectors, frames)
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
