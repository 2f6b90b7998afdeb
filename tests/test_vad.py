"""VAD: the fast sequence path agrees with Silero's own reference, in pieces or whole."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from asr.types import SAMPLE_RATE, VadOptions
from asr.frontend.vad import FRAME_SAMPLES, SileroVad, SpanTracker, spans_from_probabilities


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()


@pytest.fixture(scope="module")
def speech(speech60) -> np.ndarray:
    return speech60[0][0]


def test_feeding_in_pieces_equals_one_call(vad, speech):
    whole = vad.probabilities(speech)
    stream = vad.stream()
    rng = np.random.default_rng(3)
    pos, parts = 0, []
    while pos < speech.size:
        step = int(rng.integers(1, 40_000))
        parts.append(stream.feed(speech[pos : pos + step]))
        pos += step
    parts.append(stream.finish())
    assert whole.shape == (-(-speech.size // FRAME_SAMPLES),)
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("options", [VadOptions(), VadOptions(min_silence_ms=100, speech_pad_ms=30),
                                     VadOptions(min_speech_ms=0, speech_pad_ms=800)])
def test_span_tracker_in_pieces_equals_one_call(vad, speech, options):
    """Spans released early (while audio is still arriving) are exactly the final ones."""
    rng = np.random.default_rng(11)
    cases = [vad.probabilities(speech)]
    for _ in range(30):
        steps = rng.normal(0, 0.2, 4000).cumsum()
        cases.append((1 / (1 + np.exp(-steps))).astype(np.float32))
    for probs in cases:
        n = probs.size * FRAME_SAMPLES
        whole = spans_from_probabilities(probs, n, options)
        tracker, got, pos = SpanTracker(options), [], 0
        while pos < probs.size:
            step = int(rng.integers(1, 300))
            got += tracker.push(probs[pos : pos + step])
            pos += step
        got += tracker.finish(n)
        assert got == whole


def test_probabilities_match_silero_reference(vad, speech):
    """Silero's own streaming model (its package, with torch) scores the same frames."""
    torch = pytest.importorskip("torch")
    from silero_vad import load_silero_vad

    threads = torch.get_num_threads()
    try:
        ref_model = load_silero_vad(onnx=True)
        ref = ref_model.audio_forward(torch.from_numpy(speech[: 20 * SAMPLE_RATE].copy()), SAMPLE_RATE)
    finally:
        torch.set_num_threads(threads)  # the package sets it to 1 for the whole process
    ours = vad.probabilities(speech[: 20 * SAMPLE_RATE])
    ref = ref.numpy().reshape(-1)
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) < 1e-4


@pytest.mark.parametrize(
    "options",
    [VadOptions(), VadOptions(threshold=0.3, min_silence_ms=100, speech_pad_ms=30, min_speech_ms=250),
     VadOptions(threshold=0.7, neg_threshold=0.2, min_silence_ms=1000, speech_pad_ms=400, min_speech_ms=0)],
)
def test_spans_match_silero_state_machine(vad, speech, options):
    pytest.importorskip("torch")
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    rng = np.random.default_rng(7)
    cases = [vad.probabilities(speech)]
    # random probability walks with long runs, to reach every branch of the state machine
    for _ in range(20):
        steps = rng.normal(0, 0.15, 3000).cumsum()
        cases.append((1 / (1 + np.exp(-steps))).astype(np.float32))
    for probs in cases:
        n = probs.size * FRAME_SAMPLES - int(rng.integers(0, FRAME_SAMPLES))
        ours = spans_from_probabilities(probs, n, options)
        ref = get_speech_timestamps_from_probs(
            probs.tolist(), sampling_rate=SAMPLE_RATE, threshold=options.threshold,
            neg_threshold=options.neg_threshold, min_speech_duration_ms=options.min_speech_ms,
            min_silence_duration_ms=options.min_silence_ms, speech_pad_ms=options.speech_pad_ms,
            audio_length_samples=n,
        )
        assert [(s.start_sample, s.end_sample) for s in ours] == [(r["start"], r["end"]) for r in ref]


def test_jfk_spans_cover_the_four_phrases(shared_audio):
    from asr.media import decode

    audio = decode(shared_audio / "jfk.flac").samples
    spans = SileroVad().spans(audio)
    # "And so my fellow Americans" / "ask not what your country can do for you" /
    # "ask what you can do" / "for your country": pauses near 2.6 s, 4.8 s and 7.9 s.
    assert 3 <= len(spans) <= 5
    assert spans[0].start_s < 0.4 and spans[-1].end_s > 10.5
    for a, b in zip(spans, spans[1:]):
        assert a.end_sample <= b.start_sample
    speech_s = sum(s.duration_s for s in spans)
    assert 8.0 < speech_s < 10.5


def test_silence_and_noise_have_no_speech(vad):
    rng = np.random.default_rng(0)
    assert vad.spans(np.zeros(SAMPLE_RATE * 5, np.float32)) == []
    assert vad.spans((1e-4 * rng.standard_normal(SAMPLE_RATE * 5)).astype(np.float32)) == []
    assert vad.spans(np.zeros(100, np.float32)) == []
    assert vad.spans(np.zeros(0, np.float32)) == []


def test_front_end_never_imports_torch():
    code = (
        "import sys, asr.frontend, asr.media, asr.frontend.vad, asr.frontend.chunking, asr.frontend.loudness;"
        "from asr.frontend import FrontEnd; FrontEnd();"
        "bad = [m for m in ('torch', 'nemo', 'silero_vad') if m in sys.modules];"
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=_root())
    assert result.returncode == 0, result.stderr + result.stdout


def _root() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parents[1])


def test_matrix_front_end_matches_the_plain_sequence_model(speech, monkeypatch):
    """The fast path (convolutions as matrix products) agrees with Silero's own graph."""
    from asr.frontend import vad as vad_module

    fast = SileroVad()
    assert fast._front is not None, "the fast path did not load"
    monkeypatch.setattr(vad_module._ConvFront, "from_model", classmethod(lambda cls, path: (_ for _ in ()).throw(ValueError("off"))))
    plain = SileroVad()
    assert plain._front is None
    a, b = fast.probabilities(speech), plain.probabilities(speech)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) < 1e-4
    assert spans_from_probabilities(a, speech.size) == spans_from_probabilities(b, speech.size)


def test_segmented_vad_from_a_range_start_matches_the_whole_file(vad, speech):
    """The parallel property: a child that starts at a grid point (after its warm-up) and is fed
    pieces of any size scores exactly what one pass over the whole recording scores there."""
    from asr.frontend.vad import SEGMENT_SAMPLES, VAD_WARMUP_SAMPLES

    audio = np.tile(speech, -(-3 * SEGMENT_SAMPLES // speech.size))[: 2 * SEGMENT_SAMPLES + 12_345]
    whole = vad.probabilities(audio)
    assert whole.size == -(-audio.size // FRAME_SAMPLES)
    start = SEGMENT_SAMPLES
    seg = vad.segmented(start - VAD_WARMUP_SAMPLES)
    rng = np.random.default_rng(0)
    pos, parts = start - VAD_WARMUP_SAMPLES, []
    while pos < audio.size:
        n = int(rng.integers(1, 40_000))
        parts.append(seg.feed(audio[pos : pos + n]))
        pos += n
    parts.append(seg.finish())
    tail = np.concatenate(parts)
    np.testing.assert_array_equal(tail, whole[start // FRAME_SAMPLES :])


@pytest.mark.parametrize("options", [VadOptions(), VadOptions(min_silence_ms=0, min_speech_ms=0),
                                     VadOptions(threshold=0.7, neg_threshold=0.2, min_silence_ms=1000)])
def test_span_tracker_runs_equal_frame_by_frame_in_any_pieces(options):
    """The tracker walks runs of frames, not frames; pushed in random pieces (runs cut anywhere)
    it gives what Silero's frame-by-frame rules give (`_step` on every frame, the reference)."""
    rng = np.random.default_rng(11)
    for _ in range(30):
        probs = (1 / (1 + np.exp(-rng.normal(0, 0.3, 4000).cumsum()))).astype(np.float32)
        n = probs.size * FRAME_SAMPLES - int(rng.integers(0, FRAME_SAMPLES))
        reference = SpanTracker(options)
        for i, p in enumerate(probs):
            if p >= reference._threshold or p < reference._neg:
                reference._step(float(p), FRAME_SAMPLES * i)
        expected = reference._emit(final_at=None) + reference.finish(n)
        tracker, got, pos = SpanTracker(options), [], 0
        while pos < probs.size:
            step = int(rng.integers(1, 300))
            got += tracker.push(probs[pos : pos + step])
            pos += step
        assert got + tracker.finish(n) == expected
