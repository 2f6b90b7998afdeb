"""Cost of language identification per 20 s chunk on this machine, for the tiny model and for a
model with AmberNet's widths (random weights: same arithmetic as the real checkpoint).

    .venv/bin/python benchmarks/langid.py [--chunks 8] [--batch-size 8] [--device cpu]

Prints parameters, milliseconds per chunk and the share of real time (chunk seconds).
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()

    import numpy as np
    import torch

    from asr.models.langid import LanguageIdentifier, quiet_nemo
    from asr.testing.langid import AMBERNET_DIMS, TINY_DIMS, build_langid_like

    rng = np.random.default_rng(0)
    chunks = [(0.1 * rng.standard_normal(int(args.chunk_s * 16000))).astype(np.float32) for _ in range(args.chunks)]
    for name, dims in (("tiny", TINY_DIMS), ("ambernet-sized", AMBERNET_DIMS)):
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
        print(f"{name:15s} {params / 1e6:6.2f} M params  {per_chunk_ms:8.1f} ms per {args.chunk_s:g} s chunk  "
              f"RTF {best / (len(chunks) * args.chunk_s):.4f}  (batch {args.batch_size}, {args.device}, "
              f"{torch.get_num_threads()} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
