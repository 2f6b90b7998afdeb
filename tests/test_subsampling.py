"""The subsampling with fewer masks gives bit for bit what NeMo's masked convolutions give, for
every model kind's encoder (and Canary's timestamp aligner), on batches of different lengths
and on batches with no padding at all."""

from __future__ import annotations

import pytest
import torch

from asr.models import runtime
from asr.models.subsampling import spare_masks


@pytest.mark.parametrize("kind", ["canary", "parakeet-tdt", "ctc"])
def test_sparing_masks_changes_no_bit_of_the_subsampled_features(kind):
    from nemo.collections.asr.parts.submodules.subsampling import MaskedConvSequential

    from tests.service import ensure_tiny_model

    model = runtime.restore(str(ensure_tiny_model(kind)), "cpu")
    owners = [m for m in (model, getattr(model, "timestamps_asr_model", None)) if m is not None]
    convs = [(m, owner.cfg.preprocessor.features) for owner in owners for m in owner.modules()
             if isinstance(m, MaskedConvSequential)]
    assert convs, f"the tiny {kind} has no masked subsampling"
    assert spare_masks(model) == len(convs)
    assert spare_masks(model) == 0, "a second call changes nothing"
    torch.manual_seed(0)
    with torch.inference_mode():
        for lengths in ([301, 173, 64, 9], [250, 250]):
            # features outside a row's length are not zero, as a batch's may be after NeMo's
            # normalisation: the masks, not the input, must keep them out
            lens = torch.tensor(lengths)
            for conv, mels in convs:
                x = torch.randn(len(lengths), max(lengths), mels)
                theirs, their_lens = MaskedConvSequential.forward(conv, x, lens)
                ours, our_lens = conv(x, lens)
                assert torch.equal(our_lens, their_lens)
                assert torch.equal(ours, theirs), f"{kind}: {(ours - theirs).abs().max().item()}"
