"""The adapters' own batch path in place of NeMo's `transcribe()`: one padded batch built in
pinned host memory and copied without blocking, features computed on the device for the whole
batch, the encoder run once, the weights cast to the compute dtype once at load.

NeMo's `transcribe()` wraps in-memory arrays in a dataset and a DataLoader, collates each batch on
the CPU (padding arrays one at a time: ~1 s per 128 chunks on an H200 host), and on a GPU runs
under autocast, which re-casts every fp32 weight to bf16 at every layer call (half the GPU time
of a Canary batch in the profile). The modules themselves (preprocessor, encoder, decoders,
tokenizer, decoding) are NeMo's; only the data loading and the casting are replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


def cast_for_inference(model, device: str) -> None:
    """On CUDA: every weight to bf16 once, except the mel front ends, which stay fp32 (their STFT,
    mel filterbank and log would lose precision in bf16, and they are a small share of the time),
    and the timestamp aligner's CTC head (a 1024 x 1025 projection whose log-probs the Viterbi
    compares).
    On CPU nothing changes (fp32)."""
    import torch

    if not device.startswith("cuda"):
        return
    model.to(torch.bfloat16)
    aligner = getattr(model, "timestamps_asr_model", None)
    if aligner is not None:  # not a registered submodule of the AED model
        aligner.to(torch.bfloat16)
        aligner.decoder.to(torch.float32)  # its log-softmax feeds the Viterbi: keep ties rare
    for front in _preprocessors(model):
        front.to(torch.float32)


def _preprocessors(model):
    yield model.preprocessor
    aligner = getattr(model, "timestamps_asr_model", None)
    if aligner is not None:
        yield aligner.preprocessor


def compute_dtype(module):
    """The dtype the module's weights hold (bf16 on CUDA after `cast_for_inference`)."""
    return next(module.parameters()).dtype


class HostStaging:
    """A pinned host buffer reused for every batch (one allocation, grown when needed), so each
    batch is one copy into pinned memory and one asynchronous copy to the device."""

    def __init__(self, device: str):
        self.device = device
        self._buffer = None

    def batch(self, audios: Sequence[np.ndarray]) -> "DeviceBatch":
        import torch

        lengths = [int(a.size) for a in audios]
        n, width = len(audios), max(lengths)
        pinned = self.device.startswith("cuda")
        if self._buffer is None or self._buffer.numel() < n * width:
            self._buffer = torch.empty(n * width, dtype=torch.float32, pin_memory=pinned)
        host = self._buffer[: n * width].view(n, width)
        host_np = host.numpy()
        for row, audio in zip(host_np, audios):
            row[: audio.size] = audio
            row[audio.size:] = 0.0
        lens = torch.tensor(lengths, dtype=torch.long)
        if not pinned:
            return DeviceBatch(host.clone(), lens)
        signal = host.to(self.device, non_blocking=True)
        lens = lens.pin_memory().to(self.device, non_blocking=True)
        # The next batch overwrites the pinned buffer: make sure this copy has left it.
        torch.cuda.current_stream().synchronize()
        return DeviceBatch(signal, lens)


@dataclass
class DeviceBatch:
    signal: object
    """(B, samples) float32 on the model's device, right-padded with zeros."""
    lengths: object
    """(B,) long."""


def features(preprocessor, batch: DeviceBatch):
    """(features (B, mels, frames) float32, frame lengths) for the whole batch on the device."""
    return preprocessor(input_signal=batch.signal, length=batch.lengths)


def prepare(staging: HostStaging, preprocessor, audios: Sequence[np.ndarray], stages):
    """The stages every adapter starts with: the padded batch on the device, then its features.
    Returns (the device batch, features, frame lengths); `stages` is the adapter's StageTimer."""
    stages.start(staging.device)
    data = staging.batch(audios)
    stages.mark("batch")
    feats, feat_lens = features(preprocessor, data)
    stages.mark("features")
    return data, feats, feat_lens
