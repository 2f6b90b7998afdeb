"""`python -m asr transcribe`: text, JSON and subtitles on real audio with the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys

from asr.testing.canary import TINY_PHRASE
from tests.conftest import ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asr", "transcribe", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_text_output(tiny_model, shared_audio):
    r = run(str(shared_audio / "jfk.flac"), "--model", str(tiny_model))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout == TINY_PHRASE + "\n"


def test_json_output_with_timestamps(tiny_model, shared_audio):
    r = run(str(shared_audio / "test.mp3"), "--model", str(tiny_model), "--format", "json",
            "--timestamps", "--source-lang", "es", "--target-lang", "en")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert {"text", "segments", "source_lang", "target_lang", "task", "duration_s", "speech_s",
            "model", "detected_language", "language_probability", "warnings", "srt", "vtt"} == set(out)
    assert (out["task"], out["source_lang"], out["target_lang"]) == ("translate", "es", "en")
    assert out["vtt"].startswith("WEBVTT")


def test_unknown_language_fails_fast_without_loading_a_model(shared_audio):
    """Which pairs work depends on the model (checked once it is loaded, see test_models); an
    unknown code fails before any model loads."""
    r = run(str(shared_audio / "jfk.flac"), "--source-lang", "de", "--target-lang", "xx",
            "--model", "/nonexistent.nemo")
    assert r.returncode == 2
    assert "--target-lang" in r.stderr and "'xx'" in r.stderr and "Traceback" not in r.stderr
