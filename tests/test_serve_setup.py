"""`make serve` without a usable model stops with a plain message instead of serving 503s."""

from __future__ import annotations

import os
import subprocess

from tests.service import ROOT, free_port


def test_make_serve_stops_plainly_when_setup_fails(tmp_path):
    missing = tmp_path / "no-such-model.nemo"
    env = dict(os.environ, ASR_MODEL=str(missing), PORT=str(free_port()))
    r = subprocess.run(["make", "--no-print-directory", "serve"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300, start_new_session=True)
    assert r.returncode != 0
    lines = r.stderr.splitlines()
    assert any(line.startswith("error: the service could not start: ") and f"ASR_MODEL={missing}" in line
               for line in lines), r.stderr[-2000:]
    assert "make weights" in r.stderr and "tiny-model" in r.stderr
