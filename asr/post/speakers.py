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
- Slots are numbered for users in order of first appearance (SPEAKER_1, SPEAKER_2, ...). The
  summary counts each speaker's segments and the total duration of those segments.
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
) -> SpeakerResult:
    """Segments on the original timeline (as asr.segments.build_segments returns them) -> the
    same text with a speaker on every word and segment, cut at speaker changes."""
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
        mass = frames.mass(seg.start_s, seg.end_s)
        if mass.max() > 0:  # the slot that holds most of the segment
            slot = int(np.argmax(mass))
        else:
            slot = frames.slot_for(seg.start_s, seg.end_s, mass)
        overlap = frames.overlapped_s(seg.start_s, seg.end_s) >= MIN_OVERLAP_S
        slotted.append((replace(seg, overlap=overlap), slot))
    flush_words()
    return _name(slotted)


def _turns(slots: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) index ranges of equal slots: a cut at every change of speaker."""
    cuts = [0] + [i for i in range(1, len(slots)) if slots[i] != slots[i - 1]] + [len(slots)]
    return list(zip(cuts, cuts[1:]))


def _name(slotted: list[tuple[Segment, int]]) -> SpeakerResult:
    """Number slots by first appearance and write the names onto segments and words."""
    names: dict[int, str] = {}
    totals: dict[str, list[float]] = {}
    out: list[Segment] = []
    for seg, slot in slotted:
        name = names.setdefault(slot, speaker_name(len(names) + 1))
        words = tuple(replace(w, speaker=name) for w in seg.words)
        out.append(replace(seg, speaker=name, words=words))
        t = totals.setdefault(name, [0.0, 0])
        t[0] += max(0.0, seg.end_s - seg.start_s)
        t[1] += 1
    speakers = tuple(Speaker(speaker=n, speech_s=t[0], segments=int(t[1])) for n, t in totals.items())
    return SpeakerResult(segments=tuple(out), speakers=speakers)
