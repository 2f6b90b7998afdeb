"""Cost of language identification per 20 s chunk on this machine, for the tiny model and for a
model with AmberNet's widths (random weights: same arithmetic as the real checkpoint).

    .venv/bin/python benchmarks/langid.py [--chunks 8] [--batch-size 8] [--device cpu]
    .venv/bin/python benchmarks/langid.py --device cuda --chunks 180 --batch-size 64 --sizes ambernet --json

Prints parameters, milliseconds per chunk and the share of real time (chunk seconds); 180 chunks
of 20 s are an hour of speech. With --json, one JSON line per model size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--chunk-s", type=float, default=20.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sizes", nargs="+", choices=["tiny", "ambernet"], default=["tiny", "ambernet"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import torch

    from asr.models.langid import LanguageIdentifier
    from asr.models.runtime import quiet_nemo
    from asr.testing.langid import AMBERNET_DIMS, TINY_DIMS, build_langid_like

    rng = np.random.default_rng(0)
    chunks = [(0.1 * rng.standard_normal(int(args.chunk_s * 16000))).astype(np.float32) for _ in range(args.chunks)]
    sizes = {"tiny": TINY_DIMS, "ambernet": AMBERNET_DIMS}
    for name, dims in ((n, sizes[n]) for n in args.sizes):
        with quiet_nemo():
            model = build_langid_like(0, dims).to(args.device)
        ident = LanguageIdentifier(model, name=name, device=args.device, batch_size=args.batch_size)
        params = sum(p.numel() for p in model.parameters())
        ident.score(chunks[:1])  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            ident.score(chunks)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        per_chunk_ms = 1000 * best / len(chunks)
        if args.json:
            audio_s = len(chunks) * args.chunk_s
            print(json.dumps({"model": f"langid {name}", "device": args.device, "batch_size": args.batch_size,
                              "audio_s": audio_s, "wall_s": round(best, 3), "rtfx": round(audio_s / best, 1),
                              "ms_per_chunk": round(per_chunk_ms, 2), "params_m": round(params / 1e6, 2)}),
                  flush=True)
            continue
        print(f"{name:15s} {params / 1e6:6.2f} M params  {per_chunk_ms:8.1f} ms per {args.chunk_s:g} s chunk  "
              f"RTF {best / (len(chunks) * args.chunk_s):.4f}  (batch {args.batch_size}, {args.device}, "
              f"{torch.get_num_threads()} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
