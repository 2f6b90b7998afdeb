"""Transducers: NeMo `EncDecRNNTModel` and subclasses (`EncDecRNNTBPEModel`,
`EncDecHybridRNNTCTCBPEModel`; TDT and RNN-T decoding): parakeet-tdt-0.6b-v3/-v2, parakeet-rnnt.

Hybrid models decode with their transducer head (NeMo's default). Word and segment times are the
decoder's frame offsets (token durations for TDT), in seconds. See `native` for languages.

On CUDA the decoder always sees the same shape: the batch padded to the model's batch size and
the encoder output to FIXED_FRAMES (padding rows one frame long), so NeMo's label-looping decoder
captures its CUDA graphs once and never re-allocates its state for a new batch or length. Its
illegal memory access (H200, NeMo 3.0: `batched_hyps_to_hypotheses`) came, twice, on a call
right after the batch size had changed within a process; with one shape it did not come back in
the GPU check's stress part (README "Performance").
"""

from __future__ import annotations

from . import confidence
from .native import NativeTimestampModel

FIXED_FRAMES = 256
"""Encoder frames the decoder is padded to: 20.48 s at 80 ms, above the front end's 20 s chunks."""


class TransducerModel(NativeTimestampModel):
    family = "transducer"

    def _decode(self, encoded, encoded_len, decoding):
        original = encoded
        rows, frames = encoded.shape[0], encoded.shape[2]
        if self.device.startswith("cuda"):
            want_rows, want_frames = max(rows, self.batch_size), max(frames, FIXED_FRAMES)
            if (want_rows, want_frames) != (rows, frames):
                padded = encoded.new_zeros(want_rows, encoded.shape[1], want_frames)
                padded[:rows, :, :frames] = encoded
                lengths = encoded_len.new_ones(want_rows)
                lengths[:rows] = encoded_len
                encoded, encoded_len = padded, lengths
        out = decoding.rnnt_decoder_predictions_tensor(encoded, encoded_len, return_hypotheses=True)
        if isinstance(out, tuple):
            out = out[0]
        return list(out)[:rows], original

    def _confidences(self, hyps, encoded):
        """From each token's frame (`timestamp['timestep']`, which NeMo's decoder records) and the
        encoder output it was decoded from."""
        frames = []
        for h in hyps:
            stamps = h.timestamp if isinstance(h.timestamp, dict) else {}
            steps = stamps.get("timestep", h.timestamp if not isinstance(h.timestamp, dict) else None)
            steps = steps.tolist() if hasattr(steps, "tolist") else list(steps or [])
            frames.append(steps)
        if any(len(f) != len(confidence.token_ids(h)) for f, h in zip(frames, hyps)):
            return [None] * len(hyps)  # a decoder that did not record a frame per token
        logprobs = confidence.transducer_token_logprobs(self.model, encoded, frames, hyps)
        return self._words([confidence.token_ids(h) for h in hyps], logprobs)
