"""Driver of benchmarks/gpu_check.sh: run each measurement in its own process and time budget,
collect their JSON lines, print and write a markdown table, fail loudly if a part failed.

    python benchmarks/gpu_check.py [--rehearse] [--out DIR] [--only PART ...]

Each part is a benchmark script of this folder that prints one JSON object per measurement (one
line each). On the GPU host the parts use full-size random-weight models and an hour of speech;
`--rehearse` runs the very same scripts with the tiny models on the CPU and a minute of speech, so
the check cannot rot between the rare occasions a GPU is available (a test runs the rehearsal).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Part:
    name: str
    gpu: tuple[str, ...]
    """Arguments of the benchmark script on the GPU host."""
    rehearse: tuple[str, ...]
    """The same script with the tiny models on the CPU."""
    budget_s: float
    """Wall-clock limit on the GPU host; the whole check must end within 8 minutes."""
    columns: dict = field(default_factory=dict)
    """JSON key -> table column, for the summary table."""


PARTS: tuple[Part, ...] = (
    Part(
        "frontend",
        ("benchmarks/frontend.py", "--minutes", "60", "--skip-baseline", "--json"),
        ("benchmarks/frontend.py", "--minutes", "1", "--skip-baseline", "--json"),
        budget_s=45,
    ),
    Part(
        "canary",
        ("benchmarks/inference.py", "--device", "cuda", "--minutes", "60", "--json",
         "--variants", "fast:128", "eager:128", "nemo:128", "fast:max",
         "--load-clients", "64", "--load-long-minutes", "60", "--hotwords", "100", "--end-to-end-full"),
        ("benchmarks/inference.py", "--tiny", "--device", "cpu", "--minutes", "1", "--json",
         "--variants", "fast:4", "nemo:4", "--load-clients", "4", "--hotwords", "5", "--end-to-end-full"),
        budget_s=220,
    ),
    Part(
        "parakeet",
        ("benchmarks/inference.py", "--family", "parakeet-tdt", "--device", "cuda", "--minutes", "60", "--json",
         "--variants", "batch:128", "batch:max", "--hotwords", "100"),
        ("benchmarks/inference.py", "--family", "parakeet-tdt", "--tiny", "--device", "cpu", "--minutes", "1",
         "--json", "--hotwords", "5"),
        budget_s=80,
    ),
    Part(
        "stress",
        # the sizes in the order that preceded the decoder's illegal memory access (a batch of 128,
        # a part-full first batch, growth to the largest, then the file's 239 chunks at once)
        ("benchmarks/stress.py", "--device", "cuda", "--rounds", "3", "--batches", "128", "17", "128", "94", "256",
         "512", "239", "1", "--full-size", "parakeet-tdt", "--tiny", "canary", "parakeet-tdt"),
        ("benchmarks/stress.py", "--device", "cpu", "--rounds", "1", "--batches", "1", "3"),
        budget_s=75,
    ),
    Part(
        "langid",
        ("benchmarks/langid.py", "--device", "cuda", "--chunks", "180", "--batch-size", "64", "--sizes", "ambernet",
         "--json"),
        ("benchmarks/langid.py", "--device", "cpu", "--chunks", "4", "--batch-size", "4", "--sizes", "tiny", "--json",
         "--repeats", "1"),
        budget_s=30,
    ),
    Part(
        "diarizer",
        # an hour of it runs in the canary part's end to end with diarize on; here 10 minutes, for memory
        ("-m", "benchmarks.diarizer", "--full-size", "--device", "cuda", "--minutes", "10"),
        ("-m", "benchmarks.diarizer", "--minutes", "1"),
        budget_s=25,
    ),
)
"""Budgets add up to under 8 minutes on the GPU host (each part also pays NeMo's import)."""

TABLE_KEYS = (
    ("part", "part"), ("variant", "variant"), ("model", "model"), ("device", "device"),
    ("batch_size", "batch"), ("audio_s", "audio s"), ("rtfx_model", "model-only RTFx"),
    ("rtfx_end_to_end", "end-to-end RTFx"), ("rtfx", "RTFx"), ("ours_x_realtime", "x real time"),
    ("wall_s", "wall s"), ("ours_wall_s", "wall s (all cores)"), ("ours_1core_wall_s", "wall s (1 core)"),
    ("speedup_all_cores_vs_1", "speed-up vs 1 core"), ("ours_peak_rss_mb", "peak RSS MB"),
    ("rtfx_model_timestamps", "model-only RTFx, timestamps"), ("timestamps_cost", "timestamps cost"),
    ("generated_tokens_per_s", "tokens/s"), ("rtfx_model_hotwords", "model-only RTFx, hotwords"),
    ("hotwords_cost", "hotwords x time"), ("confidence_cost", "confidence cost"), ("lid_s", "language id s"),
    ("diarize_s", "diarize s"), ("measure", "measure"), ("audio_s_per_wall_s", "audio s per wall s"),
    ("p50_s", "p50 s"), ("p95_s", "p95 s"), ("gpu_busy_share", "GPU busy"), ("short_clip_latency_s", "short clip s"),
    ("family", "family"), ("calls", "calls"), ("errors", "errors"),
    ("share_model", "model share"), ("share_waiting_for_frontend", "waiting for front end"),
    ("gpu_peak_gb", "GPU peak GB"), ("peak_rss_mb", "peak RSS MB"), ("peak_growth_mb", "RSS growth MB"),
    ("cores", "cores"), ("seconds_per_hour", "s per hour"),
)


def run_part(part: Part, rehearse: bool, log_dir: Path) -> tuple[list[dict], str | None]:
    """(measurements, failure or None). Output goes to a log file per part as well."""
    argv = [sys.executable, *(part.rehearse if rehearse else part.gpu)]
    budget = part.budget_s * (3 if rehearse else 1)
    log_path = log_dir / f"{part.name}.log"
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=budget)
    except subprocess.TimeoutExpired as e:
        log_path.write_text(f"$ {' '.join(argv)}\n{e.stdout or ''}\n{e.stderr or ''}")
        return [], f"over its {budget:.0f} s budget"
    log_path.write_text(f"$ {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}")
    rows = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append({"part": part.name, **json.loads(line)})
            except json.JSONDecodeError:
                pass
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return rows, f"exit status {proc.returncode} after {elapsed:.0f} s: {tail}"
    if not rows:
        return rows, "printed no measurement"
    return rows, None


def table(rows: list[dict]) -> str:
    keys = [(k, title) for k, title in TABLE_KEYS if any(r.get(k) is not None for r in rows)]
    lines = ["| " + " | ".join(t for _, t in keys) + " |", "|" + " --- |" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(k) is None else str(r[k]) for k, _ in keys) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rehearse", action="store_true", help="tiny models on the CPU")
    ap.add_argument("--out", default=str(ROOT / "build" / "gpu-check"))
    ap.add_argument("--only", nargs="*", help="run only these parts")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = [p for p in PARTS if not args.only or p.name in args.only]
    rows: list[dict] = []
    failures: dict[str, str] = {}
    with open(out / "gpu_check.jsonl", "w") as jsonl:
        for part in parts:
            t = time.perf_counter()
            print(f"gpu_check: {part.name} ...", file=sys.stderr, flush=True)
            got, failure = run_part(part, args.rehearse, out)
            for row in got:
                print(json.dumps(row), flush=True)
                jsonl.write(json.dumps(row) + "\n")
            rows.extend(got)
            if failure:
                failures[part.name] = failure
            print(f"gpu_check: {part.name} {'FAILED: ' + failure if failure else 'ok'} "
                  f"({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
    summary = table(rows)
    if failures:
        summary += "\n\nFailed parts: " + "; ".join(f"{k} ({v})" for k, v in failures.items())
        summary += f"\nLogs: {out}/<part>.log"
    (out / "gpu_check.md").write_text(summary + "\n")
    print(summary)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
