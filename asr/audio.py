"""Decode any local audio or video file to mono float32 at SAMPLE_RATE.

Decoding runs in a child process (`python -m asr.decode_child`) that streams 16 kHz blocks back
through a pipe. That buys two things at once: FFmpeg's native code cannot take the server down
(a crash, hang or memory blow-up fails one prediction), and decoding overlaps with the VAD that
the parent runs on the blocks as they arrive (two cores busy instead of one).

This module holds both halves: `decode_blocks` is the loop the child runs, `DecoderProcess` the
parent side, and `decode` the convenience that collects everything into one array.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AudioTooLongError, DecoderBug, DecoderFailure, InputError, Stopped
from .types import SAMPLE_RATE, AudioLimits

log = logging.getLogger(__name__)

ACCEPTED_FORMATS: tuple[str, ...] = (
    # audio containers and raw codec streams
    "wav", "w64", "rf64", "aiff", "caf", "au", "voc", "ircam", "sox", "nistsphere",
    "flac", "mp3", "aac", "loas", "ac3", "eac3", "dts", "dtshd", "truehd", "mlp",
    "ogg", "amr", "amrnb", "amrwb", "ape", "wv", "tta", "tak", "shn", "mpc", "mpc8",
    "gsm", "qcp", "dsf", "wsaud", "xwma", "oma", "spx", "iamf",
    # video containers, whose first audio track is used
    "mov", "matroska", "asf", "avi", "flv", "mpegts", "mpeg", "mxf", "nut", "rm", "dv",
)
"""FFmpeg demuxers the decoder may use (checked against the probed format). Playlists, concat
lists, image sequences and anything else that can open other files or URLs are not on it."""

_FORMAT_NAMES = {
    "concat": "an FFmpeg concat list", "hls": "an HLS playlist", "dash": "a DASH manifest",
    "sdp": "an SDP session description", "png_pipe": "a PNG image", "jpeg_pipe": "a JPEG image",
    "gif": "a GIF image", "gif_pipe": "a GIF image", "webp_pipe": "a WebP image", "bmp_pipe": "a BMP image",
    "tiff_pipe": "a TIFF image", "svg_pipe": "an SVG image", "image2": "an image", "bin": "binary data",
    "tty": "a text file", "srt": "a subtitle file", "webvtt": "a subtitle file", "ass": "a subtitle file",
    "lrc": "a lyrics file", "ffmetadata": "an FFmpeg metadata file",
}
"""Plain words for formats FFmpeg recognises but this service refuses."""

ACCEPTED_HINT = "audio or video files such as WAV, MP3, M4A/AAC, FLAC, OGG/Vorbis, Opus, WebM, MP4, MKV or MOV"

_BLOCK_S = 2.0  # child -> parent block length: small enough for smooth overlap, large enough to be cheap
_HEADER = struct.Struct("<cI")  # message kind, payload length
_POLL_S = 0.25


@dataclass(frozen=True)
class StreamInfo:
    """What the container says about the audio stream (informational; never trusted for limits)."""

    container: str
    codec: str
    sample_rate: int
    channels: int
    header_duration_s: float | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DecodeSummary:
    """What decoding actually produced."""

    decoded_s: float
    bad_packets: int
    nonfinite_samples: int


@dataclass(frozen=True, eq=False)
class DecodedAudio:
    samples: np.ndarray
    """float32, mono, SAMPLE_RATE."""
    info: StreamInfo
    summary: DecodeSummary

    @property
    def duration_s(self) -> float:
        return self.samples.size / SAMPLE_RATE


# --------------------------------------------------------------------------------------------
# The child's side: open, check, decode, downmix, resample.
# --------------------------------------------------------------------------------------------

def _display_name(path: str | os.PathLike) -> str:
    return Path(path).name


def open_input(path: str | os.PathLike):
    """Open a local file with FFmpeg, allowing only the file protocol and ACCEPTED_FORMATS."""
    import av
    import av.logging

    name = _display_name(path)
    p = Path(path)
    if not p.is_file():
        raise InputError(f"'{name}' is not a readable file")
    if p.stat().st_size == 0:
        raise InputError(f"'{name}' is empty (0 bytes); send an audio or video file")
    options = {"protocol_whitelist": "file", "format_whitelist": ",".join(ACCEPTED_FORMATS)}
    av.logging.set_level(av.logging.ERROR)  # FFmpeg's own reasons reach Python (and our messages)
    with av.logging.Capture(local=True) as logs:
        try:
            return av.open(os.fspath(p), mode="r", container_options=options)
        except av.error.FFmpegError as e:
            rejected = [fmt for _level, fmt, msg in logs if "not on whitelist" in msg]
            if rejected:
                kind = _FORMAT_NAMES.get(rejected[0], f"'{rejected[0]}' data")
                raise InputError(
                    f"'{name}' is {kind}, which this service does not read; accepted: {ACCEPTED_HINT}"
                ) from e
            reasons = [msg.strip() for _level, _fmt, msg in logs if msg.strip()]
            reason = "; ".join(dict.fromkeys(reasons[-3:])) or (e.strerror or str(e))
            raise InputError(
                f"could not read '{name}' as audio: {reason}; accepted: {ACCEPTED_HINT}"
            ) from e


def _downmix_weights(layout_names: list[str]) -> np.ndarray:
    """Equal weights over all channels except low-frequency effects (no speech lives there)."""
    w = np.array([0.0 if n.upper().startswith("LFE") else 1.0 for n in layout_names], dtype=np.float32)
    if w.sum() == 0:
        w[:] = 1.0
    return w / w.sum()


_SAMPLE_DTYPES = {
    "u8": (np.uint8, 128.0, 1 / 128.0), "s16": (np.int16, 0.0, 1 / 32768.0),
    "s32": (np.int32, 0.0, 1 / 2147483648.0), "s64": (np.int64, 0.0, 1 / 9223372036854775808.0),
    "flt": (np.float32, 0.0, 1.0), "dbl": (np.float64, 0.0, 1.0),
}


class _Run:
    """Frames that share a sample rate, channel layout and sample format: collected as raw views
    (one `frombuffer` per plane, no per-frame copies or stacking), then converted, downmixed and
    resampled a couple of seconds at a time. Per-frame Python work is the decoder's bottleneck
    (an MP3 frame is 26 ms), so this loop is kept to the bare minimum."""

    def __init__(self, frame):
        import soxr

        fmt = frame.format
        self.key = (frame.sample_rate, frame.layout.name, fmt.name)
        self.sample_rate = int(frame.sample_rate)
        names = [c.name for c in frame.layout.channels]
        self.channels = len(names)
        self.planar = bool(fmt.is_planar) and self.channels > 1
        self.dtype, self._offset, self._scale = _SAMPLE_DTYPES[fmt.name.rstrip("p")]
        self.weights = _downmix_weights(names)
        self._parts: list[list[np.ndarray]] = [[] for _ in range(self.channels if self.planar else 1)]
        self.pending = 0
        self._soxr = None if self.sample_rate == SAMPLE_RATE else soxr.ResampleStream(
            self.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ"
        )

    def add(self, frame) -> int:
        n = frame.samples
        planes = frame.planes
        if self.planar:
            for c, part in enumerate(self._parts):
                part.append(np.frombuffer(planes[c], dtype=self.dtype, count=n))
        else:
            self._parts[0].append(np.frombuffer(planes[0], dtype=self.dtype, count=n * self.channels))
        self.pending += n
        return n

    def flush(self, last: bool) -> tuple[np.ndarray, int]:
        """Mono float32 at SAMPLE_RATE for everything added since the last flush, and how many
        non-finite input samples were zeroed (before resampling, which would smear them)."""
        if self.planar:
            x = np.stack([np.concatenate(p) if p else np.zeros(0, self.dtype) for p in self._parts])
        else:
            flat = np.concatenate(self._parts[0]) if self._parts[0] else np.zeros(0, self.dtype)
            x = flat.reshape(-1, self.channels).T
        self._parts = [[] for _ in self._parts]
        self.pending = 0
        x = x.astype(np.float32, copy=False)
        if self._offset or self._scale != 1.0:
            x = (x - np.float32(self._offset)) * np.float32(self._scale)
        # x is a fresh array (concatenate copies), so the result never aliases decoder buffers.
        mono = np.ascontiguousarray(x[0]) if self.channels == 1 else (self.weights @ x).astype(np.float32)
        bad = 0
        if self.dtype in (np.float32, np.float64):  # only float codecs can carry NaN or inf
            finite = np.isfinite(mono)
            if not finite.all():
                bad = int(mono.size - np.count_nonzero(finite))
                mono[~finite] = 0.0
        if self._soxr is None:
            return mono, bad
        return self._soxr.resample_chunk(mono, last=last), bad


def decode_blocks(path: str | os.PathLike, limits: AudioLimits) -> Iterator[object]:
    """Yield a StreamInfo, then float32 mono SAMPLE_RATE blocks, then a DecodeSummary.

    Raises InputError subclasses with the decoder's own message passed through. The duration cap
    is enforced on decoded samples as they arrive, so a file whose header lies is stopped early.
    """
    import av

    name = _display_name(path)
    container = open_input(path)
    try:
        audio_streams = list(container.streams.audio)
        if not audio_streams:
            kinds = sorted({s.type for s in container.streams}) or ["nothing"]
            raise InputError(
                f"'{name}' has no audio stream (it holds: {', '.join(kinds)}); send a file with sound"
            )
        stream = audio_streams[0]
        ctx = stream.codec_context
        header_s = None
        if container.duration and container.duration > 0:
            header_s = container.duration / 1_000_000
        info = StreamInfo(
            container=container.format.name,
            codec=ctx.name,
            sample_rate=int(ctx.sample_rate or 0),
            channels=int(ctx.channels or 0),
            header_duration_s=header_s,
        )
        _check_format(name, info.sample_rate, info.channels, limits, from_header=True)
        yield info

        decoded_s = 0.0
        bad_packets = 0
        nonfinite = 0
        run: _Run | None = None

        def flush(last: bool) -> Iterator[np.ndarray]:
            nonlocal nonfinite
            if run is None:
                return
            out, bad = run.flush(last=last)
            nonfinite += bad
            if out.size:
                yield out

        def frames() -> Iterator[object]:
            nonlocal bad_packets
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.error.FFmpegError as e:
                    # A broken tail (truncated upload) ends the stream; what came before is kept.
                    log.warning("'%s': stopped reading at a damaged part: %s", name, e)
                    bad_packets += 1
                    break
                try:
                    yield from packet.decode()
                except av.error.FFmpegError as e:
                    bad_packets += 1
                    if bad_packets <= 3:
                        log.warning("'%s': skipped a packet the decoder rejected: %s", name, e)
            try:
                yield from ctx.decode(None)
            except av.error.FFmpegError:
                pass

        cap_s = limits.max_duration_s
        block = 0
        for frame in frames():
            if run is None or (frame.sample_rate, frame.layout.name, frame.format.name) != run.key:
                _check_format(name, int(frame.sample_rate), len(frame.layout.channels), limits, from_header=False)
                yield from flush(last=True)
                run = _Run(frame)
                block = int(_BLOCK_S * run.sample_rate)
            decoded_s += run.add(frame) / run.sample_rate
            if decoded_s > cap_s:
                raise AudioTooLongError(
                    f"'{name}' is longer than the {_fmt_duration(cap_s)} limit "
                    f"(stopped after decoding {_fmt_duration(decoded_s)}); split it into parts "
                    f"of at most {_fmt_duration(cap_s)}"
                )
            if run.pending >= block:
                yield from flush(last=False)
        yield from flush(last=True)
        if decoded_s == 0.0 and bad_packets:
            raise InputError(
                f"could not decode any audio from '{name}' ({info.codec} in {info.container}): "
                f"every packet was rejected by the decoder; the file is probably damaged"
            )
        yield DecodeSummary(decoded_s=decoded_s, bad_packets=bad_packets, nonfinite_samples=nonfinite)
    finally:
        container.close()


def _check_format(name: str, rate: int, channels: int, limits: AudioLimits, from_header: bool) -> None:
    if from_header and rate == 0:
        return  # some containers only know the rate once a frame is decoded
    if not limits.min_sample_rate <= rate <= limits.max_sample_rate:
        raise InputError(
            f"'{name}' has a sample rate of {rate} Hz; accepted: "
            f"{limits.min_sample_rate} to {limits.max_sample_rate} Hz"
        )
    if channels > limits.max_channels:
        raise InputError(
            f"'{name}' has {channels} audio channels; accepted: at most {limits.max_channels}"
        )


def _fmt_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min"
    if m:
        return f"{m} min {s:02d} s"
    return f"{seconds:.1f} s"


# --------------------------------------------------------------------------------------------
# The protocol between child and parent: framed messages on the child's stdout.
#   b"I" StreamInfo (JSON)   b"A" float32 samples   b"S" DecodeSummary (JSON)
#   b"E" {"type": error class name, "message": str} (JSON)
# --------------------------------------------------------------------------------------------

_ERROR_TYPES = {cls.__name__: cls for cls in (InputError, AudioTooLongError, DecoderFailure, DecoderBug)}


def write_message(fd: int, kind: bytes, payload: bytes) -> None:
    data = _HEADER.pack(kind, len(payload)) + payload
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        b = os.read(fd, min(n, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


class DecoderProcess:
    """Runs the decoder child for one file and yields its 16 kHz blocks as they arrive.

    A reader thread drains the pipe continuously, so the child never waits on the parent while
    the parent is busy (for example running the VAD on the previous block). The deadline, crash
    and memory limits all surface as `DecoderFailure`; the child is always reaped.
    """

    def __init__(self, path: str | os.PathLike, limits: AudioLimits | None = None,
                 stop: threading.Event | None = None):
        self.path = Path(path)
        self.stop = stop
        self.limits = limits or AudioLimits.from_env()
        self.info: StreamInfo | None = None
        self.summary: DecodeSummary | None = None
        self._proc: subprocess.Popen | None = None
        self._queue: queue.Queue = queue.Queue()
        self._reader: threading.Thread | None = None
        self._drainer: threading.Thread | None = None
        self._stderr: list[bytes] = []

    def __enter__(self) -> "DecoderProcess":
        args = [
            sys.executable, "-m", "asr.decode_child", os.fspath(self.path),
            json.dumps(self.limits.__dict__),
        ]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).resolve().parent.parent)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        # Keep the child's native libraries single-threaded: it has one job and one core.
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, close_fds=True, start_new_session=True,
        )
        try:
            self._deadline = time.monotonic() + self.limits.decode_timeout_s
            self._reader = threading.Thread(target=self._read_loop, name="decoder-reader", daemon=True)
            self._reader.start()
            self._drainer = threading.Thread(target=self._drain_stderr, name="decoder-stderr", daemon=True)
            self._drainer.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Kill the child (if still running), let the threads reading its pipes see end of file,
        and only then close the pipes, so no thread ever reads a descriptor number that has
        been closed and perhaps reused."""
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        for thread in (self._reader, self._drainer):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()

    def _read_loop(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()  # stays open until this thread has finished (see close)
        try:
            while True:
                header = _read_exact(fd, _HEADER.size)
                if header is None:
                    break
                kind, length = _HEADER.unpack(header)
                payload = _read_exact(fd, length)
                if payload is None:
                    break
                self._queue.put((kind, payload))
        except (OSError, ValueError):
            pass
        finally:
            self._queue.put((b"", b""))  # end of stream

    def _drain_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        stream = self._proc.stderr
        try:
            for line in stream:
                if len(self._stderr) < 200:
                    self._stderr.append(line)
        except (OSError, ValueError):
            pass

    def __iter__(self) -> Iterator[np.ndarray]:
        name = _display_name(self.path)
        while True:
            if self.stop is not None and self.stop.is_set():
                self.close()
                raise Stopped(f"decoding '{name}' was stopped")
            remaining = self._deadline - time.monotonic()
            try:
                # Short waits: an asynchronous exception (Cog's cancel) lands between them.
                kind, payload = self._queue.get(timeout=min(max(0.0, remaining), _POLL_S))
            except queue.Empty:
                if remaining > _POLL_S:
                    continue
                self.close()
                raise DecoderFailure(
                    f"decoding '{name}' took longer than {self.limits.decode_timeout_s:g} s and was "
                    f"stopped; the file may be damaged or built to stall the decoder"
                ) from None
            if kind == b"A":
                yield np.frombuffer(payload, dtype=np.float32)
            elif kind == b"I":
                self.info = StreamInfo(**json.loads(payload))
            elif kind == b"S":
                self.summary = DecodeSummary(**json.loads(payload))
            elif kind == b"E":
                err = json.loads(payload)
                self.close()
                raise _ERROR_TYPES.get(err["type"], InputError)(err["message"])
            else:  # end of stream without a summary: the child died
                if self.summary is not None:
                    return
                raise self._death(name)

    def _death(self, name: str) -> DecoderFailure:
        proc = self._proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = None
        if code is not None and code < 0:
            try:
                sig = signal.Signals(-code).name
            except ValueError:
                sig = f"signal {-code}"
            how = f"crashed ({sig})"
            if -code in (signal.SIGKILL, signal.SIGXCPU):
                how = f"was stopped ({sig}: over its CPU or memory limit)"
        else:
            how = f"exited unexpectedly (status {code})"
        self.close()
        tail = b"".join(self._stderr[-5:]).decode("utf-8", "replace").strip()
        if tail:
            log.warning("decoder stderr for '%s': %s", name, tail)
        return DecoderFailure(
            f"the decoder {how} while reading '{name}'; the file is probably damaged or not "
            f"a supported format (accepted: {ACCEPTED_HINT})"
        )


def decode(path: str | os.PathLike, limits: AudioLimits | None = None) -> DecodedAudio:
    """Decode a whole file (in the isolated child) into one mono float32 array at SAMPLE_RATE."""
    with DecoderProcess(path, limits) as dec:
        buf = SampleBuffer()
        for block in dec:
            buf.append(block)
        assert dec.info is not None and dec.summary is not None
        return DecodedAudio(samples=buf.array(), info=dec.info, summary=dec.summary)


class SampleBuffer:
    """A growable float32 array: amortised O(1) appends without holding a list of blocks."""

    def __init__(self, capacity: int = SAMPLE_RATE * 60):
        self._data = np.empty(max(1, capacity), dtype=np.float32)
        self._size = 0

    def append(self, block: np.ndarray) -> None:
        need = self._size + block.size
        if need > self._data.size:
            grown = np.empty(max(need, self._data.size * 2), dtype=np.float32)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : need] = block
        self._size = need

    def __len__(self) -> int:
        return self._size

    def array(self) -> np.ndarray:
        """The samples so far (a view while nothing else is appended)."""
        return self._data[: self._size]
