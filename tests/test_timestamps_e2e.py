"""Timestamps end to end with the tiny model: known speech and long known pauses."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import srt
import webvtt

from asr import formats
from asr.types import TranscribeOptions
from tests.media import RECIPES, write_media

PAD_S = 0.25  # VAD padding (0.2 s) plus a frame


@pytest.fixture(scope="module")
def paused(jfk, tmp_path_factory):
    """JFK's three phrases with 5 s and 8 s of silence inserted between them, as an M4A."""
    x, rate = jfk
    parts = [x[:, : int(2.5 * rate)], np.zeros((2, 5 * rate), np.float32),
             x[:, int(3.0 * rate) : int(4.7 * rate)], np.zeros((2, 8 * rate), np.float32),
             x[:, int(5.1 * rate) :]]
    audio = np.concatenate(parts, axis=1)
    silences = [(2.5, 7.5), (9.2, 17.2)]
    path = write_media(tmp_path_factory.mktemp("paused") / "paused.m4a", audio, rate, RECIPES["m4a"])
    return path, silences


def inside_silence(start: float, end: float, silences) -> bool:
    return any(a + PAD_S < start and end < b - PAD_S for a, b in silences)


def overlaps_silence(start: float, end: float, silences) -> bool:
    return any(min(end, b - PAD_S) - max(start, a + PAD_S) > 0 for a, b in silences)


@pytest.mark.parametrize("target", [None, "de"])
def test_segments_and_words_avoid_known_silences(transcriber, paused, target):
    path, silences = paused
    t = transcriber.transcribe(path, TranscribeOptions(source_lang="en", target_lang=target))
    assert t.segments
    starts = [s.start_s for s in t.segments]
    assert starts == sorted(starts)
    for s in t.segments:
        assert 0 <= s.start_s <= s.end_s <= t.duration_s
        assert not inside_silence(s.start_s, s.end_s, silences), s
        for w in s.words:
            assert s.start_s <= w.start_s <= w.end_s <= s.end_s
            assert not overlaps_silence(w.start_s, w.end_s, silences), w
    if target:
        assert all(s.words == () for s in t.segments)
    else:
        assert sum(len(s.words) for s in t.segments) == len(t.text.split())
    cues = list(srt.parse(formats.SRTWriter().to_string(t)))
    assert len(cues) == len(t.segments)
    assert len(webvtt.from_string(formats.VTTWriter().to_string(t)).captions) == len(t.segments)


def test_subtitles_over_http_parse(server, paused):
    path, silences = paused
    uri = "data:audio/mp4;base64," + base64.b64encode(path.read_bytes()).decode()
    status, body = server.predict(audio=uri, source_lang="en", max_segment_s=3.0, max_line_chars=20)
    assert body["status"] == "succeeded", body
    out = body["output"]
    cues = list(srt.parse(out["srt"]))
    captions = webvtt.from_string(out["vtt"]).captions
    assert len(cues) == len(captions) == len(out["segments"])
    for cue in cues:
        assert all(len(line) <= 20 for line in cue.content.splitlines())
    for seg in out["segments"]:
        assert not inside_silence(seg["start"], seg["end"], silences)
