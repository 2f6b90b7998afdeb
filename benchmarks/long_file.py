"""Memory of the server on one long recording: does the worker stay flat in the file's length?

    .venv/bin/python benchmarks/long_file.py [--minutes 60 240] [--diarize]

Starts the real server (`make serve`, tiny Canary), serves a tiled 44.1 kHz stereo MP3 (as
benchmarks/frontend.py makes it) from a loopback HTTP server, sends it as a URL with
source_lang en, and samples the worker's resident memory every 0.2 s while it runs. Prints one
JSON line per file: the worker's RSS when idle before the request, its peak during it, the growth,
and the time. Target (issue: flat memory): a 4-hour transcription grows the worker by at most
300 MB over its idle size. With --diarize the whole 16 kHz waveform is kept for the diarizer
(about 230 MB per hour), so the growth is expected to follow the length.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from frontend import make_mp3  # noqa: E402
from tests.service import ensure_tiny_model, rss_mb, session_processes, start_server, stop_server  # noqa: E402


def worker_pid(server) -> int:
    procs = session_processes(server.proc.pid)
    return next(p for p, cmd in procs.items() if "_run_worker" in cmd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=int, nargs="+", default=[60, 240])
    ap.add_argument("--diarize", action="store_true")
    args = ap.parse_args()
    files = {m: make_mp3(m) for m in args.minutes}
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_args) -> None:  # one line per request would bury the figures
            pass

    handler = functools.partial(Quiet, directory=str(files[args.minutes[0]].parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    with tempfile.TemporaryDirectory() as work:
        env = {"ASR_MAX_DURATION_S": str(max(args.minutes) * 60 + 600), "ASR_DECODE_TIMEOUT_S": "3600"}
        server = start_server(ensure_tiny_model(), Path(work) / "server.log", env=env)
        try:
            pid = worker_pid(server)
            for minutes, path in files.items():
                server.predict(audio=f"{base}/{files[min(files)].name}", source_lang="en")  # warm, lazy imports
                time.sleep(1)
                idle = rss_mb(pid)
                peak = idle
                done = threading.Event()

                def sample() -> None:
                    nonlocal peak
                    while not done.is_set():
                        peak = max(peak, rss_mb(pid))
                        time.sleep(0.2)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                t = time.perf_counter()
                status, body = server.request("POST", "/predictions", {"input": {
                    "audio": f"{base}/{path.name}", "source_lang": "en", "diarize": args.diarize}}, timeout=7200)
                elapsed = time.perf_counter() - t
                done.set()
                sampler.join()
                ok = status == 200 and body.get("status") == "succeeded"
                out = body.get("output") or {}
                print(json.dumps({
                    "minutes": minutes, "ok": ok, "error": None if ok else body.get("error"),
                    "audio_s": out.get("duration_s"), "speech_s": out.get("speech_s"),
                    "diarize": args.diarize, "wall_s": round(elapsed, 1),
                    "worker_idle_mb": round(idle), "worker_peak_mb": round(peak),
                    "worker_growth_mb": round(peak - idle),
                }), flush=True)
        finally:
            stop_server(server)
            httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
