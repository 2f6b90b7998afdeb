"""Diarizer memory and time against recording length (streaming path, tiny Sortformer on CPU).

    .venv/bin/python -m benchmarks.diarizer [--minutes 10 60] [--model PATH.nemo]
    .venv/bin/python -m benchmarks.diarizer --full-size --device cuda --minutes 60   # on a GPU

Each length runs in a fresh process: load the model, build the audio (a real recording tiled to
the length), note the resident set, diarize, and report the peak resident set's growth during
diarization (beyond the audio array itself, which the caller already holds) and the time. With
the tiny model the figure measures what the streaming loop itself keeps (features, state,
outputs); the real model adds its weights and activations, bounded by the same window.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    """Peak resident set since the last _reset_peak (VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets the peak resident set to the current one, so
    earlier transient copies (building the test audio) do not count."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def one(model: str, minutes: float, device: str = "cpu") -> dict:
    import torch

    from asr.media import decode
    from asr.models.diarizer import Diarizer
    from benchmarks.recordings import speech_wav

    if device == "cpu":
        torch.set_num_threads(1)
    d = Diarizer.load(model, device=device)
    clip = decode(speech_wav()).samples
    n = int(minutes * 60 * 16000)
    audio = np.resize(clip, n)
    d.diarize(audio[: 16000 * 30])  # warm up kernels at a small size
    _reset_peak()
    before = _rss_mb()
    started = time.perf_counter()
    act = d.diarize(audio)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    return {
        "device": device, "minutes": minutes, "rtfx": round(minutes * 60 / elapsed, 1),
        "gpu_peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None, "frames": act.probabilities.shape[0], "seconds": round(elapsed, 2),
        "seconds_per_hour": round(elapsed * 60 / minutes, 1),
        "rss_before_mb": round(before, 1), "peak_growth_mb": round(_peak_mb() - before, 1),
        "audio_mb": round(audio.nbytes / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--minutes", type=float, nargs="+", default=[10, 60])
    p.add_argument("--model", default=None, help="Sortformer .nemo (default: a tiny one built now)")
    p.add_argument("--full-size", action="store_true",
                   help="a random-weight Sortformer with the real model's sizes instead of the tiny one")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.one is not None:
        print(json.dumps(one(args.model, args.one, args.device)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from asr.testing import sortformer

            if args.full_size:
                built = sortformer.build_sortformer(sortformer.SORTFORMER_4SPK_V2_DIMS)
                model = str(Path(tmp) / "sortformer-4spk-v2-shape.nemo")
                built.save_to(model)
            else:
                model = str(sortformer.build_tiny_sortformer(Path(tmp) / "sortformer.nemo"))
        for minutes in args.minutes:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.diarizer", "--model", model, "--one", str(minutes),
                 "--device", args.device],
                cwd=ROOT, capture_output=True, text=True,
            )
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                return out.returncode
            print(out.stdout.strip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
