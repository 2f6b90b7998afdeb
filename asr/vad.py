"""Speech spans with Silero VAD, run from the ONNX files the `silero-vad` wheel ships.

We run Silero's *sequence* export: one ONNX call scores a whole block of 32 ms frames (the LSTM
loops inside the graph), which is bit-exact with the frame-by-frame model but several times
faster because Python is out of the per-frame loop. The package itself is never imported: its
`__init__` imports torch and calls `torch.set_num_threads(1)` for the whole process, which
would slow NeMo on CPU. We locate its data files with `importlib.util.find_spec` instead.

The probabilities -> spans state machine follows silero-vad's `get_speech_timestamps_from_probs`
(same thresholds, hysteresis and padding), restricted to our case of no maximum span length
(long spans are split later, at quiet points, by asr.chunking).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .types import SAMPLE_RATE, Span, VadOptions

FRAME_SAMPLES = 512
"""Silero's frame at 16 kHz (32 ms)."""
CONTEXT_SAMPLES = 64
"""Each frame is scored together with the last 64 samples of the previous frame."""
BLOCK_FRAMES = 512
"""Frames per ONNX call (~16 s of audio): large enough to keep Python out of the hot loop."""
_STATE = 128


def model_path(name: str = "silero_vad_16k_sequence.onnx") -> Path:
    """Path of an ONNX model inside the installed silero-vad wheel, without importing it."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the silero-vad package is not installed (pip install silero-vad)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / name
    if not path.is_file():
        raise RuntimeError(f"silero-vad is installed but has no {name}")
    return path


class SileroVad:
    """Loads the sequence model once; safe to share between threads (ONNX Runtime sessions are)."""

    def __init__(self, options: VadOptions | None = None):
        import onnxruntime as ort

        self.options = options or VadOptions()
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1  # the LSTM is sequential; more threads only add overhead
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model_path()), sess_options=so, providers=["CPUExecutionProvider"]
        )

    def stream(self) -> "VadStream":
        return VadStream(self._session)

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Per-frame speech probabilities of a whole array (one per FRAME_SAMPLES)."""
        s = self.stream()
        return np.concatenate((s.feed(audio), s.finish()))

    def spans(self, audio: np.ndarray) -> list[Span]:
        return spans_from_probabilities(self.probabilities(audio), audio.size, self.options)


class VadStream:
    """Scores audio fed in pieces of any size, carrying the LSTM state and frame context across
    calls, so feeding a file block by block gives exactly what one call on the whole file gives.
    Each call returns the probabilities of the frames it completed."""

    def __init__(self, session):
        self._session = session
        self._h = np.zeros((1, 1, _STATE), dtype=np.float32)
        self._c = np.zeros((1, 1, _STATE), dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def feed(self, samples: np.ndarray) -> np.ndarray:
        data = np.concatenate((self._pending, samples.astype(np.float32, copy=False)))
        usable = (data.size // (FRAME_SAMPLES * BLOCK_FRAMES)) * FRAME_SAMPLES * BLOCK_FRAMES
        self._pending = data[usable:].copy() if usable else data
        return self._score(data[:usable])

    def finish(self) -> np.ndarray:
        """Score what is left (the last frame zero-padded, as Silero does)."""
        pending, self._pending = self._pending, np.zeros(0, dtype=np.float32)
        frames = -(-pending.size // FRAME_SAMPLES)
        padded = np.zeros(frames * FRAME_SAMPLES, dtype=np.float32)
        padded[: pending.size] = pending
        return self._score(padded)

    def _score(self, samples: np.ndarray) -> np.ndarray:
        out: list[np.ndarray] = []
        frames = samples.reshape(-1, FRAME_SAMPLES)
        for first in range(0, frames.shape[0], BLOCK_FRAMES):
            block = frames[first : first + BLOCK_FRAMES]
            inputs = np.empty((block.shape[0], CONTEXT_SAMPLES + FRAME_SAMPLES), dtype=np.float32)
            inputs[:, CONTEXT_SAMPLES:] = block
            inputs[0, :CONTEXT_SAMPLES] = self._context
            inputs[1:, :CONTEXT_SAMPLES] = block[:-1, -CONTEXT_SAMPLES:]
            self._context = block[-1, -CONTEXT_SAMPLES:].copy()
            probs, self._h, self._c = self._session.run(
                ["speech_probs", "hn", "cn"], {"input": inputs, "h": self._h, "c": self._c}
            )
            out.append(np.asarray(probs, dtype=np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def spans_from_probabilities(
    probs: np.ndarray, num_samples: int, options: VadOptions | None = None
) -> list[Span]:
    """Speech spans (in samples) from per-frame probabilities; Silero's rules, padding included."""
    tracker = SpanTracker(options)
    return tracker.push(probs) + tracker.finish(num_samples)


class SpanTracker:
    """Silero's probabilities -> spans state machine, run incrementally: `push` returns the spans
    that can no longer change, so chunks can be built (and normalised) while audio is still being
    decoded. Pushing everything at once gives exactly `get_speech_timestamps_from_probs`.

    Padding follows Silero: each span grows by speech_pad on both sides, but two spans closer than
    twice the pad meet in the middle of their gap instead. So a span is final once the next one has
    started, or once we are far enough past its end that no later span can reach into its pad.
    """

    def __init__(self, options: VadOptions | None = None):
        o = options or VadOptions()
        self._threshold = o.threshold
        self._neg = o.neg_threshold if o.neg_threshold is not None else max(o.threshold - 0.15, 0.01)
        self._min_speech = SAMPLE_RATE * o.min_speech_ms / 1000
        self._min_silence = SAMPLE_RATE * o.min_silence_ms / 1000
        self._pad = SAMPLE_RATE * o.speech_pad_ms / 1000
        self._frames = 0  # frames consumed so far
        self._triggered = False
        self._start = 0
        self._temp_end = 0
        self._raw: list[list[int]] = []  # closed raw (unpadded) segments not yet emitted
        self._last_raw_end: int | None = None  # raw end of the last emitted span

    def push(self, probs: np.ndarray) -> list[Span]:
        p = np.asarray(probs)
        base = self._frames
        self._frames += p.size
        # Only frames where the state can change matter; find them with numpy, walk them here.
        for i in np.flatnonzero((p >= self._threshold) | (p < self._neg)):
            self._step(float(p[i]), FRAME_SAMPLES * (base + int(i)))
        return self._emit(final_at=None)

    def finish(self, num_samples: int) -> list[Span]:
        if self._triggered and num_samples - self._start > self._min_speech:
            self._raw.append([self._start, num_samples])
        self._triggered = False
        return self._emit(final_at=num_samples)

    def _step(self, prob: float, cur: int) -> None:
        if prob >= self._threshold:
            self._temp_end = 0
            if not self._triggered:
                self._triggered = True
                self._start = cur
            return
        if not self._triggered:  # prob < neg threshold, outside speech
            return
        if not self._temp_end:
            self._temp_end = cur
        if cur - self._temp_end < self._min_silence:
            return
        if self._temp_end - self._start > self._min_speech:
            self._raw.append([self._start, self._temp_end])
        self._triggered = False
        self._temp_end = 0

    def _emit(self, final_at: int | None) -> list[Span]:
        """Pad and return every closed segment whose right-hand padding is settled; at the end of
        the audio (final_at = its length in samples) return them all."""
        out: list[Span] = []
        while self._raw:
            start, end = self._raw[0]
            if len(self._raw) > 1:
                next_start: int | None = self._raw[1][0]
            elif final_at is not None:
                next_start = None
            else:
                # Any later segment starts at the current trigger or later (a trigger that ends
                # up too short is dropped, so it cannot be trusted as the neighbour itself).
                earliest = self._start if self._triggered else FRAME_SAMPLES * self._frames
                if earliest - end < 2 * self._pad:
                    break
                next_start = None
            if self._last_raw_end is None:
                new_start = max(0, start - self._pad)
            else:
                gap = start - self._last_raw_end
                new_start = max(0, start - (gap // 2 if gap < 2 * self._pad else self._pad))
            if next_start is None:
                new_end = end + self._pad
                if final_at is not None:
                    new_end = min(final_at, new_end)
            else:
                gap = next_start - end
                new_end = end + (gap // 2 if gap < 2 * self._pad else self._pad)
            self._raw.pop(0)
            self._last_raw_end = end
            out.append(Span(int(new_start), int(new_end)))
        return out
