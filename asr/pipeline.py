"""`Transcriber`: the front end, then the model, then a Transcript on the original timeline.

Chunks stream out of the front end while the file is still being decoded; they are sent to the
model in batches of the chosen model's `batch_size`, each batch sorted by duration (less padding), so the
model starts before decoding ends. Progress goes to the log (at most every 5 s, and at the end)
and to an optional callback after every batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from .frontend import FrontEnd, Progress
from .segments import build_segments, join_text
from .types import Chunk, ChunkResult, PreparedChunk, Request, TranscribeOptions, Transcript

log = logging.getLogger(__name__)
T = TypeVar("T")



@dataclass
class Timings:
    """Wall seconds per stage of one transcription (decode and VAD overlap the model)."""

    total_s: float = 0.0
    frontend_s: float = 0.0
    """From the start until the front end had decoded and scored the whole file."""
    model_s: float = 0.0
    """Inside the model (all batches)."""
    wait_s: float = 0.0
    """The model idle, waiting for the front end's next chunk."""
    batches: int = 0

    def to_dict(self) -> dict:
        return {"total_s": round(self.total_s, 3), "frontend_s": round(self.frontend_s, 3),
                "model_s": round(self.model_s, 3), "wait_s": round(self.wait_s, 3), "batches": self.batches}


class Transcriber:
    """Built once (models loaded) and then used for every request; `options.model` picks one."""

    def __init__(self, models, frontend: FrontEnd | None = None):
        self.models = models
        """An `asr.models.ModelSet` (or anything with its `get`, `release`)."""
        self.frontend = frontend or FrontEnd()
        fix_mmap_threshold()

    @classmethod
    def load(cls, model: str | None = None, device: str | None = None, batch_size: int | None = None) -> "Transcriber":
        """`model`: an ASR_MODEL-style list (default: $ASR_MODEL, else nvidia/canary-1b-v2)."""
        from .models import load_models

        return cls(load_models(model, device=device, batch_size=batch_size))

    def check(self, options: TranscribeOptions):
        """(model, source, target, task) for a request, or the user's error, before any work."""
        model = self.models.get(options.model)
        source, target, task = model.capabilities.resolve(options.source_lang, options.target_lang, model.name)
        return model, source, target, task

    def transcribe(self, audio: str | os.PathLike, options: TranscribeOptions,
                   progress: Progress | None = None) -> Transcript:
        """Transcribe or translate one file. Failures and cancellation (an exception from any
        stage) stop the decoder, drop the chunks and free cached model memory."""
        try:
            return self._transcribe(audio, options, progress)
        except BaseException as e:
            # The traceback holds the finished frames (NeMo's among them) and their tensors;
            # clear their locals so the memory can really go back before we release it.
            traceback.clear_frames(e.__traceback__)
            self.models.release()
            raise
        finally:
            release_memory()

    def _transcribe(self, audio: str | os.PathLike, options: TranscribeOptions,
                    progress: Progress | None) -> Transcript:
        model, source, target, task = self.check(options)  # fail before any work
        request = Request(source_lang=source, target_lang=target, pnc=options.pnc, timestamps=options.timestamps)
        name = os.path.basename(os.fspath(audio))
        timings = Timings()
        start = time.perf_counter()
        results: list[tuple[Chunk, ChunkResult]] = []  # no audio kept: memory stays flat
        pending: list[PreparedChunk] = []
        run = self.frontend.run(audio, progress=progress)
        last_log = 0.0

        def infer(batch: list[PreparedChunk]) -> None:
            nonlocal last_log
            batch = sorted(batch, key=lambda c: c.samples.size, reverse=True)
            t = time.perf_counter()
            out = model.transcribe([c.samples for c in batch], request)
            timings.model_s += time.perf_counter() - t
            timings.batches += 1
            results.extend(zip((c.chunk for c in batch), out, strict=True))
            now = time.perf_counter()
            total = run.chunks_total or 0
            if progress is not None:
                progress("transcribe", len(results), total)
            if now - last_log >= 5.0 or total == len(results):
                last_log = now
                log.info("%s: %d%s chunks %sd, %.1f s elapsed", name, len(results),
                         f"/{total}" if total else "", task, now - start)

        # closing(): on an error or Cog's cancel the front end stops now, not when garbage is collected
        with contextlib.closing(prefetch(run, depth=2 * model.batch_size)) as chunks:
            while True:
                t = time.perf_counter()
                chunk = next(chunks, None)
                timings.wait_s += time.perf_counter() - t  # the model idle, waiting for the front end
                if chunk is None:
                    break
                pending.append(chunk)
                if len(pending) >= model.batch_size:
                    infer(pending)
                    pending = []
            summary = run.summary
            timings.frontend_s = summary.timings.decode_vad_s
            if pending:
                infer(pending)
        results.sort(key=lambda cr: cr[0].start_s)
        segments = build_segments(((c, r) for c, r in results), task, options.timestamps, options.subtitles)
        timings.total_s = time.perf_counter() - start
        transcript = Transcript(
            text=join_text(r.text for _, r in results),
            segments=tuple(segments),
            source_lang=source,
            target_lang=target,
            task=task,
            duration_s=summary.duration_s,
            speech_s=summary.speech_s,
            model=model.name,
            timestamps=options.timestamps,
            timings_s=timings.to_dict(),
        )
        log.info("%s: %.1f s of audio (%.1f s speech) %sd in %.2f s (model %.2f s, %d batches)",
                 name, transcript.duration_s, transcript.speech_s, task, timings.total_s,
                 timings.model_s, timings.batches)
        return transcript


def prefetch(items: Iterable[T], depth: int) -> Iterator[T]:
    """Iterate `items` on a background thread, up to `depth` items ahead of the consumer.

    The front end's stages (the VAD's ONNX calls, loudness) then keep working while the model
    runs a batch, instead of waiting to be pulled. Errors reach the consumer as they were raised.
    When the consumer stops early (an error, Cog's cancel), the producer is told to stop and
    closes the source, which stops its decoder process."""
    slots: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.25)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not put((True, item)):
                    return
            put((True, end))
        except BaseException as e:  # handed over to the consumer, which re-raises it
            put((False, e))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="frontend", daemon=True)
    worker.start()
    try:
        while True:
            try:
                ok, item = slots.get(timeout=0.25)  # short waits keep Cog's cancel prompt
            except queue.Empty:
                continue
            if not ok:
                raise item
            if item is end:
                return
            yield item
    finally:
        stop.set()
        cancel = getattr(items, "cancel", None)
        if cancel is not None:
            cancel()  # interrupts work inside the source, e.g. a decoder that is still reading
        worker.join(timeout=30)


MMAP_THRESHOLD_BYTES = 1 << 20


MALLOC_ARENAS = 2


def fix_mmap_threshold() -> None:
    """Serve every allocation of 1 MB or more (audio buffers, request bodies) from its own mmap,
    returned to the OS on free. glibc's default threshold grows after large frees, after which
    such buffers land in the heap and a long-running server's memory creeps up (measured: +270 MB
    over 300 requests, flat with this). An explicit MALLOC_MMAP_THRESHOLD_ in the environment wins.

    Also caps glibc's malloc arenas at MALLOC_ARENAS: each request starts new threads (front end,
    loudness, decoder readers), and each thread's arena kept its own high-water mark (measured
    through the server: +35 MB over 5 predictions of an 11 s file, flat with 2 arenas). Arenas
    made before this call stay, so the server also sets MALLOC_ARENA_MAX=2 at start-up (cog.yaml,
    Makefile): the hostile corpus and 20 predictions then grow the worker by ~20 MB, not ~77 MB.
    MALLOC_ARENA_MAX in the environment wins."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
            libc.mallopt(-3, MMAP_THRESHOLD_BYTES)  # M_MMAP_THRESHOLD
        if "MALLOC_ARENA_MAX" not in os.environ:
            libc.mallopt(-8, MALLOC_ARENAS)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def release_memory() -> None:
    """Give freed heap back to the OS after each file. A long-running server otherwise keeps the
    high-water mark of every malloc arena (one per thread that ever allocated), which looks like
    a slow leak; glibc's malloc_trim returns it. No-op where glibc is not the allocator."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
