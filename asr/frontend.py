"""The front end: any recording -> normalised <= 20 s speech chunks, streamed as they are ready.

    decoder child (one core) --16 kHz blocks--> VAD --> span tracker --> chunk packer
                                                                  \\--> loudness worker thread

Every stage is incremental, so work overlaps instead of queueing: the VAD scores each block while
the child decodes the next, a chunk is normalised on a worker thread as soon as the packer closes
it, and a consumer (the model) can start on the first chunks before the file is fully decoded.
No torch, no NeMo: `python -m asr segment` uses this alone.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np

from . import loudness
from .audio import DecoderProcess, SampleBuffer
from .chunking import ChunkPacker, chunk_audio
from .errors import Stopped
from .types import (
    SAMPLE_RATE,
    AudioLimits,
    Chunk,
    ChunkOptions,
    ChunkPlan,
    LoudnessOptions,
    PreparedChunk,
    VadOptions,
)
from .vad import SileroVad, SpanTracker

log = logging.getLogger(__name__)

Progress = Callable[[str, float, float], None]
"""progress(stage, done, total): "decode" (seconds decoded so far, from the front end's thread) or
"transcribe" (chunks done, from the caller's thread); total is 0 while not known yet."""


@dataclass
class StageTimes:
    """Wall seconds of the front end. Decoding and VAD overlap (`decode_vad_s` covers both);
    `loudness_tail_s` is the loudness work left after the VAD finished."""

    decode_vad_s: float = 0.0
    loudness_tail_s: float = 0.0

    def to_dict(self) -> dict:
        return {"decode_vad_s": self.decode_vad_s, "loudness_tail_s": self.loudness_tail_s}


class FrontEnd:
    """Holds the loaded VAD and the options; safe to use from several threads at once."""

    def __init__(
        self,
        vad_options: VadOptions | None = None,
        chunk_options: ChunkOptions | None = None,
        loudness_options: LoudnessOptions | None = None,
        limits: AudioLimits | None = None,
    ):
        _warm_imports()
        self.vad = SileroVad(vad_options)
        self.chunk_options = chunk_options or ChunkOptions()
        self.loudness_options = loudness_options or LoudnessOptions()
        self.limits = limits or AudioLimits.from_env()

    def run(self, path: str | os.PathLike, progress: Progress | None = None) -> "FrontEndRun":
        """Start processing `path`; iterate the result for chunks in order."""
        return FrontEndRun(self, path, progress)

    def plan(self, path: str | os.PathLike, progress: Progress | None = None) -> ChunkPlan:
        """The whole plan at once (what `python -m asr segment` prints)."""
        run = self.run(path, progress)
        chunks = tuple(run)
        return ChunkPlan(duration_s=run.duration_s, speech_s=run.speech_s, chunks=chunks)


class FrontEndRun:
    """One file going through the front end. Iterating yields PreparedChunks in timeline order;
    once iteration ends, `duration_s`, `speech_s` and `times` are final. Closing the iterator
    early (cancellation, an error downstream) stops the decoder and the worker."""

    def __init__(self, frontend: FrontEnd, path: str | os.PathLike, progress: Progress | None):
        self._fe = frontend
        self.path = path
        self._progress = progress
        self.decoded_s = 0.0  # grows while decoding
        self.duration_s = 0.0  # final once decoding has finished
        self.speech_s = 0.0
        self.chunks_done = 0
        self.chunks_total: int | None = None  # known once decoding has finished
        self.times = StageTimes()
        self._stop = threading.Event()

    def cancel(self) -> None:
        """Stop as soon as possible, from any thread: the decoder process is ended and
        iteration raises `Stopped`."""
        self._stop.set()

    def __iter__(self) -> Iterator[PreparedChunk]:
        fe = self._fe
        t0 = time.perf_counter()
        vad = fe.vad.stream()
        tracker = SpanTracker(fe.vad.options)
        packer = ChunkPacker(fe.chunk_options)
        speech_samples = 0
        pending: deque[Future] = deque()
        with DecoderProcess(self.path, fe.limits, stop=self._stop) as decoder, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="loudness") as worker:
            try:
                buffer: SampleBuffer | None = None

                def submit(chunks: list[Chunk], audio: np.ndarray) -> None:
                    for chunk in chunks:
                        pending.append(worker.submit(self._prepare, chunk, chunk_audio(audio, chunk)))

                for block in decoder:
                    if buffer is None:
                        buffer = SampleBuffer(_initial_capacity(decoder, fe.limits))
                    buffer.append(block)
                    self.decoded_s = len(buffer) / SAMPLE_RATE
                    spans = tracker.push(vad.feed(block))
                    speech_samples += sum(s.num_samples for s in spans)
                    submit(packer.push(spans, buffer.array()), buffer.array())
                    if self._progress is not None:
                        self._progress("decode", self.decoded_s, 0.0)
                    while pending and pending[0].done():
                        yield self._take(pending)
                audio = buffer.array() if buffer is not None else np.zeros(0, np.float32)
                spans = tracker.push(vad.finish()) + tracker.finish(audio.size)
                speech_samples += sum(s.num_samples for s in spans)
                submit(packer.push(spans, audio) + packer.finish(), audio)
                self.chunks_total = self.chunks_done + len(pending)
                self.decoded_s = self.duration_s = audio.size / SAMPLE_RATE
                self.speech_s = speech_samples / SAMPLE_RATE
                t1 = time.perf_counter()
                self.times.decode_vad_s = t1 - t0
                summary = decoder.summary
                if summary is not None and (summary.bad_packets or summary.nonfinite_samples):
                    log.warning(
                        "'%s': %d damaged packets skipped, %d non-finite samples zeroed",
                        os.path.basename(os.fspath(self.path)), summary.bad_packets, summary.nonfinite_samples,
                    )
                while pending:
                    if self._stop.is_set():
                        raise Stopped(f"processing '{os.path.basename(os.fspath(self.path))}' was stopped")
                    yield self._take(pending)
                self.times.loudness_tail_s = time.perf_counter() - t1
            finally:
                for f in pending:
                    f.cancel()

    def _take(self, pending: deque[Future]) -> PreparedChunk:
        future = pending[0]
        while True:  # short waits, so an asynchronous exception (Cog's cancel) is not held up
            try:
                chunk = future.result(timeout=0.25)
                break
            except FutureTimeout:
                continue
        pending.popleft()
        self.chunks_done += 1
        return chunk

    def _prepare(self, chunk: Chunk, samples: np.ndarray) -> PreparedChunk:
        n = loudness.normalise(samples, self._fe.loudness_options)
        return PreparedChunk(chunk=chunk, samples=n.samples, lufs=n.lufs, gain_db=n.gain_db)


_warmed = threading.Event()


def _warm_imports() -> None:
    """Import pyloudnorm (scipy.signal alone takes ~1.5 s) on a background thread, so the
    import overlaps with decoding instead of delaying the first chunk."""
    if _warmed.is_set():
        return
    _warmed.set()

    def work() -> None:
        import pyloudnorm  # noqa: F401

    threading.Thread(target=work, name="warm-imports", daemon=True).start()


def _initial_capacity(decoder: DecoderProcess, limits: AudioLimits) -> int:
    """Size the buffer from the header's duration (a hint only; it still grows if the header lies)."""
    header_s = decoder.info.header_duration_s if decoder.info else None
    if not header_s:
        return SAMPLE_RATE * 60
    return int(min(header_s * 1.01 + 1.0, limits.max_duration_s + 1.0) * SAMPLE_RATE)
