"""Who spoke when: NVIDIA Streaming Sortformer (NeMo `SortformerEncLabelModel`) on in-memory audio.

`Diarizer.diarize` runs the model in its streaming mode over the whole recording and returns the
frame probabilities (asr.types.SpeakerActivity); asr.post.speakers turns them into speakers on
words and segments. NeMo's `diarize()` reads files and its label strings are grouped by speaker,
not by time, so neither is used.

Why not `model.forward`: in streaming mode NeMo still computes the mel features of the whole
recording at once (the STFT of a 2-hour file is ~1.5 GB of complex values) and grows its
prediction tensor by concatenation. Here features are computed window by window, for exactly
the frames each streaming step reads (plus a few frames of margin so the STFT and pre-emphasis
see the same samples they would on the whole file), and each step's predictions are copied out.
Memory then depends on the streaming setting (chunk, FIFO and speaker-cache lengths), not on the
recording's length; the output is the same as NeMo's own streaming forward (tested).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from .. import settings
from ..errors import ModelLoadError
from ..types import SAMPLE_RATE, SpeakerActivity

log = logging.getLogger(__name__)

DEFAULT_DIAR_MODEL = settings.DEFAULT_DIAR_MODEL
MARGIN_FRAMES = 4
"""Extra 10 ms feature frames computed on each side of a window: the 512-sample STFT reaches
2.6 frames beyond a frame's centre; pre-emphasis one sample more."""


class Diarizer:
    """A loaded Streaming Sortformer. Load once (`Diarizer.load`), then `diarize` per recording."""

    def __init__(self, model, name: str, device: str, load_s: float = 0.0) -> None:
        self.model = model.eval()
        self.name = name
        self.device = device
        self.load_s = load_s
        self.max_speakers = int(model.sortformer_modules.n_spk)
        self.frame_s = float(model.encoder.subsampling_factor * model.preprocessor._cfg.window_stride)
        featurizer = model.preprocessor.featurizer
        # Per-feature normalisation (if a checkpoint uses it) needs whole-file statistics: they are
        # gathered in a first streaming pass (see _feature_stats), so the window features are
        # computed without it.
        norm = featurizer.normalize
        self._normalize = norm if norm in ("per_feature",) else None
        if norm not in (None, "NA", "per_feature", ""):
            raise ModelLoadError(f"ASR_DIAR_MODEL={name}: unsupported feature normalisation {norm!r}")
        featurizer.normalize = None
        self._hop = int(featurizer.hop_length)
        if not model.streaming_mode:
            log.warning("diarizer %s is not configured for streaming; running it in streaming mode", name)
            model.streaming_mode = True
            model.sortformer_modules._check_streaming_parameters()

    @classmethod
    def load(cls, name_or_path: str | None = None, device: str | None = None) -> "Diarizer":
        """From a .nemo path or a pretrained name (default DEFAULT_DIAR_MODEL); any failure is a
        ModelLoadError naming ASR_DIAR_MODEL."""
        from nemo.collections.asr.models import SortformerEncLabelModel

        from .runtime import pick_device, restore

        name = name_or_path or settings.diar_model() or DEFAULT_DIAR_MODEL
        started = time.perf_counter()
        dev = pick_device(device)
        model = restore(name, dev, "ASR_DIAR_MODEL", cls=SortformerEncLabelModel,
                        hint="; or set ASR_DIAR_MODEL=none to turn diarization off")
        return cls(model, name=name, device=dev, load_s=time.perf_counter() - started)

    # -- features ------------------------------------------------------------------------------

    def _features(self, audio, f0: int, f1: int):
        """Mel features of global frames [f0, f1) as (1, features, f1 - f0), computed from a
        window with MARGIN_FRAMES of context on each side (clipped at the recording's ends,
        exactly as the whole-file computation is)."""
        import torch

        a = max(0, (f0 - MARGIN_FRAMES)) * self._hop
        b = min(audio.shape[0], (f1 + MARGIN_FRAMES) * self._hop)
        piece = torch.from_numpy(np.ascontiguousarray(audio[a:b], dtype=np.float32)).to(self.device)[None]
        length = torch.tensor([piece.shape[1]], device=self.device)
        feats, _ = self.model.preprocessor(input_signal=piece, length=length)
        offset = f0 - a // self._hop
        return feats[:, :, offset : offset + (f1 - f0)]

    def _feature_stats(self, audio, n_frames: int, step: int):
        """Whole-recording mean and std of each feature (NeMo's per_feature normalisation),
        accumulated window by window."""
        total = None
        total_sq = None
        for f0 in range(0, n_frames, step):
            f = self._features(audio, f0, min(f0 + step, n_frames))[0].double()
            s, sq = f.sum(dim=1), (f * f).sum(dim=1)
            total = s if total is None else total + s
            total_sq = sq if total_sq is None else total_sq + sq
        mean = total / n_frames
        var = ((total_sq - n_frames * mean * mean) / max(n_frames - 1, 1)).clamp(min=0.0)
        std = var.sqrt() + 1e-5
        return mean.float()[None, :, None], std.float()[None, :, None]

    # -- inference -----------------------------------------------------------------------------

    def diarize(self, audio: np.ndarray) -> SpeakerActivity:
        """Frame probabilities of each speaker slot over the whole recording (16 kHz mono)."""
        import torch

        audio = np.asarray(audio)
        if audio.ndim != 1:
            raise ValueError(f"the diarizer takes mono audio, got shape {audio.shape}")
        started = time.perf_counter()
        m = self.model
        sm = m.sortformer_modules
        sub = int(sm.subsampling_factor)
        n_frames = audio.shape[0] // self._hop  # NeMo's feature count (get_seq_len, centred STFT)
        n_out = math.ceil(n_frames / sub) if n_frames else 0
        probs = np.zeros((n_out, self.max_speakers), dtype=np.float32)
        if n_frames < sub:
            return SpeakerActivity(probs, self.frame_s)
        step = sm.chunk_len * sub
        with torch.inference_mode():
            stats = self._feature_stats(audio, n_frames, step) if self._normalize else None
            state = sm.init_streaming_state(batch_size=1, async_streaming=m.async_streaming, device=m.device)
            empty = torch.zeros((1, 0, sm.n_spk), device=m.device)
            row = 0
            for stt in range(0, n_frames, step):  # NeMo's streaming_feat_loader, window by window
                end = min(stt + step, n_frames)
                left = min(sm.chunk_left_context * sub, stt)
                right = min(sm.chunk_right_context * sub, n_frames - end)
                feats = self._features(audio, stt - left, end + right)
                if stats is not None:
                    feats = (feats - stats[0]) / stats[1]
                lengths = torch.tensor([feats.shape[2]], device=m.device)
                state, chunk_preds = m.forward_streaming_step(
                    processed_signal=feats.transpose(1, 2), processed_signal_length=lengths,
                    streaming_state=state, total_preds=empty, left_offset=left, right_offset=right,
                )
                chunk = chunk_preds[0].float().cpu().numpy()
                take = min(chunk.shape[0], n_out - row)
                probs[row : row + take] = chunk[:take]
                row += take
        log.info("diarized %.1f s of audio in %.2f s (%d frames, %d speakers active)",
                 audio.shape[0] / SAMPLE_RATE, time.perf_counter() - started, n_out,
                 SpeakerActivity(probs, self.frame_s).num_speakers())
        return SpeakerActivity(probs, self.frame_s)
