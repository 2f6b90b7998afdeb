"""Cog adapter: inputs -> TranscribeOptions -> Transcriber -> Output. No audio or model logic here.

Run it with `make serve` (Cog's HTTP server, coglet) or `cog predict -i audio=@samples/en.mp3`.
"""

from __future__ import annotations

import logging
import traceback
from typing import Optional

from cog import BaseModel, BaseRunner, Input, Path, current_scope

from asr import formats
from asr.errors import ASRError
from asr.languages import ALL_CODES, NAMES
from asr.pipeline import Transcriber
from asr.types import SubtitleOptions, TranscribeOptions

log = logging.getLogger("predict")

_LANGS = ", ".join(f"{c} ({NAMES[c]})" for c in ALL_CODES)


class Output(BaseModel):
    text: str
    segments: list[dict]
    """Each: start, end (seconds on the original timeline), text, words [{start, end, word}]."""
    source_lang: str
    target_lang: str
    task: str
    duration_s: float
    speech_s: float
    model: str
    srt: Optional[str] = None
    vtt: Optional[str] = None


class Runner(BaseRunner):
    def setup(self) -> None:
        """Load every model once ($ASR_MODEL: comma-separated Hugging Face names or .nemo paths)."""
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        self.transcriber = Transcriber.load()

    def run(
        self,
        audio: Path = Input(
            description="Audio or video file (WAV, MP3, M4A/AAC, FLAC, OGG, Opus, WebM, MP4, MKV, MOV, ...): "
            "any sample rate and channel count; the first audio track of a video is used."
        ),
        source_lang: str = Input(
            default="en", choices=list(ALL_CODES),
            description=f"Language spoken in the audio: {_LANGS}. Each model accepts its own subset "
            "(Canary-1B-v2: 25 European languages); others fail with a message naming what it accepts.",
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
        max_segment_s: float = Input(
            default=7.0, ge=1.0, le=60.0, description="Longest segment (subtitle cue), in seconds."
        ),
        max_line_chars: int = Input(
            default=42, ge=10, le=200, description="Longest subtitle line, in characters (two lines per cue)."
        ),
    ) -> Output:
        subtitles = SubtitleOptions(max_segment_s=max_segment_s, max_line_chars=max_line_chars)
        options = TranscribeOptions(
            source_lang=source_lang, target_lang=target_lang, pnc=pnc, timestamps=timestamps,
            subtitles=subtitles, model=model,
        )
        try:
            transcript = self.transcriber.transcribe(str(audio), options)
        except ASRError:
            raise  # a message for the user; no traceback needed
        except Exception:
            traceback.print_exc()  # Cog reports only the message; keep the trace in the server log
            raise
        scope = current_scope()
        scope.record_metric("audio_s", transcript.duration_s)
        scope.record_metric("speech_s", transcript.speech_s)
        for key, value in transcript.timings_s.items():
            scope.record_metric(f"timings.{key}", value)
        return Output(**formats.to_dict(transcript, subtitles))  # srt/vtt absent without timestamps
