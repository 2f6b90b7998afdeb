"""The documented egress setting: coglet downloads URL inputs with `requests`, which honours
HTTP(S)_PROXY, so an egress proxy that refuses internal addresses keeps the server from fetching
them. Here the proxy refuses everything, and the internal server must never be contacted."""

from __future__ import annotations

import http.server
import threading

import pytest

from tests.service import start_server, stop_server


class Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str]
    answer: int

    def do_GET(self):  # noqa: N802
        self.seen.append(self.path)
        self.send_response(self.answer)
        self.end_headers()
        self.wfile.write(b"internal data\n")

    def log_message(self, *args):
        pass


def _serve(answer: int):
    seen: list[str] = []
    handler = type("Handler", (Recorder,), {"seen": seen, "answer": answer})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, seen


@pytest.fixture(scope="module")
def proxied_server(tiny_model, tmp_path_factory):
    proxy, proxy_seen = _serve(403)  # an egress proxy whose rules refuse this destination
    env = {"HTTP_PROXY": f"http://127.0.0.1:{proxy.server_address[1]}", "HTTPS_PROXY": f"http://127.0.0.1:{proxy.server_address[1]}",
           "NO_PROXY": "", "no_proxy": "", "ASR_DIAR_MODEL": "none", "ASR_LID_MODEL": "none"}
    srv = start_server(tiny_model, tmp_path_factory.mktemp("egress") / "server.log", env=env)
    yield srv, proxy_seen
    stop_server(srv)
    proxy.shutdown()


def test_url_inputs_go_through_the_egress_proxy(proxied_server):
    srv, proxy_seen = proxied_server
    internal, internal_seen = _serve(200)
    try:
        url = f"http://127.0.0.1:{internal.server_address[1]}/metadata.wav"
        status, body = srv.predict(audio=url, source_lang="en")
        assert body["status"] == "failed" and "403" in body["error"], body
        assert internal_seen == [], "the internal address was fetched directly"
        assert any("metadata.wav" in p for p in proxy_seen), proxy_seen
        assert "internal data" not in body["error"]
        assert srv.ready()
    finally:
        internal.shutdown()
