"""Speech spans with Silero VAD, run from the ONNX files the `silero-vad` wheel ships.

We run Silero's *sequence* export: one ONNX call scores a whole block of 32 ms frames (the LSTM
loops inside the graph), which equals the frame-by-frame model but is several times faster
because Python is out of the per-frame loop. The package itself is never imported: its
`__init__` imports torch and calls `torch.set_num_threads(1)` for the whole process, which
would slow NeMo on CPU. We locate its data files with `importlib.util.find_spec` instead.

Most of that model's time (81 % measured) goes to its convolutions, which ONNX Runtime runs as
one tiny product per frame (each frame's STFT has only 4 columns). `_ConvFront` computes the
same convolutions, with the weights read from the same ONNX file, as a few large matrix products
over a whole block; only the LSTM and output layer (cut from the same graph) run in ONNX Runtime.
Probabilities agree with the full model to within 1e-5 and the VAD costs about a third of the
time. Should a future wheel change the graph's shape, the full model is used as it is.

The probabilities -> spans state machine follows silero-vad's `get_speech_timestamps_from_probs`
(same thresholds, hysteresis and padding), restricted to our case of no maximum span length
(long spans are split later, at quiet points, by asr.frontend.chunking).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path

import numpy as np

from ..media.policy import SEGMENT_SAMPLES, VAD_WARMUP_SAMPLES
from ..types import SAMPLE_RATE, Span, VadOptions

FRAME_SAMPLES = 512
"""Silero's frame at 16 kHz (32 ms)."""
CONTEXT_SAMPLES = 64
"""Each frame is scored together with the last 64 samples of the previous frame."""
BLOCK_FRAMES = 512
"""Frames per ONNX call (~16 s of audio): large enough to keep Python out of the hot loop."""
_STATE = 128

log = logging.getLogger(__name__)


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
    """Loads the model once; safe to share between threads (ONNX Runtime sessions are, and the
    convolution front end holds only read-only weights)."""

    def __init__(self, options: VadOptions | None = None):
        import onnxruntime as ort

        self.options = options or VadOptions()
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1  # the LSTM is sequential; more threads only add overhead
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        path = model_path()
        self._front: _ConvFront | None = None
        try:
            self._front, tail = _ConvFront.from_model(path)
            self._session = ort.InferenceSession(tail, sess_options=so, providers=["CPUExecutionProvider"])
        except (ImportError, ValueError, KeyError) as e:
            log.warning("Silero VAD: using the plain sequence model (%s)", e)
            self._front = None
            self._session = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])

    def stream(self) -> "VadStream":
        """One uninterrupted run of the model (state carried through everything fed)."""
        return VadStream(self._session, self._front)

    def segmented(self, first_sample: int = 0) -> "SegmentedVad":
        """The front end's VAD: restarted on a fixed grid (see SegmentedVad)."""
        return SegmentedVad(self, first_sample)

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Per-frame speech probabilities of a whole recording (one per FRAME_SAMPLES), exactly as
        the front end computes them, however many processes share the work."""
        s = self.segmented()
        return np.concatenate((s.feed(audio), s.finish()))

    def spans(self, audio: np.ndarray) -> list[Span]:
        return spans_from_probabilities(self.probabilities(audio), audio.size, self.options)


class _ConvFront:
    """Silero's STFT and four encoder convolutions, as batched matrix products.

    Per frame, the graph pads the 576 input samples (64 of context + 512) by reflection to 640,
    takes a 258-filter convolution of width 256 and stride 128 (the real and imaginary parts of
    129 frequency bins at 4 times), their magnitude, then four ReLU convolutions of width 3
    (padding 1, strides 1, 2, 2, 1) down to one 128-value vector. Here every frame's 4 windows
    are rows of one matrix, and each width-3 convolution is one product over all frames.
    """

    LAYOUT = [((258, 1, 256), 128, 0), ((128, 129, 3), 1, 1), ((64, 128, 3), 2, 1),
              ((64, 64, 3), 2, 1), ((128, 64, 3), 1, 1)]
    """(weight shape, stride, padding) of the five convolutions the code below implements."""
    TAIL_INPUT = "/Transpose_output_0"

    def __init__(self, stft: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray, int]]):
        from threadpoolctl import ThreadpoolController

        self.stft = stft  # (256, 258)
        self.layers = layers  # (weights as (3 * C_in, C_out), bias, stride)
        # One BLAS thread for these products: more spin-wait on the core the decoder needs
        # (measured: an hour of MP3 to a chunk plan took 17.4 s with two, 11.8 s with one).
        self._blas = ThreadpoolController()

    @classmethod
    def from_model(cls, path: Path) -> "tuple[_ConvFront, bytes]":
        """Weights from the ONNX file, and the rest of its graph (LSTM onward) as a model."""
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(path))
        init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        convs = [n for n in model.graph.node if n.op_type == "Conv"]
        pads = [n for n in model.graph.node if n.op_type == "Pad"]
        if len(convs) != 6 or len(pads) != 1:
            raise ValueError(f"unexpected graph: {len(convs)} convolutions, {len(pads)} pads")
        layers = []
        for node, (shape, stride, pad) in zip(convs[:5], cls.LAYOUT):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            weight = init[node.input[1]]
            if (weight.shape != shape or list(attrs.get("strides", [1])) != [stride]
                    or list(attrs.get("pads", [0, 0])) != [pad, pad]):
                raise ValueError(f"unexpected convolution {node.name}: {weight.shape} {attrs}")
            layers.append((weight, init[node.input[2]] if len(node.input) > 2 else None, stride))
        stft = np.ascontiguousarray(layers[0][0][:, 0, :].T, dtype=np.float32)
        encoder = [
            (np.ascontiguousarray(w.transpose(2, 1, 0).reshape(-1, w.shape[0]), dtype=np.float32),
             b.astype(np.float32), stride)
            for w, b, stride in layers[1:]
        ]
        graph = onnx.shape_inference.infer_shapes(model)
        tail = onnx.utils.Extractor(graph).extract_model([cls.TAIL_INPUT, "h", "c"], ["speech_probs", "hn", "cn"])
        return cls(stft, encoder), tail.SerializeToString()

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(n, 576) samples -> (n, 1, 128): what the graph feeds its LSTM."""
        with self._blas.limit(limits=1, user_api="blas"):
            return self._forward(frames)

    def _forward(self, frames: np.ndarray) -> np.ndarray:
        n = frames.shape[0]
        x = np.concatenate((frames, frames[:, -2:-66:-1]), axis=1)  # reflect-pad 64 on the right
        blocks = x.reshape(n, 5, 128)
        windows = np.concatenate((blocks[:, :4], blocks[:, 1:5]), axis=2).reshape(n * 4, 256)
        spec = windows @ self.stft
        re, im = spec[:, :129], spec[:, 129:]
        h = np.sqrt(re * re + im * im).reshape(n, 4, 129)
        for weight, bias, stride in self.layers:
            steps, width = h.shape[1], h.shape[2]
            padded = np.zeros((n, steps + 2, width), dtype=np.float32)
            padded[:, 1:-1] = h
            out_steps = (steps - 1) // stride + 1
            span = (out_steps - 1) * stride + 1
            cols = np.concatenate([padded[:, k : k + span : stride] for k in range(3)], axis=2)
            h = cols.reshape(n * out_steps, 3 * width) @ weight
            h += bias
            np.maximum(h, 0, out=h)
            h = h.reshape(n, out_steps, -1)
        return h


class VadStream:
    """Scores audio fed in pieces of any size, carrying the LSTM state and frame context across
    calls, so feeding a file block by block gives exactly what one call on the whole file gives.
    Each call returns the probabilities of the frames it completed."""

    def __init__(self, session, front: _ConvFront | None = None):
        self._session = session
        self._front = front
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
            if self._front is not None:
                feed = {_ConvFront.TAIL_INPUT: self._front(inputs), "h": self._h, "c": self._c}
            else:
                feed = {"input": inputs, "h": self._h, "c": self._c}
            probs, self._h, self._c = self._session.run(["speech_probs", "hn", "cn"], feed)
            out.append(np.asarray(probs, dtype=np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


LEVEL_TARGET_DBFS = -18.0
"""Each VAD segment is scaled so its loud frames (95th percentile of frame RMS) sit here: the
detector then hears a recording 35 dB too quiet as it hears a normal one (measured: without it,
a clip 45 dB down loses 40 % of its speech). Silero ignores noise and hum at any level (measured
on white, brown noise and mains hum from -40 to -12 dBFS), so boosting them finds no speech."""
LEVEL_MAX_GAIN_DB = 45.0
LEVEL_FLOOR_DBFS = -90.0
"""Below this the segment is digital silence or dither: it is left as it is."""


def level_gain(x: np.ndarray) -> float:
    """Linear gain (>= 1) for the VAD's input: see LEVEL_TARGET_DBFS."""
    n = x.size // FRAME_SAMPLES * FRAME_SAMPLES
    if n == 0:
        return 1.0
    frames = x[:n].reshape(-1, FRAME_SAMPLES)
    rms = np.sqrt(np.einsum("ij,ij->i", frames, frames).astype(np.float64) / FRAME_SAMPLES)
    loud_db = 20 * np.log10(max(float(np.percentile(rms, 95)), 1e-12))
    if loud_db < LEVEL_FLOOR_DBFS:
        return 1.0
    gain_db = min(max(0.0, LEVEL_TARGET_DBFS - loud_db), LEVEL_MAX_GAIN_DB)
    return float(10 ** (gain_db / 20))


class SegmentedVad:
    """The front end's VAD: the recording is cut on a fixed grid (SEGMENT_SAMPLES), and each
    segment is scored by a fresh run of the model that first hears the VAD_WARMUP_SAMPLES before
    it, with the segment's level brought to LEVEL_TARGET_DBFS.

    Silero's LSTM remembers minutes of audio, so a run cut anywhere never re-converges exactly to
    an uncut one (measured: span counts differ on a 10-minute file for any warm-up up to 12 s).
    Restarting on a fixed grid makes every segment independent instead: the result is the same,
    sample for sample, whether one process scores the file front to back or many score its
    ranges at once. Feed audio from `first_sample` (0, or a grid point minus the warm-up)."""

    def __init__(self, vad: "SileroVad", first_sample: int = 0):
        self._vad = vad
        self.pos = first_sample
        self._seg_start = -(-first_sample // SEGMENT_SAMPLES) * SEGMENT_SAMPLES
        self._buf: list[np.ndarray] = []
        self._buf_start = first_sample

    def feed(self, x: np.ndarray) -> np.ndarray:
        out = []
        while x.size:
            seg_end = self._seg_start + SEGMENT_SAMPLES
            n = min(x.size, seg_end - self.pos)
            self._buf.append(x[:n])
            x = x[n:]
            self.pos += n
            if self.pos == seg_end:
                data = np.concatenate(self._buf)
                out.append(self._score(data))
                keep = min(VAD_WARMUP_SAMPLES, data.size)
                self._buf = [data[data.size - keep :].copy()]
                self._buf_start = seg_end - keep
                self._seg_start = seg_end
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def finish(self) -> np.ndarray:
        if self.pos <= self._seg_start:
            return np.zeros(0, np.float32)
        data = np.concatenate(self._buf)
        self._buf = []
        return self._score(data)

    def _score(self, data: np.ndarray) -> np.ndarray:
        warm = self._seg_start - self._buf_start
        gain = level_gain(data[warm:])
        stream = self._vad.stream()
        scaled = data * np.float32(gain) if gain != 1.0 else data
        probs = np.concatenate((stream.feed(scaled), stream.finish()))
        return probs[warm // FRAME_SAMPLES :]


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
        # Only frames where the state can change matter, and within a run of frames of one kind
        # only its first (speech) or one computable frame (silence long enough) can: find the
        # runs with numpy and walk them here, a few per second of audio instead of 31 frames.
        if p.size:
            counted = (p >= self._threshold) | (p < self._neg)
            kind = np.where(counted, np.where(p.astype(np.float64) >= self._threshold, 1, 2), 0)
            edges = np.flatnonzero(kind[1:] != kind[:-1]) + 1
            firsts = np.concatenate(([0], edges))
            lasts = np.concatenate((edges - 1, [p.size - 1]))
            for k, first, last in zip(kind[firsts].tolist(), firsts.tolist(), lasts.tolist()):
                if k:
                    self._run(k == 1, base + first, base + last)
        return self._emit(final_at=None)

    def _run(self, speech: bool, first: int, last: int) -> None:
        """Frames first..last, all at or above the threshold (speech) or all below the negative
        threshold: what `_step` does frame by frame, in one step."""
        if speech:
            self._step(1.0, FRAME_SAMPLES * first)
            return
        if not self._triggered:
            return
        cur = FRAME_SAMPLES * first
        if not self._temp_end:
            self._temp_end = cur
        # the first frame of the run at least min_silence after the silence began ends the span
        end_frame = max(first, math.ceil((self._temp_end + self._min_silence) / FRAME_SAMPLES))
        if end_frame <= last:
            self._step(0.0, FRAME_SAMPLES * end_frame)

    def earliest_sample(self) -> int:
        """No span this tracker emits from now on starts before this sample: the audio before
        it may be released."""
        if self._raw:
            raw = self._raw[0][0]
        elif self._triggered:
            raw = self._start
        else:
            raw = FRAME_SAMPLES * self._frames
        return max(0, int(raw - self._pad) - FRAME_SAMPLES)

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
