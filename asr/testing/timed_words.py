"""The rule the tiny transducer and CTC models follow, so tests can predict their output.

Their encoders are set to ignore the sound and output only where each frame is: the subsampling's
output projection is zero, every Conformer block's residual branches are zero, and the encoder
adds absolute positions (`abs_pos`), so frame t of the output is a fixed vector E[t]. The output
head is set so that frame `word_frame(k)` (k - 0.5 s into the chunk) emits word k of the model's
word list and every other frame is blank. So a chunk of D seconds says the first ~round(D) words:
the text depends on the chunk's length, and a result attached to the wrong chunk is visible.
"""

from __future__ import annotations


from ..types import SAMPLE_RATE

HOP_SAMPLES = 160
"""10 ms mel frames."""
SUBSAMPLING = 8
FRAME_S = HOP_SAMPLES * SUBSAMPLING / SAMPLE_RATE
"""One encoder frame: 80 ms."""
MIN_INPUT_S = 1.0
"""The adapters pad shorter chunks to this (asr.models.base.MIN_INPUT_S)."""


def encoded_frames(num_samples: int) -> int:
    """Encoder frames NeMo computes for `num_samples` (centred STFT, then three stride-2 convs)."""
    frames = num_samples // HOP_SAMPLES + 1
    for _ in range(3):
        frames = (frames - 1) // 2 + 1
    return frames


def word_frame(k: int) -> int:
    """The encoder frame at which word k (1-based) is said: k - 0.5 s into the chunk."""
    return int(round((k - 0.5) / FRAME_S))


def words_for(duration_s: float, words: list[str] | tuple[str, ...]) -> list[str]:
    """What the tiny model says for a chunk of `duration_s` seconds (after the adapters' padding)."""
    n = encoded_frames(max(int(round(duration_s * SAMPLE_RATE)), int(MIN_INPUT_S * SAMPLE_RATE)))
    return [w for k, w in enumerate(words, start=1) if word_frame(k) < n]


def position_only_encoder(encoder) -> None:
    """Zero the subsampling's output and every block's residual branches (see module docstring)."""
    import torch

    with torch.no_grad():
        out = encoder.pre_encode.out
        out.weight.zero_()
        out.bias.zero_()
        for layer in encoder.layers:
            for linear in (layer.feed_forward1.linear2, layer.feed_forward2.linear2,
                           layer.self_attn.linear_out, layer.conv.pointwise_conv2):
                linear.weight.zero_()
                if linear.bias is not None:
                    linear.bias.zero_()


def frame_vectors(model, num_frames: int):
    """E[t] for t < num_frames: the position-only encoder's output, (num_frames, d)."""
    import torch

    n = (num_frames * SUBSAMPLING - 1) * HOP_SAMPLES
    with torch.inference_mode():
        audio = torch.zeros(1, n)
        feats, feat_len = model.preprocessor(input_signal=audio, length=torch.tensor([n]))
        enc, enc_len = model.encoder(audio_signal=feats, length=feat_len)
    if int(enc_len[0]) < num_frames:
        raise ValueError(f"the encoder gave {int(enc_len[0])} frames, fewer than {num_frames}")
    return enc[0, :, :num_frames].T.clone()  # NeMo's encoder output is (B, d, T)


def detector_weights(vectors, frames: list[int], gain: float = 60.0):
    """(weights (n, d), biases (n,)) so that `weights @ E[t] + bias` is positive only at t = frames[i]
    for detector i (and clearly negative elsewhere). Raises if some frame is not separable."""
    import torch

    E = vectors / vectors.norm(dim=1, keepdim=True)
    weights, biases = [], []
    for f in frames:
        sims = E @ E[f]
        others = sims.clone()
        others[f] = -1.0
        margin = 1.0 - float(others.max())
        if margin < 1e-3:
            raise ValueError(f"frame {f} is not separable from its neighbours (margin {margin:.2e})")
        scale = gain / margin
        weights.append(scale * E[f] / vectors[f].norm())
        biases.append(-scale * (1.0 - margin / 2))
    return torch.stack(weights), torch.tensor(biases)


def word_detectors(model, words: list[str] | tuple[str, ...]):
    """Make `model`'s encoder position-only and return what its output head needs to say word k
    at `word_frame(k)`: (token id of each word, detector weights, biases), as detector_weights."""
    from ._common import single_token_ids

    position_only_encoder(model.encoder)
    ids = single_token_ids(model.tokenizer, list(words))
    frames = [word_frame(k) for k in range(1, len(words) + 1)]
    weights, biases = detector_weights(frame_vectors(model, frames[-1] + 60), frames)
    return ids, weights, biases
