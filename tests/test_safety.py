"""Hardening through the real Cog server: server paths refused, errors that name the user's file,
`target_lang: null`, subtitles inside the audio, warnings in the output, and the liveness check
against coglet's stuck-slot fault."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from asr.testing.canary import TINY_PHRASE
from tests.media import RECIPES, write_media
from tests.service import ROOT, start_server, stop_server

HEALTHCHECK = ROOT / "tools" / "healthcheck.py"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64  # the decoder names what it is: "... is a PNG image"


def data_uri(data: bytes, mime: str = "application/octet-stream") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def www(tmp_path_factory):
    """A plain local HTTP server for URL inputs."""
    root = tmp_path_factory.mktemp("www")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_server_paths_are_refused_alike_whether_or_not_they_exist(server, shared_audio):
    real = str(shared_audio / "jfk.flac")  # readable by the server, and real speech
    in_temp = str(server.tmpdir / "tmpabcdefghjfk.flac")  # imitates Cog's temporary names
    errors = {}
    for value in (real, real + ".missing", "/etc/passwd", in_temp, "file://" + real, "jfk.flac"):
        status, body = server.predict(audio=value, source_lang="en")
        assert status == 200 and body["status"] == "failed", (value, body)
        errors[value] = body["error"]
        assert server.ready()
    assert len(set(errors.values())) == 1, errors  # nothing tells which files exist
    error = errors[real]
    assert "URL" in error and "data URI" in error and "jfk" not in error, error


def test_errors_name_the_users_file_not_cogs_temporary_one(server, www):
    root, base = www
    (root / "short.flac").write_bytes(PNG)
    status, body = server.predict(audio=f"{base}/short.flac", source_lang="en")
    assert body["status"] == "failed", body
    error = body["error"]
    assert "'short.flac'" in error and not re.search(r"tmp\w{8}", error), error
    assert error.count("short.flac") == 1 and error.count("InputError") == 1, error

    status, body = server.predict(audio=data_uri(PNG, "audio/mpeg"),
                                  source_lang="en")
    error = body["error"]
    assert "the uploaded file is a png image" in error.lower() and "file.mp3" not in error, error
    assert not re.search(r"tmp\w{8}", error), error


TEMP_NAME = re.compile(r"tmp[a-z0-9_]{8}")
"""tempfile's names, as Cog gives its downloads (tmpvefkz7hvfile.bin)."""


def test_warnings_and_log_lines_never_name_a_temporary_file(server, jfk, tmp_path, www):
    """Warnings (a dead channel, clipping) for a data URI say "the uploaded file"; for a URL, its
    name, quoted even where it starts with "the "; nothing in the output or the server's log
    names Cog's temporary file."""
    import numpy as np

    x, rate = jfk
    left = np.clip(x[0, : 6 * rate] * 40, -1, 1)  # clipped speech on one channel, the other dead
    path = write_media(tmp_path / "w.wav", np.stack([left, np.zeros_like(left)]), rate, RECIPES["wav"])
    log_start = len(server.log())
    status, body = server.predict(audio=data_uri(path.read_bytes()), source_lang="en")
    assert body["status"] == "succeeded", body
    warnings = body["output"]["warnings"]
    assert any(w.startswith("Channel 2 of the uploaded file was left out") for w in warnings), warnings
    assert any(w.startswith("The uploaded file is clipped") for w in warnings), warnings
    assert not TEMP_NAME.search(json.dumps(body["output"])), warnings

    root, base = www
    (root / "the thing.png").write_bytes(PNG)
    status, body = server.predict(audio=f"{base}/the%20thing.png", source_lang="en")
    assert body["status"] == "failed" and "'the thing.png' is a PNG image" in body["error"], body
    time.sleep(0.5)
    log = server.log()[log_start:]
    assert "the uploaded file" in log, log[-2000:]
    assert not TEMP_NAME.search(log), TEMP_NAME.search(log)


def test_target_lang_null_means_transcribe(server, shared_audio):
    audio = data_uri((shared_audio / "jfk.flac").read_bytes(), "audio/flac")
    status, body = server.predict(audio=audio, source_lang="en", target_lang=None)
    assert status == 200 and body["status"] == "succeeded", body
    out = body["output"]
    assert (out["task"], out["target_lang"], out["text"]) == ("transcribe", "en", TINY_PHRASE)


def _cue_ends_s(srt: str) -> list[float]:
    ends = []
    for h, m, s, ms in re.findall(r"--> (\d+):(\d+):(\d+),(\d+)", srt):
        ends.append(int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000)
    return ends


def test_no_cue_ends_after_the_audio(server, jfk, www):
    """Speech right up to the last sample: the last cue's 500 ms minimum would run past the end."""
    root, base = www
    x, rate = jfk
    write_media(root / "cut.flac", x[:, int(2.0 * rate) : int(5.3 * rate)], rate, RECIPES["flac"])
    status, body = server.predict(audio=f"{base}/cut.flac", source_lang="en", max_segment_s=1.0)
    assert body["status"] == "succeeded", body
    out = body["output"]
    ends = _cue_ends_s(out["srt"])
    assert ends and max(ends) <= out["duration_s"] + 1e-9, (ends, out["duration_s"])
    vtt_ends = [float(h) * 3600 + float(m) * 60 + float(s)
                for h, m, s in re.findall(r"--> (\d+):(\d+):(\d+\.\d+)", out["vtt"])]
    assert max(vtt_ends) <= out["duration_s"] + 1e-9


def test_output_schema_has_warnings_and_nullable_target(server):
    status, schema = server.request("GET", "/openapi.json")
    assert status == 200
    comp = schema["components"]["schemas"]
    assert comp["Output"]["properties"]["warnings"]["type"] == "array"
    assert "null" in comp["Input"]["properties"]["target_lang"]["type"]


def _probe(url: str, state: Path, activity: Path, **env) -> tuple[int, str]:
    full_env = dict(os.environ, ASR_ACTIVITY_FILE=str(activity), **{k: str(v) for k, v in env.items()})
    r = subprocess.run([sys.executable, str(HEALTHCHECK), "--url", url, "--state", str(state)],
                       capture_output=True, text=True, timeout=60, env=full_env)
    return r.returncode, r.stdout.strip()


def test_liveness_check_catches_coglets_stuck_slot(tiny_model, tmp_path):
    """A prediction id of 256+ bytes leaves a coglet 0.23.1 slot BUSY for good; with one slot
    (ASR_MAX_CONCURRENCY=1; with more, each such id takes one) the check says alive while the
    server is READY or busy within bounds, and dead once the bound passes."""
    srv = start_server(tiny_model, tmp_path / "server.log",
                       env={"TMPDIR": str(tmp_path), "ASR_MAX_CONCURRENCY": "1", "COG_MAX_CONCURRENCY": "1"})
    try:
        activity, state = tmp_path / "activity.json", tmp_path / "health-state.json"
        assert json.loads(activity.read_text())["running"] is False  # written at setup
        code, line = _probe(srv.url, state, activity)
        assert (code, line) == (0, "alive: status READY")
        srv.request("PUT", "/predictions/" + "a" * 300, {"input": {"audio": data_uri(b"x")}}, timeout=30)
        assert srv.health() == "BUSY"  # and it stays so: coglet never frees the slot
        code, line = _probe(srv.url, state, activity, ASR_HEALTH_IDLE_BUSY_S=2)
        assert code == 0 and "BUSY with no prediction running" in line, line
        time.sleep(2.5)
        code, line = _probe(srv.url, state, activity, ASR_HEALTH_IDLE_BUSY_S=2)
        assert code == 1 and line.startswith("dead: BUSY with no prediction running"), line
        assert srv.health() == "BUSY"
    finally:
        stop_server(srv)
    code, line = _probe(srv.url, state, activity)
    assert code == 1 and line.startswith("dead: no answer"), line


def test_cli_prints_warnings_to_stderr(transcriber, shared_audio, monkeypatch, capsys):
    """The CLI's stdout stays the transcript; warnings go to stderr, one line each."""
    import dataclasses

    from asr import __main__ as cli
    from asr.pipeline import Transcriber

    real = transcriber.transcribe

    def with_warning(audio, options, progress=None):
        return dataclasses.replace(real(audio, options, progress), warnings=("2 damaged packets were skipped",))

    monkeypatch.setattr(transcriber, "transcribe", with_warning)
    monkeypatch.setattr(Transcriber, "load", classmethod(lambda cls, *a, **k: transcriber))
    assert cli.main(["transcribe", str(shared_audio / "jfk.flac"), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["warnings"] == ["2 damaged packets were skipped"]
    assert captured.err == "warning: 2 damaged packets were skipped\n"


def test_liveness_bound_for_a_running_prediction(tmp_path):
    """BUSY while a prediction runs is judged against the run bound from the prediction's start,
    not against the idle bound; a new prediction restarts the clock."""
    from asr.health import Bounds, check, mark

    class Busy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps({"status": "BUSY"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    activity, state = tmp_path / "activity.json", tmp_path / "state.json"
    bounds = Bounds(max_run_s=100.0, max_idle_busy_s=5.0)
    try:
        mark(running=True, path=activity)
        started = json.loads(activity.read_text())["at"]
        assert check(url, bounds, state, activity, now=started + 50).alive
        late = check(url, bounds, state, activity, now=started + 101)
        assert not late.alive and "running one prediction for 101 s (limit 100 s)" in late.reason
        mark(running=False, path=activity)  # it ended; the next download is under the idle bound
        ended = json.loads(activity.read_text())["at"]
        state.unlink()  # the probes above ran at made-up future times
        assert check(url, bounds, state, activity, now=ended + 1).alive
        assert not check(url, bounds, state, activity, now=ended + 7).alive
    finally:
        httpd.shutdown()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["activity.json", "state.json"]  # no stray temp files
