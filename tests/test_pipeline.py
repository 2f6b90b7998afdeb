"""Transcriber end to end in-process with the tiny model: text, segments, tasks, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from asr.testing.canary import TINY_PHRASE
from asr.errors import InputError, LanguageError
from asr.types import MAX_CHUNK_S, SAMPLE_RATE, TranscribeOptions
from tests.media import RECIPES, write_media, write_pcm16_wav


def check_timeline(t) -> None:
    prev_start = -1.0
    for seg in t.segments:
        assert 0 <= seg.start_s <= seg.end_s <= t.duration_s + 1e-6
        assert seg.start_s >= prev_start
        prev_start = seg.start_s
        for w in seg.words:
            assert seg.start_s - 1e-6 <= w.start_s <= w.end_s <= seg.end_s + 1e-6


def test_jfk_transcription(transcriber, shared_audio):
    t = transcriber.transcribe(shared_audio / "jfk.flac", TranscribeOptions(source_lang="en"))
    assert t.text == TINY_PHRASE
    assert (t.task, t.source_lang, t.target_lang) == ("transcribe", "en", "en")
    assert t.duration_s == pytest.approx(11.0, abs=0.01)
    assert 8 < t.speech_s < 10.5
    assert t.model.startswith("tiny-canary-") and "/" not in t.model  # the file's name, not its path
    check_timeline(t)
    words = [w.text for s in t.segments for w in s.words]
    assert words == TINY_PHRASE.split()


def test_many_chunks_join_with_single_spaces(transcriber, speech60, tmp_path):
    x, rate = speech60
    path = write_media(tmp_path / "long.m4a", np.tile(x, 3), rate, RECIPES["m4a"])
    t = transcriber.transcribe(path, TranscribeOptions(source_lang="en"))
    n = t.text.count(TINY_PHRASE)
    assert n >= 6  # one phrase per chunk, 180 s of speech-heavy audio in <= 20 s chunks
    assert t.text == " ".join([TINY_PHRASE] * n)
    assert "  " not in t.text and ".H" not in t.text
    check_timeline(t)
    assert len(t.segments) >= 2 * n  # every sentence ends a segment
    assert t.speech_s <= n * MAX_CHUNK_S


def test_translation_has_segment_times_only(transcriber, shared_audio):
    t = transcriber.transcribe(shared_audio / "jfk.flac", TranscribeOptions(source_lang="en", target_lang="de"))
    assert (t.task, t.target_lang) == ("translate", "de")
    assert t.segments and all(s.words == () for s in t.segments)
    check_timeline(t)


def test_without_timestamps_segments_are_chunks(transcriber, shared_audio):
    t = transcriber.transcribe(shared_audio / "jfk.flac", TranscribeOptions(source_lang="en", timestamps=False))
    assert len(t.segments) == 1
    assert t.segments[0].text == TINY_PHRASE and t.segments[0].words == ()
    assert t.segments[0].start_s == pytest.approx(0.152, abs=0.05)


def test_silence_gives_an_empty_transcript(transcriber, tmp_path):
    path = write_pcm16_wav(tmp_path / "quiet.wav", np.zeros(SAMPLE_RATE * 4), SAMPLE_RATE)
    t = transcriber.transcribe(path, TranscribeOptions(source_lang="fr"))
    assert t.text == "" and t.segments == () and t.speech_s == 0.0
    assert t.duration_s == pytest.approx(4.0)


def test_no_speech_with_auto_reports_no_language(transcriber, tmp_path):
    """Nothing spoken and nothing detected: source_lang is null (not the request's "auto")."""
    path = write_pcm16_wav(tmp_path / "quiet.wav", np.zeros(SAMPLE_RATE * 3), SAMPLE_RATE)
    t = transcriber.transcribe(path, TranscribeOptions())
    assert (t.source_lang, t.target_lang, t.text) == (None, None, "")
    assert "No speech was found, so no language was detected." in t.warnings
    t = transcriber.transcribe(path, TranscribeOptions(target_lang="de"))
    assert (t.source_lang, t.target_lang) == (None, "de")


def test_bad_pair_fails_before_reading_the_file(transcriber, tmp_path):
    with pytest.raises(LanguageError):
        transcriber.transcribe(tmp_path / "does-not-exist.wav", TranscribeOptions(source_lang="de", target_lang="fr"))


def test_bad_file_is_an_input_error(transcriber, tmp_path):
    p = tmp_path / "x.mp3"
    p.write_bytes(b"\x00" * 1000)
    with pytest.raises(InputError):
        transcriber.transcribe(p, TranscribeOptions())
