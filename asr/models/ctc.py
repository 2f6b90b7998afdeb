"""CTC models: NeMo `EncDecCTCModel` and `EncDecCTCModelBPE` (stt_hi_conformer_ctc_medium,
parakeet-ctc). Word and segment times are the greedy decoder's frame offsets, in seconds.
See `native` for languages.
"""

from __future__ import annotations

from .native import NativeTimestampModel


class CTCModel(NativeTimestampModel):
    family = "ctc"

    def _decode(self, encoded, encoded_len):
        log_probs = self.model.decoder(encoder_output=encoded)
        return self.model.decoding.ctc_decoder_predictions_tensor(log_probs, decoder_lengths=encoded_len,
                                                                  return_hypotheses=True)
