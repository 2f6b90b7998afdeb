"""Stress: repeated rounds of every model family at several batch sizes, timestamps on and off,
through the adapters' batch path (as the scheduler calls them). Fails (exit 1) on any error, and
says which family, batch size and round. On a GPU host `--full-size parakeet-tdt` also runs
Parakeet-TDT-0.6b's shape, whose NeMo label-looping decoder once raised an illegal memory access.

    .venv/bin/python benchmarks/stress.py --device cpu --rounds 1 --batches 1 3
    python benchmarks/stress.py --device cuda --rounds 4 --batches 1 7 64 128 256 --full-size parakeet-tdt

One JSON line per family: calls, errors, seconds, and the first error's traceback tail.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def engines(device: str, full_size: list[str], tiny: list[str]):
    from asr.models import load_models
    from tests.service import ensure_tiny_model

    for kind in tiny:
        yield f"tiny {kind}", load_models(str(ensure_tiny_model(kind)), device=device, batch_size=8).default
    for family in full_size:
        if family == "parakeet-tdt":
            from asr.models.transducer import TransducerModel
            from inference import build_parakeet_full_size

            yield "parakeet-tdt-0.6b-shape", TransducerModel(build_parakeet_full_size(device), "p", device, 128)
        elif family == "canary":
            from asr.models.aed import AEDModel
            from inference import build_full_size

            yield "canary-1b-v2-shape", AEDModel(build_full_size(device, aligner=True), "c", device, 128)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 7, 64, 128])
    ap.add_argument("--full-size", nargs="*", default=[], choices=["parakeet-tdt", "canary"])
    ap.add_argument("--tiny", nargs="*", default=["canary", "parakeet-tdt", "ctc"], choices=["canary", "parakeet-tdt", "ctc"],
                    help="tiny models to include")
    args = ap.parse_args()

    import numpy as np

    from asr.frontend import FrontEnd
    from asr.models import runtime
    from asr.types import Request
    from frontend import make_mp3

    device = runtime.pick_device(args.device)
    plan = FrontEnd().plan(make_mp3(10))
    base = [c.samples for c in plan.chunks]
    rng = np.random.default_rng(0)
    failed = False
    for name, engine in engines(device, args.full_size, args.tiny):
        calls, errors, first = 0, 0, None  # noqa: F841 - set by one_round
        t = time.perf_counter()
        def one_round(r: int) -> None:
            nonlocal calls, errors, first
            for size in args.batches:
                for stamps in (False, True):
                    picks = [base[int(i)] for i in rng.integers(0, len(base), size)]
                    # vary the lengths too: cut each chunk to a random share of itself
                    batch = sorted((a[: max(1600, int(a.size * rng.uniform(0.05, 1.0)))] for a in picks),
                                   key=lambda a: a.size, reverse=True)
                    calls += 1
                    try:
                        out = engine.transcribe(batch, Request("en", "en", timestamps=stamps))
                        if len(out) != len(batch):
                            raise RuntimeError(f"{len(out)} results for {len(batch)} chunks")
                    except Exception as e:  # noqa: BLE001 - counted, reported, and the run fails
                        errors += 1
                        if first is None:
                            first = {"round": r, "batch": size, "timestamps": stamps,
                                     "error": f"{type(e).__name__}: {e}"[:500],
                                     "trace": traceback.format_exc()[-1500:]}
                        if "CUDA" in str(e):
                            return  # the context is gone; later calls would only repeat it

        for r in range(args.rounds):
            # each round on a thread of its own, as the scheduler's thread and a benchmark's main
            # thread take turns with one model in the service and the GPU check
            worker = threading.Thread(target=one_round, args=(r,))
            worker.start()
            worker.join()
        failed |= errors > 0
        print(json.dumps({"family": name, "device": device, "calls": calls, "errors": errors,
                          "seconds": round(time.perf_counter() - t, 2), "batches": args.batches,
                          "rounds": args.rounds, "first_error": first}), flush=True)
        runtime.release(device)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
