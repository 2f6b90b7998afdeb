"""Chunk-time model output -> original-time words and subtitle-sized segments."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.segments import build_segments, fit_text, fit_words, map_segments, map_words, split_sentences
from asr.types import SAMPLE_RATE, Chunk, ChunkResult, Segment, Span, SubtitleOptions, TimedText, Word

S = SAMPLE_RATE
# A chunk made of three spans of the original audio: 2-4 s, 10-13 s, 30-31 s.
CHUNK = Chunk((Span(2 * S, 4 * S), Span(10 * S, 13 * S), Span(30 * S, 31 * S)))


def test_words_map_through_their_span():
    words = map_words(CHUNK, [TimedText(0.5, 0.9, "a"), TimedText(2.2, 2.6, "b"), TimedText(5.1, 5.5, "c")])
    assert [(w.start_s, w.end_s) for w in words] == [
        pytest.approx((2.5, 2.9)), pytest.approx((10.2, 10.6)), pytest.approx((30.1, 30.5))]


def test_a_word_never_straddles_a_gap():
    # 1.8-2.6 s of chunk time crosses the seam at 2.0 s (original 4 s -> 10 s); most of it is after.
    (w,) = map_words(CHUNK, [TimedText(1.8, 2.6, "across")])
    assert (w.start_s, w.end_s) == pytest.approx((10.0, 10.6))
    (w,) = map_words(CHUNK, [TimedText(1.2, 2.1, "before")])
    assert (w.start_s, w.end_s) == pytest.approx((3.2, 4.0))


def test_a_segment_across_a_seam_reports_its_true_extent():
    (seg,) = map_segments(CHUNK, [TimedText(1.0, 5.5, "long sentence")])
    assert (seg.start_s, seg.end_s) == pytest.approx((3.0, 30.5))


def test_times_beyond_the_chunk_are_clamped():
    (w,) = map_words(CHUNK, [TimedText(5.9, 7.0, "late")])  # the model saw padding after the audio
    assert (w.start_s, w.end_s) == pytest.approx((30.9, 31.0))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-1, 8), st.floats(0, 3)), max_size=30))
def test_mapped_words_lie_inside_speech(raw):
    words = map_words(CHUNK, [TimedText(a, a + d, "w") for a, d in raw])
    for w in words:
        assert w.start_s <= w.end_s
        assert any(s.start_s - 1e-9 <= w.start_s and w.end_s <= s.end_s + 1e-9 for s in CHUNK.spans)


def words_from(text: str, start: float = 0.0, step: float = 0.4, gaps: dict | None = None) -> list[Word]:
    out, t = [], start
    for i, token in enumerate(text.split()):
        t += (gaps or {}).get(i, 0.0)
        out.append(Word(t, t + step * 0.8, token))
        t += step
    return out


def test_sentences_end_at_sentence_punctuation():
    parts = split_sentences(words_from('One two. Three? Four "five!" six'))
    assert [" ".join(w.text for w in p) for p in parts] == ["One two.", "Three?", 'Four "five!"', "six"]


def test_long_sentences_are_cut_to_fit_a_cue():
    o = SubtitleOptions(max_segment_s=7.0, max_line_chars=42, max_lines=2)
    text = " ".join(f"word{i}," if i % 7 == 6 else f"word{i}" for i in range(60))
    segs = fit_words(words_from(text), o)
    assert len(segs) > 3
    assert [w for s in segs for w in s.words] == words_from(text)  # nothing lost, order kept
    for s in segs:
        assert s.end_s - s.start_s <= 7.0
        assert len(s.text) <= 2 * 42 + 1
        assert s.words[0].start_s == s.start_s and s.words[-1].end_s == s.end_s


def test_cuts_prefer_long_pauses():
    words = words_from("a b c d e f g h i j k l m n o p", step=0.6, gaps={11: 3.0})
    segs = fit_words(words, SubtitleOptions(max_segment_s=7.0))
    assert segs[0].words[-1].text == "k" and segs[1].words[0].text == "l"


def test_translated_segments_are_cut_by_text_with_interpolated_times():
    seg = Segment(10.0, 30.0, " ".join(["lorem ipsum dolor sit amet"] * 10))
    parts = fit_text(seg, SubtitleOptions())
    assert len(parts) > 2
    assert parts[0].start_s == 10.0 and parts[-1].end_s == 30.0
    for a, b in zip(parts, parts[1:]):
        assert a.end_s == pytest.approx(b.start_s)
    assert " ".join(p.text for p in parts) == seg.text
    assert all(p.words == () for p in parts)


def test_build_segments_joins_sentences_across_chunks():
    c1 = Chunk((Span(0, 5 * S),))
    c2 = Chunk((Span(6 * S, 9 * S),))
    r1 = ChunkResult("The first sentence. And a second one that", (
        TimedText(0.1, 0.4, "The"), TimedText(0.4, 0.8, "first"), TimedText(0.8, 1.5, "sentence."),
        TimedText(2.0, 2.3, "And"), TimedText(2.3, 2.5, "a"), TimedText(2.5, 3.0, "second"),
        TimedText(3.0, 3.5, "one"), TimedText(3.6, 4.9, "that")))
    r2 = ChunkResult("continues here.", (TimedText(0.2, 1.0, "continues"), TimedText(1.0, 2.0, "here.")))
    segs = build_segments([(c1, r1), (c2, r2)], "transcribe", True)
    assert [s.text for s in segs] == ["The first sentence.", "And a second one that continues here."]
    assert segs[1].start_s == pytest.approx(2.0) and segs[1].end_s == pytest.approx(8.0)


def test_build_segments_without_timestamps_uses_chunks():
    c = Chunk((Span(S, 3 * S), Span(5 * S, 6 * S)))
    (seg,) = build_segments([(c, ChunkResult("Hi there."))], "transcribe", False)
    assert (seg.start_s, seg.end_s, seg.text, seg.words) == (1.0, 6.0, "Hi there.", ())


def test_build_segments_skips_empty_chunks():
    c = Chunk((Span(0, S),))
    assert build_segments([(c, ChunkResult(""))], "transcribe", True) == []


def test_a_chunk_without_words_does_not_cost_the_others_theirs():
    c1, c2, c3 = (Chunk((Span(k * 10 * S, (k * 10 + 5) * S),)) for k in range(3))
    r1 = ChunkResult("One two.", (TimedText(0.1, 0.5, "One"), TimedText(0.5, 1.0, "two.")))
    r2 = ChunkResult("Unaligned text.", (), (TimedText(0.2, 2.0, "Unaligned text."),))
    r3 = ChunkResult("Three.", (TimedText(1.0, 1.5, "Three."),))
    segs = build_segments([(c1, r1), (c2, r2), (c3, r3)], "transcribe", True)
    assert [s.text for s in segs] == ["One two.", "Unaligned text.", "Three."]
    assert [len(s.words) for s in segs] == [2, 0, 1]
    assert segs[1].start_s == pytest.approx(10.2) and segs[2].start_s == pytest.approx(21.0)
