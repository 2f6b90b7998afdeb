"""Language routing on synthetic identifier probabilities (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from asr.errors import LanguageError
from asr.languages import CODES, PIVOT
from asr.routing import RoutingOptions, prompts, route

LABELS = tuple(sorted(set(CODES) | {"hi", "ja"}))
CANARY_PAIRS = frozenset({(PIVOT, c) for c in CODES if c != PIVOT} | {(c, PIVOT) for c in CODES if c != PIVOT})


def dist(**probs: float) -> np.ndarray:
    """A probability row over LABELS: the given languages, the rest spread evenly."""
    row = np.zeros(len(LABELS))
    for code, p in probs.items():
        row[LABELS.index(code)] = p
    rest = 1.0 - row.sum()
    others = [i for i, c in enumerate(LABELS) if c not in probs]
    row[others] = rest / len(others)
    return row


def test_two_language_file_is_split_where_each_chunk_is_sure():
    probs = np.stack([dist(en=0.97), dist(en=0.95), dist(de=0.96), dist(de=0.98), dist(en=0.93)])
    r = route(probs, LABELS, [18.0, 15.0, 12.0, 19.0, 9.0], CODES)
    assert r.language == "en"
    assert r.chunk_languages == ("en", "en", "de", "de", "en")
    assert r.mixed and r.languages == ("en", "de")
    assert r.chunk_probabilities[2] == pytest.approx(0.96, abs=0.01)
    assert any("switches language" in w and "German (de) 31.0 s" in w for w in r.warnings)


def test_file_language_is_the_speech_weighted_mean():
    # Two short confident German chunks lose to one long, moderately sure English chunk.
    probs = np.stack([dist(de=0.8, en=0.15), dist(de=0.8, en=0.15), dist(en=0.7, de=0.25)])
    r = route(probs, LABELS, [2.0, 2.0, 19.0], CODES)
    assert r.language == "en"
    assert r.probability == pytest.approx((2 * 0.15 + 2 * 0.15 + 19 * 0.7) / 23, abs=0.01)
    assert r.top[0][0] == "en" and r.top[1][0] == "de"


def test_noisy_one_language_file_is_never_split():
    """A Slovak recording whose chunks the identifier often half-hears as Czech (a close
    language), with short chunks it is sure are something else: kept whole."""
    rng = np.random.default_rng(0)
    rows, durations = [], []
    for i in range(40):
        noise = rng.dirichlet(np.ones(len(LABELS)) * 0.3) * 0.3
        sk = rng.uniform(0.35, 0.7)
        row = noise * (1 - sk) / noise.sum()
        row[LABELS.index("sk")] += sk
        cs = rng.uniform(0.0, 1.0 - sk) * 0.9  # Czech takes much of the rest, sometimes beating sk
        row *= (1 - cs) / row.sum()
        row[LABELS.index("cs")] += cs
        rows.append(row)
        durations.append(float(rng.uniform(4.0, 20.0)))
    # Short chunks (a name, a quote) that the identifier is sure are another language.
    rows += [dist(en=0.99), dist(de=0.97), dist(pl=0.95)]
    durations += [1.2, 2.5, 3.9]
    r = route(np.stack(rows), LABELS, durations, CODES)
    assert r.language == "sk"
    assert set(r.chunk_languages) == {"sk"}
    assert not r.mixed
    assert not any("switches" in w for w in r.warnings)
    # Some noisy chunks really do lean to another language on their own, so routing by each
    # chunk's argmax would have split this file.
    argmax = {LABELS[int(np.argmax(row))] for row in rows}
    assert argmax - {"sk"}


def test_the_thresholds_decide_a_switch():
    probs = np.stack([dist(fr=0.95), dist(fr=0.95), dist(it=0.88), dist(it=0.95)])
    r = route(probs, LABELS, [15.0, 15.0, 15.0, 3.0], CODES)
    assert r.chunk_languages == ("fr", "fr", "fr", "fr")  # 0.88 < 0.9; 3 s < 4 s
    looser = RoutingOptions(switch_min_probability=0.85, switch_min_speech_s=2.0)
    r = route(probs, LABELS, [15.0, 15.0, 15.0, 3.0], CODES, looser)
    assert r.chunk_languages == ("fr", "fr", "it", "it")


def test_renormalised_over_the_languages_the_model_accepts():
    # The identifier hears Hindi most; Canary has no Hindi, so the best accepted language wins.
    probs = np.stack([dist(hi=0.6, en=0.3, de=0.05), dist(hi=0.7, en=0.25, de=0.02)])
    r = route(probs, LABELS, [10.0, 10.0], CODES)
    assert r.language == "en"
    assert "hi" not in r.chunk_languages
    rows = [dist(hi=0.6, en=0.3, de=0.05), dist(hi=0.7, en=0.25, de=0.02)]
    accepted = [LABELS.index(c) for c in CODES]
    expected = np.mean([row[LABELS.index("en")] / row[accepted].sum() for row in rows])
    assert r.probability == pytest.approx(expected)  # Hindi's (and Japanese's) share dropped
    assert r.probability > 0.75 > max(row[LABELS.index("en")] for row in rows)
    assert sum(p for _, p in r.top) <= 1.0 + 1e-9
    assert any("Hindi" not in w and "hi (" in w and "not transcribe" in w for w in r.warnings)


def test_a_model_with_fewer_languages_never_gets_one_it_lacks():
    # An English-and-Spanish model: a chunk the identifier is sure is German still goes to one of them.
    probs = np.stack([dist(de=0.9, es=0.06, en=0.02), dist(de=0.95, es=0.03, en=0.01)])
    r = route(probs, LABELS, [10.0, 10.0], {"en", "es"})
    assert set(r.chunk_languages) <= {"en", "es"}
    assert r.language == "es"


def test_doubtful_and_short_files_warn():
    r = route(np.stack([dist(cs=0.45, sk=0.4)]), LABELS, [2.0], CODES)
    assert r.language == "cs"
    text = " ".join(r.warnings)
    assert "unsure" in text and "Slovak (sk)" in text
    assert "2.0 s of speech" in text
    sure = route(np.stack([dist(cs=0.97)]), LABELS, [12.0], CODES)
    assert sure.warnings == ()


def test_no_speech_is_a_caller_error():
    with pytest.raises(ValueError):
        route(np.zeros((0, len(LABELS))), LABELS, [], CODES)


def mixed_routing():
    probs = np.stack([dist(en=0.97), dist(fr=0.96), dist(en=0.95)])
    return route(probs, LABELS, [15.0, 15.0, 15.0], CODES)


def test_prompts_without_target_transcribe_each_chunk_in_its_language():
    assert prompts(mixed_routing(), None, CANARY_PAIRS) == [
        ("en", "en", "transcribe"), ("fr", "fr", "transcribe"), ("en", "en", "transcribe")]


def test_prompts_to_english_translate_only_the_other_chunks():
    assert prompts(mixed_routing(), "en", CANARY_PAIRS) == [
        ("en", "en", "transcribe"), ("fr", "en", "translate"), ("en", "en", "transcribe")]


def test_prompts_to_another_target_translate_english_and_transcribe_the_target():
    probs = np.stack([dist(en=0.97), dist(de=0.96)])
    r = route(probs, LABELS, [15.0, 15.0], CODES)
    assert prompts(r, "de", CANARY_PAIRS) == [("en", "de", "translate"), ("de", "de", "transcribe")]


def test_an_unreachable_target_names_the_language_and_the_pairs_that_work():
    with pytest.raises(LanguageError) as e:
        prompts(mixed_routing(), "de", CANARY_PAIRS)
    msg = str(e.value)
    assert "French (fr)" in msg and "fr -> de" in msg
    assert "into de: from en" in msg and "from fr: into en" in msg
