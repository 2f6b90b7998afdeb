"""`make test-audio`: the manifest matches the recordings the tests use, and the fetcher checks it."""

from __future__ import annotations

import functools
import http.server
import json
import threading

import pytest

from tests.service import ROOT
from tools import fetch_test_audio as fetcher

MANIFEST = json.loads((ROOT / "tools" / "test_audio.json").read_text())["files"]


def test_manifest_matches_the_recordings(shared_audio):
    for entry in MANIFEST:
        path = shared_audio / entry["name"]
        assert path.stat().st_size == entry["bytes"], entry["name"]
        assert fetcher.sha256_of(path) == entry["sha256"], entry["name"]
        assert entry["url"].startswith("https://raw.githubusercontent.com/"), entry["url"]


@pytest.fixture
def serve_dir():
    """A local HTTP server for a folder (the fetcher cannot reach the internet in tests)."""
    servers = []

    def start(folder):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *a: None
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_fetch_checks_the_checksum_and_keeps_good_files(shared_audio, serve_dir, tmp_path):
    base = serve_dir(shared_audio)
    out = tmp_path / "out"
    out.mkdir()
    entry = {**next(e for e in MANIFEST if e["name"] == "test.opus")}
    entry["url"] = f"{base}/test.opus"
    assert fetcher.fetch(entry, out, timeout_s=10) == "fetched"
    assert fetcher.fetch(entry, out, timeout_s=10) == "present"
    bad = {**entry, "name": "jfk.flac", "url": f"{base}/test.opus"}  # the wrong file for that checksum
    bad["sha256"] = next(e for e in MANIFEST if e["name"] == "jfk.flac")["sha256"]
    with pytest.raises(ValueError, match="expected"):
        fetcher.fetch(bad, out, timeout_s=10)
    assert sorted(p.name for p in out.iterdir()) == ["test.opus"], "nothing half-written is left"
