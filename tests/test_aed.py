"""The Canary (AED) adapter with the tiny Canary-shaped model: loading, prompts, batches, timestamps."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from asr.errors import ModelLoadError
from asr.models import load_models
from asr.testing.canary import TINY_PHRASE
from asr.types import SAMPLE_RATE, Request

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def canary(transcriber):
    return transcriber.models.default


def test_tiny_model_has_canary_structure(canary):
    model = canary.model
    assert type(model).__name__ == "EncDecMultiTaskModel"
    assert model.prompt.NAME == "canary2"
    assert model.cfg.preprocessor.features == 128
    assert model.cfg.encoder.subsampling_factor == 8
    tok = model.tokenizer
    from asr.languages import CODES

    for code in CODES:
        assert tok.token_to_id(f"<|{code}|>") > 0
    for special in ("<|startoftranscript|>", "<|endoftext|>", "<|pnc|>", "<|nopnc|>", "<|notimestamp|>"):
        assert tok.token_to_id(special) > 0
    assert tok.pad == 2 and tok.eos == 3 and tok.bos == 4  # as in Canary-1B-v2
    assert type(model.timestamps_asr_model).__name__ == "EncDecCTCModelBPE"
    caps = canary.capabilities
    assert caps.timestamps == "aligner" and caps.word_timestamps and caps.needs_prompt
    assert caps.languages == frozenset(CODES)  # read from the tokenizer's language tokens
    assert ("en", "de") in caps.translation_pairs and ("de", "fr") not in caps.translation_pairs


def test_batch_keeps_order_and_pads_short_chunks(canary):
    rng = np.random.default_rng(0)
    lengths_s = [3.0, 0.3, 19.9, 1.0]
    audios = [(0.1 * rng.standard_normal(int(s * SAMPLE_RATE))).astype(np.float32) for s in lengths_s]
    results = canary.transcribe(audios, Request("en", "en", pnc=True, timestamps=True))
    assert len(results) == len(audios)
    for r, seconds in zip(results, lengths_s):
        assert r.text == TINY_PHRASE
        assert [w.text for w in r.words] == TINY_PHRASE.split()
        # times are relative to the chunk's first sample (padding goes after the audio only)
        assert all(0 <= w.start_s <= w.end_s <= max(seconds, 1.0) + 0.08 for w in r.words)
        assert [s.text for s in r.segments] == ["Hello world!", "The quick brown fox."]


def test_each_result_belongs_to_its_own_chunk(canary, speech_16k):
    """The tiny Canary says the same phrase for every chunk, but its forced alignment depends on
    the audio: in a batch of speech of different lengths, every chunk must get exactly the
    word times it gets alone, so a batch whose results came back reordered fails here."""
    speech = speech_16k
    lengths_s = [4.0, 17.0, 9.0, 12.5]
    starts_s = [0.0, 20.0, 5.0, 40.0]
    audios = [speech[int(a * SAMPLE_RATE) : int((a + n) * SAMPLE_RATE)] for a, n in zip(starts_s, lengths_s)]
    request = Request("en", "en", pnc=True, timestamps=True)
    alone = [canary.transcribe([a], request)[0] for a in audios]
    together = canary.transcribe(audios, request)
    times = lambda r: [(round(w.start_s, 2), round(w.end_s, 2)) for w in r.words]  # noqa: E731
    assert len({tuple(times(r)) for r in alone}) == len(audios)  # the chunks are told apart
    assert [times(r) for r in together] == [times(r) for r in alone]


def test_single_item_batch_is_not_merged(canary):
    audio = np.zeros(SAMPLE_RATE * 2, np.float32)
    assert len(canary.transcribe([audio], Request("en", "en"))) == 1
    assert canary.transcribe([], Request("en", "en")) == []


def test_prompt_carries_the_task(canary, monkeypatch):
    """The languages and pnc reach NeMo's canary2 prompt as its special tokens."""
    seen = []
    model = canary.model
    original = model.prompt.encode_dialog

    def spy(turns, *a, **kw):
        out = original(turns, *a, **kw)
        seen.append(model.tokenizer.ids_to_tokens(out["context_ids"].tolist()))
        return out

    monkeypatch.setattr(model.prompt, "encode_dialog", spy)
    canary.transcribe([np.zeros(SAMPLE_RATE, np.float32)], Request("de", "en", pnc=False, timestamps=False))
    tokens = seen[-1]
    assert tokens.index("<|de|>") < tokens.index("<|en|>")
    assert "<|nopnc|>" in tokens and "<|notimestamp|>" in tokens


def test_no_timestamps_means_no_alignment(canary):
    r = canary.transcribe([np.zeros(SAMPLE_RATE * 2, np.float32)], Request("en", "en", timestamps=False))[0]
    assert r.text == TINY_PHRASE and r.words == () and r.segments == ()


def test_missing_model_file_names_asr_model(tmp_path):
    with pytest.raises(ModelLoadError) as e:
        load_models(str(tmp_path / "nope.nemo"), device="cpu")
    assert "ASR_MODEL" in str(e.value) and "nope.nemo" in str(e.value)


def test_unreachable_hub_names_asr_model():
    """Without weights and without network, loading fails fast with a message naming ASR_MODEL."""
    code = (
        "import sys; from asr.models import load_models; from asr.errors import ModelLoadError\n"
        "try:\n    load_models('nvidia/canary-1b-v2', device='cpu')\n"
        "except ModelLoadError as e:\n    print(e); sys.exit(3)\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": "/nonexistent-hf-home", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 3, r.stderr[-2000:]
    assert "ASR_MODEL=nvidia/canary-1b-v2" in r.stdout
