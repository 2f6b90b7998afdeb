"""`python -m asr transcribe`: text, JSON and subtitles on the project's samples with the tiny model;
quiet, and loading only what the request needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from asr.testing.canary import TINY_PHRASE
from tests.conftest import ROOT


SAMPLES = ROOT / "samples"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asr", "transcribe", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def test_text_output(tiny_model):
    r = run(str(SAMPLES / "en.mp3"), "--model", str(tiny_model))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout == TINY_PHRASE + "\n"
    assert r.stderr == "", "no third-party dumps or notices without -v"


def test_only_the_models_the_request_needs_are_loaded(tiny_model, tmp_path):
    """With source_lang given and no --diarize, neither the identifier nor the diarizer loads: the
    variables name files that do not exist, and the run still succeeds. $ASR_MODEL's other
    entries are not loaded either; --model picks one by the name the server's `model` input takes."""
    missing = {"ASR_LID_MODEL": str(tmp_path / "no-lid.nemo"), "ASR_DIAR_MODEL": str(tmp_path / "no-diar.nemo"),
               "ASR_MODEL": f"{tmp_path / 'not-there.nemo'},{tiny_model}"}
    r = run(str(SAMPLES / "en.mp3"), "--source-lang", "en", "--model", tiny_model.stem, "--format", "json",
            env=missing)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["model"] == tiny_model.stem  # the public name, never a server path
    r = run(str(SAMPLES / "en.mp3"), "--model", str(tiny_model), env=missing)  # auto: the identifier is needed
    assert r.returncode == 2 and "ASR_LID_MODEL" in r.stderr and "no-lid.nemo" in r.stderr, r.stderr[-2000:]


def test_json_output_with_timestamps(tiny_model):
    r = run(str(SAMPLES / "es.flac"), "--model", str(tiny_model), "--format", "json",
            "--timestamps", "--source-lang", "es", "--target-lang", "en")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert {"text", "segments", "source_lang", "target_lang", "task", "duration_s", "speech_s",
            "model", "detected_language", "language_probability", "warnings", "srt", "vtt"} == set(out)
    assert (out["task"], out["source_lang"], out["target_lang"]) == ("translate", "es", "en")
    assert out["vtt"].startswith("WEBVTT")


def test_unknown_language_fails_fast_without_loading_a_model():
    """Which pairs work depends on the model (checked once it is loaded, see test_models); an
    unknown code fails before any model loads."""
    r = run(str(SAMPLES / "en.mp3"), "--source-lang", "de", "--target-lang", "xx",
            "--model", "/nonexistent.nemo")
    assert r.returncode == 2
    assert "--target-lang" in r.stderr and "'xx'" in r.stderr and "Traceback" not in r.stderr
