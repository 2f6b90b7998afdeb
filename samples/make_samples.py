"""Regenerate the sample recordings in this folder (speech synthesised with espeak-ng).

    apt-get install espeak-ng        # Debian's package
    .venv/bin/python samples/make_samples.py

Each sample is one or two sentences in one of Canary's languages, stored in a different
container so the examples also show the formats the service reads. They are small and made by
the project, so they can live in the repository; real recordings for tests and benchmarks are
kept outside it.
"""

from __future__ import annotations

import io
import subprocess
import wave
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent

SAMPLES = {
    # file name: (espeak-ng voice, text, container format, codec)
    "en.mp3": ("en-us", "Speech recognition turns spoken words into text. "
               "This short sample was made for the project's examples.", "mp3", "libmp3lame"),
    "de.m4a": ("de", "Spracherkennung verwandelt gesprochene Worte in Text. "
               "Dieses kurze Beispiel wurde für das Projekt erzeugt.", "ipod", "aac"),
    "fr.ogg": ("fr", "La reconnaissance vocale transforme la parole en texte. "
               "Cet exemple court a été créé pour le projet.", "ogg", "libopus"),
    "es.flac": ("es", "El reconocimiento de voz convierte las palabras habladas en texto.", "flac", "flac"),
    "uk.wav": ("uk", "Розпізнавання мовлення перетворює сказані слова на текст.", "wav", "pcm_s16le"),
}


def synthesise(voice: str, text: str) -> tuple[np.ndarray, int]:
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout", text],
                         check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    return x, rate


def encode(path: Path, x: np.ndarray, rate: int, fmt: str, codec: str) -> None:
    out_rate = 48_000 if codec == "libopus" else rate
    if out_rate != rate:
        import soxr

        x = soxr.resample(x, rate, out_rate).astype(np.float32)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=out_rate, layout="mono")
        if codec in ("libmp3lame", "aac", "libopus"):
            stream.bit_rate = 48_000
        fmt_name = stream.codec_context.format.name
        n = stream.codec_context.frame_size or 1024
        for i in range(0, x.size, n):
            block = x[i : i + n]
            base = fmt_name.rstrip("p")
            if base == "s16":
                data = np.clip(np.round(block * 32767), -32768, 32767).astype(np.int16)
            elif base == "s32":
                data = np.clip(np.round(block.astype(np.float64) * 2**31), -(2**31), 2**31 - 1).astype(np.int32)
            else:
                data = block.astype(np.float32)
            frame = av.AudioFrame.from_ndarray(data[None, :], format=fmt_name, layout="mono")
            frame.sample_rate = out_rate
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)


def main() -> None:
    for name, (voice, text, fmt, codec) in SAMPLES.items():
        x, rate = synthesise(voice, text)
        encode(HERE / name, x, rate, fmt, codec)
        print(f"{name}: {x.size / rate:.1f} s, {(HERE / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
