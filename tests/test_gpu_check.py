"""The GPU check's CPU rehearsal runs end to end, so the script is ready when a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess

from tests.conftest import ROOT


def test_rehearsal_measures_every_part(tmp_path, tiny_model, shared_audio):
    r = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--rehearse"], cwd=ROOT, capture_output=True,
                       text=True, timeout=600, env={**os.environ, "OUT": str(tmp_path)})
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    rows = [json.loads(line) for line in (tmp_path / "gpu_check.jsonl").read_text().splitlines()]
    from benchmarks.gpu_check import PARTS

    assert {row["part"] for row in rows} == {p.name for p in PARTS}
    by_part = {}
    for row in rows:
        by_part.setdefault(row["part"], []).append(row)
    (frontend,) = by_part["frontend"]
    assert frontend["ours_speech_kept_s"] == frontend["ours_speech_detected_s"] > 30
    canary = [r for r in by_part["canary"] if not r["variant"].startswith(("load", "auto"))]
    assert [r["variant"] for r in canary] == ["fast:4", "nemo:4"]
    full = [r for r in by_part["canary"] if r["variant"] == "auto+diarize"]
    assert len(full) == 1 and full[0]["rtfx_end_to_end"] > 0 and full[0]["diarize_s"] > 0 and full[0]["lid_s"] > 0
    assert canary[0]["hotwords"] == 5 and canary[0]["rtfx_model_hotwords"] > 0 and "confidence_cost" in canary[0]
    fast, nemo = canary
    assert fast["rtfx_end_to_end"] > 0 and 0 <= fast["share_model"] <= 1 and fast["audio_s"] >= 59
    assert fast["rtfx_model_timestamps"] > 0 and set(fast["stages_s_per_hour"]) >= {"encoder", "decoder", "alignment"}
    assert nemo["rtfx_model"] > 0 and "rtfx_end_to_end" not in nemo  # the baseline: model only
    load = {r["measure"]: r for r in by_part["canary"] if r["variant"].startswith("load")}
    assert load["sequential_round1"]["failed"] == load["concurrent_round1"]["failed"] == 0
    assert load["concurrent_round1"]["clips"] == 4 and load["concurrent_round1"]["audio_s_per_wall_s"] > 0
    for row in by_part["parakeet"]:
        assert row["audio_s"] >= 59 and row["rtfx_model"] > 0 and row["rtfx_end_to_end"] > 0
        assert row["device"] == "cpu" and 0 <= row["share_model"] <= 1
    assert {r["family"] for r in by_part["stress"]} == {"tiny canary", "tiny parakeet-tdt", "tiny ctc"}
    assert all(r["errors"] == 0 and r["calls"] > 0 for r in by_part["stress"])
    assert [r["model"] for r in by_part["parakeet"]] == ["tiny parakeet-tdt"]
    assert by_part["langid"][0]["rtfx"] > 0 and by_part["diarizer"][0]["frames"] > 0
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.startswith("| part |") and len(table.splitlines()) == len(rows) + 2
    assert table in r.stdout  # the table is the last thing printed


def test_a_failing_part_is_named_and_fails_the_check(tmp_path):
    """A part that breaks (here: a script that exits with an error) is reported by name."""
    from benchmarks.gpu_check import Part, run_part, table

    script = ("-c", "import sys; print('{\"x\": 1}'); sys.exit('it broke')")
    broken = Part("broken", script, script, budget_s=30)
    rows, failure = run_part(broken, rehearse=True, log_dir=tmp_path)
    assert rows == [{"part": "broken", "x": 1}]
    assert failure is not None and "exit status 1" in failure and "it broke" in failure
    assert (tmp_path / "broken.log").read_text().endswith("it broke\n")
    silent = Part("silent", ("-c", "pass"), ("-c", "pass"), budget_s=30)
    assert run_part(silent, rehearse=True, log_dir=tmp_path) == ([], "printed no measurement")
    assert table(rows).splitlines()[0] == "| part |"
