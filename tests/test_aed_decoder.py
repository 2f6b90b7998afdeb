"""The AED adapter's own greedy decoder (asr.models.aed_decoder) gives exactly the tokens of
NeMo's greedy generator, row by row, including rows that end at different steps; and the
adapter's own batch path gives exactly what NeMo's transcribe() gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr.models import runtime
from asr.models.aed import AEDModel, use_greedy
from asr.models.aed_decoder import GreedyDecoder
from asr.models.base import pad_short
from asr.types import SAMPLE_RATE, Request


def make_chunks() -> list[np.ndarray]:
    """Chunks the test makes itself: tones and noise of different lengths, so each sounds different."""
    rng = np.random.default_rng(7)
    out = []
    for k, seconds in enumerate((13.0, 7.5, 4.2, 2.0, 0.6)):
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        tone = 0.3 * np.sin(2 * np.pi * (150 + 90 * k) * t * (1 + 0.2 * np.sin(2 * np.pi * 0.5 * t)))
        out.append((tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32))
    return out


def listening_model(path):
    """The tiny Canary with a re-randomised decoder that listens: its tokens depend on the audio
    and its rows end (<eos>) at different steps (the shipped tiny decoder says one phrase)."""
    model = runtime.restore(str(path), "cpu")
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in list(model.transf_decoder.named_parameters()) + list(model.log_softmax.named_parameters()):
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 2.0 / p.shape[1] ** 0.5)
            elif "norm" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        for p in model.encoder.parameters():
            if p.dim() >= 2:
                p.mul_(3.0)
        model.log_softmax.mlp.layer0.bias[model.tokenizer.eos] += 7.0
    use_greedy(model, 50)
    return model


@pytest.fixture(scope="module")
def models(tiny_model):
    return listening_model(tiny_model), listening_model(tiny_model)


def test_tokens_equal_nemos_greedy_generator_row_by_row(models):
    nemo_model, _ = models
    chunks = make_chunks()
    engine_prompt = None
    with torch.inference_mode():
        lengths = torch.tensor([c.size for c in chunks])
        signal = torch.zeros(len(chunks), int(lengths.max()))
        for i, c in enumerate(chunks):
            signal[i, : c.size] = torch.from_numpy(c)
        _, _, enc, mask = nemo_model.forward(input_signal=signal, input_signal_length=lengths)
        slots = dict(nemo_model.prompt.get_default_dialog_slots()[0]["slots"])
        slots.update(source_lang="<|en|>", target_lang="<|de|>")
        engine_prompt = nemo_model.prompt.encode_dialog([{"role": "user", "slots": slots}])["context_ids"]
        prompt = engine_prompt.unsqueeze(0).repeat(len(chunks), 1)
        generator = nemo_model.decoding.decoding.greedy_search
        theirs = generator(decoder_input_ids=prompt, encoder_hidden_states=enc, encoder_input_mask=mask)[0]
        ours = GreedyDecoder(generator, graphs=False)(prompt, enc, mask)[0]
    assert ours.shape == theirs.shape
    assert torch.equal(ours, theirs)
    generated = theirs[:, prompt.shape[1]:]
    eos = nemo_model.tokenizer.eos
    ended = [(row == eos).nonzero()[0].item() if (row == eos).any() else None for row in generated]
    assert len({e for e in ended}) >= 3, f"rows should end at different steps: {ended}"
    assert len({tuple(r.tolist()) for r in generated}) == len(chunks), "every row should differ"


@pytest.mark.parametrize("request_", [Request("en", "de", pnc=True, timestamps=False),
                                      Request("fr", "fr", pnc=False, timestamps=False)])
def test_the_adapter_batch_path_equals_nemo_transcribe(models, request_):
    from nemo.collections.asr.models.aed_multitask_models import MultiTaskTranscriptionConfig

    nemo_model, ours_model = models
    chunks = make_chunks()
    config = MultiTaskTranscriptionConfig(
        batch_size=len(chunks), return_hypotheses=True, num_workers=0, verbose=False, enable_chunking=False,
        prompt={"source_lang": request_.source_lang, "target_lang": request_.target_lang,
                "pnc": "yes" if request_.pnc else "no", "timestamp": "no"})
    with torch.inference_mode():
        # the adapter right-pads chunks under 1 s itself (NeMo would pad both sides): give NeMo the same
        theirs = [h.text for h in nemo_model.transcribe(pad_short(chunks), override_config=config)]
    engine = AEDModel(ours_model, "listening", "cpu", batch_size=len(chunks))
    assert engine.fast_decoder is not None
    ours = [r.text for r in engine.transcribe(chunks, request_)]
    assert ours == theirs
    assert len(set(theirs)) >= 3
