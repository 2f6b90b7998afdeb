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
        model, ctc = on_device(device, lambda: build_canary_like(CANARY_1B_V2_DIMS, tmp))
        model.eval()
        with torch.no_grad():
            model.log_softmax.mlp.layer0.bias[model.tokenizer.eos] = -1e4  # keep decoding
        if aligner:
            ctc.to(torch.device(device)).eval()
            object.__setattr__(model, "timestamps_asr_model", ctc)  # as NeMo's restore attaches it
        model.to(torch.device(device))
        return model


def on_device(device: str, build):
    """Build with parameters created on `device` (random init of 1.6 B parameters takes ~100 s on
    a CPU, seconds on a GPU); on the CPU if that fails."""
    import torch

    if device.startswith("cuda"):
        try:
            with torch.device(device):
                return build()
        except Exception as e:  # noqa: BLE001 - fall back, and say so
            print(f"building on {device} failed ({type(e).__name__}: {e}); building on the CPU", file=sys.stderr)
    return build()


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
        generators = [self.generator]
        if request.hotwords is not None:  # the boosted beam search decodes to the same length
            generators.append(self.engine.boosted.get(request.hotwords, request.source_lang).decoding.beam_search)
        for generator in generators:
            generator.max_delta_len = -1
            generator.max_seq_length = self.prompt_len + n
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
        model = on_device(device, lambda: build_parakeet_like(PARAKEET_TDT_0_6B_DIMS, tmp))
    model.eval()
    out = model.joint.joint_net[-1]
    blank = model.decoder.blank_idx
    with torch.no_grad():
        out.bias[blank] += 4.0
        out.bias[blank + 1 + DURATIONS.index(1)] += 4.0
    return model.to(torch.device(device))


VARIANTS = ("fast", "eager", "nemo", "batch")


def parse_variant(text: str) -> tuple[str, str]:
    """`fast|eager|nemo|batch:BATCH`: Canary with its own decoder and CUDA graphs (fast), without
    graphs (eager), or NeMo's generator with the cross-attention cache (nemo: the baseline);
    `batch` for Parakeet. BATCH: a number or `max`."""
    kind, _, batch = text.partition(":")
    if kind not in VARIANTS or not (batch == "max" or batch.isdigit()):
        raise SystemExit(f"variant {text!r}: expected {'|'.join(VARIANTS)}:BATCH (a number or max)")
    return kind, batch


def set_decoder(engine, kind: str) -> None:
    """Switch a Canary engine between its own decoder (with or without CUDA graphs) and NeMo's."""
    from asr.models import xattn_cache

    fast = getattr(engine, "fast_decoder", None)
    if fast is None:
        return
    infer = engine.model.decoding.decoding
    if kind == "nemo":
        infer.greedy_search = fast.generator
        xattn_cache.install(engine.model)
    else:
        xattn_cache.remove(engine.model)
        infer.greedy_search = fast
        fast.graphs = kind == "fast" and engine.device.startswith("cuda")


def largest_batch(runner, chunks, request, device: str, start: int = 128, limit: int = 1024) -> int:
    """The largest batch of the longest chunks that runs without running out of GPU memory
    (chunks tiled to `limit` so the search is not capped by the file)."""
    import torch

    if not device.startswith("cuda"):
        return start
    chunks = (chunks * (limit // max(1, len(chunks)) + 1))[:limit]
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
                    help="fast|eager|nemo|batch:BATCH ... (default: one run with --batch-size, fast decoder)")
    ap.add_argument("--tokens-per-s", type=float, default=4.5)
    ap.add_argument("--no-aligner", action="store_true", help="full size without the 24-layer CTC aligner")
    ap.add_argument("--load-clients", type=int, default=0,
                    help="after the variants: this many concurrent 30 s clips through the scheduler (benchmarks/load.py)")
    ap.add_argument("--load-no-sequential", action="store_true", help="with --load-clients: skip the one-by-one baseline")
    ap.add_argument("--load-long-minutes", type=int, default=0, help="with --load-clients: a short clip during a long file")
    ap.add_argument("--end-to-end-all", action="store_true", help="end to end for every variant (default: the first)")
    ap.add_argument("--json", action="store_true", help="print one JSON line per variant")
    ap.add_argument("--end-to-end-full", action="store_true",
                    help="also end to end with source_lang auto and diarize on (language identifier and diarizer "
                         "built at full size on a GPU, tiny on the CPU)")
    ap.add_argument("--hotwords", type=int, default=0,
                    help="also a model-only pass with this many boosted phrases (and its cost against none)")
    args = ap.parse_args()

    import torch

    from asr.frontend import FrontEnd
    from asr.models import load_models, runtime
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
        [("fast" if canary else "batch", str(default_batch))]

    frontend = FrontEnd()
    plan = frontend.plan(audio_path)
    chunks = sorted((c.samples for c in plan.chunks), key=lambda a: a.size, reverse=True)
    chunk_audio_s = sum(a.size for a in chunks) / 16_000

    first_rtfx = None
    for k, (kind, batch) in enumerate(variants):
        set_decoder(engine, kind)
        engine.batch_size = default_batch
        plain = Request("en", "en", pnc=True, timestamps=False)
        size = largest_batch(runner, chunks, plain, device) if batch == "max" else int(batch)
        engine.batch_size = size
        result = measure(runner, engine, frontend, audio_path, chunks, chunk_audio_s, device,
                         end_to_end=(k == 0 or args.end_to_end_all), timestamps=kind != "nemo",
                         hotwords=args.hotwords if kind != "nemo" else 0)
        first_rtfx = first_rtfx or result["rtfx_model"]
        result.update({
            "model": name, "family": args.family, "variant": f"{kind}:{batch}", "load_s": round(load_s, 1),
            "tokens_per_s_forced": args.tokens_per_s if canary and not args.tiny else None,
        })
        if args.json:
            print(json.dumps(result), flush=True)
            continue
        print(json.dumps(result, indent=1))
    if args.end_to_end_full:
        set_decoder(engine, "fast" if canary else "batch")
        engine.batch_size = default_batch
        row = end_to_end_full(runner, frontend, audio_path, device, tiny=args.tiny or not device.startswith("cuda"))
        row.update(model=name, family=args.family, variant="auto+diarize", batch_size=engine.batch_size)
        print(json.dumps(row), flush=True)
    if args.load_clients:
        import load

        set_decoder(engine, "fast" if canary else "batch")
        engine.batch_size = default_batch
        clips = load.make_clips(args.load_clients, 30.0, Path(tempfile.mkdtemp(prefix="asr-load-")))
        target = load.InProcessTarget(runner)
        try:
            long_file = make_mp3(args.load_long_minutes) if args.load_long_minutes else None
            for row in load.measure(target, clips, args.load_clients, 1, long_file,
                                    sequential=not args.load_no_sequential):
                row.update(model=name, family=args.family, variant=f"load:{args.load_clients}",
                           batch_size=engine.batch_size, model_only_rtfx_same_run=first_rtfx)
                print(json.dumps(row), flush=True)
        finally:
            target.close()
    return 0


def end_to_end_full(runner, frontend, audio_path, device: str, tiny: bool) -> dict:
    """The whole pipeline as a user with every option runs it: source_lang auto (the language
    identifier scores every chunk on the scheduler) and diarize on (Sortformer over the file),
    with timestamps. The helpers are random-weight models with AmberNet's and Streaming
    Sortformer 4spk-v2's sizes (tiny ones when `tiny`)."""
    import torch

    from asr.models import ModelSet
    from asr.models.diarizer import Diarizer
    from asr.models.langid import LanguageIdentifier
    from asr.models.runtime import quiet_nemo
    from asr.pipeline import Transcriber
    from asr.testing import langid, sortformer
    from asr.types import TranscribeOptions

    with quiet_nemo():
        lid = langid.build_langid_like(0, langid.TINY_DIMS if tiny else langid.AMBERNET_DIMS).to(device).eval()
        diar = sortformer.build_sortformer(sortformer.SortformerDims() if tiny else sortformer.SORTFORMER_4SPK_V2_DIMS)
    identifier = LanguageIdentifier(lid, name="langid", device=device)
    diarizer = Diarizer(diar.to(device), name="sortformer", device=device)
    transcriber = Transcriber(ModelSet([runner]), frontend, identifier=identifier, diarizer=diarizer)
    cuda_sync(device)
    t = time.perf_counter()
    transcript = transcriber.transcribe(audio_path, TranscribeOptions(source_lang="auto", timestamps=True,
                                                                      diarize=True))
    cuda_sync(device)
    wall_s = time.perf_counter() - t
    timings = transcript.timings_s
    transcriber.scheduler.close()
    return {
        "audio_s": round(transcript.duration_s, 1),
        "rtfx_end_to_end": round(transcript.duration_s / wall_s, 1),
        "end_to_end_s": round(wall_s, 3),
        "share_model": round(timings["model_s"] / wall_s, 3),
        "lid_s": timings.get("lid_s"), "diarize_s": timings.get("diarize_s"),
        "share_waiting_for_frontend": round(timings["wait_s"] / wall_s, 3),
        "speakers": len(transcript.speakers or ()),
        "gpu_peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None,
    }


def model_pass(runner, engine, chunks, request, device) -> tuple[float, int]:
    """(seconds, generated tokens) for every chunk through the model in batches."""
    before = getattr(runner, "generated_tokens", 0)
    cuda_sync(device)
    t = time.perf_counter()
    for i in range(0, len(chunks), engine.batch_size):
        runner.transcribe(chunks[i : i + engine.batch_size], request)
    cuda_sync(device)
    return time.perf_counter() - t, getattr(runner, "generated_tokens", 0) - before


def phrases(n: int, seed: int = 0) -> tuple[str, ...]:
    """n made-up product names (two to four syllables, capitalised): phrases no model says."""
    import random

    rng = random.Random(seed)
    syllables = [a + b for a in "bdfgklmnprstvz" for b in "aeiou"]
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))).capitalize())
    return tuple(sorted(out))


def measure(runner, engine, frontend, audio_path, chunks, chunk_audio_s, device, end_to_end: bool,
            timestamps: bool, hotwords: int = 0) -> dict:
    """(a) model only on the planned chunks, without and with timestamps, (b) one more pass with
    every stage timed, (c) the whole pipeline on the file with timestamps (the scheduler's path)."""
    import torch

    from asr.models import ModelSet
    from asr.pipeline import Transcriber
    from asr.types import Request, TranscribeOptions

    plain = Request("en", "en", pnc=True, timestamps=False)
    stamped = Request("en", "en", pnc=True, timestamps=True)
    runner.transcribe(chunks[: min(len(chunks), engine.batch_size)], plain)  # warm-up: kernels, graphs
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    model_s, tokens = model_pass(runner, engine, chunks, plain, device)
    out = {
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        "batch_size": engine.batch_size,
        "speech_s": round(chunk_audio_s, 1),
        "chunks": len(chunks),
        "rtfx_model": round(chunk_audio_s / model_s, 1),
        "model_s": round(model_s, 3),
        "generated_tokens_per_s": round(tokens / model_s, 1) if tokens else None,
    }
    if getattr(engine, "confidence", None) is not None:  # word confidence's cost: a pass without it
        engine.confidence = False
        bare_s, _ = model_pass(runner, engine, chunks, plain, device)
        engine.confidence = True
        out.update(rtfx_model_no_confidence=round(chunk_audio_s / bare_s, 1),
                   confidence_cost=round(model_s / bare_s - 1.0, 3))
    if hotwords and engine.capabilities.boosting:
        from asr.types import Hotwords

        hot = Request("en", "en", pnc=True, timestamps=False, hotwords=Hotwords(phrases(hotwords), 1.0))
        runner.transcribe(chunks[: min(len(chunks), engine.batch_size)], hot)  # builds the tree, warms up
        hot_s, _ = model_pass(runner, engine, chunks, hot, device)
        out.update(hotwords=hotwords, rtfx_model_hotwords=round(chunk_audio_s / hot_s, 1),
                   hotwords_cost=round(hot_s / model_s, 3))
    if timestamps and engine.capabilities.word_timestamps:
        runner.transcribe(chunks[: min(len(chunks), engine.batch_size)], stamped)
        stamped_s, _ = model_pass(runner, engine, chunks, stamped, device)
        out.update(rtfx_model_timestamps=round(chunk_audio_s / stamped_s, 1),
                   timestamps_cost=round(stamped_s / model_s - 1.0, 3))
        timer = getattr(engine, "stages", None)
        if timer is not None:
            timer.enabled = True
            timer.reset()
            staged_s, _ = model_pass(runner, engine, chunks, stamped, device)
            timer.enabled = False
            per_hour = 3600.0 / chunk_audio_s
            out["stages_s_per_hour"] = {k: round(v * per_hour, 3) for k, v in timer.reset().items()}
    if end_to_end:
        transcriber = Transcriber(ModelSet([runner]), frontend)
        cuda_sync(device)
        t = time.perf_counter()
        transcript = transcriber.transcribe(audio_path, TranscribeOptions(source_lang="en", timestamps=True))
        cuda_sync(device)
        e2e_s = time.perf_counter() - t
        timings = transcript.timings_s
        t = time.perf_counter()
        from asr import formats

        formats.to_dict(transcript, TranscribeOptions().subtitles)
        post_s = time.perf_counter() - t
        out.update({
            "audio_s": round(transcript.duration_s, 1),
            "rtfx_end_to_end": round(transcript.duration_s / e2e_s, 1),
            "end_to_end_s": round(e2e_s, 3),
            "share_model": round(timings["model_s"] / e2e_s, 3),
            "share_waiting_for_frontend": round(timings["wait_s"] / e2e_s, 3),
            "frontend_done_at_s": timings["frontend_s"],
            "output_s": round(post_s, 3),
        })
        transcriber.scheduler.close()
    if device.startswith("cuda"):
        out["gpu_peak_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


if __name__ == "__main__":
    sys.exit(main())
