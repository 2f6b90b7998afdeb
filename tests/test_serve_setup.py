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
    assert "error: the service could not start: " in r.stderr, r.stderr[-2000:]
    assert f"ASR_MODEL={missing}: no such file" in r.stderr
    assert "make weights" in r.stderr and "tiny-model" in r.stderr


def test_make_serve_names_every_bad_model_variable_at_once(tmp_path):
    """Three problems, one message, before any model is loaded: a missing .nemo, a hub name that
    is neither cached nor reachable, and a missing diarizer file; each with its fixing command."""
    import time

    env = dict(os.environ, PORT=str(free_port()), ASR_MODEL=str(tmp_path / "nope.nemo"),
               ASR_LID_MODEL="nvidia/langid_ambernet", ASR_DIAR_MODEL=str(tmp_path / "diar.nemo"),
               HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    started = time.monotonic()
    r = subprocess.run(["make", "--no-print-directory", "serve"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300, start_new_session=True)
    took_s = time.monotonic() - started
    assert r.returncode != 0
    err = r.stderr
    assert "error: the service could not start: 3 model variables cannot work" in err, err[-2000:]
    assert f"ASR_MODEL={tmp_path / 'nope.nemo'}: no such file" in err
    assert "ASR_LID_MODEL=nvidia/langid_ambernet: not downloaded yet, and HF_HUB_OFFLINE is set" in err
    assert f"ASR_DIAR_MODEL={tmp_path / 'diar.nemo'}: no such file" in err
    assert err.count("fix: `make weights`") == 3
    assert "ASR_LID_MODEL=none" in err and "ASR_DIAR_MODEL=none" in err
    assert "asr tiny-model /tmp/tiny-langid.nemo --kind langid" in err
    assert "coglet" not in err and "Traceback" not in err  # nothing was started
    assert took_s < 60, f"the check took {took_s:.0f} s: it must not load models"


def test_make_serve_accepts_none_for_the_helpers(tmp_path):
    env = dict(os.environ, PORT=str(free_port()), ASR_MODEL=str(tmp_path / "nope.nemo"),
               ASR_LID_MODEL="none", ASR_DIAR_MODEL="none")
    r = subprocess.run(["make", "--no-print-directory", "serve"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300, start_new_session=True)
    assert r.returncode != 0
    assert "1 model variable cannot work" in r.stderr and "ASR_LID_MODEL" not in r.stderr, r.stderr[-2000:]
