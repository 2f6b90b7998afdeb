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
import logging
import os
import queue
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from . import settings
from .errors import InputError, LanguageError
from .frontend import FrontEnd, Progress
from .languages import ALL_CODES, normalise_code
from .segments import build_segments, join_text
from .spool import ChunkSpool
from .types import AUTO, MIXED, Chunk, ChunkResult, Request, Segment, TranscribeOptions, Transcript

log = logging.getLogger(__name__)
T = TypeVar("T")

LID_ENV = "ASR_LID_MODEL"
DIAR_ENV = "ASR_DIAR_MODEL"


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


@dataclass(frozen=True)
class Piece:
    """One chunk's result and the prompt it was transcribed with."""

    chunk: Chunk
    result: ChunkResult
    source: str
    task: str


class Transcriber:
    """Built once (models loaded) and then used for every request; `options.model` picks one."""

    def __init__(self, models, frontend: FrontEnd | None = None, identifier=None, diarizer=None):
        self.models = models
        """An `asr.models.ModelSet` (or anything with its `get`, `release`)."""
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
                   progress: Progress | None = None, display_name: str | None = None) -> Transcript:
        """Transcribe or translate one file (named `display_name` in messages; default its
        basename). Failures and cancellation (an exception from any stage) stop the decoder,
        drop the chunks and free cached model memory."""
        try:
            return self._transcribe(audio, options, progress, display_name)
        except BaseException as e:
            # The traceback holds the finished frames (NeMo's among them) and their tensors;
            # clear their locals so the memory can really go back before we release it.
            traceback.clear_frames(e.__traceback__)
            self.models.release()
            raise
        finally:
            release_memory()

    def _transcribe(self, audio, options: TranscribeOptions, progress: Progress | None,
                    display_name: str | None) -> Transcript:
        plan = self.check(options)  # fail before any work
        name = display_name or os.path.basename(os.fspath(audio))
        timings = Timings()
        start = time.perf_counter()
        run = self.frontend.run(audio, progress=progress, keep_audio=options.diarize, display_name=name)
        batcher = _Batcher(plan.model, options, timings, progress, name, start)
        routing = None
        if plan.source is not None:
            request = Request(plan.source, plan.target, pnc=options.pnc, timestamps=options.timestamps)
            pieces = self._stream(run, batcher, request, plan.task, timings)
        else:
            pieces, routing = self._detect_then_transcribe(run, batcher, plan, options, timings)
        summary = run.summary
        timings.frontend_s = summary.timings.decode_vad_s
        pieces.sort(key=lambda p: p.chunk.start_s)
        segments = _segments(pieces, options)
        speakers = None
        if options.diarize:
            t = time.perf_counter()
            spans = [(sp.start_s, sp.end_s) for p in pieces for sp in p.chunk.spans]  # the VAD's speech
            segments, speakers = self._speakers(segments, summary.audio, options, spans)
            timings.diarize_s = time.perf_counter() - t
        warnings = summary.warnings + (routing.warnings if routing is not None else ())
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

    def _stream(self, run, batcher: "_Batcher", request: Request, task: str, timings: Timings) -> list[Piece]:
        """Known languages: batches go to the model while the front end is still decoding."""
        pieces: list[Piece] = []
        pending = []
        model = batcher.model
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
                    batch, pending = pending, []
                    out = batcher.run([c.samples for c in batch], request, run.chunks_total)
                    pieces.extend(Piece(c.chunk, r, request.source_lang, task) for c, r in zip(batch, out, strict=True))
            if pending:
                out = batcher.run([c.samples for c in pending], request, run.chunks_total)
                pieces.extend(Piece(c.chunk, r, request.source_lang, task) for c, r in zip(pending, out, strict=True))
        return pieces

    def _detect_then_transcribe(self, run, batcher: "_Batcher", plan: Plan, options: TranscribeOptions,
                                timings: Timings):
        """source_lang auto: score every chunk while the file streams (audio parked on disk),
        decide the languages (asr.routing), then transcribe in batches per prompt."""
        import numpy as np

        from .routing import prompts, route

        identifier = self.identifier
        model = plan.model
        caps = model.capabilities
        chunks: list[Chunk] = []
        scores: list[np.ndarray] = []
        waiting: list[np.ndarray] = []

        def score() -> None:
            t = time.perf_counter()
            scores.append(identifier.score(waiting))
            timings.lid_s += time.perf_counter() - t
            waiting.clear()

        with ChunkSpool() as spool:
            with contextlib.closing(prefetch(run, depth=2 * identifier.batch_size)) as stream:
                while True:
                    t = time.perf_counter()
                    prepared = next(stream, None)
                    timings.wait_s += time.perf_counter() - t
                    if prepared is None:
                        break
                    chunks.append(prepared.chunk)
                    spool.add(prepared.samples)
                    waiting.append(prepared.samples)
                    if len(waiting) >= identifier.batch_size:
                        score()
                if waiting:
                    score()
            if not chunks:
                return [], None
            routing = route(np.concatenate(scores), identifier.labels, [c.duration_s for c in chunks],
                            caps.accepted_languages)
            per_chunk = prompts(routing, plan.target, caps.translation_pairs)
            groups: dict[tuple[str, str, str], list[int]] = {}
            for i, prompt in enumerate(per_chunk):
                # a model that reads no prompt takes every chunk in one stream of batches
                groups.setdefault(prompt if caps.needs_prompt else per_chunk[0], []).append(i)
            log.info("%s: detected %s (p=%.2f)%s", batcher.name, routing.language, routing.probability,
                     f"; chunks in {', '.join(routing.languages)}" if routing.mixed else "")
            pieces: list[Piece] = []
            for (src, tgt, _task), members in groups.items():
                request = Request(src, tgt, pnc=options.pnc, timestamps=options.timestamps)
                members.sort(key=lambda i: chunks[i].num_samples, reverse=True)
                for b in range(0, len(members), model.batch_size):
                    idx = members[b : b + model.batch_size]
                    out = batcher.run([spool.get(i) for i in idx], request, len(chunks))
                    pieces.extend(Piece(chunks[i], r, per_chunk[i][0], per_chunk[i][2])
                                  for i, r in zip(idx, out, strict=True))
        return pieces, routing

    def _speakers(self, segments: list[Segment], audio, options: TranscribeOptions,
                  spans: Sequence[tuple[float, float]] | None = None):
        from .post.speakers import assign_speakers

        if audio is None or audio.size == 0 or not segments:
            return segments, ()
        activity = self.diarizer.diarize(audio)
        result = assign_speakers(segments, activity, options.subtitles, speech_spans=spans)
        return list(_relabel_languages(result.segments, segments)), result.speakers


class _Batcher:
    """Runs one batch through the model (sorted by length), counts time and reports progress."""

    def __init__(self, model, options: TranscribeOptions, timings: Timings, progress: Progress | None,
                 name: str, start: float):
        self.model = model
        self.timings = timings
        self.progress = progress
        self.name = name
        self.start = start
        self.done = 0
        self.last_log = 0.0

    def run(self, audios: Sequence, request: Request, total: int | None) -> list[ChunkResult]:
        order = sorted(range(len(audios)), key=lambda i: audios[i].size, reverse=True)
        t = time.perf_counter()
        out = self.model.transcribe([audios[i] for i in order], request)
        self.timings.model_s += time.perf_counter() - t
        self.timings.batches += 1
        results: list[ChunkResult] = [None] * len(audios)  # type: ignore[list-item]
        for i, r in zip(order, out, strict=True):
            results[i] = r
        self.done += len(audios)
        now = time.perf_counter()
        if self.progress is not None:
            self.progress("transcribe", self.done, total or 0)
        if now - self.last_log >= 5.0 or self.done == total:
            self.last_log = now
            log.info("%s: %d%s chunks done, %.1f s elapsed", self.name, self.done,
                     f"/{total}" if total else "", now - self.start)
        return results


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
