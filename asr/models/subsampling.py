"""The conformer's convolutional subsampling with only the masks that change its output.

NeMo's `MaskedConvSequential` zeroes the padded frames before every layer and once more at the
end: nine full passes over the largest activations of the encoder (channels x frames/2 x mels/2)
for the usual `dw_striding` stack, where four give the same result. Padding can reach a real
frame only through a convolution whose kernel spans several frames, so the mask is needed before
those (and at the end); a 1x1 convolution reads only its own frame, and ReLU-like activations keep
a zero at zero. A batch whose rows are all full length needs no mask at all (one chunk alone, or
equal lengths). The output is bit-identical to NeMo's (`tests/test_subsampling.py`); on the tiny
Canary on the CPU, 38 chunks in batches of 4 take 0.95-1.02 s with it and 1.06-1.09 s without.
On the CPU the rows of a batch go through one by one (`_row_by_row`), which halves the stack's
time there; a GPU takes the batch at once.
"""

from __future__ import annotations

import types

_ZERO_KEEPING = ("ReLU", "ReLU6", "SiLU", "GELU", "LeakyReLU", "Hardtanh", "Identity", "Dropout")
"""Element-wise layers with f(0) = 0: a zeroed frame stays zero through them."""


def spare_masks(model) -> int:
    """Give every `MaskedConvSequential` in `model` (and in its timestamp aligner, which is not a
    registered submodule) the sparing forward. Returns how many it changed."""
    from nemo.collections.asr.parts.submodules.subsampling import MaskedConvSequential

    roots = [model, getattr(model, "timestamps_asr_model", None)]
    changed = 0
    for root in filter(None, roots):
        for module in root.modules():
            if isinstance(module, MaskedConvSequential) and not getattr(module, "_spares_masks", False):
                module.forward = types.MethodType(_forward, module)
                module._spares_masks = True
                changed += 1
    return changed


def _forward(self, x, lengths):
    """Same signature and result as `MaskedConvSequential.forward`: x (batch, time, features).
    On the CPU each row runs alone, cut to its length; on a GPU the batch runs together."""
    if x.device.type == "cpu" and x.shape[0] > 1:
        return _row_by_row(self, x, lengths)
    return _batched(self, x, lengths)


def _row_by_row(self, x, lengths):
    """Each row cut to its own length needs no mask and computes no padding, and its activations
    (channels x frames/2 x mels/2, 8 MB for a 20 s chunk of the tiny Canary) stay in the CPU's
    cache where a batch's do not: half the time of the batch on the CPU (measured: 17.8 ms
    against 35.5 ms for four chunks of 17 to 20 s). A convolution's zero padding at a row's end
    is what the mask gives inside a batch, so the result is NeMo's up to float rounding (a
    convolution over another shape may sum in another order, as any other batch would), and
    a chunk's features no longer depend on what it is batched with. Padded frames are zero, as
    NeMo's last mask leaves them. A row of no frames keeps one, which its mask then zeroes (a
    convolution over none fails)."""
    import torch

    rows = [_batched(self, x[i : i + 1, : max(1, int(lengths[i]))], lengths[i : i + 1]) for i in range(x.shape[0])]
    frames = int(_out_lengths(self, torch.tensor([x.shape[1]]))[0])
    first = rows[0][0]
    out = first.new_zeros((x.shape[0], first.shape[1], frames, first.shape[3]))
    for i, (row, _) in enumerate(rows):
        out[i, :, : row.shape[2]] = row[0]
    return out, torch.cat([row_lengths for _, row_lengths in rows])


def _out_lengths(self, lengths):
    """Frames after the stack for inputs of `lengths` frames (NeMo's formula, layer by layer)."""
    from nemo.collections.asr.parts.submodules.subsampling import calculate_conv_output_size

    current = lengths.clone().float()
    for layer in self:
        if hasattr(layer, "stride") and layer.stride != (1, 1):
            current = calculate_conv_output_size(current, layer.kernel_size[0], layer.stride[0], _padding(layer))
    return current.long()


def _padding(layer):
    if hasattr(layer, "_left_padding"):  # CausalConv2D
        return (layer._left_padding, layer._right_padding)
    return layer.padding


def _batched(self, x, lengths):
    """The whole batch at once, masking only where it changes the result."""
    import torch
    from nemo.collections.asr.parts.submodules.subsampling import apply_channel_mask, calculate_conv_output_size

    x = x.unsqueeze(1)  # (batch, 1, time, features)
    current = lengths.clone().float()
    padded = bool((lengths < x.shape[2]).any())
    mask = self._create_mask(x, current.long()) if padded else None
    dirty = True  # the padded frames may hold something other than zero
    for layer in self:
        conv = isinstance(layer, torch.nn.Conv2d)
        mixes_frames = conv and layer.kernel_size[0] > 1
        keeps_zero = type(layer).__name__ in _ZERO_KEEPING
        if mask is not None and dirty and not keeps_zero and (mixes_frames or not conv):
            x = apply_channel_mask(x, mask)
            dirty = False
        x = layer(x)
        if not keeps_zero:
            dirty = True
        if hasattr(layer, "stride") and layer.stride != (1, 1):
            current = calculate_conv_output_size(current, layer.kernel_size[0], layer.stride[0], _padding(layer))
            if mask is not None:
                mask = self._create_mask(x, current.long())
    if mask is not None and dirty:
        x = apply_channel_mask(x, mask)
    return x, current.long()
