"""diarize: speakers on words, segments, SRT and VTT through the pipeline and the real server,
with the tiny Sortformer (it hears a voice and the same voice pitched up as two speakers; see
asr/testing/sortformer.py)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import soxr
import srt
import webvtt

from asr.errors import InputError
from asr.pipeline import Transcriber
from asr.types import TranscribeOptions
from tests.media import write_pcm16_wav

R16 = 16_000


@pytest.fixture(scope="module")
def two_voices(jfk, tmp_path_factory):
    """JFK twice, his voice 1.5x higher four times, JFK twice again, 1 s apart: three turns, each
    close to one 20 s chunk, so every chunk holds one voice whatever the random aligner does."""
    x, rate = jfk
    low = soxr.resample(x.mean(axis=0), rate, R16).astype(np.float32)
    high = soxr.resample(low, 24_000, R16).astype(np.float32)  # read at 24 kHz: faster and higher
    gap = np.zeros(R16, np.float32)
    audio = np.concatenate([low, gap, low, gap] + [high, gap] * 4 + [low, gap, low])
    return write_pcm16_wav(tmp_path_factory.mktemp("voices") / "two-voices.wav", audio, R16)


def test_speakers_on_words_segments_and_subtitles(server, two_voices):
    data = "data:audio/wav;base64," + base64.b64encode(two_voices.read_bytes()).decode()
    status, body = server.predict(audio=data, source_lang="en", diarize=True)
    assert status == 200 and body["status"] == "succeeded", body
    out = body["output"]
    names = [s["speaker"] for s in out["segments"]]
    assert names[0] == "SPEAKER_1" and "SPEAKER_2" in names and names[-1] == "SPEAKER_1"
    assert {s["speaker"] for s in out["segments"] if 25 < s["start"] < 55} == {"SPEAKER_2"}
    for seg in out["segments"]:
        assert all(w["speaker"] == seg["speaker"] for w in seg["words"])  # segments never mix speakers
    summary = {k["speaker"]: k for k in out["speakers"]}
    assert set(summary) == set(names)
    for name, k in summary.items():
        assert k["segments"] == names.count(name) and k["speech_s"] > 0
    cues = list(srt.parse(out["srt"]))
    assert [c.content.split(":")[0] for c in cues] == names
    vtt = webvtt.from_string(out["vtt"])
    assert [c.voice for c in vtt] == names
    assert body["metrics"]["timings"]["diarize_s"] > 0
    # and without diarize, no speaker field anywhere
    status, body = server.predict(audio=data, source_lang="en")
    out = body["output"]
    assert "speakers" not in out and all("speaker" not in s for s in out["segments"])
    assert "SPEAKER_" not in out["srt"] + out["vtt"]
    assert server.ready()


def test_translations_take_the_speaker_holding_the_segment(transcriber, two_voices):
    t = transcriber.transcribe(two_voices, TranscribeOptions(source_lang="en", target_lang="de", diarize=True))
    assert t.segments and all(s.speaker and not s.words for s in t.segments)
    assert t.speakers and t.speakers[0].speaker == "SPEAKER_1"


def test_without_the_diarizer_diarize_is_a_clear_error(transcriber):
    off = Transcriber(transcriber.models, transcriber.frontend, transcriber.identifier, diarizer=None)
    with pytest.raises(InputError, match="ASR_DIAR_MODEL=none"):
        off.check(TranscribeOptions(source_lang="en", diarize=True))
    assert off.check(TranscribeOptions(source_lang="en")).source == "en"


def test_speakers_the_same_without_timestamps_and_with_translation(transcriber, two_voices):
    """timestamps off (one segment per chunk) and en->de (segments without words) used to give
    one speaker with more speech than the file; now all three give the same speakers and
    speaking time (within 2 %), each within the file's speech."""
    runs = {
        "timestamps": TranscribeOptions(source_lang="en", diarize=True),
        "no timestamps": TranscribeOptions(source_lang="en", diarize=True, timestamps=False),
        "translation": TranscribeOptions(source_lang="en", target_lang="de", diarize=True),
    }
    results = {k: transcriber.transcribe(two_voices, o) for k, o in runs.items()}
    reference = {s.speaker: s.speech_s for s in results["timestamps"].speakers}
    assert set(reference) == {"SPEAKER_1", "SPEAKER_2"}, reference
    for key, t in results.items():
        got = {s.speaker: s.speech_s for s in t.speakers}
        assert set(got) == set(reference), (key, got)
        for name, seconds in got.items():
            assert seconds == pytest.approx(reference[name], rel=0.02), (key, name, seconds, reference[name])
            assert 0 < seconds <= t.speech_s
        assert sum(got.values()) <= t.speech_s + 1e-6, (key, got, t.speech_s)
        assert {s.speaker for s in t.segments} <= set(got)
    assert {s.speaker for s in results["translation"].segments} == {"SPEAKER_1", "SPEAKER_2"}
