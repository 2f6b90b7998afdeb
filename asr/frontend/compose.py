"""The front end: any recording -> normalised <= 20 s speech chunks, streamed as they are ready.

    decoder children (one per core, each a set of time ranges: decode, resample, DC, VAD scores;
    audio into the shared timeline) --> VAD scores merged in timeline order --> span tracker
    --> chunk packer (parent) --> chunk jobs: cut, measure, normalise (any child) --> chunks

The parent keeps only the plan, which must see every span in order (spans are packed greedily
across the whole file, and a long one is cut at its quietest moment, wherever range boundaries
fall): it handles about 30 VAD scores per second of audio and a few small messages per chunk,
and never touches the audio except to copy out each finished chunk. Everything per sample runs
in the children, off the model's process and its GIL. Chunks come out in timeline order while
later ranges are still being decoded, so a consumer (the model) starts before decoding ends.
Audio is released as soon as no future chunk can need it: memory stays flat in the
recording's length. No torch, no NeMo: `python -m asr segment` uses this alone.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np

from .. import settings
from ..errors import InputError
from ..media import policy
from ..media.protocol import ChunkDone, RangePlan, RangeSummary, StreamInfo
from ..media.pool import ChildPool
from ..media.supervisor import Audio, MediaStream, Probabilities, prestart
from ..types import SAMPLE_RATE, AudioLimits, Chunk, ChunkOptions, ChunkPlan, LoudnessOptions, PreparedChunk, VadOptions
from .buffer import SampleBuffer
from .chunking import ChunkPacker
from .vad import SpanTracker

log = logging.getLogger(__name__)

Progress = Callable[[str, float, float], None]
"""progress(stage, done, total): "decode" (seconds decoded so far, total the header's duration
or 0), or "transcribe" (chunks done, from the caller's thread; total 0 while not known yet)."""


@dataclass(frozen=True)
class FrontEndTimings:
    """Wall seconds of the front end. Decoding and VAD run together in the children."""

    decode_vad_s: float
    """From the start until the last range was decoded and scored."""
    loudness_tail_s: float
    """Loudness work left after decoding ended."""
    loudness_s: float
    """Time spent cutting and normalising chunks (summed over the children that did it)."""
    workers: int
    """Decoder children used (cores working on this file)."""
    first_chunk_s: float | None = None
    """From the start until the first chunk was handed over (None: no chunk)."""

    def to_dict(self) -> dict:
        return {"decode_vad_s": round(self.decode_vad_s, 3), "loudness_tail_s": round(self.loudness_tail_s, 3),
                "loudness_s": round(self.loudness_s, 3), "workers": self.workers,
                "first_chunk_s": None if self.first_chunk_s is None else round(self.first_chunk_s, 3)}


@dataclass(frozen=True, eq=False)
class FrontEndSummary:
    """What the front end did with one file; returned once every chunk has been yielded."""

    duration_s: float
    speech_s: float
    chunks: int
    timings: FrontEndTimings
    stream: StreamInfo
    warnings: tuple[str, ...] = ()
    """Short sentences on what was done to the audio that a user would want to know."""
    audio: np.ndarray | None = field(default=None, repr=False)
    """The whole recording, 16 kHz mono, only when asked for (keep_audio=True)."""


class FrontEnd:
    """Holds the options; safe to use from several threads at once."""

    def __init__(
        self,
        vad_options: VadOptions | None = None,
        chunk_options: ChunkOptions | None = None,
        loudness_options: LoudnessOptions | None = None,
        limits: AudioLimits | None = None,
        workers: int | None = None,
        pool: ChildPool | None = None,
    ):
        """`workers`: decoder children per file (default: every core this process may use);
        `pool`: where they come from (default: the process's shared pool of warm children)."""
        self.vad_options = vad_options or VadOptions()
        self.chunk_options = chunk_options or ChunkOptions()
        self.loudness_options = loudness_options or LoudnessOptions()
        self.limits = limits or AudioLimits.from_env()
        self.workers = workers or settings.frontend_workers()
        self.pool = pool

    def prestart(self) -> int:
        """Start the warm decoder children now (at server start-up), so the first file finds
        them ready; returns how many were started."""
        return prestart(self.limits, self.pool)

    def run(self, path: str | os.PathLike, progress: Progress | None = None, keep_audio: bool = False,
            display_name: str | None = None, workers: int | None = None) -> "FrontEndRun":
        """Start processing `path`; iterate the result for chunks in timeline order. Messages
        name the file as `display_name` (default: its basename). `workers`: decoder children for
        this file (default: the front end's own setting)."""
        return FrontEndRun(self, path, progress, keep_audio, display_name, workers)

    def plan(self, path: str | os.PathLike, progress: Progress | None = None,
             display_name: str | None = None, keep_samples: bool = True) -> ChunkPlan:
        """The whole plan at once (what `python -m asr segment` prints). With keep_samples=False
        each chunk's audio is dropped as it arrives (`samples` is empty), so memory stays flat
        in the recording's length."""
        run = self.run(path, progress, display_name=display_name)
        if keep_samples:
            chunks = tuple(run)
        else:
            empty = np.zeros(0, np.float32)
            chunks = tuple(dataclasses.replace(c, samples=empty) for c in run)
        s = run.summary
        return ChunkPlan(duration_s=s.duration_s, speech_s=s.speech_s, chunks=chunks)


class FrontEndRun:
    """One file going through the front end. Iterating yields PreparedChunks in timeline order
    and the generator returns the FrontEndSummary, which is also `summary` once iteration has
    ended. Closing the iterator early, or `cancel()` from any thread, stops every child."""

    def __init__(self, frontend: FrontEnd, path: str | os.PathLike, progress: Progress | None,
                 keep_audio: bool, display_name: str | None, workers: int | None = None):
        self._fe = frontend
        self._workers = workers or frontend.workers
        self.path = os.fspath(path)
        self.name = display_name or os.path.basename(self.path)
        self._progress = progress
        self._keep_audio = keep_audio
        self._summary: FrontEndSummary | None = None
        self._stop = threading.Event()

    @property
    def summary(self) -> FrontEndSummary:
        if self._summary is None:
            raise RuntimeError("the front end's summary is known only once iteration has ended")
        return self._summary

    @property
    def chunks_total(self) -> int | None:
        """How many chunks there are, once the front end has finished (else None)."""
        return None if self._summary is None else self._summary.chunks

    def cancel(self) -> None:
        """Stop as soon as possible, from any thread: the decoders end and iteration raises Stopped."""
        self._stop.set()

    def __iter__(self) -> Generator[PreparedChunk, None, FrontEndSummary]:
        return self._generate()

    def _generate(self) -> Generator[PreparedChunk, None, FrontEndSummary]:
        fe = self._fe
        t0 = time.perf_counter()
        tracker = SpanTracker(fe.vad_options)
        packer = ChunkPacker(fe.chunk_options)
        whole = SampleBuffer() if self._keep_audio else None
        speech_samples = 0
        audio_end = 0
        chunks_out = 0
        loud_s = 0.0
        first_chunk_s: float | None = None
        pending: deque[tuple[Chunk, int]] = deque()  # chunks in timeline order, with their job ids
        finished: dict[int, ChunkDone] = {}
        summaries: list[RangeSummary] = []
        info: StreamInfo | None = None
        planned = False
        t1 = t0
        workers = policy.worker_count(self.path, self._workers)

        with MediaStream(self.path, self.name, fe.limits, workers=workers, stop=self._stop,
                         loudness=fe.loudness_options, pool=fe.pool) as media:
            assert media.timeline is not None
            workers = media.workers
            timeline = media.timeline.samples

            def plan(spans: list) -> None:
                """Pack settled spans; each chunk that is complete goes to a child at once."""
                nonlocal speech_samples
                speech_samples += sum(s.num_samples for s in spans)
                chunks = packer.push(spans, timeline) if spans else []
                if planned:
                    chunks += packer.finish()
                for chunk in chunks:
                    pending.append((chunk, media.finish(chunk)))

            def release() -> None:
                """Give back the audio no chunk or span to come can need."""
                keep = tracker.earliest_sample()
                first = packer.earliest_sample()
                if first is not None:
                    keep = min(keep, first)
                if pending:
                    keep = min(keep, pending[0][0].spans[0].start_sample)
                media.release_before(keep)

            while True:
                for done in media.results():
                    finished[done.id] = done
                while pending and pending[0][1] in finished:
                    chunk, job = pending.popleft()
                    done = finished.pop(job)
                    start = chunk.spans[0].start_sample
                    samples = media.timeline.read(start, done.samples)
                    loud_s += done.seconds
                    release()
                    if first_chunk_s is None:
                        first_chunk_s = time.perf_counter() - t0
                    chunks_out += 1
                    yield PreparedChunk(chunk=chunk, samples=samples, lufs=done.lufs, gain_db=done.gain_db)
                if planned:
                    if not pending:
                        break
                    media.wait()
                    continue
                event = media.next_event()
                if isinstance(event, Audio):
                    audio_end = event.start_sample + event.samples.size
                    if whole is not None:
                        whole.append(event.samples)
                    if self._progress is not None:
                        total = info.header_duration_s if info and info.header_duration_s else 0.0
                        self._progress("decode", audio_end / SAMPLE_RATE, total)
                elif isinstance(event, Probabilities):
                    plan(tracker.push(event.values))
                    release()
                elif isinstance(event, RangeSummary):
                    summaries.append(event)
                elif isinstance(event, StreamInfo):
                    info = event
                elif isinstance(event, RangePlan):
                    log.debug("'%s': %d ranges on %d workers", self.name, len(event.ranges), workers)
                elif media.done:
                    if audio_end < policy.MIN_AUDIO_S * SAMPLE_RATE:
                        what = "no audio" if audio_end == 0 else f"only {audio_end / SAMPLE_RATE:.3f} s of audio"
                        raise InputError(
                            f"'{self.name}' holds {what} that could be decoded; send a recording of at least "
                            f"{policy.MIN_AUDIO_S:g} s"
                        )
                    planned = True
                    plan(tracker.finish(audio_end))
                    media.no_more_jobs()  # the children go back once their jobs are answered
                    release()
                    t1 = time.perf_counter()
                else:
                    media.wait()
            t2 = time.perf_counter()
        assert info is not None
        self._summary = FrontEndSummary(
            duration_s=audio_end / SAMPLE_RATE,
            speech_s=speech_samples / SAMPLE_RATE,
            chunks=chunks_out,
            timings=FrontEndTimings(decode_vad_s=t1 - t0, loudness_tail_s=t2 - t1, loudness_s=loud_s,
                                    workers=workers, first_chunk_s=first_chunk_s),
            stream=info,
            warnings=self._warnings(info, summaries) + policy.length_warnings(
                self.name, info, audio_end / SAMPLE_RATE, any(s.truncated_at_s is not None for s in summaries)),
            audio=whole.array() if whole is not None else None,
        )
        return self._summary

    def _warnings(self, info: StreamInfo, summaries: list[RangeSummary]) -> tuple[str, ...]:
        out: list[str] = []
        name = self.name
        if info.audio_streams > 1:
            out.append(f"'{name}' has {info.audio_streams} audio tracks; track {info.stream_index + 1} "
                       f"({'the default' if info.stream_index else 'the first'}) was used.")
        bad = sum(s.bad_packets for s in summaries if s.truncated_at_s is None)
        if bad:
            out.append(f"{bad} damaged packet{'s' if bad != 1 else ''} in '{name}' could not be decoded and were skipped.")
        truncated = [s.truncated_at_s for s in summaries if s.truncated_at_s is not None]
        if truncated:
            out.append(f"'{name}' is damaged or cut off; it was decoded up to {truncated[0]:.1f} s, where it broke.")
        nonfinite = sum(s.nonfinite_samples for s in summaries)
        if nonfinite:
            out.append(f"{nonfinite} invalid (non-finite) samples in '{name}' were set to silence.")
        dropped = sorted({c for s in summaries for c in s.dropped_channels})
        if dropped:
            reason = next((s.channel_reason for s in summaries if s.channel_reason), "")
            which = ", ".join(str(c + 1) for c in dropped)
            why = {"out of phase": "it would cancel the others (out of phase)",
                   "noise only": "it holds only noise while another holds speech"}.get(reason, "it is silent")
            out.append(f"Channel{'s' if len(dropped) > 1 else ''} {which} of '{name}' {'were' if len(dropped) > 1 else 'was'} "
                       f"left out of the downmix where {why}.")
        clipped = sum(s.clipped_samples for s in summaries)
        if clipped >= 100:
            out.append(f"'{name}' is clipped ({clipped} samples at full scale); its peaks were limited.")
        return tuple(out)
