"""Cog adapter: inputs -> TranscribeOptions -> Transcriber -> Output. No audio or model logic here.

Run it with `make serve` (Cog's HTTP server, coglet) or `cog predict -i audio=@samples/en.mp3`.
"""

from __future__ import annotations

import logging
import pathlib
import re
import tempfile
import traceback
import urllib.parse
from typing import Optional

from cog import BaseModel, BaseRunner, Input, Path, URLPath, current_scope

from asr import formats, health
from asr.errors import ASRError, ServerPathError
from asr.languages import CODES, LANGUAGES
from asr.pipeline import Transcriber
from asr.types import SubtitleOptions, TranscribeOptions

log = logging.getLogger("predict")

_LANGS = ", ".join(f"{c} ({LANGUAGES[c]})" for c in CODES)


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
    warnings: list[str]
    """What was done to the input that a user would want to know; empty when nothing happened."""
    srt: Optional[str] = None
    vtt: Optional[str] = None


_RANDOM_CHARS = 8
"""Length of the random part of tempfile's names (tempfile._RandomNameSequence)."""
_DATA_URI_NAME = re.compile(r"file(\.[A-Za-z0-9]+)?")
"""What Cog names a data URI's file: "file" plus the extension of its MIME type (cog.types.get_filename)."""


def received_file(audio: object) -> pathlib.Path:
    """The local copy of a file the caller sent, or ServerPathError if `audio` names a server path.

    coglet 0.23.1 turns an input value into a cog Path only when it starts with `http://`,
    `https://` or `data:`; it downloads it into a `tempfile.NamedTemporaryFile` in the temp
    directory and hands run() that Path. Every other string (`/srv/app/samples/en.mp3`,
    `file:///etc/passwd`) reaches run() as a plain `str`. So the type proves the download, and
    nothing a client writes can imitate it; the directory check is a second guard, should a later
    Cog wrap plain strings in Path as its old Python server did. Same message either way, so it
    says nothing about which files exist."""
    if isinstance(audio, URLPath):  # not downloaded yet (a runtime that defers it to us)
        audio = audio.convert()
    if not isinstance(audio, pathlib.Path):
        raise ServerPathError()
    path = pathlib.Path(audio)
    if (path.parent.resolve() != pathlib.Path(tempfile.gettempdir()).resolve()
            or not path.name.startswith(tempfile.gettempprefix()) or path.is_symlink()):
        raise ServerPathError()
    return path


def display_name(path: str | pathlib.Path) -> str:
    """The name the user knows their file by: the URL's last path segment, or "the uploaded file"
    for a data URI, recovered from Cog's temporary name (`tmpk73nzwlvc` + `short.flac`).
    A URL whose last segment is itself `file.<ext>` reads as "the uploaded file" too."""
    name = pathlib.Path(path).name
    prefix = tempfile.gettempprefix()
    if not name.startswith(prefix) or len(name) < len(prefix) + _RANDOM_CHARS:
        return name
    original = name[len(prefix) + _RANDOM_CHARS :]
    if not original:
        return "the downloaded file"
    if _DATA_URI_NAME.fullmatch(original):
        return "the uploaded file"
    return original


def with_display_name(error: ASRError, path: pathlib.Path, name: str) -> ASRError:
    """`error` with Cog's temporary file name replaced by `name` (in place: type, chain and
    traceback stay). Messages quote file names ('x.mp3'); a description is not quoted."""
    if len(error.args) != 1 or not isinstance(error.args[0], str):
        return error
    temp = path.name
    shown = name if name.startswith("the ") else f"'{name}'"
    text = error.args[0].replace(f"'{path}'", shown).replace(f"'{temp}'", shown)
    error.args = (text.replace(str(path), name).replace(temp, name),)
    return error


def forget_parsed_urls() -> None:
    """Drop Python's cache of parsed URLs. Cog parses each `audio` value with urllib.parse, whose
    `urlsplit` keeps the last 128 distinct inputs alive (an LRU cache), each a data URI of up to
    ~100 MB plus a copy of its path: the worker grew by twice every recent upload's size (measured:
    +43 MB after one 17 MB upload, for good). Parsing is cheap; the cache is not worth it here."""
    urllib.parse.clear_cache()


class Runner(BaseRunner):
    def setup(self) -> None:
        """Load the model once ($ASR_MODEL: a Hugging Face name or a .nemo path)."""
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        self.transcriber = Transcriber.load()
        health.mark(running=False)

    def run(
        self,
        audio: Path = Input(
            description="Audio or video file (WAV, MP3, M4A/AAC, FLAC, OGG, Opus, WebM, MP4, MKV, MOV, ...), "
            "sent as an http(s) URL or a data URI (paths of files on the server are refused): "
            "any sample rate and channel count; the first audio track of a video is used."
        ),
        source_lang: str = Input(
            default="en", choices=list(CODES), description=f"Language spoken in the audio: {_LANGS}."
        ),
        target_lang: Optional[str] = Input(
            default=None,
            choices=list(CODES),
            description="Language of the output. Omit (or give the source language) to transcribe; "
            "English to any other language, or any other language to English, to translate.",
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
        health.mark(running=True)
        forget_parsed_urls()
        try:
            return self._run(audio, source_lang, target_lang, pnc, timestamps, max_segment_s, max_line_chars)
        finally:
            forget_parsed_urls()
            health.mark(running=False)

    def _run(self, audio, source_lang, target_lang, pnc, timestamps, max_segment_s, max_line_chars) -> Output:
        path = received_file(audio)
        name = display_name(path)
        subtitles = SubtitleOptions(max_segment_s=max_segment_s, max_line_chars=max_line_chars)
        options = TranscribeOptions(
            source_lang=source_lang, target_lang=target_lang, pnc=pnc, timestamps=timestamps,
            subtitles=subtitles,
        )
        try:
            transcript = self.transcriber.transcribe(str(path), options)
        except ASRError as e:
            raise with_display_name(e, path, name)  # a message for the user; no traceback needed
        except Exception:
            traceback.print_exc()  # Cog reports only the message; keep the trace in the server log
            raise
        scope = current_scope()
        scope.record_metric("audio_s", transcript.duration_s)
        scope.record_metric("speech_s", transcript.speech_s)
        for key, value in transcript.timings_s.items():
            scope.record_metric(f"timings.{key}", value)
        return Output(**formats.to_dict(transcript, subtitles))  # srt/vtt absent without timestamps
