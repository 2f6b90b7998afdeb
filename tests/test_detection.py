"""source_lang auto: the file's language and each chunk's, routed to their own prompts, through
the pipeline and the real server, with the tiny identifier (it hears low voices as English and
voices pitched up 1.5x as German; see asr/testing/langid.py)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import soxr

from asr.errors import LanguageError
from asr.pipeline import Transcriber
from asr.types import TranscribeOptions
from tests.media import write_pcm16_wav

R16 = 16_000


def pitched_up(x: np.ndarray) -> np.ndarray:
    """The same speech 1.5x faster and higher (read at 24 kHz, resampled to 16 kHz)."""
    return soxr.resample(x, 24_000, R16).astype(np.float32)


@pytest.fixture(scope="module")
def mixed_wav(speech60, tmp_path_factory):
    """60 s of English-sounding speech, 3 s of silence, then 40 s of 'German' (pitched up)."""
    x = speech60[0][0]
    audio = np.concatenate([x, np.zeros(3 * R16, np.float32), pitched_up(x)])
    return write_pcm16_wav(tmp_path_factory.mktemp("mixed") / "mixed.wav", audio, R16)


@pytest.fixture(scope="module")
def english_wav(speech60, tmp_path_factory):
    return write_pcm16_wav(tmp_path_factory.mktemp("en") / "en.wav", speech60[0][0], R16)


def uri(path) -> str:
    return "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()


def test_a_one_language_file_stays_whole(transcriber, english_wav):
    t = transcriber.transcribe(english_wav, TranscribeOptions())
    assert (t.source_lang, t.target_lang, t.task) == ("en", "en", "transcribe")
    assert t.detected_language == "en" and t.language_probability > 0.9
    assert t.segments and {s.language for s in t.segments} == {"en"}
    assert not t.warnings


def test_a_switching_file_is_transcribed_in_each_language(transcriber, mixed_wav):
    t = transcriber.transcribe(mixed_wav, TranscribeOptions())
    assert t.source_lang == "mixed" and t.target_lang == "mixed" and t.task == "transcribe"
    assert t.detected_language == "en"  # more English speech than German
    languages = [s.language for s in t.segments]
    assert languages[0] == "en" and languages[-1] == "de"
    assert languages == sorted(languages, key=["en", "de"].index)  # one switch, in timeline order
    assert all(s.start_s > 60 for s in t.segments if s.language == "de")
    assert t.timings_s["batches"] == 2  # one batch per prompt: every chunk fits one batch of each
    assert any("switches language" in w for w in t.warnings)


def test_auto_with_target_translates_only_what_is_not_already_there(transcriber, mixed_wav):
    t = transcriber.transcribe(mixed_wav, TranscribeOptions(target_lang="en"))
    assert t.task == "translate" and t.target_lang == "en"
    english = [s for s in t.segments if s.language == "en"]
    german = [s for s in t.segments if s.language == "de"]
    assert english and all(s.words for s in english)  # transcribed: word times
    assert german and all(not s.words for s in german)  # translated: segment times only


def test_without_the_identifier_auto_is_a_clear_error(transcriber):
    off = Transcriber(transcriber.models, transcriber.frontend, identifier=None)
    with pytest.raises(LanguageError, match="ASR_LID_MODEL=none") as e:
        off.check(TranscribeOptions())
    assert "source_lang" in str(e.value)
    assert off.check(TranscribeOptions(source_lang="de")).source == "de"  # a given language still works


def test_a_one_language_model_skips_detection(transcriber, tiny_ctc):
    from asr.models import load_models

    ctc = Transcriber(load_models(str(tiny_ctc), device="cpu"), transcriber.frontend, identifier=None)
    plan = ctc.check(TranscribeOptions())
    assert (plan.source, plan.task) == ("hi", "transcribe")


def test_over_http_auto_is_the_default_and_reports_the_detection(server, mixed_wav):
    status, body = server.predict(audio=uri(mixed_wav))
    assert status == 200 and body["status"] == "succeeded", body
    out = body["output"]
    assert out["source_lang"] == "mixed" and out["detected_language"] == "en"
    assert 0.5 <= out["language_probability"] <= 1
    assert {s["language"] for s in out["segments"]} == {"en", "de"}
    assert body["metrics"]["timings"]["lid_s"] > 0
    assert server.ready()


def test_over_http_a_detected_language_the_model_cannot_translate_fails(server, mixed_wav, tiny_parakeet):
    status, body = server.predict(audio=uri(mixed_wav), model=tiny_parakeet.stem, target_lang="en")
    assert body["status"] == "failed", body
    assert "German (de)" in body["error"] and "Traceback" not in body["error"]
    assert server.ready()


def test_a_model_that_picks_its_language_still_reports_the_detection(server, english_wav, tiny_parakeet):
    status, body = server.predict(audio=uri(english_wav), model=tiny_parakeet.stem)
    assert body["status"] == "succeeded", body
    out = body["output"]
    assert (out["detected_language"], out["source_lang"], out["task"]) == ("en", "en", "transcribe")
    assert out["text"].startswith("one two three")  # the tiny Parakeet says numbers (its own choice)
