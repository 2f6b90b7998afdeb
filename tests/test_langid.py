"""The language identifier: the tiny AmberNet-structured model, saved as .nemo and restored through
the same loader as the real one, scoring real speech whose pitch the tests control."""

from __future__ import annotations

import numpy as np
import pytest

from asr.errors import ModelLoadError
from asr.languages import CODES

pytest.importorskip("nemo")

RATE = 16_000


@pytest.fixture(scope="module")
def identifier(tmp_path_factory):
    from asr.models.langid import LanguageIdentifier
    from asr.testing.langid import build_tiny_langid

    path = build_tiny_langid(tmp_path_factory.mktemp("lid") / "tiny-langid.nemo", seed=0)
    return LanguageIdentifier.load(str(path), device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def speech(jfk, speech60) -> dict[str, np.ndarray]:
    """Real speech at 16 kHz: JFK (11 s) and three pieces of Silero's clip."""
    import soxr

    jfk_x, jfk_rate = jfk
    clip_x, clip_rate = speech60
    jfk16 = soxr.resample(jfk_x.mean(axis=0), jfk_rate, RATE).astype(np.float32)
    clip16 = soxr.resample(clip_x.mean(axis=0), clip_rate, RATE).astype(np.float32)
    return {"jfk": jfk16, "clip_a": clip16[: 15 * RATE], "clip_b": clip16[20 * RATE : 32 * RATE]}


def pitched(x: np.ndarray, factor: float) -> np.ndarray:
    """Speech played `factor` times faster: pitch and formants times `factor` (resampling)."""
    import soxr

    return soxr.resample(x, RATE * factor, RATE).astype(np.float32)


def top(identifier, probs: np.ndarray) -> list[str]:
    return [identifier.labels[int(i)] for i in probs.argmax(axis=1)]


def test_labels_include_canary_languages_and_others(identifier):
    assert set(CODES) <= set(identifier.labels)
    assert {"hi", "ja"} <= set(identifier.labels)
    assert identifier.device == "cpu"


def test_low_and_high_pitched_real_speech_get_different_languages(identifier, speech):
    low = [speech["jfk"], pitched(speech["clip_a"], 0.8), speech["clip_b"]]
    high = [pitched(speech["jfk"], 1.7), pitched(speech["clip_a"], 1.5), pitched(speech["clip_b"], 1.6)]
    probs = identifier.score(low + high)
    assert probs.shape == (6, len(identifier.labels))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert top(identifier, probs) == ["en"] * 3 + ["de"] * 3
    assert probs.max(axis=1).min() > 0.9
    softer = identifier.score([0.1 * low[0], 0.1 * high[0]])  # 20 dB down: the same answer
    np.testing.assert_allclose(softer, probs[[0, 3]], atol=0.01)


def test_synthetic_tones_follow_the_documented_rule(identifier):
    t = np.arange(3 * RATE) / RATE

    def tone(f0_hz: float) -> np.ndarray:
        return (0.1 * sum(np.sin(2 * np.pi * f0_hz * k * t) / k for k in range(1, 8))).astype(np.float32)

    assert top(identifier, identifier.score([tone(120), tone(600)])) == ["en", "de"]


def test_a_batch_of_different_lengths_scores_each_chunk_as_alone(identifier, speech):
    chunks = [speech["jfk"][: 6 * RATE], pitched(speech["clip_a"], 1.5)[: 3 * RATE], speech["clip_b"][:800],
              pitched(speech["clip_b"], 1.6)[: 4 * RATE], speech["clip_a"][: 2 * RATE]]
    together = identifier.score(chunks)  # batches of 4, sorted by length: padding in every batch
    alone = np.concatenate([identifier.score([c]) for c in chunks])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_routing_a_recording_that_switches_language(identifier, speech):
    from asr.routing import route

    chunks = [speech["jfk"], pitched(speech["clip_a"], 1.6), pitched(speech["clip_b"], 1.6), speech["clip_b"]]
    probs = identifier.score(chunks)
    routing = route(probs, identifier.labels, [len(c) / RATE for c in chunks], CODES)
    assert routing.chunk_languages == ("en", "de", "de", "en")
    assert routing.mixed


def test_a_bad_model_file_names_the_variable(tmp_path):
    from asr.models.langid import LanguageIdentifier

    with pytest.raises(ModelLoadError, match="ASR_LID_MODEL=.*missing.nemo"):
        LanguageIdentifier.load(str(tmp_path / "missing.nemo"))
    junk = tmp_path / "junk.nemo"
    junk.write_bytes(b"not a model archive")
    with pytest.raises(ModelLoadError, match="ASR_LID_MODEL") as e:
        LanguageIdentifier.load(str(junk))
    assert "none" in str(e.value)
