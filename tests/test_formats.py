"""SRT and WebVTT writers: golden files, and what independent parsers read back."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

import pytest
import srt
import webvtt

from asr import formats
from asr.types import Segment, SubtitleOptions, Transcript, Word

DATA = Path(__file__).resolve().parent / "data"


def transcript(segments, timestamps=True) -> Transcript:
    return Transcript(
        text=" ".join(s.text for s in segments), segments=tuple(segments), source_lang="en",
        target_lang="en", task="transcribe", duration_s=4000.0, speech_s=100.0, model="test",
        timestamps=timestamps,
    )


# Edge cases a real transcript produces: sub-second times, hours, markup characters, an arrow,
# a line long enough to wrap, non-ASCII text, an empty segment, and a zero-length segment.
EDGE = transcript([
    Segment(0.0, 1.5, "Ask not what your country can do for you.",
            (Word(0.0, 0.3, "Ask"), Word(0.3, 0.6, "not"))),
    Segment(1.5004, 2.9996, "Use <b> & --> arrows carefully"),
    Segment(59.999, 61.25, "A line that is long enough to need two lines on screen, surely."),
    Segment(3599.5, 3601.0, "Über eine Stunde: „Grüße“ — ça va?"),
    Segment(3700.0, 3700.0, "Zero length."),
    Segment(3705.0, 3706.0, "   "),
])


@pytest.mark.parametrize("kind", ["srt", "vtt"])
def test_golden_files(kind):
    written = formats.WRITERS[kind]().to_string(EDGE)
    expected = (DATA / f"golden.{kind}").read_text(encoding="utf-8")
    assert written == expected


def test_srt_parses_back_with_the_srt_library():
    cues = list(srt.parse(formats.SRTWriter().to_string(EDGE)))
    assert [c.index for c in cues] == [1, 2, 3, 4, 5]
    assert cues[0].start.total_seconds() == 0.0 and cues[0].end.total_seconds() == 1.5
    assert cues[1].start.total_seconds() == pytest.approx(1.5) and cues[1].end.total_seconds() == pytest.approx(3.0)
    assert cues[3].start.total_seconds() == pytest.approx(3599.5)
    assert (cues[4].end - cues[4].start).total_seconds() == 0.5  # zero-length: a readable cue
    assert "-->" not in cues[1].content
    assert all(len(line) <= 42 for c in cues for line in c.content.splitlines())
    assert cues[2].content.count("\n") == 1


def test_vtt_parses_back_with_webvtt_py():
    vtt = formats.VTTWriter().to_string(EDGE)
    assert vtt.startswith("WEBVTT\n\n")
    captions = webvtt.from_string(vtt).captions
    assert len(captions) == 5
    assert captions[0].start == "00:00:00.000" and captions[0].end == "00:00:01.500"
    assert captions[3].start == "00:59:59.500"
    assert "&lt;b&gt; &amp; --&gt;" in captions[1].raw_text
    assert html.unescape(captions[1].text) == "Use <b> & --> arrows carefully"
    assert all(c.end > c.start for c in captions)  # fixed-width HH:MM:SS.mmm compares as text
    assert captions[4].end == "01:01:40.500"  # a zero-length segment gets a readable cue


def test_cues_are_utf8_and_stream_to_a_file(tmp_path):
    path = tmp_path / "out.srt"
    with open(path, "w", encoding="utf-8") as f:
        formats.SRTWriter().write(EDGE, f)
    assert "„Grüße“" in path.read_bytes().decode("utf-8")


def test_two_lines_are_balanced():
    lines = formats.balanced_lines("A line that is long enough to need two lines on screen, surely.", 42, 2)
    assert len(lines) == 2 and all(len(x) <= 42 for x in lines)
    assert abs(len(lines[0]) - len(lines[1])) <= 12
    assert formats.balanced_lines("short", 42, 2) == ["short"]


def test_subtitle_options_change_the_wrapping():
    narrow = formats.SRTWriter().to_string(EDGE, SubtitleOptions(max_line_chars=20))
    cue = next(c for c in srt.parse(narrow) if c.content.startswith("A line"))
    assert all(len(line) <= 20 for line in cue.content.splitlines())


def test_json_contract_includes_subtitles_only_with_timestamps():
    with_ts = json.loads(formats.to_json(EDGE))
    assert with_ts["srt"].startswith("1\n") and with_ts["vtt"].startswith("WEBVTT")
    assert with_ts["segments"][0]["words"][1] == {"start": 0.3, "end": 0.6, "word": "not"}
    without = formats.to_dict(transcript(EDGE.segments, timestamps=False))
    assert "srt" not in without and "vtt" not in without


def test_text_output():
    buf = io.StringIO(formats.to_text(EDGE))
    assert buf.getvalue().endswith("\n") and buf.getvalue().startswith("Ask not")


def test_no_cue_ends_after_the_audio():
    """The last cue's readable minimum (and a segment the model ends late) stop at the audio's end;
    a cue that starts in the audio's last millisecond still lasts 1 ms inside it."""
    segs = (Segment(0.0, 0.1, "Hi."), Segment(1.8, 2.2, "Bye."), Segment(2.4, 2.6, "Late."))
    t = Transcript(text="", segments=segs, source_lang="en", target_lang="en", task="transcribe",
                   duration_s=2.5, speech_s=1.0, model="test", timestamps=True)
    cues = list(formats.iter_cues(t))
    assert [(c.start_ms, c.end_ms) for c in cues] == [(0, 500), (1800, 2300), (2400, 2500)]
    edge = Transcript(text="", segments=(Segment(2.5, 2.5, "End."),), source_lang="en", target_lang="en",
                      task="transcribe", duration_s=2.5, speech_s=1.0, model="test", timestamps=True)
    assert [(c.start_ms, c.end_ms) for c in formats.iter_cues(edge)] == [(2499, 2500)]
    assert "00:00:02,500\nLate." in formats.SRTWriter().to_string(t)


@pytest.mark.parametrize("max_segment_s", [1.0, 7.0, 60.0])
def test_no_cue_is_longer_than_max_segment_s_whatever_the_word_times(max_segment_s):
    """An aligner can stretch one word over a long pause (18 s seen with the tiny model): the
    segment is one word and cannot be cut, but its cue still ends within max_segment_s."""
    from asr.segments import fit_words

    o = SubtitleOptions(max_segment_s=max_segment_s)
    words = [Word(0.0, 18.0, "Hello"), Word(18.0, 18.4, "world."), Word(20.0, 95.0, "Long"),
             Word(95.0, 95.2, "tail.")]
    segments = fit_words(words, o)
    cues = list(formats.iter_cues(transcript(segments), o))
    assert len(cues) == len(segments) >= 2
    assert all(c.end_ms - c.start_ms <= max_segment_s * 1000 for c in cues), [(c.start_ms, c.end_ms) for c in cues]
    assert [c.start_ms for c in cues] == [round(s.start_s * 1000) for s in segments]
