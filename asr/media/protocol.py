"""The typed protocol between the decoder child and its parent: both ends import this module.

Frames are `<kind: u8><length: u32><payload>`, on the child's stdout (child to parent) and on
its stdin, a Unix socket (parent to child: files, credits and chunk jobs; a file's request
carries the descriptor of its shared timeline as SCM_RIGHTS, because a child outlives the file
and cannot inherit a timeline made after it started). VAD probabilities travel as raw float32;
everything else as JSON of the frozen dataclasses below. Audio never travels here: it is in the
shared timeline (asr.media.shared), and messages only say which stretch is ready. Errors travel
as data (an `ErrorKind` and a message), never as a class name looked up by string.

A child's life: started with its `ChildSpec` (the limits it sets on itself), it warms up and
says IDLE; then, per file: START (the request), its messages, END from the parent, IDLE again.
After an ERROR it exits; a child is never given another file after anything but a clean END.
"""

from __future__ import annotations

import enum
import json
import os
import struct
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ASRError, AudioTooLongError, DecoderBug, DecoderFailure, InputError
from ..types import AudioLimits, LoudnessOptions

HEADER = struct.Struct("<BI")


class Kind(enum.IntEnum):
    INFO = 1
    """StreamInfo, once, before anything else."""
    AUDIO = 2
    """Written: the current range's audio is in the shared timeline up to a sample."""
    PROBS = 3
    """float32 VAD speech probabilities, one per VAD frame, continuing the current range."""
    RANGE_DONE = 4
    """RangeSummary: the current range is complete."""
    ERROR = 5
    """ErrorInfo: the child stops after sending it."""
    PLAN = 6
    """RangePlan, once, right after INFO."""
    CHUNK = 7
    """ChunkDone: a chunk job finished (any time, not tied to the current range)."""
    CREDIT = 8
    """Credit (parent to child): the child may write the timeline up to a sample."""
    FINISH = 9
    """ChunkJob (parent to child): cut, measure and normalise one chunk."""
    RELEASE = 10
    """Release (parent to child): give the timeline's memory before a sample back."""
    START = 11
    """ChildRequest (parent to child): the next file; its timeline's descriptor comes with it."""
    END = 12
    """End (parent to child): the file is over; let its timeline go and say IDLE."""
    IDLE = 13
    """ChildIdle: ready for a file (once warmed up, and after each file's END)."""


class ErrorKind(enum.Enum):
    INPUT = "input"
    TOO_LONG = "too_long"
    FAILURE = "failure"
    BUG = "bug"

    @classmethod
    def of(cls, error: ASRError) -> "ErrorKind":
        if isinstance(error, AudioTooLongError):
            return cls.TOO_LONG
        if isinstance(error, DecoderFailure):
            return cls.FAILURE
        if isinstance(error, InputError):
            return cls.INPUT
        return cls.BUG

    def exception(self, message: str) -> ASRError:
        return {ErrorKind.INPUT: InputError, ErrorKind.TOO_LONG: AudioTooLongError,
                ErrorKind.FAILURE: DecoderFailure, ErrorKind.BUG: DecoderBug}[self](message)


@dataclass(frozen=True)
class StreamInfo:
    """What the container says about the audio stream (informational; never trusted for limits)."""

    container: str
    codec: str
    sample_rate: int
    channels: int
    header_duration_s: float | None
    stream_index: int = 0
    """Which audio track is decoded (0-based among the audio tracks)."""
    audio_streams: int = 1
    seekable: bool = False
    """Whether time ranges can be decoded independently (sample-accurate seeking)."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DecodeRange:
    """A stretch of the output timeline for one child to produce, in samples at SAMPLE_RATE.
    `end_sample` None means up to the end of the stream. The child sends VAD probabilities from
    `vad_from_sample` (at or before `start_sample`, on the VAD frame grid) so the detector's
    state has warmed up by `start_sample`; the parent drops the warm-up frames."""

    index: int
    start_sample: int
    end_sample: int | None
    vad_from_sample: int


@dataclass(frozen=True)
class ChildRequest:
    """Everything a child needs, passed as one JSON argument. Every child of a file opens it,
    computes the same range plan from the header, and decodes the ranges whose index is
    `worker` modulo `workers`."""

    path: str
    display_name: str
    limits: AudioLimits
    worker: int = 0
    workers: int = 1
    with_vad: bool = True
    timeline_fd: int = -1
    """The shared timeline (asr.media.shared): the descriptor that came with the request, in
    the child (the parent sends -1; the number it holds means nothing to the child)."""
    capacity_samples: int = 0
    credit_samples: int = 0
    """The child writes the timeline up to here until a Credit says more (back-pressure)."""
    loudness: LoudnessOptions = LoudnessOptions()

    def to_json(self) -> str:
        d = asdict(self)
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> "ChildRequest":
        d = json.loads(text)
        d["limits"] = AudioLimits(**d["limits"])
        d["loudness"] = LoudnessOptions(**d["loudness"])
        return cls(**d)


@dataclass(frozen=True)
class ChildSpec:
    """What a child is started with and keeps for life: the limits it sets on itself. A file
    goes only to a child whose spec is `ChildSpec.of` the file's limits."""

    memory_bytes: int
    """Address-space limit (0: none)."""
    cpu_s: float
    """CPU seconds each file may use (0: no limit), counted from the file's start."""
    max_files: int = 100
    """Files a child serves before it is retired (bounds what native libraries could leak)."""

    @classmethod
    def of(cls, limits: AudioLimits) -> "ChildSpec":
        return cls(memory_bytes=limits.decoder_memory_bytes, cpu_s=limits.decode_timeout_s)

    @property
    def cpu_hard_s(self) -> int:
        """The hard CPU limit for the child's whole life: room for its warm-up and `max_files`
        files at `cpu_s` each (a file past its own soft limit is killed, so none takes more),
        plus the 5 s grace before SIGKILL that a single file had when each had its own child."""
        return int((self.max_files + 1) * (self.cpu_s + 1)) + 5

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ChildSpec":
        return cls(**json.loads(text))


@dataclass(frozen=True)
class ChildIdle:
    """A child ready for a file, and what it holds now: the parent retires one that grew."""

    files: int
    """Files finished so far (0: just warmed up)."""
    cpu_s: float
    vm_bytes: int
    """Address space in use (what the memory limit counts)."""
    rss_bytes: int
    fds: int
    """Open descriptors."""


@dataclass(frozen=True)
class End:
    """The file is over (no fields: the kind says it all)."""


@dataclass(frozen=True)
class RangePlan:
    """How the file's timeline is split; sent once after StreamInfo."""

    ranges: tuple[DecodeRange, ...]


@dataclass(frozen=True)
class RangeSummary:
    """What decoding one range actually produced."""

    index: int
    samples: int
    """Samples at SAMPLE_RATE sent for this range."""
    bad_packets: int = 0
    nonfinite_samples: int = 0
    truncated_at_s: float | None = None
    """Where a damaged or cut-off file stopped being readable (decoding ended there)."""
    clipped_samples: int = 0
    """Input samples at or above full scale (clip-level input)."""
    dropped_channels: tuple[int, ...] = ()
    """Channels left out of the downmix because they would cancel or bury the others."""
    channel_reason: str = ""


@dataclass(frozen=True)
class Written:
    """The current range's audio is in the shared timeline from `start_sample` to `end_sample`."""

    start_sample: int
    end_sample: int


@dataclass(frozen=True)
class Credit:
    until_sample: int


@dataclass(frozen=True)
class Release:
    before_sample: int


@dataclass(frozen=True)
class ChunkJob:
    """Lay the spans' audio end to end, normalise it, and write it back into the timeline from
    the first span's start (inside the chunk's own stretch, which nothing else reads again)."""

    id: int
    spans: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ChunkDone:
    id: int
    samples: int
    """Normalised samples now in the timeline from the chunk's first sample."""
    lufs: float | None
    gain_db: float
    seconds: float = 0.0
    """Time the child spent on it."""


@dataclass(frozen=True)
class ErrorInfo:
    kind: ErrorKind
    message: str

    def exception(self) -> ASRError:
        return self.kind.exception(self.message)


Message = (StreamInfo | RangePlan | RangeSummary | ErrorInfo | Written | ChunkDone | Credit | Release | ChunkJob
           | ChildRequest | End | ChildIdle | np.ndarray)


def encode(kind: Kind, payload: object) -> bytes:
    if kind is Kind.PROBS:
        body = np.ascontiguousarray(payload, dtype=np.float32).tobytes()
    elif isinstance(payload, ErrorInfo):
        body = json.dumps({"kind": payload.kind.value, "message": payload.message}).encode()
    elif isinstance(payload, ChildRequest):
        body = payload.to_json().encode()
    else:
        body = json.dumps(asdict(payload)).encode()
    return HEADER.pack(int(kind), len(body)) + body


def decode_payload(kind: Kind, body: bytes) -> Message:
    if kind is Kind.PROBS:
        return np.frombuffer(body, dtype=np.float32)
    d = json.loads(body)
    if kind is Kind.AUDIO:
        return Written(**d)
    if kind is Kind.CHUNK:
        return ChunkDone(**d)
    if kind is Kind.CREDIT:
        return Credit(**d)
    if kind is Kind.RELEASE:
        return Release(**d)
    if kind is Kind.FINISH:
        return ChunkJob(d["id"], tuple((int(a), int(b)) for a, b in d["spans"]))
    if kind is Kind.INFO:
        return StreamInfo(**d)
    if kind is Kind.RANGE_DONE:
        d["dropped_channels"] = tuple(d.get("dropped_channels", ()))
        return RangeSummary(**d)
    if kind is Kind.PLAN:
        return RangePlan(tuple(DecodeRange(**r) for r in d["ranges"]))
    if kind is Kind.ERROR:
        return ErrorInfo(ErrorKind(d["kind"]), d["message"])
    if kind is Kind.START:
        return ChildRequest.from_json(body)
    if kind is Kind.END:
        return End()
    if kind is Kind.IDLE:
        return ChildIdle(**d)
    raise ValueError(f"unknown message kind {kind}")


def write(fd: int, kind: Kind, payload: object) -> None:
    view = memoryview(encode(kind, payload))
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read(fd: int) -> tuple[Kind, bytes] | None:
    """One frame, or None at end of stream (also for a frame cut short by the child's death)."""
    header = _read_exact(fd, HEADER.size)
    if header is None:
        return None
    kind, length = HEADER.unpack(header)
    body = _read_exact(fd, length)
    if body is None:
        return None
    return Kind(kind), body


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        b = os.read(fd, min(n, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)
