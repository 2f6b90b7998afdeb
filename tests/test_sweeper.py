"""The temp-folder sweeper: unit cases on a clock of its own, and the real server's leftovers
(failed and cancelled URL downloads, coglet's empty prediction folders) gone after a sweep."""

from __future__ import annotations

import http.server
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from asr.sweeper import Sweeper, SweepOptions, use_private_tempdir


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_sweeps_stale_unowned_downloads_only(tmp_path):
    downloads, coglet = tmp_path / "dl", tmp_path / "coglet"
    downloads.mkdir()
    coglet.mkdir()
    stale = downloads / "tmpab12cd_5missing.flac"
    fresh = downloads / "tmpzz12cd_5live.mp3"  # a download still being written
    owned = downloads / "tmpqq12cd_5mine.wav"
    other = downloads / "notes.txt"  # not a Cog download name
    folder = downloads / "tmpdirectory1x"  # folders (NeMo's, torch's) are never touched
    for p in (stale, fresh, owned, other):
        p.write_bytes(b"x" * 1000)
    folder.mkdir()
    for p in (stale, owned, other, folder):
        _age(p, 600)
    sweeper = Sweeper(SweepOptions(downloads, coglet_dir=coglet, stale_s=60))
    with sweeper.owning(owned):
        report = sweeper.sweep_once()
    assert report.names == (stale.name,) and report.bytes_freed == 1000
    assert sorted(p.name for p in downloads.iterdir()) == sorted([fresh.name, owned.name, other.name, folder.name])
    assert sweeper.sweep_once().names == (owned.name,)  # no longer owned once run() let go


def test_sweeps_only_empty_old_prediction_folders(tmp_path):
    coglet = tmp_path / "predictions"
    empty, recent, holding = coglet / "pred_a", coglet / "pred_b", coglet / "pred_c"
    for f in (empty, recent, holding):
        (f / "inputs").mkdir(parents=True)
        (f / "outputs").mkdir()
    (holding / "outputs" / "result.wav").write_bytes(b"x")
    for f in (empty, holding):
        for p in (f / "inputs", f / "outputs", f):
            _age(p, 600)
    report = Sweeper(SweepOptions(tmp_path / "none", coglet_dir=coglet, stale_s=60)).sweep_once()
    assert report.folders_removed == 1
    assert sorted(p.name for p in coglet.iterdir()) == ["pred_b", "pred_c"]


def test_private_tempdir_replaces_dead_workers_folders(tmp_path, monkeypatch):
    import tempfile

    dead = tmp_path / "asr-downloads-999999999-abc"
    dead.mkdir()
    (dead / "tmpab12cd_5x.wav").write_bytes(b"x")
    monkeypatch.setattr(tempfile, "tempdir", tempfile.tempdir)
    path = use_private_tempdir(tmp_path)
    assert not dead.exists() and path.parent == tmp_path and tempfile.gettempdir() == str(path)
    assert (path.stat().st_mode & 0o777) == 0o700


@pytest.fixture(scope="module")
def slow_www():
    """Serves /slow/* as 3 MB at about 1 MB/s (a download to cancel half-way), 404 otherwise."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if not self.path.startswith("/slow/"):
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(3_000_000))
            self.end_headers()
            try:
                for _ in range(30):
                    self.wfile.write(b"\0" * 100_000)
                    time.sleep(0.1)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_server_leaves_nothing_after_failed_and_cancelled_downloads(server, slow_www):
    (downloads,) = list(server.tmpdir.glob("asr-downloads-*"))
    ids = [f"sweep-{uuid.uuid4().hex[:12]}" for _ in range(2)]
    status, body = server.request("PUT", f"/predictions/{ids[0]}",
                                  {"input": {"audio": f"{slow_www}/missing.flac", "source_lang": "en"}})
    assert body.get("status") == "failed" and "404" in body.get("error", ""), body
    status, body = server.request("PUT", f"/predictions/{ids[1]}",
                                  {"input": {"audio": f"{slow_www}/slow/long.wav", "source_lang": "en"}},
                                  headers={"Prefer": "respond-async"})
    assert status == 202, body
    time.sleep(1.0)
    assert [p.name for p in downloads.iterdir() if p.name.endswith("long.wav")], "the download did not start"
    server.request("POST", f"/predictions/{ids[1]}/cancel")
    leftovers: list[str] = []
    deadline = time.monotonic() + 30  # the cancelled download runs on (~3 s), then goes stale (3 s)
    while time.monotonic() < deadline:
        leftovers = [p.name for p in downloads.iterdir() if p.is_file()]  # torch keeps a cache folder there
        folders = [i for i in ids if (Path("/tmp/coglet/predictions") / i).exists()]
        if not leftovers and not folders:
            break
        time.sleep(0.5)
    assert leftovers == [], leftovers
    assert folders == [], f"coglet's prediction folders left: {folders}"
    assert server.ready(10)
    assert "swept" in server.log()
