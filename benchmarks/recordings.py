"""Which speech the benchmarks read: the real recordings when present, else the project's own.

The real recordings (tools/test_audio.json) are found as the tests find them: $ASR_TEST_AUDIO_DIR,
../shared/audio, or .cache/test-audio after `make test-audio`. Without them the benchmarks run on
speech made from samples/ (espeak-ng) and say so in one line on stderr, instead of a traceback.
Figures from the fallback are not comparable with those in the README.
"""

from __future__ import annotations

import sys
import wave
from functools import cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.media import MISSING_AUDIO, SHARED_AUDIO, samples_speech  # noqa: E402

SAMPLES = ROOT / "samples"
FALLBACK_S = 60.0
SUBSTITUTES = {".flac": SAMPLES / "es.flac", ".mp3": SAMPLES / "en.mp3", ".opus": SAMPLES / "fr.ogg"}
"""A sample in the same kind of container stands in for each real recording."""


@cache
def have_real() -> bool:
    present = (SHARED_AUDIO / "jfk.flac").is_file() and (SHARED_AUDIO / "test.wav").is_file()
    if not present:
        print(f"note: {MISSING_AUDIO}; using speech made from samples/ instead "
              "(figures are not comparable with the README's)", file=sys.stderr)
    return present


def recording(name: str) -> Path:
    """The real recording `name`, or a stand-in from samples/ (test.wav: `speech_wav()`)."""
    if have_real():
        return SHARED_AUDIO / name
    if name.endswith(".wav"):
        return speech_wav()
    return SUBSTITUTES[Path(name).suffix]


def speech_wav() -> Path:
    """About 60 s of speech as 16 kHz mono 16-bit WAV: Silero's test.wav, or the five samples
    decoded, joined with half-second pauses and repeated to length."""
    if have_real():
        return SHARED_AUDIO / "test.wav"
    out = ROOT / ".cache" / "bench" / "samples-speech-60s.wav"
    if out.is_file():
        return out
    rate = 16_000
    x = samples_speech(FALLBACK_S)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes())
    tmp.rename(out)
    return out
