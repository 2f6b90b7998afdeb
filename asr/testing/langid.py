"""A tiny language identifier with AmberNet's structure whose decision tests can steer by pitch.

AmberNet (NeMo `langid_ambernet`, the TitaNet-LID paper) is an `EncDecSpeakerLabelModel`: a log-mel
preprocessor, a `ConvASREncoder` of depthwise-separable 1-D convolution blocks with
squeeze-and-excitation (a kernel-3 prologue, three residual mega-blocks of kernels 7, 11 and 15 with
three sub-blocks each, a 1x1 epilogue three times as wide), and a `SpeakerDecoder` with attentive
statistics pooling and one embedding layer before the class layer. This builder keeps that layout
at 32 filters instead of 1024 (TINY_DIMS) and sets the weights by hand, so the decision is a
documented function of the input instead of noise:

THE RULE. For each 10 ms frame the model takes the log-mel energy averaged over the bands centred
between UPPER_BAND_HZ, minus the same average over LOWER_BAND_HZ: the spectral balance, which
rises when speech is pitched up (resampling moves voice pitch and formants together) and falls
when it is pitched down. Its mean over the valid frames, minus BALANCE_OFFSET, is the "balance" b.
Then logits are `+SHARPNESS*b` for HIGH_LABEL ("de"), `-SHARPNESS*b` for LOW_LABEL ("en") and
OTHER_LOGIT for every other label: low-pitched speech (or a low tone) -> "en", high-pitched
speech (or a high tone) -> "de", and speech near the boundary gets split probabilities.
The preprocessor does not normalise features (`normalize: "none"`): per-feature normalisation
would remove each band's mean and with it the balance; log energies make b independent of level
for speech (a band with almost no energy, as between a pure tone's harmonics, sits on the log
floor and does not scale; the pipeline feeds chunks normalised to -23 LUFS anyway).
Padding cannot leak: the convolutions are masked and the pooling averages valid frames only.

In practice (measured on the shared recordings, tests/test_langid.py): the recordings as they are,
or pitched down, -> "en" with p > 0.99; the same speech played 1.5 times faster or more (resampled
from 16 kHz * factor to 16 kHz) -> "de" with p > 0.99; about 1.3x is the boundary. Harmonic tones
with f0 up to 300 Hz -> "en", from 400 Hz -> "de".
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

LOW_LABEL = "en"
HIGH_LABEL = "de"
EXTRA_LABELS = ("hi", "ja", "zh", "ar")
"""Labels outside Canary's 25, as AmberNet's 107 include: routing must never pick them."""
LOWER_BAND_HZ = (60.0, 400.0)
UPPER_BAND_HZ = (400.0, 1600.0)
BALANCE_OFFSET = 2.0
SHARPNESS = 6.0
OTHER_LOGIT = -6.0


@dataclass(frozen=True)
class LangidDims:
    """The sizes that tell the tiny model from AmberNet-sized (everything else is shared)."""

    filters: int
    n_mels: int
    emb_size: int
    attention_channels: int


TINY_DIMS = LangidDims(filters=32, n_mels=64, emb_size=16, attention_channels=16)
AMBERNET_DIMS = LangidDims(filters=1024, n_mels=80, emb_size=512, attention_channels=128)
"""TitaNet-L widths, as AmberNet keeps them (24 M parameters here; the real checkpoint has
about 29 M): for cost estimates (benchmarks/langid.py) only."""


def labels() -> tuple[str, ...]:
    """Canary's 25 codes plus a few that Canary cannot transcribe, sorted as NeMo sorts labels."""
    from asr.languages import CODES

    return tuple(sorted(set(CODES) | set(EXTRA_LABELS)))


def _config(label_list: tuple[str, ...], dims: LangidDims) -> dict:
    def block(kernel: int, repeat: int, residual: bool, filters: int = dims.filters) -> dict:
        return {"filters": filters, "repeat": repeat, "kernel": [kernel], "stride": [1], "dilation": [1],
                "dropout": 0.0, "residual": residual, "separable": True, "se": True, "se_context_size": -1}

    return {
        "sample_rate": 16000,
        "train_ds": {"manifest_filepath": None, "sample_rate": 16000, "labels": list(label_list),
                     "batch_size": 8, "shuffle": False},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "normalize": "none", "window_size": 0.025, "window_stride": 0.01, "window": "hann",
            "sample_rate": 16000, "features": dims.n_mels, "n_fft": 512, "frame_splicing": 1, "dither": 0.0,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConvASREncoder",
            "feat_in": dims.n_mels, "activation": "relu", "conv_mask": True,
            "jasper": [block(3, 1, False), block(7, 3, True), block(11, 3, True), block(15, 3, True),
                       block(1, 1, False, filters=3 * dims.filters)],
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.SpeakerDecoder",
            "feat_in": 3 * dims.filters, "num_classes": len(label_list), "pool_mode": "attention",
            "emb_sizes": dims.emb_size, "attention_channels": dims.attention_channels,
        },
        "loss": {"_target_": "nemo.collections.common.losses.cross_entropy.CrossEntropyLoss"},
    }


def build_langid_like(seed: int = 0, dims: LangidDims = TINY_DIMS, label_list: tuple[str, ...] | None = None):
    """An AmberNet-structured `EncDecSpeakerLabelModel` with THE RULE's weights (in memory)."""
    import torch
    from omegaconf import OmegaConf

    from nemo.collections.asr.models import EncDecSpeakerLabelModel

    torch.manual_seed(seed)
    label_list = label_list or labels()
    cfg = OmegaConf.create(_config(label_list, dims))
    # NeMo 3.0: building a label model with train_ds present overwrites its labels with None.
    train_ds = cfg.pop("train_ds")
    model = EncDecSpeakerLabelModel(cfg=cfg)
    with torch.no_grad():
        _set_rule(model, label_list)
    OmegaConf.set_struct(model._cfg, False)
    model._cfg.train_ds = train_ds
    model.labels = list(label_list)
    return model.eval()


def _band_weights(model) -> "torch.Tensor":
    """Per-mel-band weights of the spectral balance: +mean over UPPER_BAND_HZ, -mean over LOWER."""
    import torch

    fb = model.preprocessor.featurizer.fb.squeeze(0)  # (n_mels, n_fft // 2 + 1)
    n_fft = model.preprocessor.featurizer.n_fft
    centre_hz = fb.argmax(dim=1).float() * 16000.0 / n_fft
    lower = (centre_hz >= LOWER_BAND_HZ[0]) & (centre_hz < LOWER_BAND_HZ[1])
    upper = (centre_hz >= UPPER_BAND_HZ[0]) & (centre_hz < UPPER_BAND_HZ[1])
    if not lower.any() or not upper.any():
        raise RuntimeError("the mel filterbank has no band in one of the rule's ranges")
    w = torch.zeros(fb.shape[0])
    w[upper] = 1.0 / upper.sum()
    w[lower] = -1.0 / lower.sum()
    return w


def _identity_bn(bn) -> None:
    bn.weight.fill_(1.0)
    bn.bias.fill_(0.0)
    bn.running_mean.fill_(0.0)
    bn.running_var.fill_(1.0 - bn.eps)  # so that (x - 0) / sqrt(var + eps) == x


def _set_rule(model, label_list: tuple[str, ...]) -> None:
    """Weights that compute THE RULE (module docstring). Two channels carry relu(+d) and relu(-d)
    of the per-frame balance d through every block; all other channels stay zero."""
    import torch
    from torch import nn

    from nemo.collections.asr.parts.submodules.jasper import JasperBlock, MaskedConv1d, SqueezeExcite

    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d):
            _identity_bn(module)
        elif isinstance(module, SqueezeExcite):  # zero weights: every gate is sigmoid(0) = 1/2
            for p in module.parameters():
                p.zero_()
    blocks = [b for b in model.encoder.encoder if isinstance(b, JasperBlock)]
    # Each block passes the same two channels on. Two SE gates of 1/2 (prologue and epilogue)
    # scale them by 1/4; the band weights are scaled by 4 to undo it.
    gain = 4.0
    for i, block in enumerate(blocks):
        convs = [m.conv for m in block.mconv if isinstance(m, MaskedConv1d)]
        depthwise, pointwise = convs[0::2], convs[1::2]
        for conv in depthwise:  # a delta at the kernel's centre: identity in time
            conv.weight.zero_()
            conv.weight[:, :, conv.kernel_size[0] // 2] = 1.0
        for conv in pointwise:
            conv.weight.zero_()
        if i == 0:
            w = _band_weights(model) * gain
            pointwise[0].weight[0, :, 0] = w
            pointwise[0].weight[1, :, 0] = -w
        elif block.res is not None and len(block.res) > 0:  # main path 0, residual = identity
            for res in block.res:
                for m in res:
                    if isinstance(m, MaskedConv1d):
                        m.conv.weight.zero_()
                        m.conv.weight[:, :, 0] = torch.eye(m.conv.weight.shape[0], m.conv.weight.shape[1])
        else:  # the epilogue: the two channels straight through
            pointwise[-1].weight[0, 0, 0] = 1.0
            pointwise[-1].weight[1, 1, 0] = 1.0

    decoder = model.decoder
    attention_out = decoder._pooling.attention_layer[-1]
    attention_out.weight.zero_()  # equal attention on every valid frame: pooling = masked mean
    attention_out.bias.zero_()
    emb_conv = decoder.emb_layers[0][1]
    emb_conv.weight.zero_()
    emb_conv.bias.zero_()
    emb_conv.weight[0, 0, 0] = 1.0  # mean relu(d) - mean relu(-d) = mean d
    emb_conv.weight[0, 1, 0] = -1.0
    final = decoder.final
    final.weight.zero_()
    final.bias.fill_(OTHER_LOGIT)
    hi, lo = label_list.index(HIGH_LABEL), label_list.index(LOW_LABEL)
    final.weight[hi, 0] = SHARPNESS
    final.weight[lo, 0] = -SHARPNESS
    final.bias[hi] = -SHARPNESS * BALANCE_OFFSET
    final.bias[lo] = SHARPNESS * BALANCE_OFFSET


def build_tiny_langid(out_path: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny identifier as a .nemo that `EncDecSpeakerLabelModel.restore_from` (and so
    `asr.models.langid.LanguageIdentifier`) loads like the real AmberNet. Same signature as the
    Canary builder, for `python -m asr tiny-model --kind langid`. `seed` only fills weights the
    rule multiplies by zero, so every seed gives the same decisions."""
    out = Path(out_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    from asr.models.runtime import quiet_nemo

    with quiet_nemo():
        model = build_langid_like(seed)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp, quiet_nemo():
        partial = Path(tmp) / out.name
        model.save_to(str(partial))
        partial.replace(out)
    return out


build = build_tiny_langid
"""The `--kind langid` builder (asr.testing.build)."""
