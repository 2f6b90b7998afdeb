"""Plain text, JSON, SRT and WebVTT from a Transcript.

SRT and VTT differ only in class attributes over one shared cue iterator (the shape of
openai/whisper's writers); writers take a text stream, so tests use io.StringIO.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from .segments import wrap_lines
from .types import SubtitleOptions, Transcript


@dataclass(frozen=True)
class Cue:
    index: int
    start_ms: int
    end_ms: int
    lines: tuple[str, ...]
    speaker: str | None = None
    """With diarization: the segment's speaker (SRT prefixes the text, VTT uses a voice span)."""


def balanced_lines(text: str, width: int, max_lines: int) -> list[str]:
    """Break text into lines of at most `width` characters; two lines are balanced (broken at
    the space nearest the middle) rather than a long line over a short one."""
    text = " ".join(text.split())
    if len(text) <= width:
        return [text]
    if max_lines >= 2:
        spaces = [i for i, ch in enumerate(text) if ch == " "]
        ok = [i for i in spaces if i <= width and len(text) - i - 1 <= width]
        if ok:
            cut = min(ok, key=lambda i: abs(i - len(text) / 2))
            return [text[:cut], text[cut + 1 :]]
    return wrap_lines(text, width)


MIN_CUE_MS = 500
"""A cue shorter than this is lengthened (up to the next cue's start, and never past the end of
the audio) so it can be read."""


def iter_cues(
    transcript: Transcript, options: SubtitleOptions | None = None, speaker_prefix: bool = False
) -> Iterator[Cue]:
    """One cue per non-empty segment, in order: never starting before the previous cue, lasting
    at least MIN_CUE_MS where the next cue and the end of the audio leave room, never ending after
    the audio (a player would show it over black, and editors reject it), never longer than
    `max_segment_s` (segments are cut to fit it at word boundaries, but a single word keeps the
    model's times, however long), and always at least 1 ms.
    With `speaker_prefix`, a segment's speaker (`SPEAKER_1: `) is part of the text the lines are
    balanced over, so the prefixed lines still respect the width."""
    o = options or SubtitleOptions()
    segments = [(s, " ".join(s.text.split())) for s in transcript.segments]
    segments = [(s, text) for s, text in segments if text]
    audio_end = max(1, int(transcript.duration_s * 1000))  # floor: a cue never ends after the audio
    last_start = 0
    for index, (seg, text) in enumerate(segments, start=1):
        start = min(max(last_start, int(round(seg.start_s * 1000))), audio_end - 1)
        end = min(int(round(seg.end_s * 1000)), audio_end)
        next_start = int(round(segments[index][0].start_s * 1000)) if index < len(segments) else None
        readable = min(start + MIN_CUE_MS, audio_end if next_start is None else min(next_start, audio_end))
        end = max(end, readable, start + 1)
        end = min(end, start + max(1, int(o.max_segment_s * 1000)))  # even a word the model made 18 s long
        last_start = start
        shown = f"{seg.speaker}: {text}" if speaker_prefix and seg.speaker else text
        lines = tuple(balanced_lines(shown, o.max_line_chars, o.max_lines))
        yield Cue(index, start, end, lines, seg.speaker)


def format_timestamp(ms: int, decimal_marker: str) -> str:
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal_marker}{ms:03d}"


class SubtitleWriter:
    extension: str = ""
    header: str = ""
    decimal_marker: str = "."
    numbered: bool = False
    speaker_prefix: bool = False
    """Whether the speaker's name is written into the text (`SPEAKER_1: ...`)."""

    def escape(self, line: str) -> str:
        return line

    def cue_lines(self, cue: Cue) -> list[str]:
        return [self.escape(line) for line in cue.lines]

    def write(self, transcript: Transcript, file: TextIO, options: SubtitleOptions | None = None) -> None:
        file.write(self.header)
        for cue in iter_cues(transcript, options, self.speaker_prefix):
            if self.numbered:
                file.write(f"{cue.index}\n")
            file.write(
                f"{format_timestamp(cue.start_ms, self.decimal_marker)} --> "
                f"{format_timestamp(cue.end_ms, self.decimal_marker)}\n"
            )
            for line in self.cue_lines(cue):
                file.write(line + "\n")
            file.write("\n")

    def to_string(self, transcript: Transcript, options: SubtitleOptions | None = None) -> str:
        buf = io.StringIO()
        self.write(transcript, buf, options)
        return buf.getvalue()


class SRTWriter(SubtitleWriter):
    """SubRip: index, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, text lines, blank line. SubRip has no
    speaker markup, so a diarized cue's text starts with the speaker's name (`SPEAKER_1: `)."""

    extension = "srt"
    decimal_marker = ","
    numbered = True
    speaker_prefix = True

    def escape(self, line: str) -> str:
        return line.replace("-->", "->")  # SRT has no escapes; the arrow would read as a timing line


class VTTWriter(SubtitleWriter):
    """WebVTT: `WEBVTT` header, `HH:MM:SS.mmm --> HH:MM:SS.mmm`, escaped cue text. A diarized
    cue is one voice span over all its lines (`<v SPEAKER_1>...</v>`, WebVTT section 4.2.2:
    the annotation is the speaker's name, escaped like cue text)."""

    extension = "vtt"
    header = "WEBVTT\n\n"
    decimal_marker = "."

    def escape(self, line: str) -> str:
        return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def cue_lines(self, cue: Cue) -> list[str]:
        lines = [self.escape(line) for line in cue.lines]
        if cue.speaker:
            lines[0] = f"<v {self.escape(cue.speaker)}>{lines[0]}"
            lines[-1] = f"{lines[-1]}</v>"
        return lines


def to_text(transcript: Transcript) -> str:
    return transcript.text + "\n"


def to_dict(transcript: Transcript, options: SubtitleOptions | None = None) -> dict:
    """The full output contract: the transcript, plus `srt` and `vtt` when timestamps are on."""
    out = transcript.to_dict()
    if transcript.timestamps:
        out["srt"] = SRTWriter().to_string(transcript, options)
        out["vtt"] = VTTWriter().to_string(transcript, options)
    return out


def to_json(transcript: Transcript, options: SubtitleOptions | None = None) -> str:
    return json.dumps(to_dict(transcript, options), ensure_ascii=False, indent=2) + "\n"


WRITERS = {"srt": SRTWriter, "vtt": VTTWriter}
