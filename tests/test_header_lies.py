"""Stated lengths that lie, and files that are not audio, through the real decoder children.

Each container family whose header states the audio's length gets a file whose header
understates it: all of the audio must be decoded, with a warning; the same file with a truthful
header must give no warning. Markup, text and archives are refused by name, whatever FFmpeg's
probe would have guessed."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from asr.errors import InputError
from asr.media import sniff
from tests.media import RECIPES, Recipe, write_media

SECONDS = 8.0


def _set(data: bytearray, at: int, fmt: str, value) -> None:
    data[at : at + struct.calcsize(fmt)] = struct.pack(fmt, value)


def riff_data(b: bytearray) -> None:
    _set(b, b.index(b"data") + 4, "<I", 32_000)  # the case: 8 s of audio, 32,000 bytes stated


def riff_zero(b: bytearray) -> None:  # a recorder that stopped before finalising its header
    _set(b, b.index(b"data") + 4, "<I", 0)


def aiff_ssnd(b: bytearray) -> None:
    _set(b, b.index(b"SSND") + 4, ">I", 32_000)


def caf_data(b: bytearray) -> None:
    _set(b, b.index(b"data") + 4, ">q", 32_004)


def w64_data(b: bytearray) -> None:
    _set(b, b.index(b"data\xf3\xac\xd3\x11") + 16, "<Q", 32_024)


def au_size(b: bytearray) -> None:
    _set(b, 8, ">I", 32_000)


def flac_total(b: bytearray) -> None:
    _set(b, 8 + 14, ">I", 16_000)  # STREAMINFO's total-samples field (low 32 of 36 bits)


def mp3_frames(b: bytearray) -> None:
    at = max(b.find(b"Xing"), b.find(b"Info"))
    assert at > 0, "the encoder wrote no Xing/Info header"
    _set(b, at + 8, ">I", 10)


def mkv_duration(b: bytearray) -> None:
    at = b.index(b"\x44\x89")  # Segment Info: Duration (a float in the timecode scale, ms)
    size = b[at + 2] & 0x7F
    _set(b, at + 3, ">d" if size == 8 else ">f", 500.0)


FAMILIES: dict[str, tuple[Recipe, Callable[[bytearray], None]]] = {
    "wav": (RECIPES["wav"], riff_data),
    "wav-size-zero": (RECIPES["wav"], riff_zero),
    "aiff": (Recipe(".aiff", "aiff", "pcm_s16be"), aiff_ssnd),
    "caf": (Recipe(".caf", "caf", "pcm_s16le"), caf_data),
    "w64": (Recipe(".w64", "w64", "pcm_s16le"), w64_data),
    "au": (Recipe(".au", "au", "pcm_s16be"), au_size),
    "flac": (RECIPES["flac"], flac_total),
    "mp3": (RECIPES["mp3"], mp3_frames),
    "mkv": (Recipe(".mkv", "matroska", "flac"), mkv_duration),
}


def decode(frontend, path: Path):
    run = frontend.run(path)
    for _ in run:
        pass
    return run.summary


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_understated_length_decoded_to_the_end(frontend, jfk, tmp_path, family):
    recipe, lie = FAMILIES[family]
    x, rate = jfk
    truthful = write_media(tmp_path / f"true{recipe.suffix}", x[:, : int(SECONDS * rate)], rate, recipe)
    data = bytearray(truthful.read_bytes())
    lie(data)
    lying = tmp_path / f"lie{recipe.suffix}"
    lying.write_bytes(bytes(data))

    honest = decode(frontend, truthful)
    assert honest.duration_s == pytest.approx(SECONDS, abs=0.1)
    assert not [w for w in honest.warnings if "understates" in w], honest.warnings

    summary = decode(frontend, lying)
    assert summary.duration_s == pytest.approx(SECONDS, abs=0.1), summary.warnings
    assert any("header of 'lie" in w and "understates its length" in w for w in summary.warnings), summary.warnings
    assert summary.speech_s == pytest.approx(honest.speech_s, abs=0.3)


def test_trailing_chunk_after_data_is_not_taken_for_audio(frontend, jfk, tmp_path):
    """A WAV whose data chunk is followed by a LIST chunk states its length truthfully: the
    chunk's bytes must not be decoded as audio, and there is nothing to warn about."""
    x, rate = jfk
    path = write_media(tmp_path / "tagged.wav", x[:, : 2 * rate], rate, RECIPES["wav"])
    info = b"INFOINAM" + struct.pack("<I", 6) + b"title\x00"
    data = path.read_bytes() + b"LIST" + struct.pack("<I", len(info)) + info
    path.write_bytes(data)
    assert sniff.length_fix(path, data[:4096]) is None
    summary = decode(frontend, path)
    assert summary.duration_s == pytest.approx(2.0, abs=0.01)
    assert summary.warnings == ()


def _zip_of(src: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:  # stored: FFmpeg would find the MP3
        z.write(src, src.name)
    return buf.getvalue()


NOT_AUDIO = {
    "login.mp3": (lambda a: b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><form>"
                  + b"<input name=user>" * 40 + b"</form></body></html>\n", "an HTML page"),
    "page.m4a": (lambda a: b"\xef\xbb\xbf  <html lang=en><body>" + "Seite nicht gefunden ".encode() * 30, "an HTML page"),
    "feed.wav": (lambda a: b'<?xml version="1.0"?><rss>' + b"<item>x</item>" * 50 + b"</rss>", "an XML document"),
    "answer.mp3": (lambda a: b'{"error": "not found", "status": 404}' * 20, "a JSON document"),
    "notes.wav": (lambda a: "Réunion : apporter le café.\n".encode() * 60, "a text file"),
    "bundle.mp3": (lambda a: _zip_of(a / "test.mp3"), "a ZIP archive"),
    "bundle.gz": (lambda a: gzip.compress((a / "test.mp3").read_bytes()[:50_000]), "a gzip archive"),
    "scan.mp3": (lambda a: b"%PDF-1.7\n" + bytes(range(256)) * 40, "a PDF document"),
}


@pytest.mark.parametrize("name", sorted(NOT_AUDIO))
def test_not_audio_is_refused_by_what_it_is(frontend, shared_audio, tmp_path, name):
    make, kind = NOT_AUDIO[name]
    path = tmp_path / name
    path.write_bytes(make(shared_audio))
    with pytest.raises(InputError) as e:
        decode(frontend, path)
    assert f"'{name}' is {kind}, not audio; accepted:" in str(e.value)


def test_real_audio_is_not_taken_for_text(shared_audio):
    """Every real recording's first bytes: none is taken for text, markup or an archive."""
    for path in sorted(shared_audio.iterdir()):
        if path.suffix in (".wav", ".flac", ".mp3", ".opus"):
            assert sniff.not_audio(path.read_bytes()[: sniff.HEAD_BYTES]) is None, path.name


def test_mostly_undecodable_is_refused(frontend, jfk, tmp_path):
    """An M4A whose packets are nearly all garbage: refused as undecodable, not 'transcribed'
    as a second of noise with a warning; one with a few damaged packets still succeeds."""
    x, rate = jfk
    path = write_media(tmp_path / "good.m4a", x[:, : int(SECONDS * rate)], rate, RECIPES["m4a"])
    data = bytearray(path.read_bytes())
    mdat = data.index(b"mdat") + 4
    rng = np.random.default_rng(1)
    end = mdat + int((len(data) - mdat) * 0.9)
    ruined = data[:mdat] + rng.bytes(end - mdat) + data[end:]
    bad = tmp_path / "ruined.m4a"
    bad.write_bytes(bytes(ruined))
    with pytest.raises(InputError, match=r"most of 'ruined.m4a' could not be decoded \(\d+ of \d+ aac packets"):
        decode(frontend, bad)

    few = bytearray(data)
    span = len(data) - mdat
    for k in (0.3, 0.6):  # two short bursts of damage
        at = mdat + int(span * k)
        few[at : at + 40] = rng.bytes(40)
    damaged = tmp_path / "damaged.m4a"
    damaged.write_bytes(bytes(few))
    summary = decode(frontend, damaged)
    assert summary.duration_s > SECONDS - 1.0


# ------------------------------------------------------------------------------------------
# Too long by a truthful header: refused before decoding. Overstating headers: decoded.
# ------------------------------------------------------------------------------------------

CAP_S = 1800.0


@pytest.fixture(scope="module")
def capped_frontend():
    from asr.frontend import FrontEnd
    from asr.types import AudioLimits

    return FrontEnd(limits=AudioLimits(max_duration_s=CAP_S))


def test_truthful_long_header_is_refused_before_decoding(capped_frontend, jfk, tmp_path):
    """35 minutes of MP3 against a 30-minute cap: refused from its header, in well under the
    time decoding even a tenth of it would take."""
    import time

    from asr.errors import AudioTooLongError
    from tests.media import repeat_encoded

    x, rate = jfk
    one = write_media(tmp_path / "one.mp3", x[:, : 10 * rate], rate, RECIPES["mp3"])
    long = repeat_encoded(one, 6 * 35, tmp_path / "meeting.mp3")
    start = time.monotonic()
    with pytest.raises(AudioTooLongError, match=r"'meeting.mp3' is longer than the 30 min 00 s limit "
                                                r"\(35 min 0\d s, as its header states; refused before decoding\)"):
        decode(capped_frontend, long)
    assert time.monotonic() - start < 5.0


@pytest.mark.parametrize("family", ["flac", "wav", "mp3"])
def test_overstating_header_is_decoded_not_refused(capped_frontend, jfk, tmp_path, family):
    """A header claiming hours over a few seconds of audio: no frame lies past the cap, so the
    claim is not believed; the file is decoded (the decoded-sample cap stays the backstop)."""
    x, rate = jfk
    recipe = RECIPES[family]
    path = write_media(tmp_path / f"claim{recipe.suffix}", x[:, : int(SECONDS * rate)], rate, recipe)
    data = bytearray(path.read_bytes())
    if family == "flac":
        data[8 + 13] = (data[8 + 13] & 0xF0) | 0x0F  # total samples: ~68.7 billion
    elif family == "wav":
        _set(data, data.index(b"data") + 4, "<I", 0x7FFF0000)
    else:
        at = max(data.find(b"Xing"), data.find(b"Info"))
        _set(data, at + 8, ">I", 10_000_000)  # frames: ~73 hours
    path.write_bytes(bytes(data))
    summary = decode(capped_frontend, path)
    assert summary.duration_s == pytest.approx(SECONDS, abs=0.1)


def test_mostly_undecodable_mp3_is_refused(frontend, jfk, tmp_path):
    """An MP3 demuxer skips unreadable bytes silently (it looks for the next frame header), so
    there the measure is the share of bytes that decoded as frames: 85 % garbage is refused,
    two short damaged bursts are skipped with a warning."""
    x, rate = jfk
    path = write_media(tmp_path / "good.mp3", x[:, : int(SECONDS * rate)], rate, RECIPES["mp3"])
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    a, b = int(len(data) * 0.1), int(len(data) * 0.95)
    ruined = tmp_path / "ruined.mp3"
    ruined.write_bytes(bytes(data[:a] + rng.bytes(b - a) + data[b:]))
    with pytest.raises(InputError, match=r"most of 'ruined.mp3' could not be decoded \(only \d+ % of the"):
        decode(frontend, ruined)
    for k in (0.3, 0.6):
        at = int(len(data) * k)
        data[at : at + 300] = rng.bytes(300)
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(data))
    summary = decode(frontend, damaged)
    assert summary.duration_s > SECONDS - 0.5
    assert any("damaged packet" in w for w in summary.warnings), summary.warnings
