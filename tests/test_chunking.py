"""Chunking: nothing lost, nothing longer than the limit, cuts at quiet points, exact time map."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.frontend.chunking import ChunkPacker, TimeMap, chunk_audio, plan_chunks, quietest_point, split_span
from asr.types import MAX_CHUNK_S, SAMPLE_RATE, Chunk, ChunkOptions, Span

MAX_SAMPLES = int(MAX_CHUNK_S * SAMPLE_RATE)


def assert_exact_cover(spans: list[Span], chunks: list[Chunk], max_samples: int = MAX_SAMPLES) -> None:
    """Every sample of every span is in exactly one chunk, in order; chunks are within limit."""
    pieces = [p for c in chunks for p in c.spans]
    assert all(c.num_samples <= max_samples for c in chunks)
    # pieces in order, non-overlapping, and their union equals the union of the spans
    for a, b in zip(pieces, pieces[1:]):
        assert a.end_sample <= b.start_sample
    covered = sum(p.num_samples for p in pieces)
    assert covered == sum(s.num_samples for s in spans)
    it = iter(pieces)
    for span in spans:
        pos = span.start_sample
        while pos < span.end_sample:
            piece = next(it)
            assert piece.start_sample == pos, (span, piece)
            pos = piece.end_sample
        assert pos == span.end_sample


@st.composite
def span_lists(draw):
    n = draw(st.integers(0, 40))
    gaps = draw(st.lists(st.integers(0, 5 * SAMPLE_RATE), min_size=n, max_size=n))
    lengths = draw(st.lists(st.integers(1, 70 * SAMPLE_RATE), min_size=n, max_size=n))
    spans, pos = [], 0
    for g, length in zip(gaps, lengths):
        pos += g
        spans.append(Span(pos, pos + length))
        pos += length
    return spans


@settings(max_examples=150, deadline=None)
@given(span_lists(), st.integers(0, 2**31 - 1))
def test_every_span_lands_in_exactly_one_chunk(spans, seed):
    total = spans[-1].end_sample if spans else 0
    audio = np.random.default_rng(seed).standard_normal(total).astype(np.float32) if total else np.zeros(0, np.float32)
    chunks = plan_chunks(spans, audio)
    assert_exact_cover(spans, chunks)


@settings(max_examples=100, deadline=None)
@given(span_lists(), st.integers(0, 2**31 - 1), st.lists(st.integers(0, 5), min_size=1))
def test_incremental_packing_equals_one_call(spans, seed, cuts):
    total = spans[-1].end_sample if spans else 0
    audio = np.random.default_rng(seed).standard_normal(total).astype(np.float32)
    packer, got, i = ChunkPacker(), [], 0
    for k in cuts * 10:
        got += packer.push(spans[i : i + k], audio)
        i += k
    got += packer.push(spans[i:], audio) + packer.finish()
    assert got == plan_chunks(spans, audio)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, MAX_SAMPLES), max_size=60))
def test_packing_is_greedy_and_in_order(lengths):
    spans, pos = [], 0
    for n in lengths:
        spans.append(Span(pos, pos + n))
        pos += n + 100
    chunks = plan_chunks(spans, np.zeros(0, np.float32))  # nothing to split: audio is not read
    assert_exact_cover(spans, chunks)
    # greedy: the first piece of each chunk did not fit into the previous chunk
    for prev, nxt in zip(chunks, chunks[1:]):
        assert prev.num_samples + nxt.spans[0].num_samples > MAX_SAMPLES


def test_long_span_is_cut_in_the_pause_before_the_limit():
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal(SAMPLE_RATE * 70)).astype(np.float32)
    pauses_s = [17.0, 34.5, 52.0]  # 200 ms pauses a monologue would have between phrases
    for p in pauses_s:
        audio[int(p * SAMPLE_RATE) : int((p + 0.2) * SAMPLE_RATE)] *= 0.001
    pieces = split_span(Span(0, audio.size), audio)
    cuts_s = [p.end_s for p in pieces[:-1]]
    assert len(cuts_s) == 3
    for cut, pause in zip(cuts_s, pauses_s):
        assert pause <= cut <= pause + 0.2
    assert all(p.duration_s <= MAX_CHUNK_S for p in pieces)


def test_monologue_without_pauses_still_fits():
    audio = (0.3 * np.random.default_rng(1).standard_normal(SAMPLE_RATE * 300)).astype(np.float32)
    spans = [Span(0, audio.size)]
    chunks = plan_chunks(spans, audio)
    assert_exact_cover(spans, chunks)
    assert len(chunks) >= 15
    # cuts fall in the search window, so pieces stay long
    assert all(c.duration_s >= MAX_CHUNK_S - ChunkOptions().split_search_s for c in chunks[:-1])


def test_quietest_point_finds_a_shallow_dip_not_the_window_edge():
    rng = np.random.default_rng(4)
    audio = rng.standard_normal(SAMPLE_RATE * 5).astype(np.float32)
    dip = slice(int(2.0 * SAMPLE_RATE), int(2.1 * SAMPLE_RATE))
    audio[dip] *= np.sqrt(0.65)  # a pause only 35 % quieter than the speech around it
    cut = quietest_point(audio, 0, audio.size, 320)
    assert dip.start <= cut <= dip.stop


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3 * SAMPLE_RATE), st.integers(0, 2**31 - 1))
def test_no_tiny_tail_after_a_cut(extra, seed):
    n = int(MAX_CHUNK_S * SAMPLE_RATE) + extra
    audio = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    audio[-3200:] *= 1e-3  # a quiet pad at the end, where an unguarded search would cut
    pieces = split_span(Span(0, n), audio)
    assert len(pieces) == 2
    assert all(p.duration_s >= ChunkOptions().min_piece_s for p in pieces)


def test_quietest_point_prefers_the_latest_of_equal_minima():
    audio = np.ones(SAMPLE_RATE, np.float32)
    audio[1000:3000] = 0
    audio[10000:12000] = 0
    cut = quietest_point(audio, 0, SAMPLE_RATE, 320)
    assert 10000 <= cut <= 12000


def test_chunk_audio_concatenates_its_spans():
    audio = np.arange(1000, dtype=np.float32)
    chunk = Chunk((Span(10, 20), Span(50, 55)))
    np.testing.assert_array_equal(chunk_audio(audio, chunk), np.r_[np.arange(10, 20), np.arange(50, 55)])


def test_real_recording_every_detected_span_is_in_exactly_one_chunk(frontend, speech60, tmp_path):
    """The streaming front end on 5 minutes of real speech against the VAD run on its own."""
    from asr.media import decode
    from asr.frontend.vad import SileroVad
    from tests.media import RECIPES, write_media

    x, rate = speech60
    path = write_media(tmp_path / "five.mp3", np.tile(x, 5), rate, RECIPES["mp3"])
    spans = SileroVad().spans(decode(path).samples)
    plan = frontend.plan(path)
    assert_exact_cover(spans, [p.chunk for p in plan.chunks])
    assert plan.speech_s == pytest.approx(sum(s.duration_s for s in spans))
    assert plan.speech_s > 200 and len(plan.chunks) > 10


@settings(max_examples=200, deadline=None)
@given(span_lists(), st.data())
def test_time_map_round_trips(spans, data):
    spans = [s for s in spans if s.num_samples <= MAX_SAMPLES][:8]
    if not spans:
        return
    chunk = Chunk(tuple(spans))
    tm = TimeMap(chunk)
    offsets = np.cumsum([0] + [s.num_samples for s in spans]) / SAMPLE_RATE
    for _ in range(20):
        i = data.draw(st.integers(0, len(spans) - 1))
        frac = data.draw(st.floats(0, 0.99))
        t = offsets[i] + frac * spans[i].duration_s
        orig = tm.to_original_s(t, "start")
        assert spans[i].start_s - 1e-9 <= orig <= spans[i].end_s + 1e-9
        assert orig == pytest.approx(spans[i].start_s + frac * spans[i].duration_s, abs=1e-9)
    # seams: a start belongs to the later span, an end to the earlier one
    for i in range(1, len(spans)):
        assert tm.to_original_s(offsets[i], "start") == pytest.approx(spans[i].start_s)
        assert tm.to_original_s(offsets[i], "end") == pytest.approx(spans[i - 1].end_s)
    # clamped at the edges
    assert tm.to_original_s(-1.0) == pytest.approx(spans[0].start_s)
    assert tm.to_original_s(offsets[-1] + 5, "end") == pytest.approx(spans[-1].end_s)
