"""Languages and pairs: all 25, X->X, en->X, X->en, and clear errors for everything else."""

from __future__ import annotations

import itertools

import pytest

from asr.errors import LanguageError
from asr.languages import CODES, LANGUAGES, resolve_pair


def test_all_25_languages():
    assert len(CODES) == 25
    assert set(CODES) == set("bg hr cs da nl en et fi fr de el hu it lv lt mt pl pt ro sk sl es sv ru uk".split())


@pytest.mark.parametrize("src, tgt", list(itertools.product(CODES, CODES)))
def test_pair_rule(src, tgt):
    if src == tgt:
        assert resolve_pair(src, tgt) == (src, tgt, "transcribe")
    elif "en" in (src, tgt):
        assert resolve_pair(src, tgt) == (src, tgt, "translate")
    else:
        with pytest.raises(LanguageError) as e:
            resolve_pair(src, tgt)
        msg = str(e.value)
        assert f"({src})" in msg and f"({tgt})" in msg and "English" in msg


@pytest.mark.parametrize("target", [None, "", "  "])
def test_omitted_target_means_transcription(target):
    assert resolve_pair("de", target) == ("de", "de", "transcribe")


def test_codes_are_normalised():
    assert resolve_pair(" DE ", "En") == ("de", "en", "translate")


@pytest.mark.parametrize("bad", ["xx", "english", "zh", "en-US", "123"])
def test_unknown_language_names_the_value_and_lists_the_accepted(bad):
    with pytest.raises(LanguageError) as e:
        resolve_pair(bad, None)
    msg = str(e.value)
    assert f"'{bad}'" in msg and "source_lang" in msg
    assert all(c in msg for c in CODES)
    if bad == "en-US":
        assert "did you mean 'en'" in msg


def test_missing_source_is_an_error():
    with pytest.raises(LanguageError, match="source_lang is required"):
        resolve_pair(None, "en")


def test_bad_target_names_the_target():
    with pytest.raises(LanguageError) as e:
        resolve_pair("en", "klingon")
    assert "target_lang 'klingon'" in str(e.value)
    assert LANGUAGES["en"] == "English"


def test_names_cover_canary_and_more():
    from asr.languages import ALL_CODES, NAMES, describe, pivot_pairs

    assert set(CODES) < set(ALL_CODES) and NAMES["hi"] == "Hindi"
    assert describe({"hi", "de"}) == "de (German), hi (Hindi)"
    flash = pivot_pairs({"en", "de", "es", "fr"})
    assert len(flash) == 6 and ("en", "de") in flash and ("de", "fr") not in flash
    assert pivot_pairs({"hi"}) == frozenset()
