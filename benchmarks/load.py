"""Load benchmark: many users at once. N concurrent clients each send a 30 s clip (different
clips, cut from real speech); the same clips sent one after another are the baseline of the same
run: each round is a pair of the two, and the median of the pairs' ratios is reported.
Optionally one long file runs at the same time, and a 10 s clip is sent while it runs. Reports
throughput (audio seconds per wall second), p50/p95 latency per clip, 409s, the GPU-busy share
(in-process), the server worker's memory (HTTP), and the decoder processes alive after each
round with their memory (the warm pool's idle children).

    # over HTTP against the real server with the tiny model (starts `make serve` itself):
    .venv/bin/python benchmarks/load.py --http --clients 16 [--rounds 1] [--long-minutes 10]
    # in-process (the scheduler without HTTP), e.g. on a GPU host from benchmarks/inference.py:
    .venv/bin/python benchmarks/load.py --in-process --clients 16

Prints one JSON object per measurement. Loopback only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_clips(n: int, seconds: float, out_dir: Path) -> list[Path]:
    """n different WAV clips of `seconds`, cut at different offsets from real speech (tiled)."""
    import numpy as np
    import soundfile as sf

    from recordings import speech_wav

    speech, rate = sf.read(str(speech_wav()), dtype="float32")
    if speech.ndim > 1:
        speech = speech.mean(axis=1)
    length = int(seconds * rate)
    tiled = np.tile(speech, int(np.ceil((length * 2 + n * rate) / speech.size)) + 1)
    paths = []
    for k in range(n):
        start = int((k * 1.37 % max(1.0, speech.size / rate - 1)) * rate)
        path = out_dir / f"clip{k:03d}.wav"
        sf.write(str(path), tiled[start:start + length], rate)
        paths.append(path)
    return paths


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 3)


def summarise(name: str, latencies: list[float], audio_s: float, wall_s: float, failures: list[str], **extra) -> dict:
    return {
        "measure": name, "clips": len(latencies) + len(failures), "failed": len(failures),
        "failures": failures[:3], "audio_s": round(audio_s, 1), "wall_s": round(wall_s, 3),
        "audio_s_per_wall_s": round(audio_s / wall_s, 1) if wall_s else None,
        "p50_s": percentile(latencies, 0.5), "p95_s": percentile(latencies, 0.95),
        "max_s": round(max(latencies), 3) if latencies else None, **extra,
    }


class HttpTarget:
    """The real Cog server (`make serve`), started here with the tiny model unless --url."""

    def __init__(self, url: str | None, clients: int):
        from tests.service import ensure_tiny_model, start_server

        self.server = None
        if url is None:
            log = Path(tempfile.mkdtemp(prefix="asr-load-")) / "server.log"
            self.server = start_server(ensure_tiny_model("canary"), log,
                                       env={"ASR_LID_MODEL": "none", "ASR_DIAR_MODEL": "none",
                                            "ASR_MAX_CONCURRENCY": str(max(clients, 2)),
                                            "COG_MAX_CONCURRENCY": str(max(clients, 2))})
            url = self.server.url
        self.url = url.rstrip("/")
        self.conflicts = 0

    def transcribe(self, path: Path) -> float:
        import urllib.error
        import urllib.request

        body = json.dumps({"input": {
            "audio": "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode(),
            "source_lang": "en"}}).encode()
        req = urllib.request.Request(self.url + "/predictions", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=900) as r:
                out = json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code == 409:
                self.conflicts += 1
            raise RuntimeError(f"HTTP {e.code}") from e
        if out.get("status") != "succeeded":
            raise RuntimeError(f"prediction {out.get('status')}: {str(out.get('error'))[:200]}")
        return float(out["output"]["duration_s"])

    def worker_rss_mb(self) -> float | None:
        if self.server is None:
            return None
        from tests.service import rss_mb

        return round(rss_mb(self._worker()), 1)

    def _worker(self) -> int:
        import os

        from tests.service import rss_mb, session_processes

        procs = session_processes(os.getpgid(self.server.proc.pid))
        workers = [pid for pid, cmd in procs.items() if "coglet" in cmd and "worker" in cmd] or \
                  [pid for pid, cmd in procs.items() if "python" in cmd]
        return max(workers, key=rss_mb)

    def decoders(self) -> tuple[int, float] | None:
        """The worker's decoder processes now (the warm pool's, between rounds): count, RSS MB."""
        if self.server is None:
            return None
        from tests.service import decoder_children_of, rss_mb

        pids = decoder_children_of(self._worker())
        return len(pids), round(sum(rss_mb(p) for p in pids), 1)

    def close(self) -> None:
        if self.server is not None:
            from tests.service import stop_server

            stop_server(self.server)


class InProcessTarget:
    """The Transcriber (scheduler included) in this process: `engine` is a loaded SpeechModel."""

    def __init__(self, engine=None):
        from asr.frontend import FrontEnd
        from asr.models import ModelSet, load_models
        from asr.pipeline import Transcriber

        if engine is None:
            from tests.service import ensure_tiny_model

            engine = load_models(str(ensure_tiny_model("canary")), device="cpu").default
        self.transcriber = Transcriber(ModelSet([engine]), FrontEnd())
        self.conflicts = 0

    def transcribe(self, path: Path) -> float:
        from asr.types import TranscribeOptions

        return self.transcriber.transcribe(path, TranscribeOptions(source_lang="en", timestamps=True)).duration_s

    def busy_s(self) -> float:
        return self.transcriber.scheduler.busy_s

    def decoders(self) -> tuple[int, float]:
        import os

        from tests.service import decoder_children_of, rss_mb

        pids = decoder_children_of(os.getpid())
        return len(pids), round(sum(rss_mb(p) for p in pids), 1)

    def worker_rss_mb(self) -> float | None:
        from tests.service import rss_mb

        import os

        return round(rss_mb(os.getpid()), 1)

    def close(self) -> None:
        self.transcriber.scheduler.close()


def timed(target, path: Path) -> tuple[float, float]:
    t = time.perf_counter()
    audio_s = target.transcribe(path)
    return time.perf_counter() - t, audio_s


def run_concurrent(target, clips: list[Path], clients: int) -> tuple[list[float], float, float, list[str]]:
    latencies, failures, audio = [], [], [0.0]
    lock = threading.Lock()

    def one(path):
        try:
            dt, audio_s = timed(target, path)
            with lock:
                latencies.append(dt)
                audio[0] += audio_s
        except Exception as e:  # noqa: BLE001 - counted and reported
            with lock:
                failures.append(f"{type(e).__name__}: {e}")

    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, clips))
    return latencies, audio[0], time.perf_counter() - t, failures


def run_sequential(target, clips: list[Path]) -> dict:
    lat, audio, fail = [], 0.0, []
    t = time.perf_counter()
    for path in clips:
        try:
            dt, a = timed(target, path)
            lat.append(dt)
            audio += a
        except Exception as e:  # noqa: BLE001 - counted and reported
            fail.append(f"{type(e).__name__}: {e}")
    return summarise("sequential", lat, audio, time.perf_counter() - t, fail)


def measure(target, clips: list[Path], clients: int, rounds: int, long_file: Path | None, sequential: bool) -> list[dict]:
    """With the baseline, each round is a pair: the clips one after another, then all at once,
    and the ratio is the pair's. Alternating cancels the drift of a shared machine (runs vary
    by +-30 % here), and one unmeasured round at once first keeps first-use costs (the decoder
    pool, the allocator's or the GPU's first batches of each size) out of both."""
    rows = []
    timed(target, clips[0])  # warm-up
    if sequential:
        run_concurrent(target, clips, clients)
    busy0 = getattr(target, "busy_s", lambda: 0.0)()
    rss, ratios = [], []
    for r in range(rounds):
        if sequential:
            rows.append({**run_sequential(target, clips), "measure": f"sequential_round{r + 1}"})
            busy0 = getattr(target, "busy_s", lambda: 0.0)()
        lat, audio, wall, fail = run_concurrent(target, clips, clients)
        rss.append(target.worker_rss_mb())
        row = summarise(f"concurrent_round{r + 1}", lat, audio, wall, fail, clients=clients,
                        conflicts_409=target.conflicts, worker_rss_mb=rss[-1])
        decoders = target.decoders()
        if decoders is not None:
            row["decoders_alive"], row["decoders_rss_mb"] = decoders
        if hasattr(target, "busy_s"):
            row["gpu_busy_share"] = round((target.busy_s() - busy0) / wall, 3)
            busy0 = target.busy_s()
        if sequential and rows[-1]["wall_s"]:
            ratios.append(wall / rows[-1]["wall_s"])
            row["wall_vs_sequential"] = round(ratios[-1], 3)
        rows.append(row)
    if ratios:
        rows.append({"measure": "ratio", "wall_vs_sequential_median": round(statistics.median(ratios), 3),
                     "pairs": [round(x, 3) for x in ratios]})
    if rounds > 1:
        rows.append({"measure": "memory", "worker_rss_mb_first_round": rss[0], "worker_rss_mb_last_round": rss[-1],
                     "growth_mb": round((rss[-1] or 0) - (rss[0] or 0), 1), "predictions": rounds * len(clips)})
    if long_file is not None:
        result = {}

        def long_job():
            result["long"] = timed(target, long_file)

        thread = threading.Thread(target=long_job)
        thread.start()
        time.sleep(1.0)
        short = clips[-1]
        try:
            dt, _ = timed(target, short)
            result["short_s"] = dt
        except Exception as e:  # noqa: BLE001
            result["short_error"] = str(e)
        thread.join()
        rows.append({"measure": "short_during_long", "short_clip_latency_s": round(result.get("short_s", -1), 3),
                     "long_file_s": round(result["long"][0], 3) if "long" in result else None,
                     "long_audio_s": round(result["long"][1], 1) if "long" in result else None,
                     "error": result.get("short_error")})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--http", action="store_true", help="through the real Cog server")
    mode.add_argument("--in-process", action="store_true", help="the Transcriber in this process")
    ap.add_argument("--url", default=None, help="a running server (default: start one with the tiny model)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--clip-s", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=1, help="concurrent rounds (memory is read after each)")
    ap.add_argument("--long-minutes", type=int, default=0, help="also a long file with a short clip during it")
    ap.add_argument("--no-sequential", action="store_true", help="skip the one-after-another baseline")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="asr-load-clips-"))
    clips = make_clips(args.clients, args.clip_s, work)
    os.sync()  # their writeback would otherwise land in a measured round, ~30 s from now
    long_file = None
    if args.long_minutes:
        from frontend import make_mp3

        long_file = make_mp3(args.long_minutes)
    target = HttpTarget(args.url, args.clients) if args.http else InProcessTarget()
    try:
        for row in measure(target, clips, args.clients, args.rounds, long_file, not args.no_sequential):
            print(json.dumps({"mode": "http" if args.http else "in-process", **row}), flush=True)
    finally:
        target.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
