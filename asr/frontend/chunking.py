"""Pack speech spans into model inputs of at most `max_chunk_s`, and map chunk time back.

Invariants (tested on real audio and on random spans):
- every sample of every span lands in exactly one chunk, in order;
- no chunk is longer than the limit;
- a span longer than the limit is cut at the quietest point shortly before the limit.
Pure functions of their inputs: no I/O, no model.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Literal

import numpy as np

from ..types import SAMPLE_RATE, Chunk, ChunkOptions, Span


def plan_chunks(spans: Sequence[Span], audio: np.ndarray, options: ChunkOptions | None = None) -> list[Chunk]:
    """Split over-long spans at quiet points, then pack the pieces greedily in order."""
    packer = ChunkPacker(options)
    return packer.push(spans, audio) + packer.finish()


class ChunkPacker:
    """`plan_chunks` run incrementally: push spans as the VAD settles them, get back the chunks
    that are complete (the next piece did not fit). Same result as one call on all spans."""

    def __init__(self, options: ChunkOptions | None = None):
        self.options = options or ChunkOptions()
        self.max_samples = int(round(self.options.max_chunk_s * SAMPLE_RATE))
        self._current: list[Span] = []
        self._total = 0

    def push(self, spans: Sequence[Span], audio: np.ndarray) -> list[Chunk]:
        """`audio` must hold at least up to the end of the last span (the split needs it)."""
        done: list[Chunk] = []
        for span in spans:
            for piece in split_span(span, audio, self.options):
                if self._current and self._total + piece.num_samples > self.max_samples:
                    done.append(Chunk(tuple(self._current)))
                    self._current, self._total = [], 0
                self._current.append(piece)
                self._total += piece.num_samples
        return done

    def earliest_sample(self) -> int | None:
        """First sample of the chunk being filled (its audio is still needed), or None."""
        return self._current[0].start_sample if self._current else None

    def finish(self) -> list[Chunk]:
        done = [Chunk(tuple(self._current))] if self._current else []
        self._current, self._total = [], 0
        return done


def split_span(span: Span, audio: np.ndarray, options: ChunkOptions | None = None) -> list[Span]:
    """Cut a span into pieces of at most max_chunk_s, each cut at the quietest moment within
    `split_search_s` before the limit (so pieces stay long and cuts fall between words), and
    never leaving a piece shorter than `min_piece_s` behind a cut."""
    o = options or ChunkOptions()
    max_samples = int(round(o.max_chunk_s * SAMPLE_RATE))
    search = min(max_samples - 1, int(round(o.split_search_s * SAMPLE_RATE)))
    min_piece = min(int(round(o.min_piece_s * SAMPLE_RATE)), max_samples // 4)
    frame = max(1, int(SAMPLE_RATE * o.split_frame_ms / 1000))
    pieces = []
    start = span.start_sample
    while span.end_sample - start > max_samples:
        hi = min(start + max_samples, span.end_sample - min_piece)
        lo = max(start + min_piece, min(start + max_samples - search, hi - 1))
        cut = quietest_point(audio, lo, hi, frame)
        pieces.append(Span(start, cut))
        start = cut
    pieces.append(Span(start, span.end_sample))
    return pieces


def quietest_point(audio: np.ndarray, lo: int, hi: int, frame: int) -> int:
    """The sample in (lo, hi] at the middle of the quietest stretch, judged by frame energy
    averaged over five frames (about 100 ms: a pause between words, not a stop consonant).
    The average near the window's ends uses only real frames (no zero padding, which would
    make the ends look quiet). Ties go to the latest point, keeping the piece before the cut long."""
    segment = audio[lo:hi].astype(np.float64, copy=False)
    n_frames = segment.size // frame
    if n_frames < 1:
        return hi
    energy = np.square(segment[: n_frames * frame]).reshape(n_frames, frame).mean(axis=1)
    width = min(5, n_frames)
    kernel = np.ones(width)
    smooth = np.convolve(energy, kernel, mode="same") / np.convolve(np.ones(n_frames), kernel, mode="same")
    best = n_frames - 1 - int(np.argmin(smooth[::-1]))
    cut = lo + best * frame + frame // 2
    return int(min(max(cut, lo + 1), hi))


def chunk_audio(audio: np.ndarray, chunk: Chunk) -> np.ndarray:
    """The samples the model sees for a chunk: its spans laid end to end (a new array)."""
    out = np.empty(chunk.num_samples, dtype=np.float32)
    pos = 0
    for s in chunk.spans:
        part = audio[s.start_sample : s.end_sample]
        out[pos : pos + part.size] = part
        pos += part.size
    if pos != out.size:  # the audio ended before the span did (should not happen)
        out = out[:pos]
    return out


Side = Literal["start", "end"]


class TimeMap:
    """Maps a time inside a chunk (seconds from the chunk's first sample) to the original
    timeline. At the seam between two spans, a start belongs to the later span and an end to
    the earlier one, so nothing is placed inside a gap that the model never heard."""

    def __init__(self, chunk: Chunk):
        self.spans = chunk.spans
        offsets = [0]
        for s in chunk.spans:
            offsets.append(offsets[-1] + s.num_samples)
        self._offsets_s = [o / SAMPLE_RATE for o in offsets]
        self.duration_s = self._offsets_s[-1]

    def span_index(self, t_s: float, side: Side = "start") -> int:
        """Index of the span that chunk time t_s falls in."""
        t = min(max(t_s, 0.0), self.duration_s)
        if side == "start":
            i = bisect.bisect_right(self._offsets_s, t) - 1
        else:
            i = bisect.bisect_left(self._offsets_s, t) - 1
        return min(max(i, 0), len(self.spans) - 1)

    def to_original_s(self, t_s: float, side: Side = "start") -> float:
        """Original-timeline seconds for chunk time t_s (clamped into the chunk)."""
        i = self.span_index(t_s, side)
        t = min(max(t_s, 0.0), self.duration_s)
        return self.spans[i].start_s + (t - self._offsets_s[i])

    def span_bounds_s(self, i: int) -> tuple[float, float]:
        """(start, end) of span i in chunk time."""
        return self._offsets_s[i], self._offsets_s[i + 1]
