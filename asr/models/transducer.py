"""Transducers: NeMo `EncDecRNNTModel` and subclasses (`EncDecRNNTBPEModel`,
`EncDecHybridRNNTCTCBPEModel`; TDT and RNN-T decoding): parakeet-tdt-0.6b-v3/-v2, parakeet-rnnt.

Hybrid models decode with their transducer head (NeMo's default). Word and segment times are the
decoder's frame offsets (token durations for TDT), in seconds. See `native` for languages.
"""

from __future__ import annotations

from .native import NativeTimestampModel


class TransducerModel(NativeTimestampModel):
    family = "transducer"

    def _decode(self, encoded, encoded_len):
        return self.model.decoding.rnnt_decoder_predictions_tensor(encoded, encoded_len, return_hypotheses=True)
