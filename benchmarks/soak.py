"""Soak: many predictions through the real server (`make serve`, tiny model), watching for leaks.

    .venv/bin/python benchmarks/soak.py [--predictions 200]
    .venv/bin/python benchmarks/soak.py --hostile [--predictions 20]

With --hostile, the hostile corpus of tests/test_hostile.py goes first (one request per case, the
worker's RSS printed after each, so the case that grows it stands out), then the normal rotation.

Prints, after a short warm-up and again at the end: the resident memory of the server and its
worker, the worker's open file descriptors, the number of entries in the server's private temp
directory, and any decoder processes still alive. Requests rotate through real recordings,
several containers, a translation, a silent file and a bad upload (so error paths are soaked too).
Target: worker RSS growth under 100 MB; temp directory as it was; no decoder process left working
(the warm pool keeps at most one idle child per core; their memory is printed too).
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asr.media.policy import usable_cores  # noqa: E402
from recordings import recording  # noqa: E402
from tests.service import (  # noqa: E402
    ensure_tiny_model, open_files, rss_mb, session_processes, start_server, stop_server,
)


def payloads(tmp: Path) -> list[dict]:
    def uri(path: Path, mime: str) -> str:
        return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()

    silent = tmp / "silent.wav"
    import wave

    with wave.open(str(silent), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(b"\0\0" * 32000)
    samples = ROOT / "samples"
    return [
        {"audio": uri(recording("jfk.flac"), "audio/flac"), "source_lang": "en"},
        {"audio": uri(recording("test.mp3"), "audio/mpeg"), "source_lang": "en", "target_lang": "de"},
        {"audio": uri(recording("test.opus"), "audio/ogg"), "source_lang": "en"},
        {"audio": uri(samples / "de.m4a", "audio/mp4"), "source_lang": "de", "target_lang": "en"},
        {"audio": uri(samples / "fr.ogg", "audio/ogg"), "source_lang": "fr", "timestamps": False},
        {"audio": uri(silent, "audio/wav"), "source_lang": "en"},
        {"audio": "data:audio/mpeg;base64," + base64.b64encode(b"not audio" * 100).decode(), "source_lang": "en"},
        {"audio": uri(recording("test.wav"), "audio/wav"), "source_lang": "en"},
    ]


def snapshot(server, tmpdir: Path) -> dict:
    procs = session_processes(server.proc.pid)
    worker = next((p for p, cmd in procs.items() if "_run_worker" in cmd), None)
    main = next((p for p, cmd in procs.items() if "cog.server.http" in cmd and not cmd.startswith("/bin/sh")), None)
    decoders = [p for p in (int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit())
                if _cmd(p) and "asr.media." in _cmd(p)]
    return {
        "server_rss_mb": rss_mb(main) if main else 0.0,
        "worker_rss_mb": rss_mb(worker) if worker else 0.0,
        "worker_open_files": open_files(worker) if worker else 0,
        "temp_entries": len(os.listdir(tmpdir)),
        "decoders_alive": len(decoders),
        "decoders_busy": sum(holds_timeline(p) for p in decoders),
        "decoders_rss_mb": sum(rss_mb(p) for p in decoders),
    }


def holds_timeline(pid: int) -> bool:
    """A decoder working on a file (it holds the file's shared timeline); warm idle ones do not."""
    try:
        return any("asr-timeline" in os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def run_hostile(server, tmpdir: Path, work: Path) -> None:
    """Each case of the hostile corpus once, with the worker's RSS after it."""
    from tests.media import SHARED_AUDIO, load_reference
    from tests.test_hostile import CASES

    ctx = {"jfk": load_reference("jfk.flac"), "shared": SHARED_AUDIO, "loopback": "http://127.0.0.1:9"}
    cases = work / "hostile"
    cases.mkdir()
    before = snapshot(server, tmpdir)["worker_rss_mb"]
    for case in CASES:
        path = case.make(cases, ctx)
        uri = "data:application/octet-stream;base64," + base64.b64encode(path.read_bytes()).decode()
        status, body = server.predict(audio=uri, source_lang="en")
        time.sleep(0.3)
        rss = snapshot(server, tmpdir)["worker_rss_mb"]
        print(f"  {case.name:28} {body.get('status')!s:10} worker RSS {rss:7.1f} MB ({rss - before:+6.1f})",
              flush=True)
        before = rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--predictions", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=24, help="predictions before the first snapshot")
    ap.add_argument("--hostile", action="store_true",
                    help="start right after start-up, run the hostile corpus first, then the predictions")
    args = ap.parse_args()
    model = ensure_tiny_model()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        tmpdir = work / "server-tmp"
        tmpdir.mkdir()
        server = start_server(model, work / "server.log", env={"TMPDIR": str(tmpdir)})
        try:
            inputs = payloads(work)
            outcomes: dict[str, int] = {}

            def run(n: int, report: bool = False) -> None:
                for i in range(n):
                    payload = inputs[i % len(inputs)]
                    status, body = server.predict(**payload)
                    retries = 0
                    while status == 409 and retries < 50:  # the slot is freed just after a reply
                        retries += 1
                        outcomes["409 retried"] = outcomes.get("409 retried", 0) + 1
                        time.sleep(0.05)
                        status, body = server.predict(**payload)
                    key = f"{status} {body.get('status')}"
                    outcomes[key] = outcomes.get(key, 0) + 1
                    if report and (i + 1) % 25 == 0:
                        snap = snapshot(server, tmpdir)
                        print(f"  after {i + 1:4d}: worker RSS {snap['worker_rss_mb']:7.1f} MB, "
                              f"open files {snap['worker_open_files']}", flush=True)

            if args.hostile:
                run(1)  # the first request loads lazy imports; measure from after it
                time.sleep(1)
                start = snapshot(server, tmpdir)
                t0 = time.perf_counter()
                run_hostile(server, tmpdir, work)
                run(args.predictions, report=True)
            else:
                run(args.warmup)
                time.sleep(1)
                start = snapshot(server, tmpdir)
                t0 = time.perf_counter()
                run(args.predictions, report=True)
            elapsed = time.perf_counter() - t0
            time.sleep(1)
            end = snapshot(server, tmpdir)
            healthy = server.health()
        finally:
            stop_server(server)
    print(f"{args.predictions} predictions in {elapsed:.1f} s ({args.predictions / elapsed:.1f}/s); "
          f"outcomes: {outcomes}; health at the end: {healthy}")
    print(f"{'':24}{'start':>10}{'end':>10}{'change':>10}")
    for key in start:
        print(f"{key:24}{start[key]:>10.1f}{end[key]:>10.1f}{end[key] - start[key]:>+10.1f}")
    growth = end["worker_rss_mb"] - start["worker_rss_mb"]
    ok = (growth < 100 and end["temp_entries"] == start["temp_entries"] and end["decoders_busy"] == 0
          and end["decoders_alive"] <= usable_cores())  # the warm pool keeps at most a child per core
    print(f"worker RSS growth {growth:+.1f} MB (target < 100 MB): {'ok' if ok else 'NOT OK'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
