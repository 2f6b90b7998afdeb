"""Speakers on words and segments from synthetic diarizer probabilities, and in SRT/VTT."""

from __future__ import annotations

import json

import numpy as np
import pytest
import srt
import webvtt

from asr import formats
from asr.post.speakers import assign_speakers
from asr.segments import build_segments
from asr.types import (
    Chunk, ChunkResult, Segment, Span, SpeakerActivity, SubtitleOptions, TimedText, Transcript, Word,
)

FRAME_S = 0.08


def activity(duration_s: float, turns: list[tuple[float, float, int]], slots: int = 4, p: float = 0.95) -> SpeakerActivity:
    """Probabilities with slot `k` talking over each (start_s, end_s, k); 0.02 elsewhere."""
    n = int(np.ceil(duration_s / FRAME_S))
    probs = np.full((n, slots), 0.02, dtype=np.float32)
    for start_s, end_s, k in turns:
        probs[int(round(start_s / FRAME_S)) : int(round(end_s / FRAME_S)), k] = p
    return SpeakerActivity(probs, FRAME_S)


def words(spec: list[tuple[float, float, str]]) -> list[Word]:
    return [Word(a, b, t) for a, b, t in spec]


def seg_of(ws: list[Word]) -> Segment:
    return Segment(ws[0].start_s, ws[-1].end_s, " ".join(w.text for w in ws), tuple(ws))


def speakers_of(segments) -> list[tuple[str, str]]:
    return [(s.speaker, s.text) for s in segments]


def test_two_speakers_alternating_are_numbered_by_first_appearance():
    # slot 2 speaks first, then slot 0, then slot 2 again: names follow appearance, not slots
    act = activity(6.0, [(0.0, 2.0, 2), (2.0, 4.0, 0), (4.0, 6.0, 2)])
    ws = words([(0.2, 0.6, "Hello"), (0.7, 1.5, "there."), (2.2, 2.8, "Hi,"), (2.9, 3.6, "you."),
                (4.1, 4.5, "Bye"), (4.6, 5.5, "now.")])
    speech = [(0.2, 1.5), (2.2, 3.6), (4.1, 5.5)]  # the VAD's spans bound the speaking time
    r = assign_speakers([seg_of(ws[:2]), seg_of(ws[2:4]), seg_of(ws[4:])], act, speech_spans=speech)
    assert speakers_of(r.segments) == [
        ("SPEAKER_1", "Hello there."), ("SPEAKER_2", "Hi, you."), ("SPEAKER_1", "Bye now.")]
    assert all(w.speaker == s.speaker for s in r.segments for w in s.words)
    assert [(k.speaker, k.segments) for k in r.speakers] == [("SPEAKER_1", 2), ("SPEAKER_2", 1)]
    assert r.speakers[0].speech_s == pytest.approx((1.5 - 0.2) + (5.5 - 4.1))
    assert not any(s.overlap for s in r.segments)


def test_a_speaker_change_inside_one_sentence_ends_the_segment():
    act = activity(4.0, [(0.0, 1.6, 1), (1.6, 4.0, 3)])
    ws = words([(0.1, 0.5, "So"), (0.6, 1.2, "what"), (1.7, 2.0, "exactly"), (2.1, 2.6, "happened?")])
    r = assign_speakers([seg_of(ws)], act)
    assert speakers_of(r.segments) == [("SPEAKER_1", "So what"), ("SPEAKER_2", "exactly happened?")]
    assert r.segments[0].end_s == 1.2 and r.segments[1].start_s == 1.7


def test_word_across_a_frame_boundary_takes_the_speaker_holding_most_of_it():
    # frames of 80 ms: slot 0 holds frames 0..9 (to 0.80 s), slot 1 from 0.80 s on
    act = activity(2.0, [(0.0, 0.8, 0), (0.8, 2.0, 1)])
    a = assign_speakers([seg_of(words([(0.70, 0.85, "mostly-one")]))], act).segments[0]
    b = assign_speakers([seg_of(words([(0.76, 0.95, "mostly-two")]))], act).segments[0]
    # speakers are numbered by first appearance in the diarizer's speech: slot 0 talks first
    ref = words([(0.1, 0.3, "ref")])
    both = assign_speakers([seg_of(ref + words([(0.70, 0.85, "x")])), seg_of(words([(0.76, 0.95, "y")]))], act)
    assert (a.speaker, b.speaker) == ("SPEAKER_1", "SPEAKER_2")
    assert [s.speaker for s in both.segments] == ["SPEAKER_1", "SPEAKER_2"]
    assert both.segments[0].text == "ref x"


def test_zero_length_word_reads_its_frame():
    act = activity(2.0, [(0.0, 1.0, 0), (1.0, 2.0, 1)])
    r = assign_speakers([seg_of(words([(0.2, 0.5, "a"), (1.5, 1.5, "b")]))], act)
    assert speakers_of(r.segments) == [("SPEAKER_1", "a"), ("SPEAKER_2", "b")]


def test_word_in_silence_takes_the_nearest_active_speaker():
    # slot 0 until 1 s, nobody 1..5 s, slot 1 from 5 s: a word at 1.5 s is nearer slot 0,
    # a word at 4.5 s nearer slot 1, a word past the end of the probabilities reads the last frame
    act = activity(7.0, [(0.0, 1.0, 0), (5.0, 7.0, 1)])
    ws = words([(0.2, 0.8, "one"), (1.4, 1.7, "two"), (4.3, 4.6, "three"), (5.2, 5.9, "four"),
                (9.0, 9.5, "five")])
    r = assign_speakers([seg_of(ws)], act)
    assert speakers_of(r.segments) == [("SPEAKER_1", "one two"), ("SPEAKER_2", "three four five")]


def test_no_speaker_active_anywhere_still_names_every_word():
    act = SpeakerActivity(np.full((20, 4), 0.1, dtype=np.float32), FRAME_S)
    r = assign_speakers([seg_of(words([(0.1, 0.4, "quiet"), (0.5, 0.9, "words")]))], act)
    assert speakers_of(r.segments) == [("SPEAKER_1", "quiet words")]
    assert len(r.speakers) == 1


def test_overlapped_speech_keeps_the_dominant_speaker_and_flags_the_segment():
    act = activity(4.0, [(0.0, 4.0, 0)])
    probs = act.probabilities.copy()
    probs[int(1.0 / FRAME_S) : int(2.0 / FRAME_S), 1] = 0.7  # slot 1 talks over slot 0 (weaker)
    act = SpeakerActivity(probs, FRAME_S)
    ws = words([(0.1, 0.8, "First"), (0.9, 0.95, "bit."), (1.1, 1.8, "Talked"), (1.85, 1.95, "over."),
                (2.5, 3.0, "Clear."), ])
    r = assign_speakers([seg_of(ws[:2]), seg_of(ws[2:4]), seg_of(ws[4:])], act)
    assert [s.speaker for s in r.segments] == ["SPEAKER_1"] * 3
    assert [s.overlap for s in r.segments] == [False, True, False]
    assert [k.speaker for k in r.speakers] == ["SPEAKER_1"]


def test_chunks_that_cut_a_speaker_turn_and_a_change_inside_a_chunk():
    # two chunks (VAD spans 0-3 s and 3.5-8 s); speaker A talks 0-5 s across the chunk seam,
    # speaker B takes over at 5 s inside the second chunk, in the middle of a sentence
    c1 = Chunk((Span(0, 3 * 16000),))
    c2 = Chunk((Span(int(3.5 * 16000), 8 * 16000),))
    r1 = ChunkResult("We met at", words=(TimedText(0.2, 0.6, "We"), TimedText(0.7, 1.2, "met"),
                                         TimedText(2.4, 2.9, "at")))
    r2 = ChunkResult("noon and then left.", words=(
        TimedText(0.1, 0.6, "noon"), TimedText(0.8, 1.2, "and"), TimedText(1.7, 2.2, "then"),
        TimedText(2.3, 3.0, "left.")))
    segments = build_segments([(c1, r1), (c2, r2)], "transcribe", timestamps=True)
    assert [s.text for s in segments] == ["We met at noon and then left."]  # one sentence over the seam
    act = activity(8.0, [(0.0, 5.0, 0), (5.0, 8.0, 1)])
    r = assign_speakers(segments, act)
    assert speakers_of(r.segments) == [("SPEAKER_1", "We met at noon and"), ("SPEAKER_2", "then left.")]
    assert r.segments[0].start_s == pytest.approx(0.2) and r.segments[1].start_s == pytest.approx(5.2)


def test_subtitle_limits_still_apply_after_cutting_at_speakers():
    act = activity(30.0, [(0.0, 30.0, 0)])
    ws = [Word(0.5 * i, 0.5 * i + 0.4, f"word{i}") for i in range(40)]  # 20 s, no sentence end
    o = SubtitleOptions(max_segment_s=7.0, max_line_chars=42)
    r = assign_speakers([seg_of(ws)], act, o)
    assert len(r.segments) >= 3
    assert all(s.end_s - s.start_s <= 7.0 for s in r.segments)
    assert " ".join(s.text for s in r.segments) == " ".join(w.text for w in ws)


def test_translation_segments_take_the_speaker_holding_most_of_them():
    act = activity(10.0, [(0.0, 3.0, 0), (3.0, 10.0, 1)])
    segments = [Segment(0.0, 4.0, "Mostly the first speaker."),  # 3 s of slot 0, 1 s of slot 1
                Segment(2.5, 9.0, "Mostly the second.")]
    r = assign_speakers(segments, act)
    assert speakers_of(r.segments) == [("SPEAKER_1", "Mostly the first speaker."), ("SPEAKER_2", "Mostly the second.")]
    assert all(s.words == () for s in r.segments)
    assert r.segments[0].start_s == 0.0 and r.segments[0].end_s == 4.0  # not cut without word times


def diarized_transcript() -> Transcript:
    act = activity(12.0, [(0.0, 4.0, 0), (4.0, 12.0, 1)])
    second = "Use <b> & --> arrows, and a line long enough to wrap.".split()
    ws = words([(0.5, 1.0, "Good"), (1.1, 1.6, "morning,"), (1.7, 2.4, "everyone.")]) + [
        Word(4.5 + 0.5 * i, 4.9 + 0.5 * i, w) for i, w in enumerate(second)]
    r = assign_speakers([seg_of(ws)], act, speech_spans=[(0.5, 2.4), (4.5, 10.4)])
    return Transcript(
        text=" ".join(s.text for s in r.segments), segments=r.segments, source_lang="en", target_lang="en",
        task="transcribe", duration_s=12.0, speech_s=11.0, model="test", timestamps=True, speakers=r.speakers)


def test_srt_cues_start_with_the_speaker():
    t = diarized_transcript()
    cues = list(srt.parse(formats.SRTWriter().to_string(t)))
    assert [c.content.split(": ", 1)[0] for c in cues] == ["SPEAKER_1", "SPEAKER_2"]
    assert cues[0].content == "SPEAKER_1: Good morning, everyone."
    assert "-->" not in cues[1].content
    assert all(len(line) <= 42 for c in cues for line in c.content.splitlines())
    assert cues[1].content.count("\n") == 1  # the prefix is counted when lines are balanced


def test_vtt_cues_are_voice_spans_read_back_by_webvtt_py():
    t = diarized_transcript()
    vtt = formats.VTTWriter().to_string(t)
    captions = webvtt.from_string(vtt).captions
    assert [c.voice for c in captions] == ["SPEAKER_1", "SPEAKER_2"]
    assert captions[0].raw_text == "<v SPEAKER_1>Good morning, everyone.</v>"
    assert captions[1].raw_text.startswith("<v SPEAKER_2>Use &lt;b&gt; &amp; --&gt; arrows")
    assert captions[1].raw_text.endswith("wrap.</v>") and "\n" in captions[1].raw_text
    assert captions[1].text.replace("\n", " ") == "Use &lt;b&gt; &amp; --&gt; arrows, and a line long enough to wrap."


def test_output_without_speakers_has_no_speaker_fields_and_with_them_has_all():
    plain = Transcript(text="Hi.", segments=(Segment(0.0, 1.0, "Hi.", (Word(0.0, 1.0, "Hi."),)),),
                       source_lang="en", target_lang="en", task="transcribe", duration_s=1.0, speech_s=1.0,
                       model="m", timestamps=True)
    d = formats.to_dict(plain)
    text = json.dumps(d)
    assert "speaker" not in text and "overlap" not in text
    assert d["srt"] == "1\n00:00:00,000 --> 00:00:01,000\nHi.\n\n"
    assert "<v" not in d["vtt"]
    diarized = formats.to_dict(diarized_transcript())
    assert [s["speaker"] for s in diarized["segments"]] == ["SPEAKER_1", "SPEAKER_2"]
    assert [s["overlap"] for s in diarized["segments"]] == [False, False]
    assert {w["speaker"] for w in diarized["segments"][1]["words"]} == {"SPEAKER_2"}
    assert diarized["speakers"] == [{"speaker": "SPEAKER_1", "speech_s": 1.9, "segments": 1},
                                    {"speaker": "SPEAKER_2", "speech_s": 5.9, "segments": 1}]


def test_summary_is_the_same_whatever_the_segments_and_never_exceeds_the_speech():
    """One speech, three segmentations (word-timed, one chunk-long segment without words, short
    translated segments without words): the same speakers with the same speaking time, and
    together no more than the speech the VAD found, even where the diarizer hears more."""
    act = activity(20.0, [(0.0, 6.0, 1), (6.0, 12.5, 3), (12.5, 20.0, 1)])
    speech = [(0.4, 5.8), (6.3, 12.0), (13.0, 19.5)]  # 17.6 s; the diarizer is active for 20 s
    ws = words([(a + 0.1, a + 0.9, f"w{i}.") for i, a in enumerate(np.arange(0.4, 19.0, 1.0))])
    timed = assign_speakers([seg_of(ws)], act, speech_spans=speech)
    chunk = assign_speakers([Segment(0.4, 19.5, "all of it")], act, speech_spans=speech)
    translated = assign_speakers([Segment(a, a + 2.5, "t") for a in np.arange(0.4, 19.0, 2.5)], act,
                                 speech_spans=speech)
    expected = [("SPEAKER_1", 5.4 + 6.5), ("SPEAKER_2", 5.7)]
    for r in (timed, chunk, translated):
        assert [(k.speaker, round(k.speech_s, 1)) for k in r.speakers] == expected
        assert sum(k.speech_s for k in r.speakers) <= 17.6 + 1e-6
    assert [k.segments for k in chunk.speakers] == [1, 0]  # one chunk-long segment: one speaker named
    assert {s.speaker for s in translated.segments} == {"SPEAKER_1", "SPEAKER_2"}
