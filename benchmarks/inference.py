"""Inference benchmark: model-only and end-to-end real-time factors for Canary-1B-v2's shape
(or Parakeet-TDT-0.6b's, with --family parakeet-tdt).

    # on a GPU: a random-weight model with Canary-1B-v2's exact dimensions
    .venv/bin/python benchmarks/inference.py --device cuda --minutes 60
    # several variants of one model in one process (the model is built once):
    .venv/bin/python benchmarks/inference.py --device cuda --variants cache:128 nocache:128 cache:max --json
    # anywhere: the smoke run, with the tiny model on the CPU
    .venv/bin/python benchmarks/inference.py --tiny --device cpu --minutes 2 --json

A variant is `cache|nocache:BATCH`, BATCH a number or `max` (the largest batch of the longest
chunks that fits in GPU memory, found by doubling from 128). `cache` is the decoder's
cross-attention projection cache (Canary only).

What it measures, on N minutes of speech (Silero's 60 s speech clip from ../shared/audio, tiled
into one 44.1 kHz stereo MP3, as benchmarks/frontend.py makes it):

(a) model-only RTFx the way the Open ASR Leaderboard measures it: stock NeMo `transcribe()` on
    in-memory utterances (here: the file's <= 20 s chunks, sorted by length), no timestamps,
    audio seconds / model seconds;
(b) end to end: `Transcriber.transcribe(file)` with timestamps, as a user's request runs it
    (decode, VAD, chunking, loudness, model, alignment, segments), audio seconds / wall seconds,
    with each stage's share of the wall time and the GPU memory peak.

Random weights never emit <|endoftext|>, so decoding is forced to a realistic length: 4.5
tokens per second of speech (`--tokens-per-s`). Conversational English runs at about 2.5-3
words/s, Canary's 16k-piece BPE spends ~1.3-1.5 tokens per English word and more in inflected
languages, plus punctuation: 4.5 tokens/s is a busy speaker, so the figure is conservative.
The tiny model says a fixed sentence per chunk and stops; it is not forced.

A random Parakeet-TDT cannot be forced the same way (a transducer decides per frame); its joint
is biased towards blank with a one-frame duration, so the figure covers the encoder and one
joint step per frame, and `words_per_audio_s` reports how much text it emitted.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def build_full_size(device: str, aligner: bool):
    """Canary-1B-v2's dimensions with random weights (NeMo's classes), never emitting EOS."""
    import torch

    from asr.testing.canary import CANARY_1B_V2_DIMS, build_canary_like

    with tempfile.TemporaryDirectory() as tmp:
        model, ctc = build_canary_like(CANARY_1B_V2_DIMS, tmp)
        model.eval()
        with torch.no_grad():
            model.log_softmax.mlp.layer0.bias[model.tokenizer.eos] = -1e4  # keep decoding
        if aligner:
            ctc.eval()
            object.__setattr__(model, "timestamps_asr_model", ctc)  # as NeMo's restore attaches it
        model.to(torch.device(device))
        return model


class ForcedLength:
    """Wraps an engine so each batch decodes exactly ceil(tokens_per_s x longest chunk) tokens."""

    def __init__(self, engine, tokens_per_s: float):
        self.engine = engine
        self.tokens_per_s = tokens_per_s
        model = engine.model
        inner = model.decoding.decoding
        self.generator = getattr(inner, "beam_search", None) or getattr(inner, "greedy_search")
        slots = dict(model.prompt.get_default_dialog_slots()[0]["slots"])
        self.prompt_len = int(model.prompt.encode_dialog([{"role": "user", "slots": slots}])["context_ids"].numel())
        self.generated_tokens = 0

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def transcribe(self, audios, request):
        longest_s = max(a.size for a in audios) / 16_000
        n = max(1, math.ceil(self.tokens_per_s * longest_s))
        self.generator.max_delta_len = -1
        self.generator.max_seq_length = self.prompt_len + n
        self.generated_tokens += n * len(audios)
        return self.engine.transcribe(audios, request)


def cuda_sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def build_parakeet_full_size(device: str):
    """Parakeet-TDT-0.6b's dimensions with random weights, blank-biased (see the docstring)."""
    import torch

    from asr.testing.parakeet import DURATIONS, PARAKEET_TDT_0_6B_DIMS, build_parakeet_like

    with tempfile.TemporaryDirectory() as tmp:
        model = build_parakeet_like(PARAKEET_TDT_0_6B_DIMS, tmp)
    model.eval()
    out = model.joint.joint_net[-1]
    blank = model.decoder.blank_idx
    with torch.no_grad():
        out.bias[blank] += 4.0
        out.bias[blank + 1 + DURATIONS.index(1)] += 4.0
    return model.to(torch.device(device))


def parse_variant(text: str) -> tuple[bool, str]:
    cache, _, batch = text.partition(":")
    if cache not in ("cache", "nocache") or not (batch == "max" or batch.isdigit()):
        raise SystemExit(f"variant {text!r}: expected cache|nocache:BATCH (a number or max)")
    return cache == "cache", batch


def largest_batch(runner, chunks, request, device: str, start: int = 128, limit: int = 1024) -> int:
    """The largest batch of the longest chunks that runs without running out of GPU memory."""
    import torch

    if not device.startswith("cuda"):
        return start
    best, size = start, start
    while size <= min(limit, len(chunks)):
        try:
            runner.transcribe(chunks[:size], request)
            best = size
            size *= 2
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="the tiny test model instead of full size")
    ap.add_argument("--family", choices=["canary", "parakeet-tdt"], default="canary")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    ap.add_argument("--minutes", type=int, default=60, help="minutes of speech")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the model's own choice")
    ap.add_argument("--variants", nargs="*", default=None,
                    help="cache|nocache:BATCH ... (default: one run with --batch-size and the cache on)")
    ap.add_argument("--tokens-per-s", type=float, default=4.5)
    ap.add_argument("--no-aligner", action="store_true", help="full size without the 24-layer CTC aligner")
    ap.add_argument("--no-xattn-cache", action="store_true", help="NeMo's stock decoder (A/B)")
    ap.add_argument("--json", action="store_true", help="print one JSON line per variant")
    args = ap.parse_args()

    import torch

    from asr.frontend import FrontEnd
    from asr.models import ModelSet, load_models, runtime, xattn_cache
    from asr.models.aed import AEDModel
    from asr.models.transducer import TransducerModel
    from asr.pipeline import Transcriber
    from asr.types import Request, TranscribeOptions
    from frontend import make_mp3

    device = runtime.pick_device(args.device)
    audio_path = make_mp3(args.minutes)
    t0 = time.perf_counter()
    canary = args.family == "canary"
    if args.tiny:
        from tests.service import ensure_tiny_model

        engine = load_models(str(ensure_tiny_model("canary" if canary else "parakeet-tdt")), device=device,
                             batch_size=args.batch_size).default
        name = f"tiny {args.family}"
    elif canary:
        model = build_full_size(device, aligner=not args.no_aligner)
        # the adapter sets the decoder's length cap and installs the cross-attention cache
        engine = AEDModel(model, name="canary-1b-v2-shape", device=device, batch_size=args.batch_size)
        name = "canary-1b-v2-shape (random weights)"
    else:
        engine = TransducerModel(build_parakeet_full_size(device), name="parakeet-tdt-0.6b-shape", device=device,
                                 batch_size=args.batch_size)
        name = "parakeet-tdt-0.6b-shape (random weights)"
    load_s = time.perf_counter() - t0
    runner = ForcedLength(engine, args.tokens_per_s) if canary and not args.tiny else engine
    default_batch = engine.batch_size
    variants = [parse_variant(v) for v in args.variants] if args.variants else \
        [(not args.no_xattn_cache, str(default_batch))]

    frontend = FrontEnd()
    plan = frontend.plan(audio_path)
    chunks = sorted((c.samples for c in plan.chunks), key=lambda a: a.size, reverse=True)
    chunk_audio_s = sum(a.size for a in chunks) / 16_000
    plain = Request("en", "en", pnc=True, timestamps=False)

    for cache, batch in variants:
        if canary:
            if cache:
                xattn_cache.install(engine.model)
            else:
                xattn_cache.remove(engine.model)
        engine.batch_size = default_batch
        size = largest_batch(runner, chunks, plain, device) if batch == "max" else int(batch)
        engine.batch_size = size
        result = measure(runner, engine, frontend, audio_path, chunks, chunk_audio_s, plain, device,
                         Transcriber, ModelSet, TranscribeOptions, torch)
        result.update({
            "model": name, "family": args.family,
            "variant": f"{'cache' if cache else 'nocache'}:{batch}" if canary else f"batch:{batch}",
            "xattn_cache": cache if canary else None, "load_s": round(load_s, 1),
            "tokens_per_s": args.tokens_per_s if canary and not args.tiny else None,
        })
        if args.json:
            print(json.dumps(result), flush=True)
            continue
        print(f"model: {name} on {result['device']}, batch {engine.batch_size}, variant {result['variant']}")
        print(f"audio: {result['audio_s']:.0f} s ({result['speech_s']:.0f} s of speech in {len(chunks)} chunks)")
        print(f"(a) model only : {result['model_s']:8.2f} s   RTFx {result['rtfx_model']:>8}")
        print(f"(b) end to end : {result['end_to_end_s']:8.2f} s   RTFx {result['rtfx_end_to_end']:>8}   "
              f"model {result['share_model']:.0%}, waiting for the front end "
              f"{result['share_waiting_for_frontend']:.0%}, front end finished at {result['frontend_done_at_s']:.2f} s")
        if result["gpu_peak_gb"] is not None:
            print(f"GPU memory peak: {result['gpu_peak_gb']:.1f} GB")
    return 0


def measure(runner, engine, frontend, audio_path, chunks, chunk_audio_s, plain, device,
            Transcriber, ModelSet, TranscribeOptions, torch) -> dict:
    """(a) model only on the planned chunks, (b) the whole pipeline on the file, one variant."""
    runner.transcribe(chunks[: min(len(chunks), engine.batch_size)], plain)  # warm-up: kernels, caches
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    tokens = 0
    cuda_sync(device)
    t = time.perf_counter()
    for i in range(0, len(chunks), engine.batch_size):
        out = runner.transcribe(chunks[i : i + engine.batch_size], plain)
        tokens += sum(len(r.text.split()) for r in out)
    cuda_sync(device)
    model_s = time.perf_counter() - t

    transcriber = Transcriber(ModelSet([runner]), frontend)
    cuda_sync(device)
    t = time.perf_counter()
    transcript = transcriber.transcribe(audio_path, TranscribeOptions(source_lang="en", timestamps=True))
    cuda_sync(device)
    e2e_s = time.perf_counter() - t
    timings = transcript.timings_s
    peak_gb = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    return {
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        "batch_size": engine.batch_size,
        "audio_s": round(transcript.duration_s, 1),
        "speech_s": round(chunk_audio_s, 1),
        "chunks": len(chunks),
        "rtfx_model": round(chunk_audio_s / model_s, 1),
        "rtfx_end_to_end": round(transcript.duration_s / e2e_s, 1),
        "model_s": round(model_s, 3),
        "end_to_end_s": round(e2e_s, 3),
        "words_per_audio_s": round(tokens / chunk_audio_s, 2),
        "share_model": round(timings["model_s"] / e2e_s, 3),
        "share_waiting_for_frontend": round(timings["wait_s"] / e2e_s, 3),
        "frontend_done_at_s": timings["frontend_s"],
        "gpu_peak_gb": None if peak_gb is None else round(peak_gb, 2),
    }


if __name__ == "__main__":
    sys.exit(main())
