"""Who spoke when: a diarizer's frame probabilities -> a speaker on every word and segment.

Pure numpy (no torch), so it is tested with synthetic probability tensors.

Rules (README, Diarization):
- A word takes the speaker slot with the highest probability over the word's frames, each frame
  weighted by how much of it the word covers (a word across a frame boundary counts both frames
  in proportion; a zero-length word reads the frame it sits in).
- Silence: where no slot reaches `threshold` over a word (the diarizer missed quiet or short
  speech that the recogniser heard), the word takes the speaker of the nearest frame in time
  where someone is active; where nobody is active anywhere, the most likely slot.
- Overlap: a word where two or more slots reach `threshold` keeps the dominant slot and marks its
  segment `overlap: true`. A segment without words is overlapped where at least MIN_OVERLAP_S of
  it has two or more active slots.
- Segments never mix speakers: the word stream is cut into sentences (as asr.segments does),
  each sentence at every speaker change, and each part is fitted to the subtitle limits with
  asr.segments.fit_words. Segments without word times (translations, timestamps off) take the
  slot that holds most of the segment and are not cut.
- The summary is read from the diarizer's frames, not from the segments, so it is the same
  whatever shape the segments take (word-timed, one per chunk without timestamps, translated):
  each frame of speech (the VAD's spans, when given) counts for the slot that dominates it among
  the active ones; a speaker's `speech_s` is the speech it dominates, so the speakers together
  never exceed the file's speech. A slot listed has at least MIN_SPEAKER_S of it, or a segment.
- Slots are numbered for users in order of first appearance in that speech (SPEAKER_1,
  SPEAKER_2, ...), then any slot only a segment names, in segment order; `segments` counts each
  speaker's segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..segments import fit_words, split_sentences
from ..types import Segment, Speaker, SpeakerActivity, SubtitleOptions, Word

ACTIVE_THRESHOLD = 0.5
"""A slot is talking in a frame when its probability reaches this (Sortformer's own default)."""
MIN_OVERLAP_S = 0.2
"""Overlapped time a segment without words needs before it is flagged (ignores one-frame blips)."""


MIN_SPEAKER_S = 0.5
"""Dominated speech below which a slot no segment names is left out of the summary (a blip)."""


def speaker_name(number: int) -> str:
    return f"SPEAKER_{number}"


@dataclass(frozen=True)
class SpeakerResult:
    """Segments with speakers, and the per-speaker summary in order of first appearance."""

    segments: tuple[Segment, ...]
    speakers: tuple[Speaker, ...]


class _Frames:
    """Frame-weighted scores over a time interval, and the nearest active frame."""

    def __init__(self, activity: SpeakerActivity, threshold: float) -> None:
        self.p = np.asarray(activity.probabilities, dtype=np.float64)
        self.frame_s = float(activity.frame_s)
        self.threshold = threshold
        self.n_frames, self.n_slots = self.p.shape
        active = self.p >= threshold
        self.active_count = active.sum(axis=1) if self.n_frames else np.zeros(0, dtype=int)
        self.active_frames = np.flatnonzero(self.active_count > 0)

    def weights(self, start_s: float, end_s: float) -> tuple[int, np.ndarray]:
        """(first frame, weights): each frame's overlap with [start_s, end_s) in seconds; a
        zero-length interval weighs the one frame it sits in. Frames past the end are clipped."""
        if self.n_frames == 0:
            return 0, np.zeros(0)
        last = self.n_frames - 1
        if end_s <= start_s:
            i = min(max(int(np.floor(start_s / self.frame_s)), 0), last)
            return i, np.ones(1)
        i0 = min(max(int(np.floor(start_s / self.frame_s)), 0), last)
        i1 = min(max(int(np.ceil(end_s / self.frame_s)), i0 + 1), self.n_frames)
        edges = np.arange(i0, i1 + 1) * self.frame_s
        w = np.minimum(edges[1:], end_s) - np.maximum(edges[:-1], start_s)
        w = np.clip(w, 0.0, None)
        if w.sum() <= 0:  # the interval lies past the last frame: read the last frame
            return last, np.ones(1)
        return i0, w

    def scores(self, start_s: float, end_s: float) -> np.ndarray:
        """Overlap-weighted mean probability of each slot over the interval."""
        i0, w = self.weights(start_s, end_s)
        if w.size == 0:
            return np.zeros(self.n_slots)
        return w @ self.p[i0 : i0 + w.size] / w.sum()

    def mass(self, start_s: float, end_s: float) -> np.ndarray:
        """Overlap-weighted probability mass (seconds of talk) of each slot over the interval."""
        i0, w = self.weights(start_s, end_s)
        if w.size == 0:
            return np.zeros(self.n_slots)
        return w @ self.p[i0 : i0 + w.size]

    def dominant(self) -> np.ndarray:
        """Per frame, the slot with the highest probability among the active ones; -1 where
        nobody is active."""
        if self.n_frames == 0:
            return np.zeros(0, dtype=int)
        return np.where(self.active_count > 0, np.argmax(self.p, axis=1), -1)

    def coverage(self, spans: Sequence[tuple[float, float]] | None) -> np.ndarray:
        """Seconds of each frame that lie inside `spans` (every frame whole when None)."""
        if spans is None:
            return np.full(self.n_frames, self.frame_s)
        cover = np.zeros(self.n_frames)
        for start_s, end_s in spans:
            if end_s <= start_s or self.n_frames == 0 or start_s >= self.n_frames * self.frame_s:
                continue
            i0, w = self.weights(start_s, end_s)
            cover[i0 : i0 + w.size] += w
        return np.minimum(cover, self.frame_s)

    def dominated_mass(self, start_s: float, end_s: float) -> np.ndarray:
        """Seconds of the interval each slot dominates while active (as words are judged)."""
        i0, w = self.weights(start_s, end_s)
        out = np.zeros(self.n_slots)
        if w.size == 0:
            return out
        dom = self.dominant()[i0 : i0 + w.size]
        keep = dom >= 0
        np.add.at(out, dom[keep], w[keep])
        return out

    def overlapped_s(self, start_s: float, end_s: float) -> float:
        i0, w = self.weights(start_s, end_s)
        if w.size == 0:
            return 0.0
        return float(w @ (self.active_count[i0 : i0 + w.size] >= 2))

    def nearest_active_slot(self, start_s: float, end_s: float) -> int | None:
        """The dominant slot of the active frame nearest to the interval (None: nobody ever talks)."""
        if self.active_frames.size == 0:
            return None
        centres = (self.active_frames + 0.5) * self.frame_s
        distance = np.maximum(start_s - centres, 0.0) + np.maximum(centres - end_s, 0.0)
        frame = self.active_frames[int(np.argmin(distance))]
        return int(np.argmax(self.p[frame]))

    def slot_for(self, start_s: float, end_s: float, scores: np.ndarray) -> int:
        """The dominant slot where someone is active, else the nearest active frame's slot."""
        if scores.size and scores.max() >= self.threshold:
            return int(np.argmax(scores))
        nearest = self.nearest_active_slot(start_s, end_s)
        if nearest is not None:
            return nearest
        return int(np.argmax(scores)) if scores.size else 0


def assign_speakers(
    segments: Sequence[Segment],
    activity: SpeakerActivity,
    options: SubtitleOptions | None = None,
    threshold: float = ACTIVE_THRESHOLD,
    speech_spans: Sequence[tuple[float, float]] | None = None,
) -> SpeakerResult:
    """Segments on the original timeline (as asr.segments.build_segments returns them) -> the
    same text with a speaker on every word and segment, cut at speaker changes. `speech_spans`
    (seconds, the VAD's) bound the speaking time in the summary."""
    o = options or SubtitleOptions()
    frames = _Frames(activity, threshold)
    if frames.n_slots == 0:
        raise ValueError("speaker activity has no speaker slots")
    slotted: list[tuple[Segment, int]] = []  # in timeline order
    run: list[Word] = []  # consecutive segments' words: one stream, as build_segments made it

    def flush_words() -> None:
        if not run:
            return
        slots, overlapped = [], []
        for w in run:
            scores = frames.scores(w.start_s, w.end_s)
            slots.append(frames.slot_for(w.start_s, w.end_s, scores))
            overlapped.append(int((scores >= threshold).sum()) >= 2)
        pos = 0
        for sentence in split_sentences(run):
            for start, end in _turns(slots[pos : pos + len(sentence)]):
                turn = sentence[start:end]
                flags = overlapped[pos + start : pos + end]
                k = 0
                for part in fit_words(turn, o):
                    overlap = any(flags[k : k + len(part.words)])
                    k += len(part.words)
                    slotted.append((replace(part, overlap=overlap), slots[pos + start]))
            pos += len(sentence)
        run.clear()

    for seg in segments:
        if seg.words:
            run.extend(seg.words)
            continue
        flush_words()
        held = frames.dominated_mass(seg.start_s, seg.end_s)
        if held.max() > 0:  # the slot that dominates most of the segment, judged as words are
            slot = int(np.argmax(held))
        else:
            slot = frames.slot_for(seg.start_s, seg.end_s, frames.scores(seg.start_s, seg.end_s))
        overlap = frames.overlapped_s(seg.start_s, seg.end_s) >= MIN_OVERLAP_S
        slotted.append((replace(seg, overlap=overlap), slot))
    flush_words()
    return _name(slotted, _speech_by_slot(frames, speech_spans))


def _speech_by_slot(frames: _Frames, spans: Sequence[tuple[float, float]] | None) -> list[tuple[int, float, float]]:
    """(slot, seconds of speech it dominates, time of its first dominated frame) for every slot
    that dominates any speech, in order of first appearance."""
    dom = frames.dominant()
    cover = frames.coverage(spans)
    out = []
    for slot in range(frames.n_slots):
        mine = (dom == slot) & (cover > 0)
        if mine.any():
            out.append((slot, float(cover[mine].sum()), float(np.flatnonzero(mine)[0] * frames.frame_s)))
    return sorted(out, key=lambda t: t[2])


def _turns(slots: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) index ranges of equal slots: a cut at every change of speaker."""
    cuts = [0] + [i for i in range(1, len(slots)) if slots[i] != slots[i - 1]] + [len(slots)]
    return list(zip(cuts, cuts[1:]))


def _name(slotted: list[tuple[Segment, int]], speech: list[tuple[int, float, float]]) -> SpeakerResult:
    """Number slots by first appearance in the speech (then by segment), write the names onto
    segments and words, and summarise each speaker's speech and segments."""
    in_segments = {slot for _seg, slot in slotted}
    seconds = {slot: s for slot, s, _t in speech}
    names: dict[int, str] = {}
    for slot, s, _t in speech:
        if s >= MIN_SPEAKER_S or slot in in_segments:
            names[slot] = speaker_name(len(names) + 1)
    counts: dict[int, int] = {}
    out: list[Segment] = []
    for seg, slot in slotted:
        name = names.setdefault(slot, speaker_name(len(names) + 1))
        words = tuple(replace(w, speaker=name) for w in seg.words)
        out.append(replace(seg, speaker=name, words=words))
        counts[slot] = counts.get(slot, 0) + 1
    speakers = tuple(Speaker(speaker=name, speech_s=seconds.get(slot, 0.0), segments=counts.get(slot, 0))
                     for slot, name in names.items())
    return SpeakerResult(segments=tuple(out), speakers=speakers)
