"""The cross-attention projection cache changes nothing but speed: bit-identical decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr.models import aed, xattn_cache
from asr.types import SAMPLE_RATE, Request


@pytest.fixture(scope="module")
def random_decoder_model(tiny_model):
    """The tiny model with its decoder re-randomised, so every output depends on cross-attention."""
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(str(tiny_model), map_location="cpu")
    model.eval()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.transf_decoder.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    aed.set_generation_cap(model, 20)
    return model


def decode_logits(model, audios) -> tuple[list[list[int]], list[torch.Tensor]]:
    from nemo.collections.asr.models.aed_multitask_models import MultiTaskTranscriptionConfig

    seen: list[torch.Tensor] = []
    hook = model.log_softmax.mlp.layer0.register_forward_hook(lambda mod, args, out: seen.append(out.detach().clone()))
    try:
        cfg = MultiTaskTranscriptionConfig(batch_size=len(audios), return_hypotheses=True, verbose=False,
                                           enable_chunking=False,
                                           prompt={"source_lang": "en", "target_lang": "de", "pnc": "yes"})
        with torch.inference_mode():
            hyps = model.transcribe(audios, override_config=cfg)
    finally:
        hook.remove()
    return [list(map(int, h.y_sequence)) for h in hyps], seen


def test_cached_projections_give_bit_identical_logits(random_decoder_model):
    rng = np.random.default_rng(0)
    audios = [(0.1 * rng.standard_normal(int(s * SAMPLE_RATE))).astype(np.float32) for s in (2.0, 5.5, 9.0)]
    model = random_decoder_model
    xattn_cache.clear(model)
    plain_tokens, plain_logits = decode_logits(model, audios)
    assert xattn_cache.install(model) == 2 * len(model.transf_decoder.decoder.layers)
    try:
        cached_tokens, cached_logits = decode_logits(model, audios)
    finally:
        xattn_cache.remove(model)  # back to plain for other tests
    assert cached_tokens == plain_tokens
    assert len(cached_logits) == len(plain_logits) > 10
    for a, b in zip(plain_logits, cached_logits):
        assert torch.equal(a, b)
    # the logits depend on what each item heard, i.e. the cross-attention path is really in use
    first = plain_logits[0]
    assert first.shape[0] == len(audios) and not torch.equal(first[0], first[1])


def test_nemo_generator_path_clears_the_cache_after_each_call(tiny_model, monkeypatch):
    """With ASR_FAST_DECODER=0 (NeMo's own generator) the cache is installed and emptied after
    every batch, so no encoder output stays alive."""
    from asr.models import runtime
    from asr.models.aed import AEDModel

    monkeypatch.setenv("ASR_FAST_DECODER", "0")
    engine = AEDModel(runtime.restore(str(tiny_model), "cpu"), "tiny", "cpu", batch_size=2)
    assert engine.fast_decoder is None
    layer = engine.model.transf_decoder.decoder.layers[0]
    assert xattn_cache.is_cached(layer.second_sub_layer.value_net)
    engine.transcribe([np.zeros(SAMPLE_RATE, np.float32)], Request("en", "en"))
    for layer in engine.model.transf_decoder.decoder.layers:
        assert layer.second_sub_layer.key_net.forward.input is None  # no encoder output kept alive


def test_the_fast_decoder_is_used_by_default(transcriber):
    engine = transcriber.models.default
    assert engine.fast_decoder is not None
    assert engine.model.decoding.decoding.greedy_search is engine.fast_decoder
