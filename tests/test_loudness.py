"""Loudness: -23 LUFS on real speech; never NaN or inf; capped gain; nothing clips."""

from __future__ import annotations

import numpy as np
import pytest

from asr.frontend.loudness import limit_peaks, measure_lufs, normalise
from asr.types import SAMPLE_RATE, TARGET_LUFS, LoudnessOptions


def _ok(result, ceiling_dbfs: float = -1.0) -> None:
    assert result.samples.dtype == np.float32
    assert np.isfinite(result.samples).all()
    assert np.abs(result.samples).max(initial=0) <= 10 ** (ceiling_dbfs / 20) + 1e-6
    assert result.lufs is None or np.isfinite(result.lufs)
    assert np.isfinite(result.gain_db)


@pytest.mark.parametrize("scale", [0.05, 0.3, 1.0, 3.0])
def test_real_speech_chunks_reach_the_target(speech60, scale):
    x = speech60[0][0] * scale
    for start_s in range(0, 60, 7):
        seg = x[start_s * SAMPLE_RATE : (start_s + 5) * SAMPLE_RATE]
        r = normalise(seg)
        _ok(r)
        assert r.lufs is not None and abs(r.lufs - TARGET_LUFS) < 0.5
        assert abs(measure_lufs(r.samples) - r.lufs) < 1e-3  # the reported figure is the real one


def test_reported_loudness_is_measured_when_the_limiter_works():
    rng = np.random.default_rng(0)
    x = (0.01 * rng.standard_normal(SAMPLE_RATE * 3)).astype(np.float32)
    x[::4000] = 0.9  # clicks far above the speech level
    r = normalise(x)
    _ok(r)
    assert abs(measure_lufs(r.samples) - r.lufs) < 1e-3


def test_reported_loudness_is_measured_when_blocks_cross_the_gate():
    x = np.zeros(SAMPLE_RATE * 4, np.float32)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    x[:SAMPLE_RATE] = 0.02 * np.sin(2 * np.pi * 500 * t)  # speech-level second
    x[SAMPLE_RATE:] = 2e-4 * np.sin(2 * np.pi * 500 * np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE)  # ~-74 LUFS tail
    r = normalise(x)
    _ok(r)
    assert abs(measure_lufs(r.samples) - r.lufs) < 1e-3


@pytest.mark.parametrize("seconds", [0.01, 0.1, 0.25, 0.399, 0.4, 0.5])
def test_short_chunks(seconds):
    n = int(seconds * SAMPLE_RATE)
    x = (0.1 * np.sin(np.arange(n) / 3)).astype(np.float32)
    r = normalise(x)
    _ok(r)
    if seconds >= 0.1:
        assert r.lufs is not None and abs(r.lufs - TARGET_LUFS) < 0.5


@pytest.mark.parametrize("n", [0, 1, 160, SAMPLE_RATE * 2])
def test_digital_silence_is_left_alone(n):
    r = normalise(np.zeros(n, np.float32))
    _ok(r)
    assert r.lufs is None and r.gain_db == 0.0
    assert not r.samples.any()


def test_non_finite_samples_become_zero():
    x = (0.1 * np.sin(np.arange(SAMPLE_RATE) / 5)).astype(np.float32)
    x[10:20] = np.nan
    x[30] = np.inf
    x[31] = -np.inf
    r = normalise(x)
    _ok(r)
    assert r.lufs is not None and abs(r.lufs - TARGET_LUFS) < 0.5


def test_gain_is_capped_for_near_silence():
    x = (1e-3 * np.sin(np.arange(SAMPLE_RATE * 2) / 5)).astype(np.float32)
    quiet = measure_lufs(x)
    assert quiet is not None and quiet < TARGET_LUFS - 35  # needs more than 30 dB, above the gate
    r = normalise(x, LoudnessOptions(max_gain_db=30.0))
    _ok(r)
    assert r.gain_db == pytest.approx(30.0)
    assert r.lufs == pytest.approx(quiet + 30.0, abs=0.01)


def test_huge_peaks_are_limited_without_clipping():
    rng = np.random.default_rng(2)
    x = (0.05 * rng.standard_normal(SAMPLE_RATE * 2)).astype(np.float32)
    x[5000] = 1e6
    x[9000:9100] = -3e4
    r = normalise(x)
    _ok(r)


def test_limiter_gain_never_exceeds_what_is_needed():
    rng = np.random.default_rng(5)
    for _ in range(20):
        x = (rng.standard_normal(20_000) * rng.uniform(0.1, 3)).astype(np.float32)
        y, limited = limit_peaks(x, 0.5)
        assert np.abs(y).max() <= 0.5 + 1e-7
        # where no limiting was needed nearby, the signal is untouched
        assert limited == (np.abs(x).max() > 0.5)
    quiet = np.full(100, 0.1, np.float32)
    y, limited = limit_peaks(quiet, 0.5)
    assert not limited and y is quiet


def test_vectorised_meter_matches_pyloudnorm(speech60):
    """`measure_lufs` re-implements pyloudnorm's gated loudness without its per-block loop."""
    speech = speech60[0][0]
    import math

    import pyloudnorm

    rng = np.random.default_rng(3)
    cases = [speech, speech[:48_000], speech[:7_000], (0.05 * rng.standard_normal(320_000)).astype(np.float32),
             np.concatenate([speech[:32_000], np.zeros(64_000, np.float32), 0.01 * speech[:32_000]])]
    for x in cases:
        block_s = min(0.4, math.floor(x.size / SAMPLE_RATE * 1000) / 1000)
        ref = pyloudnorm.Meter(SAMPLE_RATE, block_size=block_s).integrated_loudness(x.astype(np.float64))
        assert measure_lufs(x) == pytest.approx(ref, abs=1e-3)


def test_k_weighting_and_filter_kernel_are_pyloudnorms():
    """The coefficients written out in asr.frontend.loudness (so the decoder children need not
    import pyloudnorm and scipy.signal) are the ones pyloudnorm's meter uses, and the directly
    loaded filter kernel computes what scipy.signal.lfilter computes."""
    import pyloudnorm
    from scipy.signal import lfilter

    from asr.frontend.loudness import _k_weighting, _lfilter

    b, a = np.ones(1), np.ones(1)
    for stage in pyloudnorm.Meter(SAMPLE_RATE)._filters.values():
        b = np.convolve(b, stage.passband_gain * np.asarray(stage.b))
        a = np.convolve(a, np.asarray(stage.a))
    ours_b, ours_a = _k_weighting()
    np.testing.assert_allclose(ours_b, b, rtol=1e-12)
    np.testing.assert_allclose(ours_a, a, rtol=1e-12)
    x = np.random.default_rng(3).standard_normal(SAMPLE_RATE)
    np.testing.assert_array_equal(_lfilter()(b, a, x), lfilter(b, a, x))


@pytest.mark.parametrize("n", [1, 2, 80, 161, 162, 5000, SAMPLE_RATE * 20 + 7])
def test_limiter_filters_equal_scipy_ndimage(n):
    """The limiter's running minimum and mean (numpy, so the children skip scipy.ndimage's
    import) give scipy.ndimage's minimum_filter1d and uniform_filter1d."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    from asr.frontend.loudness import _running_mean, _running_min

    x = np.random.default_rng(n).random(n).astype(np.float32)
    for w in (1, 80):
        np.testing.assert_array_equal(_running_min(x, w), minimum_filter1d(x, 2 * w + 1, mode="nearest"))
        np.testing.assert_allclose(_running_mean(x, w + 1), uniform_filter1d(x, w + 1, mode="nearest"), atol=1e-6)
