"""Cog adapter: inputs -> TranscribeOptions -> Transcriber -> Output. No audio or model logic here.

Run it with `make serve` (Cog's HTTP server, coglet) or `cog predict -i audio=@samples/en.mp3`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import traceback
import typing
from typing import NotRequired, Optional, TypedDict

from cog import BaseRunner, Input, Path, concurrent, current_scope

from asr import formats, health, settings
from asr.errors import ASRError
from asr.hotwords import DEFAULT_BOOST, MAX_BOOST, MAX_PHRASE_CHARS, MAX_PHRASES, MIN_BOOST
from asr.languages import ALL_CODES, NAMES
from asr.pipeline import Transcriber
from asr.sweeper import Sweeper, SweepOptions, use_private_tempdir
from asr.types import AUTO, SubtitleOptions, TranscribeOptions
from asr.uploads import display_name, forget_parsed_urls, public_text, received_file, with_display_name

log = logging.getLogger("predict")

_LANGS = ", ".join(f"{c} ({NAMES[c]})" for c in ALL_CODES)
MAX_CONCURRENCY = settings.max_concurrency()


# The output's shape, for /openapi.json and client generators. The values are Transcript.to_dict()'s
# (the one definition of the contract); these types describe it. Cog 0.23 passes a TypedDict
# output through as the plain dict it is, so fields a result lacks (speakers without diarize)
# stay absent rather than null; `cog build`'s schema generator describes TypedDict fields, and
# tools/openapi_schema.py does the same for `make serve`.


class Word(TypedDict):
    start: float
    """Seconds on the original audio's timeline."""
    end: float
    word: str
    confidence: NotRequired[float]
    """0 to 1: the probability the model gave this word (the product of its tokens' probabilities);
    every loaded speech model sets it."""
    speaker: NotRequired[str]
    """Only with diarize."""


class Segment(TypedDict):
    start: float
    end: float
    text: str
    words: list[Word]
    """Empty for translations and without timestamps."""
    language: str
    """The source language of the chunk this segment came from."""
    confidence: NotRequired[float]
    """0 to 1: the mean confidence of its words (of its chunk's words, without word times)."""
    speaker: NotRequired[str]
    """Only with diarize."""
    overlap: NotRequired[bool]
    """Only with diarize: another speaker talks at the same time."""


class Speaker(TypedDict):
    speaker: str
    speech_s: float
    segments: int


class Output(TypedDict):
    text: str
    segments: list[Segment]
    source_lang: Optional[str]
    """The language actually used, or "mixed"; null when it was detected and nobody spoke."""
    target_lang: Optional[str]
    task: str
    """"transcribe" or "translate"."""
    duration_s: float
    speech_s: float
    model: str
    detected_language: Optional[str]
    """Null unless source_lang is "auto"."""
    language_probability: Optional[float]
    speakers: NotRequired[list[Speaker]]
    """Only with diarize."""
    warnings: list[str]
    """What was done to the input that a user would want to know; empty when nothing was."""
    srt: Optional[str]
    """Null without timestamps."""
    vtt: Optional[str]


ALWAYS = {"detected_language": None, "language_probability": None, "warnings": [], "srt": None, "vtt": None}
"""Output fields present in every answer, with their value where the pipeline leaves them out."""


def to_output(contract: dict) -> Output:
    """The Cog output from the contract dict: the always-present fields filled in, nothing else."""
    return typing.cast(Output, {**ALWAYS, **contract})


class Runner(BaseRunner):
    def setup(self) -> None:
        """Load every model once: $ASR_MODEL (comma-separated Hugging Face names or .nemo paths),
        the language identifier $ASR_LID_MODEL and the diarizer $ASR_DIAR_MODEL (`none`: off)."""
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        # Cog's downloads land in a folder of the service's own, swept of what cancelled and
        # failed downloads leave (coglet 0.23.1 never removes them); see asr/sweeper.py.
        self.sweeper = Sweeper(SweepOptions(use_private_tempdir(), stale_s=settings.sweep_stale_s(),
                                            interval_s=settings.sweep_interval_s())).start()
        self.transcriber = Transcriber.load()
        # Warm decoder children for the first requests (each takes ~0.5 s of CPU to start).
        self.transcriber.frontend.prestart()
        self._running = 0
        self._running_lock = threading.Lock()
        health.mark(running=False)

    def healthcheck(self) -> bool:
        """coglet asks this; False (after a GPU fault, when the model can no longer run in this
        process) makes the server report UNHEALTHY, so a supervisor restarts it."""
        return self.transcriber.scheduler.healthy

    @concurrent(max=MAX_CONCURRENCY)
    async def run(
        self,
        audio: Path = Input(
            description="Audio or video file (WAV, MP3, M4A/AAC, FLAC, OGG, Opus, WebM, MP4, MKV, MOV, ...), "
            "sent as an http(s) URL or a data URI (paths of files on the server are refused): "
            "any sample rate and channel count; the container's default audio track is used."
        ),
        source_lang: str = Input(
            default=AUTO, choices=[AUTO, *ALL_CODES],
            description=f"Language spoken in the audio: 'auto' (the default) detects it for the file and for "
            f"each chunk, so a recording that switches language is transcribed in each; or one of {_LANGS}. "
            "Each model accepts its own subset (Canary-1B-v2: 25 European languages); others fail with a "
            "message naming what it accepts.",
        ),
        target_lang: Optional[str] = Input(
            default=None,
            choices=list(ALL_CODES),
            description="Language of the output. Omit (or give the source language) to transcribe; "
            "with Canary, English to any other language, or any other language to English, to translate. "
            "Parakeet and CTC models do not translate.",
        ),
        model: Optional[str] = Input(
            default=None,
            description="Which loaded model runs (ASR_MODEL lists them): its Hugging Face name, or a .nemo "
            "file's name without .nemo. Omit for the first. An unknown name fails listing the loaded ones.",
        ),
        pnc: bool = Input(default=True, description="Punctuation and capitalisation."),
        timestamps: bool = Input(
            default=True,
            description="Word and segment timestamps, SRT and VTT. Translations get segment timestamps only.",
        ),
        diarize: bool = Input(
            default=False,
            description="Who spoke when: a speaker on every word and segment, a speakers summary, speaker "
            "names in SRT and VTT (up to 4 speakers).",
        ),
        max_segment_s: float = Input(
            default=7.0, ge=1.0, le=60.0, description="Longest segment (subtitle cue), in seconds."
        ),
        max_line_chars: int = Input(
            default=42, ge=10, le=200, description="Longest subtitle line, in characters (two lines per cue)."
        ),
        hotwords: Optional[list[str]] = Input(
            default=None,
            description=f"Words and phrases the model should prefer where it hears them (names, products, "
            f"jargon): at most {MAX_PHRASES} phrases of at most {MAX_PHRASE_CHARS} characters. Write them as "
            "they should appear; each is also boosted with its words capitalised, and lower-cased for "
            "models that write lower case. Canary then decodes with beam search (slower); a model "
            "without a subword tokenizer refuses them.",
        ),
        hotwords_boost: float = Input(
            default=DEFAULT_BOOST, ge=MIN_BOOST, le=MAX_BOOST,
            description="How strongly hotwords are preferred: higher finds more of them and wrongly "
            "inserts more of them too.",
        ),
    ) -> Output:
        options = TranscribeOptions(
            source_lang=source_lang, target_lang=target_lang, pnc=pnc, timestamps=timestamps,
            subtitles=SubtitleOptions(max_segment_s=max_segment_s, max_line_chars=max_line_chars),
            model=model, diarize=diarize, hotwords=tuple(hotwords or ()), hotwords_boost=hotwords_boost,
        )
        self._mark(+1)
        cancel = threading.Event()
        try:
            # The work runs on a thread of its own: coglet runs every prediction's run() on one
            # event loop, which must stay free to accept and cancel the others.
            transcript = await asyncio.to_thread(self._run, audio, options, cancel)
            scope = current_scope()  # on the loop: the scope belongs to this prediction's task
            scope.record_metric("audio_s", transcript.duration_s)
            scope.record_metric("speech_s", transcript.speech_s)
            for key, value in transcript.timings_s.items():
                scope.record_metric(f"timings.{key}", value)
            return await asyncio.to_thread(self._output, transcript, options)
        except asyncio.CancelledError:
            cancel.set()  # the thread stops within a quarter of a second and drops its queued chunks
            raise
        finally:
            self._mark(-1)

    def _mark(self, delta: int) -> None:
        with self._running_lock:
            self._running += delta
            running = self._running > 0
            forget_parsed_urls()
        health.mark(running=running)

    def _output(self, transcript, options: TranscribeOptions) -> Output:
        return to_output(formats.to_dict(transcript, options.subtitles))  # srt/vtt null without timestamps

    def _run(self, audio, options: TranscribeOptions, cancel: threading.Event):
        path = received_file(audio)
        name = display_name(path)
        with self.sweeper.owning(path):
            return self._transcribe(path, name, options, cancel)

    def _transcribe(self, path, name: str, options: TranscribeOptions, cancel: threading.Event):
        try:
            # Every message and log line names the file as the user knows it (the URL's name, or
            # "the uploaded file"), never by Cog's temporary name; public_text unquotes descriptions.
            transcript = self.transcriber.transcribe(str(path), options, display_name=name, cancel=cancel)
            transcript = dataclasses.replace(
                transcript, warnings=tuple(public_text(w, path, name) for w in transcript.warnings))
        except ASRError as e:
            raise with_display_name(e, path, name)  # a message for the user; no traceback needed
        except Exception:
            traceback.print_exc()  # Cog reports only the message; keep the trace in the server log
            raise
        return transcript
