"""Forced-alignment Viterbi: NeMo's `viterbi_decoding` against `asr.models.alignment.viterbi_batch`.

    .venv/bin/python benchmarks/alignment.py                      # CPU, 128 x 250 frames
    .venv/bin/python benchmarks/alignment.py --device cuda        # on a GPU host
    .venv/bin/python benchmarks/alignment.py --text               # also the per-utterance text work

The shape is one batch of Canary chunks: 128 utterances of 250 encoder frames (20 s at 80 ms),
90 tokens each (181 states with the blanks), 1,025 classes (Canary-1B-v2's aligner vocabulary with
its blank). Log-probs are random (the arithmetic does not depend on them) and start on `--device`,
as they would after the aligner's encoder. Each timing is the best of `--repeats`, with the device
synchronised before and after. Prints one JSON line per measurement: both timings, their ratio,
and whether the alignments are identical.

`--text` adds the host-side work around Viterbi for the same batch (NeMo's `get_utt_obj`, times
onto the words, the word/segment dicts) with the tiny Canary's tokenizer: the part of
`align_hypotheses` that stays in Python.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("benchmarks.alignment")


def synthetic_batch(batch: int, frames: int, tokens: int, vocab: int, device: str, seed: int = 0):
    """(log_probs (B, T, V) on device, y (B, 2 * tokens + 1), T_lens, U_lens) as NeMo's
    `get_batch_variables` lays them out (blank = V - 1 between and around the tokens)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    log_probs = torch.log_softmax(torch.randn(batch, frames, vocab, generator=g), dim=-1).to(device)
    blank = vocab - 1
    y = torch.full((batch, 2 * tokens + 1), blank, dtype=torch.long)
    y[:, 1::2] = torch.randint(0, vocab - 1, (batch, tokens), generator=g)
    T_lens = torch.full((batch,), frames, dtype=torch.long)
    U_lens = torch.full((batch,), 2 * tokens + 1, dtype=torch.long)
    return log_probs, y, T_lens, U_lens


def best_of(repeats: int, device: str, fn):
    """(best seconds, last result), synchronising `device` around each call."""
    import torch

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    best, result = float("inf"), None
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        result = fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best, result


def viterbi_timings(args) -> dict:
    import torch
    from nemo.collections.asr.parts.utils.aligner_utils import viterbi_decoding

    from asr.models.alignment import viterbi_batch

    log_probs, y, T_lens, U_lens = synthetic_batch(args.batch, args.frames, args.tokens, args.vocab, args.device)
    y_dev = y.to(args.device)
    with torch.inference_mode():
        viterbi_batch(log_probs[:2], y_dev[:2], T_lens[:2], U_lens[:2])  # warm-up (kernels, allocator)
        ours_s, ours = best_of(args.repeats, args.device, lambda: viterbi_batch(log_probs, y_dev, T_lens, U_lens))
        nemo_s, nemo = best_of(args.repeats, args.device,
                               lambda: viterbi_decoding(log_probs, y, T_lens, U_lens, viterbi_device=args.device))
    return {
        "what": "viterbi", "device": args.device, "threads": torch.get_num_threads(), "batch": args.batch, "frames": args.frames,
        "states": 2 * args.tokens + 1, "vocab": args.vocab, "repeats": args.repeats,
        "nemo_s": round(nemo_s, 4), "ours_s": round(ours_s, 4), "speedup": round(nemo_s / ours_s, 2),
        "identical": ours == nemo,
    }


def text_timings(args) -> dict:
    """Host-side work of `align_hypotheses` (tokenising, the Utterance objects, the dicts) for
    the same batch shape, with the tiny Canary aligner's tokenizer and its actual Viterbi."""
    import torch
    from nemo.collections.asr.parts.utils.rnnt_utils import Hypothesis

    from asr.models import runtime
    from asr.models.alignment import align_hypotheses
    from tests.service import ensure_tiny_model

    with runtime.quiet_nemo():
        model = runtime.restore(str(ensure_tiny_model("canary")), args.device)
    ctc = model.timestamps_asr_model
    vocab = ctc.decoder.num_classes_with_blank
    words = "Hello world, the quick brown fox jumps over the lazy dog. Speech recognition is fun!".split()
    text = " ".join(words[i % len(words)] for i in range(args.tokens // 3))  # ~3 tokens a word here
    g = torch.Generator().manual_seed(1)
    log_probs = torch.log_softmax(torch.randn(args.batch, args.frames, vocab, generator=g), dim=-1).to(args.device)
    frames = torch.full((args.batch,), args.frames, dtype=torch.long)

    def run():
        hyps = [Hypothesis(score=0.0, y_sequence=[], text=text) for _ in range(args.batch)]
        return align_hypotheses(ctc, log_probs, frames, hyps)

    total_s, hyps = best_of(args.repeats, args.device, run)
    return {
        "what": "align_hypotheses", "device": args.device, "batch": args.batch, "frames": args.frames,
        "words_per_utterance": len(text.split()), "vocab": vocab, "total_s": round(total_s, 4),
        "words_timed": sum(len(h.timestamp["word"]) for h in hyps),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--frames", type=int, default=250, help="encoder frames per utterance (80 ms each)")
    parser.add_argument("--tokens", type=int, default=90, help="tokens per utterance (states = 2 x tokens + 1)")
    parser.add_argument("--vocab", type=int, default=1025, help="aligner classes, blank included")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--text", action="store_true", help="also time align_hypotheses on the tiny Canary")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(viterbi_timings(args)), flush=True)
    if args.text:
        print(json.dumps(text_timings(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
