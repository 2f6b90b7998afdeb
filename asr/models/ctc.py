"""CTC models: NeMo `EncDecCTCModel` and `EncDecCTCModelBPE` (stt_hi_conformer_ctc_medium,
parakeet-ctc). Word and segment times are the greedy decoder's frame offsets, in seconds.
See `native` for languages.
"""

from __future__ import annotations

from . import confidence
from .native import NativeTimestampModel


class CTCModel(NativeTimestampModel):
    family = "ctc"

    def _decode(self, encoded, encoded_len, decoding):
        log_probs = self.model.decoder(encoder_output=encoded)
        return decoding.ctc_decoder_predictions_tensor(log_probs, decoder_lengths=encoded_len,
                                                       return_hypotheses=True), log_probs

    def _confidences(self, hyps, log_probs):
        """Each token's label at the best frame of its run (the log-probs it was decoded from)."""
        ids, logprobs = confidence.ctc_token_logprobs(log_probs, hyps, blank=log_probs.shape[-1] - 1)
        return self._words(ids, logprobs)
