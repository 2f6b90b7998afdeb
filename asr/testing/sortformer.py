"""A tiny Streaming Sortformer diarizer for tests, benchmarks and trying the service without weights.

Built with NeMo's own classes (`SortformerEncLabelModel`: mel front end, FastConformer encoder
with 8x dw-striding subsampling, Transformer encoder, `SortformerModules` with the streaming
speaker cache and FIFO), saved as .nemo and restored through the same loader as
`nvidia/diar_streaming_sortformer_4spk-v2`. Sizes are small; the structure, the 128-bin features
without per-feature normalisation, the 80 ms output frame and the streaming settings are the
real model's.

Weights are random except where set so that the speaker depends on the input (see
`_teach_pitch`): slot 0 talks when the sound is loud and its energy sits low in the spectrum
(a low voice), slot 1 when it is loud and sits high (a high voice), nobody in silence. A
recording of one voice followed by the same voice resampled up an octave therefore shows two
speakers, so an end-to-end test can see speakers change.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 16_000
TILT_OFFSET = 1.0
"""Spectral tilt (mean log-mel of the low half of the subsampled bins minus the high half) that
separates 'low' from 'high': real speech (jfk.flac) measures +0.1 on average (10th percentile
-0.65), the same speech resampled an octave up -2.9 (90th percentile -1.3)."""
TILT_GAIN = 2.0
LOUDNESS_FLOOR = -14.0
"""Mean log-mel above which a frame counts as sound (digital silence is -16.6, speech -13..-5)."""


@dataclass(frozen=True)
class SortformerDims:
    """What distinguishes the tiny model from the real one (117M parameters: 17 conformer layers
    of 512, 18 transformer layers of 192, 256 subsampling channels)."""

    fc_d_model: int = 64
    fc_layers: int = 1
    fc_heads: int = 4
    subsampling_channels: int = 16
    tf_d_model: int = 32
    tf_layers: int = 1
    tf_heads: int = 4


SORTFORMER_4SPK_V2_DIMS = SortformerDims(512, 17, 8, 256, 192, 18, 8)
"""The real streaming Sortformer's sizes (as above), for benchmarks with random weights."""


STREAMING = {
    # The real checkpoint's published streaming setting (about 10 s chunks): 124 frames of 80 ms
    # per chunk, 124 in the FIFO, 188 in the speaker cache; memory is bounded by their sum.
    "spkcache_len": 188, "fifo_len": 124, "chunk_len": 124, "spkcache_update_period": 124,
    "chunk_left_context": 1, "chunk_right_context": 1, "spkcache_sil_frames_per_spk": 3,
}


def sortformer_config(dims: SortformerDims = SortformerDims(), streaming: dict | None = None) -> dict:
    """The model section of NeMo's streaming_sortformer_diarizer_4spk-v2 config at `dims`."""
    s = dict(STREAMING, **(streaming or {}))
    return {
        "sample_rate": SAMPLE_RATE, "pil_weight": 0.5, "ats_weight": 0.5, "max_num_of_spks": 4,
        "streaming_mode": True,
        "model_defaults": {"fc_d_model": dims.fc_d_model, "tf_d_model": dims.tf_d_model},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "normalize": "NA", "window_size": 0.025, "sample_rate": SAMPLE_RATE, "window_stride": 0.01,
            "window": "hann", "features": 128, "n_fft": 512, "frame_splicing": 1, "dither": 0.00001,
        },
        "sortformer_modules": {
            "_target_": "nemo.collections.asr.modules.sortformer_modules.SortformerModules",
            "num_spks": 4, "dropout_rate": 0.0, "fc_d_model": dims.fc_d_model, "tf_d_model": dims.tf_d_model,
            **s,
            "scores_add_rnd": 0, "pred_score_threshold": 0.25, "max_index": 99999, "scores_boost_latest": 0.05,
            "sil_threshold": 0.2, "strong_boost_rate": 0.75, "weak_boost_rate": 1.5, "min_pos_scores_rate": 0.5,
            "causal_attn_rate": 0.0, "causal_attn_rc": 7,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": 128, "feat_out": -1, "n_layers": dims.fc_layers, "d_model": dims.fc_d_model,
            "subsampling": "dw_striding", "subsampling_factor": 8,
            "subsampling_conv_channels": dims.subsampling_channels, "causal_downsampling": False,
            "ff_expansion_factor": 4, "self_attention_model": "rel_pos", "n_heads": dims.fc_heads,
            "att_context_size": [-1, -1], "att_context_style": "regular", "xscaling": True,
            "untie_biases": True, "pos_emb_max_len": 5000, "conv_kernel_size": 9,
            "conv_norm_type": "batch_norm", "conv_context_size": None,
            "dropout": 0.0, "dropout_pre_encoder": 0.0, "dropout_emb": 0.0, "dropout_att": 0.0,
        },
        "transformer_encoder": {
            "_target_": "nemo.collections.asr.modules.transformer.transformer_encoders.TransformerEncoder",
            "num_layers": dims.tf_layers, "hidden_size": dims.tf_d_model, "inner_size": 2 * dims.tf_d_model,
            "num_attention_heads": dims.tf_heads, "attn_score_dropout": 0.0, "attn_layer_dropout": 0.0,
            "ffn_dropout": 0.0, "hidden_act": "relu", "pre_ln": False, "pre_ln_final_layer_norm": True,
        },
        "loss": {"_target_": "nemo.collections.asr.losses.bce_loss.BCELoss", "weight": None, "reduction": "mean"},
    }


def build_sortformer(dims: SortformerDims = SortformerDims(), streaming: dict | None = None, seed: int = 0):
    """A SortformerEncLabelModel with random weights (in eval mode)."""
    import torch
    from omegaconf import OmegaConf

    from nemo.collections.asr.models import SortformerEncLabelModel

    torch.manual_seed(seed)
    model = SortformerEncLabelModel(cfg=OmegaConf.create(sortformer_config(dims, streaming)))
    return model.eval()


def build_tiny_sortformer(out_path: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny streaming Sortformer (module docstring) to `out_path` and return its path."""
    out = Path(out_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    model = build_sortformer(seed=seed)
    _teach_pitch(model)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        partial = Path(tmp) / "model.nemo"
        model.save_to(str(partial))
        partial.replace(out)
    return out


def _teach_pitch(model) -> None:
    """Set weights so that slot 0 means 'loud, energy low in the spectrum' and slot 1 'loud,
    energy high in the spectrum'.

    The subsampling's first channel is made a smoothing filter over log-mel features (with a
    bias that keeps it above ReLU's knee), the others silent; its output projection reads two
    numbers from that channel: loudness (mean log-mel over bins minus a floor) and tilt (low bins
    minus high bins). Every conformer and transformer block is made a pass-through (its residual
    branches zeroed), so LayerNorms keep the direction of (tilt, loudness, constant). The head
    turns these into two sigmoids: loud and low -> slot 0, loud and high -> slot 1."""
    import torch

    enc = model.encoder
    conv = enc.pre_encode.conv  # Conv2d(1,C,3,s2) ReLU [dw Conv2d s2, pw Conv2d 1x1, ReLU] x2
    mods = list(conv)
    with torch.no_grad():
        for m in mods:
            if isinstance(m, torch.nn.Conv2d):
                m.weight.zero_()
                if m.bias is not None:
                    m.bias.zero_()
        convs = [m for m in mods if isinstance(m, torch.nn.Conv2d)]
        first, rest = convs[0], convs[1:]
        first.weight[0, 0] = 1.0 / 9.0
        first.bias[0] = 40.0  # log-mel is above -40 (NeMo's log guard is 2^-24: ln ~ -16.6)
        for m in rest:
            if m.groups > 1:  # depthwise: average its 3x3 patch
                m.weight[0, 0] = 1.0 / 9.0
            else:  # pointwise: pass channel 0 on
                m.weight[0, 0, 0, 0] = 1.0
        out = enc.pre_encode.out  # Linear(C * 16 frequency cells, d)
        n_freq = out.in_features // first.out_channels  # frequency cells per channel
        d = out.out_features
        out.weight.zero_()
        out.bias.zero_()
        half = n_freq // 2
        low, high = torch.zeros(n_freq), torch.zeros(n_freq)
        low[:half], high[half:] = 1.0 / half, 1.0 / (n_freq - half)
        scale = 1.0 / (d ** 0.5)  # undo the encoder's xscaling (sqrt(d)) so values stay O(10)
        # dim 0: tilt (low minus high bins, centred between a voice and the same voice an octave
        # up, both measured on real speech); dim 3: minus tilt; dim 1: loudness (mean log-mel
        # above -14: the subsampling's +40 removed); dim 2: a constant the LayerNorms scale against
        tilt = (low - high) * TILT_GAIN
        out.weight[0, :n_freq] = tilt * scale
        out.bias[0] = TILT_OFFSET * TILT_GAIN * scale
        out.weight[3, :n_freq] = -tilt * scale
        out.bias[3] = -TILT_OFFSET * TILT_GAIN * scale
        out.weight[1, :n_freq] = (low + high) * 0.5 * scale
        out.bias[1] = -(40.0 + LOUDNESS_FLOOR) * scale
        out.bias[2] = 4.0 * scale
        for layer in enc.layers:  # pass-through conformer layers (each ends in a LayerNorm)
            for name in ("feed_forward1", "feed_forward2"):
                getattr(layer, name).linear2.weight.zero_()
                getattr(layer, name).linear2.bias.zero_()
            layer.self_attn.linear_out.weight.zero_()
            layer.self_attn.linear_out.bias.zero_()
            layer.conv.pointwise_conv2.weight.zero_()
            if layer.conv.pointwise_conv2.bias is not None:
                layer.conv.pointwise_conv2.bias.zero_()
        sm = model.sortformer_modules
        proj = sm.encoder_proj  # fc_d_model -> tf_d_model: carry dims 0..3 over
        proj.weight.zero_()
        proj.bias.zero_()
        for i in range(4):
            proj.weight[i, i] = 1.0
        for layer in model.transformer_encoder.layers:
            layer.first_sub_layer.out_projection.weight.zero_()
            layer.first_sub_layer.out_projection.bias.zero_()
            layer.second_sub_layer.dense_out.weight.zero_()
            layer.second_sub_layer.dense_out.bias.zero_()
        # head: relu(h) -> first_hidden_to_hidden -> relu -> single_hidden_to_spks -> sigmoid.
        # After the LayerNorms h ~ sqrt(tf) * (tilt, loud, const, -tilt) / norm. Hidden unit 0 is
        # 'loud and low', 1 'loud and high' (loudness gates: silence's tilt alone cannot fire
        # them); slot 0 talks when 'low' clearly beats 'high', slot 1 the other way round.
        h1, h2 = sm.first_hidden_to_hidden, sm.single_hidden_to_spks
        h1.weight.zero_()
        h2.weight.zero_()
        h1.bias.zero_()
        h1.weight[0, 0], h1.weight[0, 1], h1.bias[0] = 1.0, 2.0, -6.0
        h1.weight[1, 3], h1.weight[1, 1], h1.bias[1] = 1.0, 2.0, -6.0
        h2.bias.fill_(-8.0)  # slots 2 and 3 never talk
        h2.weight[0, 0], h2.weight[0, 1], h2.bias[0] = 6.0, -6.0, -3.0
        h2.weight[1, 1], h2.weight[1, 0], h2.bias[1] = 6.0, -6.0, -3.0


build = build_tiny_sortformer
"""The `--kind sortformer` builder (asr.testing.build)."""
