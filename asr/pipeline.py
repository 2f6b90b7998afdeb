"""`Transcriber`: check the request, the front end, the model, speakers, a Transcript.

    check (model, languages, features: before any audio work)
      -> front end (chunks stream out while the file decodes)
      -> source_lang given: batches of the chosen model's `batch_size`, each sorted by duration
         (less padding), so the model starts before decoding ends
         source_lang auto: every chunk scored by the language identifier while it streams (its
         audio parked on disk), then routed (asr.routing) and transcribed in batches per prompt
      -> words and segments on the original timeline (asr.segments), per language and task
      -> with diarize: the diarizer on the kept 16 kHz audio, speakers on words (asr.post)

Progress goes to the log (at most every 5 s, and at the end) and to an optional callback after
every batch.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import logging
import os
import queue
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from . import hotwords, settings
from .errors import InputError, LanguageError, Stopped
from .frontend import FrontEnd, Progress
from .languages import ALL_CODES, normalise_code
from .segments import build_segments, join_text
from .serving import DEFAULT_MAX_WAIT_S, BatchKey, Scheduler, Session
from .serving.cores import CoreShare
from .spool import ChunkSpool
from .types import AUTO, MIXED, Chunk, ChunkResult, Hotwords, Request, Segment, TranscribeOptions, Transcript

log = logging.getLogger(__name__)
T = TypeVar("T")

PREFETCH_CHUNKS = 8
"""Chunks the front end may run ahead of the thread that hands them to the scheduler."""
LID_ENV = "ASR_LID_MODEL"
DIAR_ENV = "ASR_DIAR_MODEL"


@dataclass
class Timings:
    """Wall seconds per stage of one transcription (decode and VAD overlap the model)."""

    total_s: float = 0.0
    frontend_s: float = 0.0
    """From the start until the front end had decoded and scored the whole file."""
    model_s: float = 0.0
    """Inside the model: the batches that held this file's chunks (a shared batch counts in full)."""
    wait_s: float = 0.0
    """The scheduler idle while this file was being worked on: the model waiting for front ends."""
    lid_s: float = 0.0
    """Inside the language identifier (source_lang auto)."""
    diarize_s: float = 0.0
    """Inside the diarizer (diarize)."""
    batches: int = 0

    def to_dict(self) -> dict:
        return {"total_s": round(self.total_s, 3), "frontend_s": round(self.frontend_s, 3),
                "model_s": round(self.model_s, 3), "wait_s": round(self.wait_s, 3),
                "lid_s": round(self.lid_s, 3), "diarize_s": round(self.diarize_s, 3), "batches": self.batches}


@dataclass(frozen=True)
class Plan:
    """A checked request: the model, and the languages unless they are to be detected."""

    model: object
    """The chosen `asr.models.SpeechModel`."""
    source: str | None
    """None: detect (source_lang auto)."""
    target: str | None
    """With detection: the requested target, or None (each chunk in its own language)."""
    task: str | None
    hotwords: Hotwords | None = None
    """The phrases to boost, in the forms this model writes (asr.hotwords.for_model)."""
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Piece:
    """One chunk's result and the prompt it was transcribed with."""

    chunk: Chunk
    result: ChunkResult
    source: str
    task: str


class Transcriber:
    """Built once (models loaded) and then used for every request; `options.model` picks one."""

    def __init__(self, models, frontend: FrontEnd | None = None, identifier=None, diarizer=None,
                 scheduler: Scheduler | None = None):
        self.models = models
        """An `asr.models.ModelSet` (or anything with its `get`, `release`)."""
        self.scheduler = scheduler or Scheduler(models, queue_bytes=settings.queue_bytes(_queue_default(models)),
                                                max_wait_s=settings.batch_wait_s(DEFAULT_MAX_WAIT_S))
        """Owns the models: every model call of every request goes through it."""
        self.cores = CoreShare()
        """Decoder children per file, shared among the predictions running at once."""
        self.frontend = frontend or FrontEnd()
        self.identifier = identifier
        """An `asr.models.langid.LanguageIdentifier`, or None (ASR_LID_MODEL=none)."""
        self.diarizer = diarizer
        """An `asr.models.diarizer.Diarizer`, or None (ASR_DIAR_MODEL=none)."""
        fix_mmap_threshold()

    @classmethod
    def load(cls, model: str | None = None, device: str | None = None, batch_size: int | None = None,
             lid_model: str | None = None, diar_model: str | None = None) -> "Transcriber":
        """`model`: an ASR_MODEL-style list (default: $ASR_MODEL, else nvidia/canary-1b-v2);
        `lid_model`, `diar_model`: default $ASR_LID_MODEL, $ASR_DIAR_MODEL, else NVIDIA's
        AmberNet and Streaming Sortformer; `none` turns either off."""
        from .models import load_models

        models = load_models(model, device=device, batch_size=batch_size)
        device = models.default.device  # the helpers run where the ASR model runs
        identifier = diarizer = None
        lid_name = settings.lid_model(lid_model)
        if lid_name is not None:
            from .models.langid import LanguageIdentifier

            identifier = LanguageIdentifier.load(lid_name, device=device)
        diar_name = settings.diar_model(diar_model)
        if diar_name is not None:
            from .models.diarizer import Diarizer

            diarizer = Diarizer.load(diar_name, device=device)
        return cls(models, identifier=identifier, diarizer=diarizer)

    def check(self, options: TranscribeOptions) -> Plan:
        """The request checked against the chosen model and the loaded helpers, before any work:
        every refusal names what was wrong and what is accepted."""
        model = self.models.get(options.model)
        caps = model.capabilities
        phrases = hotwords.parse(options.hotwords, options.hotwords_boost)
        if phrases and not caps.boosting:
            raise InputError(f"model {model.name} cannot boost hotwords (NeMo's phrase boosting needs a "
                             "subword tokenizer); leave hotwords out, or choose a Canary, Parakeet or BPE CTC model")
        # Canary with pnc off writes lower case; transducers and CTC write as they were trained.
        cased = caps.cased and (options.pnc or not caps.needs_prompt)
        boosted, notes = hotwords.for_model(phrases, options.hotwords_boost, cased)
        return replace(self._check_languages(options, model), hotwords=boosted, warnings=notes)

    def _check_languages(self, options: TranscribeOptions, model) -> Plan:
        caps = model.capabilities
        if options.diarize and self.diarizer is None:
            raise InputError(
                f"diarize needs the diarizer, which this server runs without ({DIAR_ENV}=none); "
                f"send diarize=false, or set {DIAR_ENV} (default {settings.DEFAULT_DIAR_MODEL})"
            )
        source = (options.source_lang or AUTO).strip().lower()
        if source != AUTO:
            return Plan(model, *caps.resolve(source, options.target_lang, model.name))
        if len(caps.languages) == 1:  # a one-language model: nothing to detect
            return Plan(model, *caps.resolve(next(iter(caps.languages)), options.target_lang, model.name))
        if self.identifier is None:
            raise LanguageError(
                f"source_lang 'auto' needs language detection, which this server runs without "
                f"({LID_ENV}=none); give the spoken language as source_lang (model {model.name}: "
                f"{caps.describe()})"
            )
        target = options.target_lang
        if target is not None and str(target).strip():
            target = normalise_code(target, "target_lang", ALL_CODES)
            reachable = caps.accepted_languages | {t for _, t in caps.translation_pairs}
            if target not in reachable:
                raise LanguageError(f"model {model.name} cannot produce {target}: it {caps.describe()}")
        else:
            target = None
        return Plan(model, None, target, None)

    def transcribe(self, audio: str | os.PathLike, options: TranscribeOptions,
                   progress: Progress | None = None, display_name: str | None = None,
                   cancel: threading.Event | None = None) -> Transcript:
        """Transcribe or translate one file (named `display_name` in messages; default its
        basename). Many calls may run at once from different threads: their chunks share the
        scheduler's batches. Failures and cancellation (an exception from any stage, or `cancel`
        set, which raises `Stopped` within a quarter of a second) stop the decoder and drop this
        file's queued chunks; the other files' work goes on."""
        try:
            with self.cores.share(self.frontend.workers) as workers:
                return self._transcribe(audio, options, progress, display_name, cancel, workers)
        except BaseException as e:
            # The traceback holds the finished frames and their arrays; clear their locals so
            # the memory can really go back.
            traceback.clear_frames(e.__traceback__)
            raise
        finally:
            if self.cores.active == 0:  # the last one out: nothing else is working
                release_memory()

    def _transcribe(self, audio, options: TranscribeOptions, progress: Progress | None,
                    display_name: str | None, cancel: threading.Event | None, workers: int) -> Transcript:
        plan = self.check(options)  # fail before any work
        name = display_name or os.path.basename(os.fspath(audio))
        timings = Timings()
        start = time.perf_counter()
        run = self.frontend.run(audio, progress=progress, keep_audio=options.diarize, display_name=name,
                                workers=workers)
        tracker = _Progress(progress, name, start)
        with self.scheduler.open(name, cancel=cancel, on_batch=tracker.done) as session:
            tracker.total = lambda: run.chunks_total
            routing = None
            if plan.source is not None:
                request = Request(plan.source, plan.target, pnc=options.pnc, timestamps=options.timestamps,
                                  hotwords=plan.hotwords)
                pieces = self._stream(run, session, plan.model, request, plan.task, cancel)
            else:
                pieces, routing = self._detect_then_transcribe(run, session, plan, options, timings, cancel, name)
            summary = run.summary
            timings.frontend_s = summary.timings.decode_vad_s
            pieces.sort(key=lambda p: p.chunk.start_s)
            segments = _segments(pieces, options)
            speakers = None
            if options.diarize:
                t = time.perf_counter()
                spans = [(sp.start_s, sp.end_s) for p in pieces for sp in p.chunk.spans]  # the VAD's speech
                segments, speakers = self._speakers(session, segments, summary.audio, options, spans)
                timings.diarize_s = time.perf_counter() - t
            stats = session.stats
            timings.model_s, timings.batches, timings.wait_s = stats.model_s, stats.batches, stats.idle_s
        warnings = plan.warnings + summary.warnings + (routing.warnings if routing is not None else ())
        languages = tuple(dict.fromkeys(p.source for p in pieces))
        if plan.source is not None:
            source, target, task = plan.source, plan.target, plan.task
        else:
            # No speech: no language was detected, and "auto" (a request value) is not an answer.
            source = languages[0] if len(languages) == 1 else (MIXED if languages else None)
            target = plan.target or source
            if not languages:
                warnings += ("No speech was found, so no language was detected.",)
            task = "translate" if any(p.task == "translate" for p in pieces) else "transcribe"
        timings.total_s = time.perf_counter() - start
        transcript = Transcript(
            text=join_text(p.result.text for p in pieces),
            segments=tuple(segments),
            source_lang=source,
            target_lang=target,
            task=task,
            duration_s=summary.duration_s,
            speech_s=summary.speech_s,
            model=plan.model.name,
            timestamps=options.timestamps,
            warnings=warnings,
            timings_s=timings.to_dict(),
            speakers=speakers,
            detected_language=routing.language if routing is not None else None,
            language_probability=routing.probability if routing is not None else None,
        )
        log.info("%s: %.1f s of audio (%.1f s speech, %s) %sd in %.2f s (model %.2f s, %d batches)",
                 name, transcript.duration_s, transcript.speech_s, source, task, timings.total_s,
                 timings.model_s, timings.batches)
        return transcript

    def _stream(self, run, session: Session, model, request: Request, task: str,
                cancel: threading.Event | None) -> list[Piece]:
        """Known languages: every chunk goes to the scheduler as soon as the front end has it, so
        the model starts while the file is still decoding."""
        key = BatchKey(model.name, request)
        chunks: list[Chunk] = []
        futures = []
        # closing(): on an error or a cancel the front end stops now, not when garbage is collected
        with contextlib.closing(prefetch(run, depth=PREFETCH_CHUNKS, cancel=cancel)) as stream:
            for prepared in stream:
                futures.append(session.submit(len(chunks), prepared.samples, key))
                chunks.append(prepared.chunk)
        session.finish()
        results = session.wait(futures)
        return [Piece(c, r, request.source_lang, task) for c, r in zip(chunks, results, strict=True)]

    def _detect_then_transcribe(self, run, session: Session, plan: Plan, options: TranscribeOptions,
                                timings: Timings, cancel: threading.Event | None, name: str):
        """source_lang auto: score every chunk while the file streams (audio parked on disk; the
        identifier's batches run on the scheduler between ASR batches), decide the languages
        (asr.routing), then send every chunk with its own prompt."""
        import numpy as np

        from .routing import prompts, route

        identifier = self.identifier
        model = plan.model
        caps = model.capabilities
        chunks: list[Chunk] = []
        score_futures = []
        waiting: list[np.ndarray] = []

        def score(batch: list[np.ndarray]):
            t = time.perf_counter()
            try:
                return identifier.score(batch)
            finally:
                timings.lid_s += time.perf_counter() - t

        with ChunkSpool() as spool:
            with contextlib.closing(prefetch(run, depth=PREFETCH_CHUNKS, cancel=cancel)) as stream:
                for prepared in stream:
                    chunks.append(prepared.chunk)
                    spool.add(prepared.samples)
                    waiting.append(prepared.samples)
                    if len(waiting) >= identifier.batch_size:
                        score_futures.append(session.call(functools.partial(score, waiting)))
                        waiting = []
                if waiting:
                    score_futures.append(session.call(functools.partial(score, waiting)))
                    waiting = []
            scores = session.wait(score_futures)
            if not chunks:
                session.finish()
                return [], None
            routing = route(np.concatenate(scores), identifier.labels, [c.duration_s for c in chunks],
                            caps.accepted_languages)
            per_chunk = prompts(routing, plan.target, caps.translation_pairs)
            log.info("%s: detected %s (p=%.2f)%s", name, routing.language, routing.probability,
                     f"; chunks in {', '.join(routing.languages)}" if routing.mixed else "")
            futures = []
            for i, (src, tgt, _task) in enumerate(per_chunk):
                # a model that reads no prompt takes every chunk under one key (one stream of batches)
                src, tgt, _ = (src, tgt, _task) if caps.needs_prompt else per_chunk[0]
                key = BatchKey(model.name, Request(src, tgt, pnc=options.pnc, timestamps=options.timestamps,
                                                   hotwords=plan.hotwords))
                futures.append(session.submit(i, spool.get(i), key))
            session.finish()
            results = session.wait(futures)
        pieces = [Piece(c, r, per_chunk[i][0], per_chunk[i][2])
                  for i, (c, r) in enumerate(zip(chunks, results, strict=True))]
        return pieces, routing

    def _speakers(self, session: Session, segments: list[Segment], audio, options: TranscribeOptions,
                  spans: Sequence[tuple[float, float]] | None = None):
        from .post.speakers import assign_speakers

        if audio is None or audio.size == 0 or not segments:
            return segments, ()
        activity = session.wait([session.call(functools.partial(self.diarizer.diarize, audio))])[0]
        result = assign_speakers(segments, activity, options.subtitles, speech_spans=spans)
        return list(_relabel_languages(result.segments, segments)), result.speakers


class _Progress:
    """Counts a prediction's finished chunks (called on the scheduler's thread after each batch),
    reports them to the progress callback and, at most every 5 s, to the log."""

    def __init__(self, progress: Progress | None, name: str, start: float):
        self.progress = progress
        self.name = name
        self.start = start
        self.count = 0
        self.last_log = 0.0
        self.total = lambda: None

    def done(self, n: int) -> None:
        self.count += n
        total = self.total()
        if self.progress is not None:
            self.progress("transcribe", self.count, total or 0)
        now = time.perf_counter()
        if now - self.last_log >= 5.0 or self.count == total:
            self.last_log = now
            log.info("%s: %d%s chunks done, %.1f s elapsed", self.name, self.count,
                     f"/{total}" if total else "", now - self.start)


def _segments(pieces: list[Piece], options: TranscribeOptions) -> list[Segment]:
    """Segments per run of consecutive chunks with the same language and task (a sentence never
    spans two languages), each labelled with its language."""
    out: list[Segment] = []
    k = 0
    while k < len(pieces):
        j = k
        while j < len(pieces) and (pieces[j].source, pieces[j].task) == (pieces[k].source, pieces[k].task):
            j += 1
        group = pieces[k:j]
        built = build_segments(((p.chunk, p.result) for p in group), group[0].task, options.timestamps,
                               options.subtitles)
        out.extend(replace(s, language=group[0].source) for s in built)
        k = j
    return out


def _relabel_languages(segments: Iterable[Segment], labelled: Sequence[Segment]) -> Iterator[Segment]:
    """Speaker assignment re-cuts segments; each new one takes the language of the labelled
    segment it starts in."""
    starts = [s.start_s for s in labelled]
    for seg in segments:
        i = max(0, bisect.bisect_right(starts, seg.start_s + 1e-9) - 1)
        yield replace(seg, language=labelled[i].language) if labelled else seg


def _queue_default(models) -> int:
    """Bytes of audio that may wait for the model: three of the largest batches of 20 s chunks,
    at least 64 MiB."""
    largest = max((int(getattr(m, "batch_size", 1)) for m in models), default=1)
    return max(64 * 2**20, 3 * largest * 20 * 16_000 * 4)


def prefetch(items: Iterable[T], depth: int, cancel: threading.Event | None = None) -> Iterator[T]:
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
                ok, item = slots.get(timeout=0.25)  # short waits keep cancellation prompt
            except queue.Empty:
                if cancel is not None and cancel.is_set():
                    raise Stopped("the prediction was cancelled") from None
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


MMAP_THRESHOLD_BYTES = 32 << 20
"""The ceiling glibc's own growing threshold stops at on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX)."""


MALLOC_ARENAS = 2

TRIM_THRESHOLD_BYTES = 64 << 20
"""Free memory at the top of a heap that glibc keeps rather than returning at once: twice the
mmap threshold, as glibc's own dynamic setting would make it. Left at its 128 KiB default (an
explicit mmap threshold freezes it there), every model layer on the CPU handed its activations
back to the kernel and faulted them in again on the next layer."""


def fix_mmap_threshold() -> None:
    """Fix glibc's mmap threshold at 32 MiB: allocations that large (a long file's samples, big
    request bodies) get their own mmap, returned to the OS on free; smaller ones come from the
    heap, which `release_memory` trims after each file. glibc's default threshold grows after
    large frees, after which big buffers land in the heap and a long-running server's memory
    creeps up (measured: +270 MB over 300 requests); any fixed threshold stops that growth.
    Not lower: a 1 MiB threshold put every model tensor of 1 to 32 MiB on the CPU into a fresh
    mmap (page faults to zero it, munmap on free) and made the model twice as slow on the CPU
    (benchmarks/NOTES.md). An explicit MALLOC_MMAP_THRESHOLD_ in the environment wins.

    The trim threshold goes to TRIM_THRESHOLD_BYTES with it (MALLOC_TRIM_THRESHOLD_ wins): at
    glibc's 128 KiB default the model's activations went back to the kernel after every layer
    and were faulted in again, zeroed, for the next. `release_memory` still trims after each file.

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
        if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
            libc.mallopt(-1, TRIM_THRESHOLD_BYTES)  # M_TRIM_THRESHOLD
        if "MALLOC_ARENA_MAX" not in os.environ:
            libc.mallopt(-8, MALLOC_ARENAS)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def release_memory() -> None:
    """Give freed heap back to the OS when the worker goes idle (the last running file ends). A
    long-running server otherwise keeps the high-water mark of every malloc arena (one per
    thread that ever allocated), which looks like a slow leak; glibc's malloc_trim returns it.
    Not while other files run: it also gives back the pages the model thread freed a moment ago
    and takes again for its next batch, each then faulted in and zeroed anew. No-op where glibc
    is not the allocator."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
