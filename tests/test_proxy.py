"""deploy/nginx.conf in front of the real server: odd prediction ids, other routes, oversized
and slow bodies stop at the proxy, while ordinary requests pass. Runs where nginx is installed
(`apt-get install nginx`); CI without it skips with the reason."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from asr.testing.canary import TINY_PHRASE
from tests.service import ROOT, free_port

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)")


@pytest.fixture(scope="module")
def proxy(server, tmp_path_factory):
    """nginx with deploy/nginx.conf, its two addresses pointed at the test server and a free port."""
    base = tmp_path_factory.mktemp("nginx")
    port = free_port()
    upstream = urlsplit(server.url).netloc
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    conf, n_up = re.subn(r"server 127\.0\.0\.1:5000;", f"server {upstream};", conf)
    conf, n_listen = re.subn(r"listen 127\.0\.0\.1:8080;", f"listen 127.0.0.1:{port};", conf)
    assert (n_up, n_listen) == (1, 1), "deploy/nginx.conf's addresses moved; update this test"
    (base / "asr.conf").write_text(conf)
    temp = {k: base / k for k in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for d in temp.values():
        d.mkdir()
    (base / "nginx.conf").write_text(
        f"master_process off;\npid {base}/nginx.pid;\nerror_log {base}/error.log warn;\nevents {{}}\n"
        f"http {{\n  access_log {base}/access.log;\n"
        + "".join(f"  {k}_temp_path {d};\n" if k != "body" else f"  client_body_temp_path {d};\n"
                  for k, d in temp.items())
        + f"  include {base}/asr.conf;\n}}\n")
    proc = subprocess.Popen([NGINX, "-p", str(base), "-c", str(base / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"nginx did not start: {proc.stderr.read().decode()}")
            time.sleep(0.1)
    yield "127.0.0.1", port
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


def call(proxy, method: str, target: str, body: dict | bytes | None = None, headers: dict | None = None,
         timeout: float = 120) -> tuple[int, str]:
    conn = http.client.HTTPConnection(*proxy, timeout=timeout)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    conn.putrequest(method, target, skip_accept_encoding=True)
    for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
        conn.putheader(k, v)
    if data is not None and "Content-Length" not in (headers or {}):
        conn.putheader("Content-Length", str(len(data)))
    conn.endheaders(data)
    r = conn.getresponse()
    text = r.read().decode(errors="replace")
    conn.close()
    return r.status, text


def test_ordinary_requests_pass(proxy, server, shared_audio):
    audio = "data:audio/flac;base64," + base64.b64encode((shared_audio / "jfk.flac").read_bytes()).decode()
    status, text = call(proxy, "GET", "/health-check")
    assert status == 200 and json.loads(text)["status"] == "READY"
    status, text = call(proxy, "POST", "/predictions", {"input": {"audio": audio, "source_lang": "en"}})
    assert status == 200 and json.loads(text)["output"]["text"] == TINY_PHRASE, text
    assert server.ready()
    pid = "ok_" + uuid.uuid4().hex + "-" + "x" * 92  # 128 characters: the longest that passes
    assert len(pid) == 128
    status, text = call(proxy, "PUT", f"/predictions/{pid}", {"input": {"audio": audio, "source_lang": "en"}})
    assert status == 200 and json.loads(text)["status"] == "succeeded", text
    assert server.ready()
    assert call(proxy, "GET", "/openapi.json")[0] == 200


@pytest.mark.parametrize("target", [
    "/predictions/" + "a" * 129, "/predictions/" + "a" * 300, "/predictions/a%00b", "/predictions/a%0ab",
    "/predictions/..%2F..%2Fescape", "/predictions/%2Ftmp%2Fescape", "/predictions/a.b", "/predictions/a%20b",
    "/predictions/a/b", "/predictions/", "/predictions/a/cancel/x",
])
def test_odd_prediction_ids_stop_at_the_proxy(proxy, server, target):
    before = server.log()
    status, text = call(proxy, "PUT", target, {"input": {"audio": "data:,x"}})
    assert status == 400, (status, text)
    assert server.ready(2.0), "the slot must stay free"
    assert server.log() == before, "the request reached the server"


@pytest.mark.parametrize("body_id", ["../../asr-proxy-escape", "/tmp/asr-proxy-abs", "a" * 300, "a\u0000b"])
def test_an_id_in_the_body_cannot_choose_the_prediction_id(proxy, server, body_id):
    """coglet takes `id` from a POST body as well: through the proxy, the proxy chooses it."""
    status, text = call(proxy, "POST", "/predictions", {"id": body_id, "input": {"audio": "data:,x"}})
    assert status == 422, (status, text)
    assert not Path("/tmp/asr-proxy-escape").exists() and not Path("/tmp/asr-proxy-abs").exists()
    assert server.ready(2.0)


def test_the_proxy_chooses_ids_for_post(proxy, server):
    status, text = call(proxy, "POST", "/predictions", {"input": {"audio": "data:,x"}})
    assert re.fullmatch(r"[0-9a-f]{32}", json.loads(text)["id"]), text
    assert server.ready(2.0)


@pytest.mark.parametrize("method, target", [("POST", "/shutdown"), ("GET", "/trainings"),
                                            ("PUT", "/trainings/x"), ("GET", "/predictions"),
                                            ("DELETE", "/predictions/abc"), ("GET", "/predictions/abc/cancel")])
def test_other_routes_and_methods_are_refused(proxy, server, method, target):
    status, _ = call(proxy, method, target, b"{}" if method != "GET" else None)
    assert status in (403, 404), status
    assert server.health() == "READY"


def test_oversized_body_is_refused_before_the_server(proxy, server):
    before = server.log()
    status, _ = call(proxy, "POST", "/predictions", b"{}", headers={"Content-Length": str(101 * 2**20)})
    assert status == 413
    assert server.log() == before and server.health() == "READY"


def test_a_slow_client_does_not_hold_the_slot(proxy, server, shared_audio):
    """Half a body, then a pause: nginx holds it; coglet's only slot stays READY until the whole
    body has arrived, and the request then succeeds."""
    audio = "data:audio/flac;base64," + base64.b64encode((shared_audio / "jfk.flac").read_bytes()).decode()
    body = json.dumps({"input": {"audio": audio, "source_lang": "en"}}).encode()
    sock = socket.create_connection(proxy, timeout=120)
    sock.sendall(b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body[: len(body) // 2])
    time.sleep(2.0)
    assert server.health() == "READY"
    sock.sendall(body[len(body) // 2 :])
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200") and TINY_PHRASE.encode() in answer, answer[:300]
