"""Front-end benchmark: our chunk planner on 1 core and on all cores vs a seed-style baseline.

    .venv/bin/python benchmarks/frontend.py                 # 60- and 240-minute files
    .venv/bin/python benchmarks/frontend.py --minutes 10    # quicker
    .venv/bin/python benchmarks/frontend.py --skip-baseline

For each file, in one run: wall time with 1 core (`taskset`, so the front end sees one usable
core and starts one decoder) and with every core this process may use, the speed-up, the CPU
seconds per hour of audio spent in the parent (planning, messages, copying chunks out: what
shares the model's process) beside those of the decoder children, the time from the start of
the front end to its first chunk, peak RSS of the parent and of the largest decoder child,
speech detected and kept, and the baseline.

The test files are 44.1 kHz stereo 128 kb/s MP3s made by tiling the 60 s speech clip in
Silero's test.wav (cached under .cache/bench; see benchmarks/recordings.py for where it is
looked for, and the fallback when it is missing). Each measurement is a fresh process, timed
from outside (interpreter start, imports and model load included), like `python -m asr segment`.

The baseline reproduces the seed's front end as its issue describes it: soundfile to read,
mean of channels, librosa.resample to 16 kHz, Silero's window-by-window get_speech_timestamps
on its TorchScript model (the package defaults, as the seed's exact parameters are not kept),
a chunk loop that drops every span that would overflow a 20 s chunk and never emits the last
chunk, and pyloudnorm per chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / ".cache" / "bench"


def make_mp3(minutes: int) -> Path:
    """Encode one minute once, then repeat its packets: minutes of MP3 in seconds of work."""
    import av
    import numpy as np
    import soxr

    from recordings import speech_wav  # the real clip, or speech made from samples/ (not in workers)
    from tests.media import repeat_encoded

    CACHE.mkdir(parents=True, exist_ok=True)
    source = speech_wav()
    tag = "speech" if source.name == "test.wav" else source.stem
    out_path = CACHE / f"{tag}-{minutes}min-44k-stereo-128k.mp3"
    if out_path.exists():
        return out_path
    one = CACHE / f"{tag}-1min-44k-stereo-128k.mp3"
    if not one.exists():
        with av.open(str(source)) as c:
            x = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]).astype(np.float32) / 32768
        y = soxr.resample(x, 16_000, 44_100).astype(np.float32)
        stereo = np.stack([y, 0.9 * y])
        with av.open(str(one), "w", format="mp3") as o:
            s = o.add_stream("libmp3lame", rate=44_100, layout="stereo")
            s.bit_rate = 128_000
            for i in range(0, stereo.shape[1], 44_100):
                fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, i : i + 44_100]), format="fltp", layout="stereo")
                fr.sample_rate = 44_100
                for p in s.encode(fr):
                    o.mux(p)
            for p in s.encode(None):
                o.mux(p)
    tmp = out_path.with_suffix(".part")
    repeat_encoded(one, minutes, tmp)
    tmp.rename(out_path)
    return out_path


# ------------------------------------------------------------------------------------------
# Workers: each runs in its own process and prints one JSON line.
# ------------------------------------------------------------------------------------------

def worker_ours(path: str) -> dict:
    sys.path.insert(0, str(ROOT))
    import dataclasses
    import hashlib
    import resource

    import numpy as np

    from asr.frontend import FrontEnd
    from asr.media.pool import shared as shared_pool
    from asr.types import ChunkPlan

    def cpu(who: int) -> float:
        r = resource.getrusage(who)
        return r.ru_utime + r.ru_stime

    frontend = FrontEnd()
    before = cpu(resource.RUSAGE_SELF)
    run = frontend.run(path)
    empty = np.zeros(0, np.float32)
    chunks = tuple(dataclasses.replace(c, samples=empty) for c in run)  # audio dropped as it arrives
    parent_cpu = cpu(resource.RUSAGE_SELF) - before
    shared_pool().close()  # reap the warm children: only then does their CPU count as the children's
    s = run.summary
    plan = ChunkPlan(duration_s=s.duration_s, speech_s=s.speech_s, chunks=chunks)
    kept = sum(c.chunk.duration_s for c in plan.chunks)
    digest = hashlib.sha256(json.dumps(plan.to_dict()).encode()).hexdigest()[:16]
    hours = s.duration_s / 3600
    return {"detected_s": plan.speech_s, "kept_s": kept, "chunks": len(plan.chunks), "duration_s": plan.duration_s,
            "plan_digest": digest, "parent_cpu_s_per_h": parent_cpu / hours,
            "children_cpu_s_per_h": cpu(resource.RUSAGE_CHILDREN) / hours,
            "first_chunk_s": s.timings.first_chunk_s, "workers": s.timings.workers}


def worker_seed(path: str) -> dict:
    import importlib.util

    import librosa
    import numpy as np
    import pyloudnorm as pyln
    import soundfile as sf
    import torch

    spec = importlib.util.find_spec("silero_vad")
    jit = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.jit"
    from silero_vad.utils_vad import get_speech_timestamps

    sr_target, max_chunk = 16_000, 20 * 16_000
    data, sr = sf.read(path)
    if data.ndim > 1:
        data = data.mean(axis=1)
    if sr != sr_target:
        data = librosa.resample(data, orig_sr=sr, target_sr=sr_target)
    model = torch.jit.load(str(jit))
    model.eval()
    stamps = get_speech_timestamps(torch.from_numpy(data).float(), model, sampling_rate=sr_target)
    detected = sum(t["end"] - t["start"] for t in stamps) / sr_target
    chunks, current, current_len = [], [], 0
    for t in stamps:  # the seed's loop, bugs included
        seg = data[t["start"] : t["end"]]
        if current_len + len(seg) > max_chunk:
            chunks.append(np.concatenate(current) if current else np.zeros(0))
            current, current_len = [], 0
            continue
        current.append(seg)
        current_len += len(seg)
    meter = pyln.Meter(sr_target)
    kept = 0.0
    for c in chunks:
        if len(c) < 0.4 * sr_target:
            continue
        pyln.normalize.loudness(c, meter.integrated_loudness(c), -23.0)
        kept += len(c) / sr_target
    return {"detected_s": detected, "kept_s": kept, "chunks": len(chunks), "duration_s": len(data) / sr_target}


def run_worker(kind: str, path: Path, cpus: list[int] | None = None) -> dict:
    """Run a worker in a fresh process (pinned to `cpus` when given); wall time measured here,
    peak RSS from the kernel."""
    code = (
        "import json, resource, sys; sys.path.insert(0, %r);"
        "import frontend as b; r = getattr(b, %r)(%r);"
        "r['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024;"
        "r['child_peak_rss_mb'] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024;"
        "print(json.dumps(r))"
    ) % (str(Path(__file__).parent), f"worker_{kind}", str(path))
    pin = ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []
    start = time.perf_counter()
    out = subprocess.run([*pin, sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=int, nargs="+", default=[60, 240])
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--skip-one-core", action="store_true", help="only all cores (no speed-up figure)")
    ap.add_argument("--json", action="store_true", help="print one JSON line per file")
    args = ap.parse_args()
    from recordings import speech_wav

    cpus = sorted(os.sched_getaffinity(0))
    # The tiled files run a few seconds over whole hours (each tile keeps its encoder padding).
    os.environ["ASR_MAX_DURATION_S"] = str(max(14_400, max(args.minutes) * 60 + 600))
    print(f"machine: {len(cpus)} usable cores; source: {speech_wav().name}", file=sys.stderr)
    for minutes in args.minutes:
        path = make_mp3(minutes)
        ours = run_worker("ours", path)
        one = ours if args.skip_one_core or len(cpus) == 1 else run_worker("ours", path, cpus[:1])
        seed = None if args.skip_baseline else run_worker("seed", path)
        audio_s = ours["duration_s"]
        row = {
            "file": path.name,
            "audio_s": round(audio_s, 1),
            "cores": len(cpus),
            "ours_wall_s": round(ours["wall_s"], 2),
            "ours_1core_wall_s": round(one["wall_s"], 2),
            "speedup_all_cores_vs_1": round(one["wall_s"] / ours["wall_s"], 2),
            "ours_x_realtime": round(audio_s / ours["wall_s"], 1),
            "ours_peak_rss_mb": round(ours["peak_rss_mb"]),
            "ours_decoder_peak_rss_mb": round(ours["child_peak_rss_mb"]),
            "ours_1core_peak_rss_mb": round(one["peak_rss_mb"]),
            "ours_speech_detected_s": round(ours["detected_s"], 1),
            "ours_speech_kept_s": round(ours["kept_s"], 1),
            "ours_chunks": ours["chunks"],
            "parent_cpu_s_per_h": round(ours["parent_cpu_s_per_h"], 3),
            "children_cpu_s_per_h": round(ours["children_cpu_s_per_h"], 2),
            "parent_cpu_s_per_h_1core": round(one["parent_cpu_s_per_h"], 3),
            "first_chunk_s": round(ours["first_chunk_s"], 2),
            "first_chunk_s_1core": round(one["first_chunk_s"], 2),
            "same_plan_1_vs_all_cores": one["plan_digest"] == ours["plan_digest"],
        }
        if seed:
            row.update({
                "seed_wall_s": round(seed["wall_s"], 2),
                "seed_peak_rss_mb": round(seed["peak_rss_mb"]),
                "seed_speech_detected_s": round(seed["detected_s"], 1),
                "seed_speech_kept_s": round(seed["kept_s"], 1),
                "speedup_vs_seed": round(seed["wall_s"] / ours["wall_s"], 1),
            })
        if args.json:
            print(json.dumps(row))
            continue
        print(f"\n{path.name}  ({audio_s / 60:.1f} min)")
        if one is ours:
            print(f"  1 core: not run ({row['cores']} cores only)")
        else:
            print(f"  1 core: {row['ours_1core_wall_s']:7.2f} s wall; {row['cores']} cores: speed-up "
                  f"{row['speedup_all_cores_vs_1']}x; same plan: {row['same_plan_1_vs_all_cores']}")
        print(f"  CPU per hour of audio: parent {row['parent_cpu_s_per_h']} s, decoder children "
              f"{row['children_cpu_s_per_h']} s; first chunk after {row['first_chunk_s']} s "
              f"(1 core: {row['first_chunk_s_1core']} s)")
        print(f"  ours : {row['ours_wall_s']:7.2f} s wall  ({row['ours_x_realtime']:.0f}x real time)  "
              f"peak RSS {row['ours_peak_rss_mb']} MB (+ decoder process {row['ours_decoder_peak_rss_mb']} MB)  "
              f"speech kept {row['ours_speech_kept_s']} of {row['ours_speech_detected_s']} s detected")
        if seed:
            print(f"  seed : {row['seed_wall_s']:7.2f} s wall  peak RSS {row['seed_peak_rss_mb']} MB  "
                  f"speech kept {row['seed_speech_kept_s']} of {row['seed_speech_detected_s']} s detected")
            print(f"  ratio: ours is {row['speedup_vs_seed']}x faster than the seed-style baseline")


if __name__ == "__main__":
    main()
