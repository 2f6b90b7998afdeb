"""The subsampling with fewer masks gives bit for bit what NeMo's masked convolutions give, for
every model kind's encoder (and Canary's timestamp aligner), on batches of different lengths,
padded past their longest row, and with no padding at all. Row by row (the CPU's way) the
result is the same up to float rounding, and exactly zero where NeMo's is."""

from __future__ import annotations

import pytest
import torch

from asr.models import runtime, subsampling


@pytest.mark.parametrize("kind", ["canary", "parakeet-tdt", "ctc"])
def test_sparing_masks_changes_no_bit_of_the_subsampled_features(kind):
    from nemo.collections.asr.parts.submodules.subsampling import MaskedConvSequential

    from tests.service import ensure_tiny_model

    model = runtime.restore(str(ensure_tiny_model(kind)), "cpu")
    owners = [m for m in (model, getattr(model, "timestamps_asr_model", None)) if m is not None]
    convs = [(m, owner.cfg.preprocessor.features) for owner in owners for m in owner.modules()
             if isinstance(m, MaskedConvSequential)]
    assert convs, f"the tiny {kind} has no masked subsampling"
    assert subsampling.spare_masks(model) == len(convs)
    assert subsampling.spare_masks(model) == 0, "a second call changes nothing"
    torch.manual_seed(0)
    with torch.inference_mode():
        for lengths, frames in (([301, 173, 64, 9], 301), ([250, 250], 250), ([250, 199], 263), ([7], 12), ([40, 0], 40)):
            # features outside a row's length are not zero, as a batch's may be after NeMo's
            # normalisation: the masks, not the input, must keep them out
            lens = torch.tensor(lengths)
            for conv, mels in convs:
                x = torch.randn(len(lengths), frames, mels)
                theirs, their_lens = MaskedConvSequential.forward(conv, x, lens)
                ours, our_lens = subsampling._batched(conv, x, lens)
                assert torch.equal(our_lens, their_lens)
                assert torch.equal(ours, theirs), f"{kind}: {(ours - theirs).abs().max().item()}"
                for way in (conv, subsampling._row_by_row.__get__(conv)):  # the CPU's way, either call
                    ours, our_lens = way(x, lens)
                    assert torch.equal(our_lens, their_lens) and ours.shape == theirs.shape
                    # the same up to float rounding (a convolution over a shorter input may sum
                    # in another order, as any change of batch shape does) ...
                    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
                    for row, valid in enumerate(their_lens.tolist()):  # ... and zero past each row's end
                        assert not ours[row, :, valid:].any()
