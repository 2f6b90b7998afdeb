"""The benchmark scripts run (their CPU smoke modes) and print what they promise."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def run_json(*args: str) -> dict:
    r = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_frontend_benchmark_keeps_all_detected_speech(shared_audio):
    out = run_json("benchmarks/frontend.py", "--minutes", "1", "--skip-baseline", "--json")
    assert out["ours_speech_kept_s"] == out["ours_speech_detected_s"] > 30
    assert out["ours_wall_s"] > 0 and out["ours_peak_rss_mb"] > 0 and out["ours_1core_wall_s"] > 0
    assert out["same_plan_1_vs_all_cores"] is True
    # the parent only plans: its CPU is a small part of the children's (which decode and normalise)
    assert 0 < out["parent_cpu_s_per_h"] < out["children_cpu_s_per_h"] / 10
    assert 0 < out["first_chunk_s"] < out["ours_wall_s"]
