"""Normalise a chunk to the target loudness (ITU-R BS.1770-4 via pyloudnorm), safely.

pyloudnorm alone is unsafe for arbitrary chunks: it raises on audio shorter than its 0.4 s block,
returns -inf for digital silence (a gain computed from that is inf, and the audio becomes NaN),
and passes NaN samples straight through. Here: short chunks are measured with a block as long
as the chunk, silence and unmeasurable chunks are left as they are, non-finite samples become
zero, the gain is capped, and a look-ahead peak limiter keeps every sample under the ceiling.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from ..types import SAMPLE_RATE, LoudnessOptions

MIN_MEASURE_S = 0.05
"""Below this there is too little signal for a loudness figure; such chunks keep unit gain."""
_BLOCK_S = 0.4
_LOOKAHEAD_S = 0.005


@dataclass(frozen=True)
class Normalised:
    samples: np.ndarray = field(repr=False)
    lufs: float | None
    """Integrated loudness after normalisation, or None when it cannot be measured."""
    gain_db: float


ABSOLUTE_GATE_LUFS = -70.0
"""BS.1770's absolute gate: blocks quieter than this never count towards loudness."""


@functools.lru_cache(maxsize=1)
def _k_weighting() -> tuple[np.ndarray, np.ndarray]:
    """BS.1770's K-weighting at SAMPLE_RATE as one 4th-order filter: pyloudnorm's two biquads
    (shelf, then high-pass), coefficients taken from pyloudnorm itself and convolved."""
    import pyloudnorm

    b, a = np.ones(1), np.ones(1)
    for stage in pyloudnorm.Meter(SAMPLE_RATE)._filters.values():
        b = np.convolve(b, stage.passband_gain * np.asarray(stage.b, dtype=np.float64))
        a = np.convolve(a, np.asarray(stage.a, dtype=np.float64))
    return b, a


def _measure(samples: np.ndarray) -> tuple[float | None, np.ndarray]:
    """(integrated loudness or None, loudness of each gating block).

    pyloudnorm's `Meter.integrated_loudness` (mono), vectorised: one filter call and block
    energies from a cumulative sum instead of a Python loop per 100 ms block. Same block bounds,
    gates and formula; agrees with pyloudnorm to within 0.001 LU (tested), 4 to 5 times faster,
    which matters because loudness is the one front-end stage that runs in the parent."""
    from scipy.signal import lfilter

    n = samples.size
    if n < MIN_MEASURE_S * SAMPLE_RATE or not np.isfinite(samples).all():
        return None, np.zeros(0)
    block_s = min(_BLOCK_S, math.floor(n / SAMPLE_RATE * 1000) / 1000)
    b, a = _k_weighting()
    y = lfilter(b, a, samples.astype(np.float64))
    step = 0.25
    num_blocks = int(np.round((n / SAMPLE_RATE - block_s) / (block_s * step))) + 1
    j = np.arange(num_blocks, dtype=np.float64)
    lo = np.minimum((block_s * (j * step) * SAMPLE_RATE).astype(np.int64), n)
    hi = np.minimum((block_s * (j * step + 1) * SAMPLE_RATE).astype(np.int64), n)
    energy = np.concatenate(([0.0], np.cumsum(y * y)))
    z = np.maximum(energy[hi] - energy[lo], 0.0) / (block_s * SAMPLE_RATE)
    with np.errstate(divide="ignore", invalid="ignore"):
        blocks = -0.691 + 10.0 * np.log10(z)
        above = z[blocks >= ABSOLUTE_GATE_LUFS]
        relative = -0.691 + 10.0 * np.log10(above.mean()) - 10.0 if above.size else np.nan
        gated = z[(blocks > relative) & (blocks > ABSOLUTE_GATE_LUFS)]
        lufs = -0.691 + 10.0 * np.log10(gated.mean()) if gated.size else -np.inf
    return (float(lufs) if math.isfinite(lufs) else None), blocks


def measure_lufs(samples: np.ndarray) -> float | None:
    """Integrated loudness in LUFS, or None for silence, non-finite or too-short input."""
    return _measure(samples)[0]


def normalise(samples: np.ndarray, options: LoudnessOptions | None = None) -> Normalised:
    """Scale to the target loudness (gain capped), then limit peaks to the ceiling.

    The loudness after normalisation is measured once, before: gated loudness is
    scale-covariant, L(g*x) = L(x) + g dB, as long as no gating block crosses the absolute
    gate when scaled and the limiter leaves the signal alone. Otherwise it is measured again.
    That halves the cost of the slowest front-end step without approximating anything."""
    o = options or LoudnessOptions()
    x = np.nan_to_num(samples.astype(np.float32), copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    before, blocks = _measure(x)
    ceiling = 10 ** (o.peak_ceiling_dbfs / 20)
    if before is None:
        y, _ = limit_peaks(x, ceiling)
        return Normalised(y, None, 0.0)
    gain_db = min(o.target_lufs - before, o.max_gain_db)
    y, limited = limit_peaks(x * np.float32(10 ** (gain_db / 20)), ceiling)
    lo, hi = sorted((ABSOLUTE_GATE_LUFS, ABSOLUTE_GATE_LUFS - gain_db))
    crosses_gate = bool(np.any((blocks >= lo) & (blocks <= hi)))
    after = measure_lufs(y) if limited or crosses_gate else before + gain_db
    return Normalised(y, after, gain_db)


def limit_peaks(x: np.ndarray, ceiling: float) -> tuple[np.ndarray, bool]:
    """Look-ahead limiter: a smooth gain that dips just around each peak instead of clipping.

    Needed gain per sample is min(1, ceiling/|x|). A running minimum over 2w+1 samples followed
    by a running mean over w+1 samples never exceeds the needed gain anywhere (each sample of
    the mean's window has the current sample inside its minimum's window), and ramps over ~w
    samples, so there are no clicks."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak <= ceiling:
        return x, False
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    w = max(1, int(_LOOKAHEAD_S * SAMPLE_RATE))
    need = np.minimum(1.0, ceiling / np.maximum(np.abs(x), 1e-30)).astype(np.float32)
    gain = uniform_filter1d(minimum_filter1d(need, size=2 * w + 1, mode="nearest"), size=w + 1, mode="nearest")
    y = (x * gain).astype(np.float32)
    np.clip(y, -ceiling, ceiling, out=y)  # rounding only; the gain already guarantees this
    return y, True
