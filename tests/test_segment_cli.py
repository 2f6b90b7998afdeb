"""`python -m asr segment`: the chunk plan contract (README, Command line), on real audio."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asr.types import MAX_CHUNK_S, SAMPLE_RATE, TARGET_LUFS
from tests.media import RECIPES, write_media, write_pcm16_wav

ROOT = Path(__file__).resolve().parents[1]


def segment(path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "asr", "segment", str(path), *extra],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )


def check_plan(plan: dict) -> None:
    assert set(plan) == {"duration_s", "speech_s", "chunks"}
    total = 0.0
    prev_end = -1.0
    for c in plan["chunks"]:
        assert set(c) == {"start_s", "end_s", "duration_s", "spans", "lufs"}
        assert 0 < c["duration_s"] <= MAX_CHUNK_S
        spans = c["spans"]
        assert spans and spans[0][0] == c["start_s"] and spans[-1][1] == c["end_s"]
        assert abs(sum(e - s for s, e in spans) - c["duration_s"]) < 0.002 * len(spans)
        for s, e in spans:
            assert prev_end <= s < e <= plan["duration_s"] + 1e-3
            prev_end = e
        if c["duration_s"] >= 1.0:
            assert c["lufs"] is not None and abs(c["lufs"] - TARGET_LUFS) <= 0.5
        total += c["duration_s"]
    # 100 % of the detected speech is in the chunks
    assert abs(total - plan["speech_s"]) < 0.002 * max(1, len(plan["chunks"]))


@pytest.mark.parametrize(
    "name, has_speech",
    # Silero's own reference finds no speech in test.opus either (max probability 0.05).
    [("jfk.flac", True), ("test.wav", True), ("test.mp3", True), ("test.opus", False)],
)
def test_segment_real_recordings(shared_audio, name, has_speech):
    r = segment(shared_audio / name)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    check_plan(plan)
    assert bool(plan["chunks"]) == has_speech


def test_segment_long_recording_keeps_every_span(tmp_path, speech60):
    """Four minutes (the 60 s clip four times, as AAC in M4A): many chunks, every span kept."""
    x, rate = speech60
    path = write_media(tmp_path / "long.m4a", np.tile(x, 4), rate, RECIPES["m4a"])
    r = segment(path, "--compact")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    check_plan(plan)
    assert abs(plan["duration_s"] - 240) < 0.1
    assert len(plan["chunks"]) >= 12
    assert plan["speech_s"] > 150


def test_silence_gives_an_empty_plan(tmp_path):
    path = write_pcm16_wav(tmp_path / "quiet.wav", np.zeros(SAMPLE_RATE * 3), SAMPLE_RATE)
    r = segment(path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"duration_s": 3.0, "speech_s": 0.0, "chunks": []}


def test_bad_file_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.m4a"
    path.write_text("not audio at all\n" * 10)
    r = segment(path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert "notes.m4a" in r.stderr and "accepted" in r.stderr
    assert "Traceback" not in r.stderr
