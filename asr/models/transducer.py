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

from .native import NativeTimestampModel

FIXED_FRAMES = 256
"""Encoder frames the decoder is padded to: 20.48 s at 80 ms, above the front end's 20 s chunks."""


class TransducerModel(NativeTimestampModel):
    family = "transducer"

    def _decode(self, encoded, encoded_len):
        rows, frames = encoded.shape[0], encoded.shape[2]
        if self.device.startswith("cuda"):
            want_rows, want_frames = max(rows, self.batch_size), max(frames, FIXED_FRAMES)
            if (want_rows, want_frames) != (rows, frames):
                padded = encoded.new_zeros(want_rows, encoded.shape[1], want_frames)
                padded[:rows, :, :frames] = encoded
                lengths = encoded_len.new_ones(want_rows)
                lengths[:rows] = encoded_len
                encoded, encoded_len = padded, lengths
        out = self.model.decoding.rnnt_decoder_predictions_tensor(encoded, encoded_len, return_hypotheses=True)
        if isinstance(out, tuple):
            out = out[0]
        return list(out)[:rows]
