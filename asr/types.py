"""Constants, option dataclasses and the typed values that move between stages.

Times inside the front end are integer sample indices at SAMPLE_RATE (exact, no float drift);
seconds appear only in properties and at the JSON boundary (`to_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16_000
"""Every stage after decoding works on mono float32 at this rate (Canary's and Silero's rate)."""

MAX_CHUNK_S = 20.0
"""Longest audio the model sees in one item: Canary-1B-v2 was trained on utterances up to ~20 s
with its 40 s limit, and its timestamps are most reliable on short inputs."""

TARGET_LUFS = -23.0
"""EBU R 128 programme loudness; every chunk is normalised to it before inference."""


@dataclass(frozen=True)
class AudioLimits:
    """Bounds on what the decoder accepts. Defaults are documented in the README; each can be set
    from the environment (see `from_env`) so an operator can widen or tighten them per deployment."""

    max_duration_s: float = 4 * 3600.0
    """Cap on decoded audio, counted in decoded samples as they arrive (headers are not trusted)."""
    min_sample_rate: int = 4_000
    """Below this a stream cannot carry intelligible speech (telephone audio is 8 kHz)."""
    max_sample_rate: int = 384_000
    """The highest rate studio formats use (DXD is 352.8 kHz)."""
    max_channels: int = 32
    decode_timeout_s: float = 600.0
    """Wall-clock deadline for the decoder process; a hang fails the prediction, not the server."""
    decoder_memory_bytes: int = 2 * 1024**3
    """Address-space limit of the decoder process (its output streams out, so it needs little)."""

    @classmethod
    def from_env(cls) -> "AudioLimits":
        from .settings import number

        d = cls()
        return cls(
            max_duration_s=number("ASR_MAX_DURATION_S", d.max_duration_s),
            min_sample_rate=int(number("ASR_MIN_SAMPLE_RATE", d.min_sample_rate)),
            max_sample_rate=int(number("ASR_MAX_SAMPLE_RATE", d.max_sample_rate)),
            max_channels=int(number("ASR_MAX_CHANNELS", d.max_channels)),
            decode_timeout_s=number("ASR_DECODE_TIMEOUT_S", d.decode_timeout_s),
            decoder_memory_bytes=int(number("ASR_DECODER_MEMORY_MB", d.decoder_memory_bytes / 2**20) * 2**20),
        )


@dataclass(frozen=True)
class VadOptions:
    """Silero VAD settings, tuned for feeding an ASR model rather than for tight speech marks.

    - threshold 0.5 / neg_threshold 0.35: Silero's own defaults (hysteresis against flicker).
    - min_silence_ms 500: shorter pauses stay inside a span, so the model hears natural
      within-sentence pauses and words are never cut at a breath.
    - speech_pad_ms 200: keeps soft onsets and word endings (fricatives, plosives) that the VAD
      scores low; neighbouring spans closer than twice this meet in the middle instead.
    - min_speech_ms 250: drops clicks and coughs shorter than any word.
    """

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_ms: int = 250
    min_silence_ms: int = 500
    speech_pad_ms: int = 200


@dataclass(frozen=True)
class ChunkOptions:
    """How speech spans are packed into model inputs."""

    max_chunk_s: float = MAX_CHUNK_S
    split_search_s: float = 5.0
    """A span longer than max_chunk_s is cut at the quietest point within this many seconds
    before the limit, so a monologue without pauses is cut between words, not inside one."""
    split_frame_ms: int = 20
    """Resolution of the quietest-point search (RMS over frames of this length)."""
    min_piece_s: float = 1.0
    """No cut leaves a piece shorter than this after it: a 150 ms tail alone would be a chunk of
    near-silence for the model."""


@dataclass(frozen=True)
class LoudnessOptions:
    """Per-chunk loudness normalisation (ITU-R BS.1770-4 via pyloudnorm)."""

    target_lufs: float = TARGET_LUFS
    max_gain_db: float = 45.0
    """A chunk is not boosted by more than this: enough for a recording 35 dB too quiet (about
    -58 LUFS) to reach the target, while chunks near BS.1770's -70 LUFS gate stay quiet."""
    peak_ceiling_dbfs: float = -1.0
    """A look-ahead limiter keeps every sample at or below this level, so nothing clips."""


@dataclass(frozen=True, order=True)
class Span:
    """A stretch of the original audio, [start_sample, end_sample) at SAMPLE_RATE."""

    start_sample: int
    end_sample: int

    def __post_init__(self) -> None:
        if not 0 <= self.start_sample < self.end_sample:
            raise ValueError(f"invalid span [{self.start_sample}, {self.end_sample})")

    @property
    def num_samples(self) -> int:
        return self.end_sample - self.start_sample

    @property
    def start_s(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end_sample / SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return self.num_samples / SAMPLE_RATE


@dataclass(frozen=True)
class Chunk:
    """One model input: speech spans of the original audio laid end to end, in order."""

    spans: tuple[Span, ...]

    def __post_init__(self) -> None:
        if not self.spans:
            raise ValueError("a chunk needs at least one span")
        for a, b in zip(self.spans, self.spans[1:]):
            if b.start_sample < a.end_sample:
                raise ValueError(f"chunk spans overlap or are out of order: {a} then {b}")

    @property
    def num_samples(self) -> int:
        return sum(s.num_samples for s in self.spans)

    @property
    def duration_s(self) -> float:
        """Length of the audio the model sees (gaps between spans are not included)."""
        return self.num_samples / SAMPLE_RATE

    @property
    def start_s(self) -> float:
        return self.spans[0].start_s

    @property
    def end_s(self) -> float:
        return self.spans[-1].end_s


@dataclass(frozen=True, eq=False)
class PreparedChunk:
    """A chunk with its normalised audio, ready for the model."""

    chunk: Chunk
    samples: np.ndarray = field(repr=False)
    """float32, mono, SAMPLE_RATE, normalised to the target loudness and peak-limited."""
    lufs: float | None
    """Integrated loudness of `samples` (after normalisation); None where it cannot be measured
    (digital silence, or too short to measure)."""
    gain_db: float


@dataclass(frozen=True, eq=False)
class ChunkPlan:
    """What the front end hands to the model: every detected speech span in exactly one chunk."""

    duration_s: float
    """Decoded duration of the whole recording."""
    speech_s: float
    """Total duration of detected speech (the sum of all chunk durations)."""
    chunks: tuple[PreparedChunk, ...]

    def to_dict(self) -> dict:
        """The JSON of `python -m asr segment` (see README, Command line)."""
        return {
            "duration_s": round(self.duration_s, 3),
            "speech_s": round(self.speech_s, 3),
            "chunks": [
                {
                    "start_s": round(p.chunk.start_s, 3),
                    "end_s": round(p.chunk.end_s, 3),
                    "duration_s": round(p.chunk.duration_s, 3),
                    "spans": [[round(s.start_s, 3), round(s.end_s, 3)] for s in p.chunk.spans],
                    "lufs": None if p.lufs is None else round(p.lufs, 2),
                }
                for p in self.chunks
            ],
        }


@dataclass(frozen=True)
class TimedText:
    """A word or a segment as the model reports it: seconds from the start of the chunk it saw."""

    start_s: float
    end_s: float
    text: str
    confidence: float | None = None
    """0 to 1: how sure the model was of this text (asr.models.confidence); None where unknown."""


@dataclass(frozen=True)
class ChunkResult:
    """The model's output for one chunk (timestamps empty when not asked for)."""

    text: str
    words: tuple[TimedText, ...] = ()
    segments: tuple[TimedText, ...] = ()
    confidence: float | None = None
    """The mean confidence of the chunk's words (for segments that have no word times)."""


@dataclass(frozen=True)
class Request:
    """One model call's prompt: Canary's task slots (one prompt per call)."""

    source_lang: str
    target_lang: str
    pnc: bool = True
    timestamps: bool = True
    hotwords: Hotwords | None = None
    """Phrases to boost, already in the forms this model writes (asr.hotwords.for_model); None:
    plain decoding. Part of the batch key, so batches group by phrase set."""


@dataclass(frozen=True)
class Hotwords:
    """A phrase set to boost and how strongly (NeMo's boosting-tree weight)."""

    phrases: tuple[str, ...]
    """Sorted and without repeats, so equal sets compare (and batch) equal."""
    boost: float = 1.0


@dataclass(frozen=True)
class SubtitleOptions:
    """How segments are cut for subtitles. Defaults follow common broadcast guidance (EBU,
    Netflix timed-text style guides): at most 42 characters per line, two lines, 7 s per cue."""

    max_segment_s: float = 7.0
    max_line_chars: int = 42
    max_lines: int = 2


AUTO = "auto"
"""`source_lang` value that asks for language detection."""
MIXED = "mixed"
"""`source_lang` (and `target_lang`) of a transcript whose chunks were in several languages."""


@dataclass(frozen=True)
class TranscribeOptions:
    """What the user asked for. `target_lang` None means the same as the source (transcription)."""

    source_lang: str = AUTO
    """A language code, or AUTO: detect it per file and per chunk (asr.routing)."""
    target_lang: str | None = None
    pnc: bool = True
    timestamps: bool = True
    subtitles: SubtitleOptions = field(default_factory=SubtitleOptions)
    model: str | None = None
    """One of the loaded models (ASR_MODEL); None means the first."""
    diarize: bool = False
    """Who spoke when: a speaker on every word and segment (needs the diarizer)."""
    hotwords: tuple[str, ...] = ()
    """Phrases to boost, as the user gave them (checked by asr.hotwords.parse)."""
    hotwords_boost: float = 1.0


@dataclass(frozen=True)
class Word:
    """A word on the original timeline (seconds)."""

    start_s: float
    end_s: float
    text: str
    speaker: str | None = None
    """Set only with diarization (asr.post.speakers); None keeps it out of the output."""
    confidence: float | None = None
    """0 to 1: the probability the model gave the word (asr.models.confidence)."""

    def to_dict(self) -> dict:
        out = {"start": round(self.start_s, 3), "end": round(self.end_s, 3), "word": self.text}
        if self.confidence is not None:
            out["confidence"] = round(self.confidence, 4)
        if self.speaker is not None:
            out["speaker"] = self.speaker
        return out


@dataclass(frozen=True)
class Segment:
    """A stretch of text on the original timeline; `words` is empty when word times are not
    available (timestamps off, or a translation: Canary aligns words only for transcription)."""

    start_s: float
    end_s: float
    text: str
    words: tuple[Word, ...] = ()
    speaker: str | None = None
    """Set only with diarization; a segment never mixes speakers."""
    overlap: bool | None = None
    """With diarization: True where another speaker talked over part of this segment."""
    language: str | None = None
    """The source language of the chunk this segment came from (set by the pipeline)."""
    confidence: float | None = None
    """0 to 1: the mean confidence of its words (of the chunk's words, without word times)."""

    def to_dict(self) -> dict:
        out = {
            "start": round(self.start_s, 3),
            "end": round(self.end_s, 3),
            "text": self.text,
            "words": [w.to_dict() for w in self.words],
        }
        if self.confidence is not None:
            out["confidence"] = round(self.confidence, 4)
        if self.language is not None:
            out["language"] = self.language
        if self.speaker is not None:
            out["speaker"] = self.speaker
        if self.overlap is not None:
            out["overlap"] = self.overlap
        return out


@dataclass(frozen=True)
class Speaker:
    """One diarized speaker's summary: the speech it dominates (from the diarizer's frames within
    the VAD's speech, so the same with or without timestamps) and its number of segments."""

    speaker: str
    speech_s: float
    segments: int

    def to_dict(self) -> dict:
        return {"speaker": self.speaker, "speech_s": round(self.speech_s, 3), "segments": self.segments}


@dataclass(frozen=True, eq=False)
class SpeakerActivity:
    """A diarizer's output on the original timeline: row i holds each speaker slot's probability
    of talking during [i * frame_s, (i + 1) * frame_s). Slots are the model's (up to 4 for
    Sortformer), not yet numbered for users (asr.post.speakers does that)."""

    probabilities: np.ndarray = field(repr=False)
    """float32, shape (frames, max speakers), values in [0, 1]."""
    frame_s: float = 0.08
    """Sortformer's output frame: 8x subsampling of 10 ms feature frames."""

    def __post_init__(self) -> None:
        if self.probabilities.ndim != 2:
            raise ValueError(f"speaker probabilities must be (frames, speakers), got {self.probabilities.shape}")

    @property
    def duration_s(self) -> float:
        return self.probabilities.shape[0] * self.frame_s

    def num_speakers(self, threshold: float = 0.5) -> int:
        """Speaker slots active (probability >= threshold) in at least one frame."""
        if self.probabilities.size == 0:
            return 0
        return int((self.probabilities >= threshold).any(axis=0).sum())


@dataclass(frozen=True)
class Transcript:
    text: str
    segments: tuple[Segment, ...]
    source_lang: str | None
    """None when source_lang was auto and nothing was spoken (no language was detected)."""
    target_lang: str | None
    task: str
    """"transcribe" or "translate"."""
    duration_s: float
    speech_s: float
    model: str
    timestamps: bool
    warnings: tuple[str, ...] = ()
    """Short sentences on what was done to the input that a user would want to know (damaged
    packets skipped, a channel left out, ...); empty when nothing happened."""
    timings_s: dict = field(default_factory=dict, compare=False)
    speakers: tuple[Speaker, ...] | None = None
    """Set only with diarization, in order of first appearance."""
    detected_language: str | None = None
    """With source_lang auto: the file's language as detected (None when it was given)."""
    language_probability: float | None = None
    """The detection's probability for `detected_language` (over the model's languages)."""

    def to_dict(self) -> dict:
        """The output contract (README, Output), without the subtitle files (asr.formats)."""
        return {
            "text": self.text,
            "segments": [s.to_dict() for s in self.segments],
            "source_lang": self.source_lang,
            "target_lang": self.target_lang,
            "task": self.task,
            "duration_s": round(self.duration_s, 3),
            "speech_s": round(self.speech_s, 3),
            "model": self.model,
            "detected_language": self.detected_language,
            "language_probability": None if self.language_probability is None else round(self.language_probability, 4),
            "warnings": list(self.warnings),
        } | ({} if self.speakers is None else {"speakers": [k.to_dict() for k in self.speakers]})
