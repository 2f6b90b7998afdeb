"""CTC models: NeMo `EncDecCTCModel` and `EncDecCTCModelBPE` (stt_hi_conformer_ctc_medium,
parakeet-ctc). Word and segment times are the greedy decoder's frame offsets, in seconds.
See `native` for languages.
"""

from __future__ import annotations

from .native import NativeTimestampModel


class CTCModel(NativeTimestampModel):
    family = "ctc"
