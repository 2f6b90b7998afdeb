"""`python -m asr client` against the real server, and its 409 retry loop against a local stub."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading

import pytest

from asr import client
from tests.service import ROOT, free_port

SAMPLE = ROOT / "samples" / "en.mp3"


def run_client(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asr", "client", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_every_format_from_the_server(server):
    outs = {fmt: run_client(str(SAMPLE), "--url", server.url, "--format", fmt) for fmt in ("json", "text", "srt", "vtt")}
    for fmt, r in outs.items():
        assert r.returncode == 0, (fmt, r.stderr)
        assert "\r" not in r.stderr, "no progress display on a pipe"
    result = json.loads(outs["json"].stdout)
    assert result["source_lang"] == "en" and result["task"] == "transcribe" and result["warnings"] == []
    assert "speakers" not in result and result["detected_language"] == "en"  # source_lang auto by default
    assert result["segments"] and result["segments"][0]["words"], "json defaults to timestamps on, as over HTTP"
    assert result["srt"] == outs["srt"].stdout and result["vtt"] == outs["vtt"].stdout
    assert outs["text"].stdout == result["text"] + "\n" and result["text"]
    assert outs["srt"].stdout.startswith("1\n00:00:") and outs["vtt"].stdout.startswith("WEBVTT\n\n00:00:")


def test_inputs_travel_as_flags(server):
    r = run_client(str(SAMPLE), "--url", server.url, "--format", "json", "--source_lang", "en",
                   "--target-lang", "de", "--no-timestamps")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert (result["task"], result["target_lang"]) == ("translate", "de")
    assert result["srt"] is None and result["vtt"] is None


def test_failed_prediction_exits_non_zero_with_the_servers_message(server, tmp_path):
    fake = tmp_path / "holiday.mp3"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))
    r = run_client(str(fake), "--url", server.url)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("error: the prediction failed: 'holiday.mp3' is a PNG image"), r.stderr
    assert "Prediction failed:" not in r.stderr and "uploaded file" not in r.stderr
    assert len(r.stderr) < 400, "a short message; the full list of formats is in the README"
    assert server.ready()


def test_warnings_go_to_stderr_naming_the_local_file(server, tmp_path, speech_16k):
    """A stereo file with a silent right channel: the server leaves it out of the downmix and
    says so; the client prints that on stderr, with the file's own name, and stdout stays text."""
    import numpy as np

    from tests.media import write_pcm16_wav

    left = speech_16k[: 8 * 16_000]
    path = write_pcm16_wav(tmp_path / "interview.wav", np.stack([left, np.zeros_like(left)]), 16_000)
    r = run_client(str(path), "--url", server.url, "--source-lang", "en")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == ["warning: Channel 2 of 'interview.wav' was left out of the downmix where it is silent."], r.stderr
    assert r.stdout.strip() and "warning" not in r.stdout

@pytest.mark.parametrize("url", ["ftp://127.0.0.1:1/", "file:///tmp", "127.0.0.1:5000", "http://"])
def test_a_server_url_that_is_not_http_fails_at_once(url):
    """ftp:// used to hang with no output (urllib waits on an FTP data connection)."""
    r = run_client(str(SAMPLE), "--url", url, timeout=20)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert "is not an http(s) address of the server" in r.stderr and "http://127.0.0.1:5000" in r.stderr, r.stderr


def test_transcribe_a_missing_file_fails_before_loading_models():
    """No model is loaded for a file that is not there (loading took 16 s before the error)."""
    import time

    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "asr", "transcribe", "/nonexistent.wav"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "'/nonexistent.wav' is not a readable file" in r.stderr, r.stderr
    assert "loaded" not in r.stderr and time.monotonic() - start < 10


def test_too_large_is_refused_before_sending(tmp_path):
    # Nothing listens on this port: a request would fail with "cannot reach", not this message.
    r = run_client(str(SAMPLE), "--url", f"http://127.0.0.1:{free_port()}", "--max-body-bytes", "4096")
    assert r.returncode == 2, r.stderr
    assert "over the server's limit" in r.stderr and "http(s) URL" in r.stderr, r.stderr


def test_body_size_is_predicted_exactly(tmp_path):
    for n in (0, 1, 2, 3, 1000):
        f = tmp_path / f"x{n}.wav"
        f.write_bytes(b"a" * n)
        body = client.request_body(str(f), {"source_lang": "en"})
        with pytest.raises(client.ClientError, match="over the server's limit"):
            client.request_body(str(f), {"source_lang": "en"}, max_body_bytes=len(body) - 1)
        assert json.loads(body)["input"]["audio"].startswith("data:audio/")


def test_url_is_passed_through():
    body = json.loads(client.request_body("https://example.com/a.m4a", {"pnc": False}, max_body_bytes=10))
    assert body == {"input": {"audio": "https://example.com/a.m4a", "pnc": False}}


class _Stub(http.server.BaseHTTPRequestHandler):
    """Answers POST /predictions from a script of (status, content type, body)."""

    script: list = []
    seen: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        status, ctype, body = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    _Stub.seen = []
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


BUSY = (409, "application/json", b'{"error": "At capacity", "status": "failed"}')
DONE = (200, "application/json", b'{"status": "succeeded", "output": {"text": "hi"}}')


def test_409_is_retried_with_growing_pauses(stub):
    _Stub.script = [BUSY, BUSY, BUSY, DONE]
    pauses = []
    answer = client.post(stub + "/predictions", b'{"input": {}}', retry_s=60, timeout_s=10, sleep=pauses.append)
    assert answer["output"] == {"text": "hi"}
    assert pauses == [0.25, 0.5, 1.0] and len(_Stub.seen) == 4


def test_409_retry_gives_up_after_its_time(stub):
    _Stub.script = [BUSY]
    now = [0.0]
    pauses = []

    def sleep(s):
        pauses.append(s)
        now[0] += s

    with pytest.raises(client.ClientError, match="stayed busy"):
        client.post(stub + "/predictions", b"{}", retry_s=5, timeout_s=10, sleep=sleep, clock=lambda: now[0])
    assert sum(pauses) <= 5 and len(pauses) >= 3


def test_plain_text_413_says_to_use_a_url(stub):
    _Stub.script = [(413, "text/plain", b"length limit exceeded")]
    with pytest.raises(client.ClientError, match="length limit exceeded.*http\\(s\\) URL"):
        client.post(stub + "/predictions", b"{}", retry_s=5, timeout_s=10)


def test_validation_error_names_the_input(stub):
    detail = {"detail": [{"loc": ["body", "input", "max_segment_s"], "msg": "must be <= 60"}]}
    _Stub.script = [(422, "application/json", json.dumps(detail).encode())]
    with pytest.raises(client.ClientError, match="HTTP 422: input.max_segment_s: must be <= 60"):
        client.post(stub + "/predictions", b"{}", retry_s=5, timeout_s=10)
