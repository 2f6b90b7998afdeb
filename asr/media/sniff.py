"""A look at a file's first bytes before FFmpeg sees it, for two things FFmpeg's probe gets wrong.

1. What is not audio at all. FFmpeg's probe guesses a format for anything: an HTML login page
   served with status 200 probes as AMR-NB and "decodes" to seconds of noise, and a ZIP archive
   that stores an MP3 probes as that MP3. Markup, text, archives and documents are recognised by
   their own signatures here and refused by name.
2. A stated data length that ends before the audio does. WAV, Wave64, AIFF and CAF say how many
   bytes of audio follow; a writer that never finalised its header (or a hostile one) understates
   it, and FFmpeg stops there, silently dropping the rest. When what follows the stated end is not
   another chunk, the length is corrected (in a read-only view of the file, never on disk) so the
   file is decoded to the real end of its data.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass

HEAD_BYTES = 4096
"""Bytes read to recognise a file: enough for every signature and a fair sample of text."""

_ARCHIVES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"PK\x03\x04", "a ZIP archive"), (0, b"PK\x05\x06", "a ZIP archive"), (0, b"PK\x07\x08", "a ZIP archive"),
    (0, b"\x1f\x8b", "a gzip archive"), (0, b"BZh", "a bzip2 archive"), (0, b"\xfd7zXZ\x00", "an xz archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"), (0, b"Rar!\x1a\x07", "a RAR archive"),
    (0, b"\x28\xb5\x2f\xfd", "a Zstandard archive"), (257, b"ustar", "a tar archive"),
    (0, b"%PDF-", "a PDF document"), (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Office document"),
)
"""(offset, signature, what it is) for containers of other files and documents."""

_TEXT_KINDS: tuple[tuple[bytes, str], ...] = (
    (b"ffconcat", "an FFmpeg concat list"), (b"#extm3u", "an HLS playlist"), (b"v=0", "an SDP session description"),
    (b"<!doctype html", "an HTML page"), (b"<html", "an HTML page"), (b"<head", "an HTML page"),
    (b"<body", "an HTML page"), (b"<svg", "an SVG image"), (b"<?xml", "an XML document"),
    (b"<", "a markup (HTML or XML) document"), (b"{", "a JSON document"), (b"[", "a JSON document"),
    (b"webvtt", "a subtitle file"),
)
"""How a text file begins (lower-cased, after a byte-order mark and white space) -> what it is."""


@dataclass(frozen=True)
class LengthFix:
    """A container's data-length field that ends the audio early, and what it should say."""

    offset: int
    """Where the length field is in the file."""
    value: bytes
    """The corrected field: the length up to the end of the file (or the format's "unknown")."""
    stated_bytes: int
    actual_bytes: int


@dataclass(frozen=True)
class Sniffed:
    not_audio: str | None = None
    """What the file is, when it is certainly not audio ("an HTML page", "a ZIP archive")."""
    length_fix: LengthFix | None = None


def _text_kind(head: bytes) -> str | None:
    """What a text file is, or None for binary data. Text: no NUL byte and at least 95 % of the
    characters printable or white space (UTF-8, or Latin-1 where that fails)."""
    if not head or b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the end of the sample
            text = head.decode("latin-1")
        else:
            text = head[: e.start].decode("utf-8")
    if not text:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\t\r\n\f")
    if printable < 0.95 * len(text):
        return None
    start = text.lstrip("\ufeff \t\r\n").lower().encode("utf-8", "replace")
    return next((kind for prefix, kind in _TEXT_KINDS if start.startswith(prefix)), "a text file")


def not_audio(head: bytes) -> str | None:
    """What `head` (a file's first bytes) shows the file to be, when that is not audio."""
    for offset, magic, kind in _ARCHIVES:
        if head[offset : offset + len(magic)] == magic:
            return kind
    return _text_kind(head)


def _looks_like_chunk(f, at: int, size: int, id_size: int, big_endian: bool) -> bool:
    """Whether a well-formed chunk (a printable four-character id and a length that fits in the
    file) starts at `at`: then the stated data length was right and more chunks follow."""
    if size - at < id_size + 4:
        return True  # only padding (or nothing) after the data: nothing is lost
    f.seek(at)
    raw = f.read(8)
    if len(raw) < 8 or not all(32 <= b < 127 for b in raw[:4]):
        return False
    length = struct.unpack(">I" if big_endian else "<I", raw[4:8])[0]
    return at + 8 + length <= size


def _riff_fix(f, size: int) -> LengthFix | None:
    """WAV (RIFF/RF64 'data' chunk, 32-bit little-endian length)."""
    f.seek(12)
    pos = 12
    while pos + 8 <= size:
        head = f.read(8)
        if len(head) < 8:
            return None
        cid, length = head[:4], struct.unpack("<I", head[4:])[0]
        if cid == b"data":
            rest = size - (pos + 8)
            if length in (0xFFFFFFFF,) or length >= rest:
                return None
            end = pos + 8 + length + (length & 1)
            if _looks_like_chunk(f, end, size, 4, big_endian=False):
                return None
            return LengthFix(pos + 4, struct.pack("<I", min(rest, 0xFFFFFFFE)), length, rest)
        pos += 8 + length + (length & 1)
        f.seek(pos)
    return None


def _aiff_fix(f, size: int) -> LengthFix | None:
    """AIFF/AIFF-C ('SSND' chunk, 32-bit big-endian length including 8 bytes of offset fields)."""
    pos = 12
    f.seek(pos)
    while pos + 8 <= size:
        head = f.read(8)
        if len(head) < 8:
            return None
        cid, length = head[:4], struct.unpack(">I", head[4:])[0]
        if cid == b"SSND":
            rest = size - (pos + 8)
            if length >= rest:
                return None
            end = pos + 8 + length + (length & 1)
            if _looks_like_chunk(f, end, size, 4, big_endian=True):
                return None
            return LengthFix(pos + 4, struct.pack(">I", min(rest, 0xFFFFFFFE)), length, rest)
        pos += 8 + length + (length & 1)
        f.seek(pos)
    return None


_W64_DATA = b"data\xf3\xac\xd3\x11\x8c\xd1\x00\xc0\x4f\x8e\xdb\x8a"


def _w64_fix(f, size: int) -> LengthFix | None:
    """Sony Wave64 (16-byte GUID ids, 64-bit little-endian lengths that include the 24-byte header)."""
    pos = 40
    f.seek(pos)
    while pos + 24 <= size:
        head = f.read(24)
        if len(head) < 24:
            return None
        guid, length = head[:16], struct.unpack("<Q", head[16:])[0]
        if length < 24:
            return None
        if guid == _W64_DATA:
            rest = size - pos
            if length >= rest:
                return None
            end = pos + ((length + 7) & ~7)
            if size - end < 24:
                return None
            return LengthFix(pos + 16, struct.pack("<Q", rest), length - 24, rest - 24)
        pos += (length + 7) & ~7
        f.seek(pos)
    return None


def _caf_fix(f, size: int) -> LengthFix | None:
    """Core Audio Format ('data' chunk, 64-bit big-endian length; -1 means "to the end")."""
    pos = 8
    f.seek(pos)
    while pos + 12 <= size:
        head = f.read(12)
        if len(head) < 12:
            return None
        cid, length = head[:4], struct.unpack(">q", head[4:])[0]
        if cid == b"data":
            rest = size - (pos + 12)
            if length < 0 or length >= rest:
                return None
            end = pos + 12 + length
            if size - end < 12:
                return None  # only padding (or nothing) after the data
            f.seek(end)
            nxt = f.read(12)
            if all(32 <= b < 127 for b in nxt[:4]) and end + 12 + struct.unpack(">q", nxt[4:])[0] <= size:
                return None  # another chunk follows: the length was right
            return LengthFix(pos + 4, struct.pack(">q", -1), length, rest)
        if length < 0:
            return None
        pos += 12 + length
        f.seek(pos)
    return None


def length_fix(path: str | os.PathLike, head: bytes) -> LengthFix | None:
    """The corrected data length of a WAV, Wave64, AIFF or CAF file whose header understates it."""
    size = os.path.getsize(path)
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        reader = _riff_fix
    elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        reader = _aiff_fix
    elif head[:4] == b"riff" and head[24:28] == b"wave":
        reader = _w64_fix
    elif head[:4] == b"caff":
        reader = _caf_fix
    else:
        return None
    with open(path, "rb") as f:
        try:
            return reader(f, size)
        except (struct.error, OSError, ValueError):
            return None


def sniff(path: str | os.PathLike) -> Sniffed:
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    kind = not_audio(head)
    if kind is not None:
        return Sniffed(not_audio=kind)
    return Sniffed(length_fix=length_fix(path, head))


class PatchedFile(io.RawIOBase):
    """A read-only view of a file with a few bytes replaced (the corrected length field), for
    FFmpeg to read through PyAV's file-object support; the file on disk is never written."""

    def __init__(self, path: str | os.PathLike, fix: LengthFix):
        super().__init__()
        self._f = open(path, "rb")
        self._fix = fix

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, buffer) -> int:
        at = self._f.tell()
        n = self._f.readinto(buffer)
        if not n:
            return n or 0
        lo, hi = self._fix.offset, self._fix.offset + len(self._fix.value)
        if at < hi and at + n > lo:
            view = memoryview(buffer)
            a, b = max(lo, at), min(hi, at + n)
            view[a - at : b - at] = self._fix.value[a - lo : b - lo]
        return n

    def close(self) -> None:
        self._f.close()
        super().close()
