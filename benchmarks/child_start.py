"""Where one short file's front end spends its time: starting decoder children, or decoding.

    .venv/bin/python benchmarks/child_start.py [--clip-s 30] [--repeat 3]

Prints one JSON object per measurement:
- `startup`: fresh interpreters timed from outside, importing what a decoder child needs, step by
  step (bare interpreter; the child module; PyAV, soxr, ONNX Runtime; Silero's session; the
  loudness code), the cost every file paid when each started its own children;
- `work`: the same child work done in this process, warm: open, decode, resample and VAD-score
  the clip, and normalise its chunks (what is left when start-up is gone);
- `frontend`: the whole front end on the clip, with 1 and 2 decoder children per file: started
  for each file (wall, and the children's CPU seconds), and taken warm from a pool (wall).

The clip is cut from the real speech recording (as `benchmarks/load.py` cuts its clips).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

STEPS = {
    "interpreter": "pass",
    "child module": "import asr.media.child",
    "+ av, soxr, onnxruntime": "import asr.media.child, av, soxr, onnxruntime",
    "+ Silero session": "import asr.media.child, av, soxr; from asr.frontend.vad import SileroVad; SileroVad()",
    "+ loudness": ("import asr.media.child, av, soxr, numpy as np; from asr.frontend.vad import SileroVad; "
                   "SileroVad(); from asr.frontend import loudness; loudness.normalise(np.full(16000, 0.1, np.float32))"),
}


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def startup(repeat: int) -> dict:
    out = {}
    for name, code in STEPS.items():
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
            times.append(time.perf_counter() - t)
        out[name] = round(statistics.median(times), 3)
    return {"measure": "startup", "median_s": out}


def work(clip: Path, repeat: int) -> dict:
    """One child's work on the clip in this process, after a first (cold) pass."""
    import numpy as np
    import soundfile as sf

    from asr.frontend import loudness
    from asr.frontend.vad import SileroVad
    from asr.media import child
    from asr.media.protocol import DecodeRange
    from asr.types import SAMPLE_RATE, AudioLimits

    class Sink:
        def send(self, kind, payload) -> None:
            pass

        def audio(self, start, samples) -> None:
            pass

    vad = SileroVad()
    limits = AudioLimits.from_env()
    audio, _ = sf.read(str(clip), dtype="float32")
    halves = np.array_split(audio, 2)  # the clip's two chunks, about
    decode_s, loud_s = [], []
    for _ in range(repeat + 1):
        t = time.perf_counter()
        container = child.open_input(str(clip), clip.name)
        stream, _, _ = child.choose_stream(container, clip.name)
        child.decode_range(container, stream, DecodeRange(0, 0, None, 0), None, vad, Sink(), limits, clip.name)
        container.close()
        t1 = time.perf_counter()
        for half in halves:
            loudness.normalise(half)
        decode_s.append(t1 - t)
        loud_s.append(time.perf_counter() - t1)
    return {"measure": "work", "audio_s": round(audio.size / SAMPLE_RATE, 1),
            "decode_vad_s": round(statistics.median(decode_s[1:]), 3),
            "loudness_s": round(statistics.median(loud_s[1:]), 3)}


def frontend(clip: Path, workers: int, repeat: int, warm: bool) -> dict:
    """With `warm`, children come from a warm pool (started and warmed once, before timing);
    else each file starts its own, as before the pool (their CPU is counted once reaped)."""
    from asr.frontend import FrontEnd
    from asr.media.pool import ChildPool, PoolOptions

    pool = ChildPool(PoolOptions(size=workers if warm else 0))
    fe = FrontEnd(workers=workers, pool=pool)
    if warm:
        list(fe.run(clip))
    walls, cpus = [], []
    for _ in range(repeat):
        c, t = children_cpu_s(), time.perf_counter()
        run = fe.run(clip)
        list(run)
        walls.append(time.perf_counter() - t)
        cpus.append(children_cpu_s() - c)
    pool.close()
    row = {"measure": "frontend", "children": "warm pool" if warm else "new per file", "workers": workers,
           "wall_s": round(statistics.median(walls), 3)}
    if not warm:
        row["children_cpu_s"] = round(statistics.median(cpus), 3)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip-s", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from load import make_clips

    clip = make_clips(1, args.clip_s, Path(tempfile.mkdtemp(prefix="asr-child-start-")))[0]
    rows = [startup(args.repeat), work(clip, args.repeat)]
    rows += [frontend(clip, w, args.repeat, warm) for warm in (False, True) for w in (1, 2)]
    for row in rows:
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
