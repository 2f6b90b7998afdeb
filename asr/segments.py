"""From per-chunk model output to words and segments on the original timeline.

A chunk is several speech spans laid end to end, so a chunk time is mapped through the span it
falls in (chunking.TimeMap). Words never straddle a gap that is not in the audio: a word that the
aligner placed across a seam is kept inside the span holding most of it.

Segments are built from the whole word stream of a file (so a sentence cut by a chunk boundary is
whole again), split at the model's sentence ends, then cut further to fit subtitles (duration,
line length), preferring pauses and punctuation. Translations have segment times only (Canary
aligns words for transcription): long translated segments are cut by text length with times
interpolated in proportion to characters.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence

from .frontend.chunking import TimeMap
from .models.confidence import mean
from .types import Chunk, ChunkResult, Segment, SubtitleOptions, TimedText, Word

SENTENCE_ENDS = (".", "?", "!", "…", "。", "？", "！")
CLAUSE_ENDS = (",", ";", ":", "—", "–")


def map_words(chunk: Chunk, words: Sequence[TimedText]) -> list[Word]:
    """Chunk-time words -> original-time words, each inside one speech span."""
    tm = TimeMap(chunk)
    out: list[Word] = []
    for w in words:
        a = min(max(w.start_s, 0.0), tm.duration_s)
        b = min(max(w.end_s, a), tm.duration_s)
        i, j = tm.span_index(a, "start"), tm.span_index(b, "end")
        if j < i:  # zero length, exactly on a seam: it belongs to the later span
            b, j = a, i
        if i != j:
            def overlap(k: int) -> float:
                lo, hi = tm.span_bounds_s(k)
                return min(b, hi) - max(a, lo)

            k = max(range(i, j + 1), key=overlap)
            lo, hi = tm.span_bounds_s(k)
            a, b = max(a, lo), min(b, hi)
            b = max(a, b)
        start = tm.to_original_s(a, "start")
        end = max(start, tm.to_original_s(b, "end"))
        out.append(Word(start_s=start, end_s=end, text=w.text, confidence=w.confidence))
    return out


def map_segments(chunk: Chunk, segments: Sequence[TimedText]) -> list[Segment]:
    """Chunk-time segments -> original-time segments (no words)."""
    tm = TimeMap(chunk)
    out = []
    for s in segments:
        a = min(max(s.start_s, 0.0), tm.duration_s)
        b = min(max(s.end_s, a), tm.duration_s)
        start = tm.to_original_s(a, "start")
        out.append(Segment(start_s=start, end_s=max(start, tm.to_original_s(b, "end")), text=s.text,
                           confidence=s.confidence))
    return out


def chunk_segment(chunk: Chunk, result: ChunkResult) -> Segment:
    """Without timestamps: the chunk's text over the chunk's extent."""
    return Segment(start_s=chunk.start_s, end_s=chunk.end_s, text=result.text, confidence=result.confidence)


def build_segments(
    items: Iterable[tuple[Chunk, ChunkResult]],
    task: str,
    timestamps: bool,
    options: SubtitleOptions | None = None,
) -> list[Segment]:
    """All of a file's chunk results, in timeline order -> the file's segments."""
    o = options or SubtitleOptions()
    items = [(c, r) for c, r in items if r.text]
    if not timestamps:
        return [chunk_segment(c, r) for c, r in items]
    segments: list[Segment] = []
    words: list[Word] = []  # the running word stream of consecutive chunks that have words

    def flush_words() -> None:
        segments.extend(part for sentence in split_sentences(words) for part in fit_words(sentence, o))
        words.clear()

    for c, r in items:
        if task == "transcribe" and r.words:
            words.extend(map_words(c, r.words))
            continue
        # translation, or a chunk the aligner gave no words: segment times only, for this chunk
        flush_words()
        mapped = map_segments(c, r.segments) if r.segments else [chunk_segment(c, r)]
        segments.extend(part for s in mapped for part in fit_text(s, o))
    flush_words()
    return segments


def split_sentences(words: Sequence[Word]) -> list[list[Word]]:
    """Cut the word stream after every word that ends a sentence."""
    out: list[list[Word]] = []
    current: list[Word] = []
    for w in words:
        current.append(w)
        if w.text.rstrip("\"'”’»)]").endswith(SENTENCE_ENDS):
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def fits(text: str, duration_s: float, o: SubtitleOptions) -> bool:
    return duration_s <= o.max_segment_s and len(wrap_lines(text, o.max_line_chars)) <= o.max_lines


def wrap_lines(text: str, width: int) -> list[str]:
    """Lines of at most `width` characters, broken at spaces (a longer word stands alone)."""
    return textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False) or [""]


def _segment(words: Sequence[Word]) -> Segment:
    return Segment(
        start_s=words[0].start_s,
        end_s=max(w.end_s for w in words),
        text=" ".join(w.text for w in words),
        words=tuple(words),
        confidence=mean([w.confidence for w in words]),
    )


def fit_words(words: list[Word], o: SubtitleOptions) -> list[Segment]:
    """Split a sentence at word boundaries until every part fits a subtitle cue. Each cut goes
    where it is best: a long pause, then a clause end, then the middle."""
    seg = _segment(words)
    if len(words) < 2 or fits(seg.text, seg.end_s - seg.start_s, o):
        return [seg]
    total = len(seg.text)
    best_k, best_score = 1, float("-inf")
    pos = 0
    for k in range(1, len(words)):
        pos += len(words[k - 1].text) + 1
        gap = max(0.0, words[k].start_s - words[k - 1].end_s)
        clause = words[k - 1].text.endswith(CLAUSE_ENDS)
        balance = 1.0 - abs(pos - total / 2) / (total / 2)  # 1 in the middle, 0 at the ends
        score = 2.0 * min(gap, 2.0) + (1.0 if clause else 0.0) + balance
        if score > best_score:
            best_k, best_score = k, score
    return fit_words(words[:best_k], o) + fit_words(words[best_k:], o)


def fit_text(seg: Segment, o: SubtitleOptions) -> list[Segment]:
    """Split a segment without word times: at spaces near the middle (clause ends preferred),
    with times interpolated in proportion to characters."""
    if fits(seg.text, seg.end_s - seg.start_s, o):
        return [seg]
    tokens = seg.text.split(" ")
    if len(tokens) < 2:
        return [seg]
    total = len(seg.text)
    best_k, best_score, pos = 1, float("-inf"), 0
    for k in range(1, len(tokens)):
        pos += len(tokens[k - 1]) + 1
        balance = 1.0 - abs(pos - total / 2) / (total / 2)
        score = balance + (0.5 if tokens[k - 1].endswith(CLAUSE_ENDS) else 0.0)
        if score > best_score:
            best_k, best_score, best_pos = k, score, pos
    left, right = " ".join(tokens[:best_k]), " ".join(tokens[best_k:])
    cut = seg.start_s + (seg.end_s - seg.start_s) * best_pos / (total + 1)
    return (fit_text(Segment(seg.start_s, cut, left, confidence=seg.confidence), o)
            + fit_text(Segment(cut, seg.end_s, right, confidence=seg.confidence), o))


def join_text(texts: Iterable[str]) -> str:
    """Chunk texts joined by single spaces (all of Canary's languages separate words by spaces)."""
    return " ".join(t.strip() for t in texts if t and t.strip())
