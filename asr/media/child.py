"""The decoder child: `python -m asr.media.child SPEC_JSON`.

It limits itself first (address space, CPU time, no core files), warms up (imports, the VAD's
session) and says it is idle; then it serves files one after another, as its parent sends them
(asr.media.pool keeps warm children for every file the process decodes). For each file it
opens the file with FFmpeg
(PyAV) under the format policy, and for each time range it owns: seeks, decodes, downmixes,
resamples to 16 kHz (soxr), removes DC offset, writes the audio into the shared timeline,
scores the VAD, and streams typed messages (asr.media.protocol) on a private descriptor; it
also finishes the chunks its parent asks for (asr.media.handover). Nothing else may write to
that descriptor, so stdout is moved away and fd 1 points at stderr before any library is imported.
After a file it unmaps and closes the file's timeline and says it is idle again; after an error
it exits (the parent never gives such a child another file).

Ranges join sample-exactly: after a seek, the first source samples are dropped until the source
position maps to a whole 16 kHz sample, so the resampler's output grid is the sequential one;
the decoder's and resampler's start-up transients fall in a pre-roll that is discarded.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import resource
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np

from ..errors import ASRError, DecoderBug, InputError
from ..types import SAMPLE_RATE, AudioLimits
from . import policy, sniff
from .handover import ChildLink, Commands
from .protocol import (
    ChildIdle, ChildRequest, ChildSpec, DecodeRange, ErrorInfo, ErrorKind, Kind, RangePlan, RangeSummary, StreamInfo,
    write,
)

log = logging.getLogger(__name__)

PREROLL_S = 0.5
"""Decoded before a range's first needed sample and discarded: covers an MP3 bit reservoir,
an MDCT codec's overlap and the resampler's filter."""
_BLOCK_S = 1.0
"""Source audio collected between conversions (per-frame Python work is the bottleneck)."""
DC_CELL_SAMPLES = 16_384
"""DC offset is removed per cell of this many 16 kHz samples on the global grid (range edges lie
on it), so parallel and sequential decoding remove exactly the same offset."""
_SAMPLE_DTYPES = {
    "u8": (np.uint8, 128.0, 1 / 128.0), "s16": (np.int16, 0.0, 1 / 32768.0),
    "s32": (np.int32, 0.0, 1 / 2147483648.0), "s64": (np.int64, 0.0, 1 / 9223372036854775808.0),
    "flt": (np.float32, 0.0, 1.0), "dbl": (np.float64, 0.0, 1.0),
}
_CLIP_LEVEL = 0.999


def open_input(path: str, name: str, fix: sniff.LengthFix | None = None):
    """Open a local file with FFmpeg, allowing only the file protocol and ACCEPTED_FORMATS; a file
    whose header understates its data (`fix`) is read through a view with the length corrected."""
    import av
    import av.logging

    options = {"protocol_whitelist": "file", "format_whitelist": ",".join(policy.ACCEPTED_FORMATS)}
    av.logging.set_level(av.logging.ERROR)  # FFmpeg's own reasons reach Python (and our messages)
    with av.logging.Capture(local=True) as logs:
        try:
            if fix is not None:
                return av.open(sniff.PatchedFile(path, fix), mode="r",
                               container_options={"format_whitelist": options["format_whitelist"]})
            return av.open(path, mode="r", container_options=options)
        except av.error.FFmpegError as e:
            rejected = [fmt for _level, fmt, msg in logs if "not on whitelist" in msg]
            if rejected:
                kind = policy.FORMAT_NAMES.get(rejected[0], f"'{rejected[0]}' data")
                raise InputError(
                    f"'{name}' is {kind}, which this service does not read; accepted: {policy.ACCEPTED_HINT}"
                ) from e
            reasons = [msg.strip() for _level, _fmt, msg in logs if msg.strip()]
            reason = "; ".join(dict.fromkeys(reasons[-3:])) or (e.strerror or str(e))
            raise InputError(f"could not read '{name}' as audio: {reason}; accepted: {policy.ACCEPTED_HINT}") from e


def check_input(path: str, name: str) -> sniff.Sniffed:
    """Refuse what is missing, empty or certainly not audio (by its own signature, whatever
    FFmpeg's probe would guess); say whether a stated data length must be corrected."""
    if not os.path.isfile(path):
        raise InputError(f"'{name}' is not a readable file")
    if os.path.getsize(path) == 0:
        raise InputError(f"'{name}' is empty (0 bytes); send an audio or video file")
    found = sniff.sniff(path)
    if found.not_audio is not None:
        raise InputError(f"'{name}' is {found.not_audio}, not audio; accepted: {policy.ACCEPTED_HINT}")
    return found


def choose_stream(container, name: str):
    """The container's default audio track (its disposition), else the first: (stream, index)."""
    streams = list(container.streams.audio)
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        raise InputError(f"'{name}' has no audio stream (it holds: {', '.join(kinds)}); send a file with sound")
    for i, s in enumerate(streams):
        if int(s.disposition) & 1:  # AV_DISPOSITION_DEFAULT
            return s, i, len(streams)
    return streams[0], 0, len(streams)


def _downmix_weights(layout_names: list[str]) -> np.ndarray:
    """Equal weights over all channels except low-frequency effects (no speech lives there)."""
    w = np.array([0.0 if n.upper().startswith("LFE") else 1.0 for n in layout_names], dtype=np.float32)
    if w.sum() == 0:
        w[:] = 1.0
    return w


class _Run:
    """Frames sharing a sample rate, layout and format: collected as raw views, then converted,
    downmixed and resampled a block at a time."""

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
        self.nonfinite = 0
        self.clipped = 0
        self.dropped: set[int] = set()
        self.reason = ""
        self._soxr = None if self.sample_rate == SAMPLE_RATE else soxr.ResampleStream(
            self.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ"
        )

    def add(self, frame, skip: int = 0) -> int:
        n = frame.samples
        planes = frame.planes
        if self.planar:
            for c, part in enumerate(self._parts):
                part.append(np.frombuffer(planes[c], dtype=self.dtype, count=n)[skip:])
        else:
            part = np.frombuffer(planes[0], dtype=self.dtype, count=n * self.channels)
            self._parts[0].append(part[skip * self.channels :])
        self.pending += n - skip
        return n - skip

    def flush(self, last: bool) -> np.ndarray:
        """Mono float32 at SAMPLE_RATE for everything added since the last flush."""
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
        if self.dtype in (np.float32, np.float64):  # only float codecs can carry NaN or inf
            finite = np.isfinite(x)
            if not finite.all():
                self.nonfinite += int(x.size - np.count_nonzero(finite))
                x = np.where(finite, x, np.float32(0.0))
        if x.shape[1] and max(float(x.max()), -float(x.min())) >= _CLIP_LEVEL:
            self.clipped += int(np.count_nonzero(np.abs(x) >= _CLIP_LEVEL))
        mono = np.ascontiguousarray(x[0]) if self.channels == 1 else self._downmix(x)
        if self._soxr is None:
            return mono
        return self._soxr.resample_chunk(mono, last=last)

    def _downmix(self, x: np.ndarray) -> np.ndarray:
        """Weighted mean, unless it would lose what a channel holds: channels far below the
        loudest (dead) are left out, so are channels that hold only broadband noise while another
        holds sound with structure (see _noise_only), and where the mean cancels (antiphase
        channels: the mix is much quieter than uncorrelated channels would give) the loudest
        channel is used alone."""
        w = self.weights.copy()
        if x.shape[1] < 256:
            return ((w / w.sum()) @ x).astype(np.float32)
        probe = x[:, ::8]  # every 8th sample: plenty to compare channel levels, 8 times cheaper
        energy = np.einsum("ij,ij->i", probe, probe).astype(np.float64) / probe.shape[1]
        live = (w > 0) & (energy > 1e-4 * energy[w > 0].max()) if energy[w > 0].max() > 1e-10 else w > 0
        for c in np.flatnonzero((w > 0) & ~live):
            self.dropped.add(int(c))
            self.reason = self.reason or "silent"
        noise = _noise_only(x, live)
        for c in np.flatnonzero(noise):
            self.dropped.add(int(c))
            self.reason = self.reason or "noise only"
        live &= ~noise
        w = np.where(live, w, 0.0).astype(np.float32)
        mix = ((w / w.sum()) @ x).astype(np.float32)
        n_live = int(np.count_nonzero(w))
        if n_live > 1:
            mix_probe = mix[::8]
            mix_energy = float(np.dot(mix_probe, mix_probe)) / mix_probe.size
            uncorrelated = float(energy[w > 0].sum()) / n_live**2
            if mix_energy < 0.25 * uncorrelated:
                best = int(np.argmax(np.where(w > 0, energy, -1.0)))
                for c in np.flatnonzero(w > 0):
                    if c != best:
                        self.dropped.add(int(c))
                self.reason = "out of phase"
                mix = np.ascontiguousarray(x[best])
        return mix


NOISE_FLATNESS = 0.45
"""Spectral flatness (geometric over arithmetic mean of the power spectrum) at or above which a
channel sounds like broadband noise: white noise measures about 0.56, speech 0.05-0.3."""
STRUCTURED_FLATNESS = 0.3
"""A noise channel is left out only while another channel is at or below this (it holds speech
or other structured sound), so pauses, music and all-noise recordings keep every channel."""


def _noise_only(x: np.ndarray, live: np.ndarray, frame: int = 1024, frames: int = 16) -> np.ndarray:
    """Channels of this block that hold only broadband noise while another holds structured
    sound: mixing them in would only lower the speech's signal-to-noise ratio. Measured on up to
    `frames` frames spread over the block (cheap next to decoding)."""
    noise = np.zeros(live.shape, dtype=bool)
    if int(np.count_nonzero(live)) < 2 or x.shape[1] < frame:
        return noise
    starts = np.linspace(0, x.shape[1] - frame, num=min(frames, x.shape[1] // frame)).astype(int)
    window = np.hanning(frame).astype(np.float32)
    flatness = np.full(live.shape, np.nan)
    for c in np.flatnonzero(live):
        segs = np.stack([x[c, i : i + frame] for i in starts]) * window
        power = np.abs(np.fft.rfft(segs, axis=1))[:, 1:] ** 2 + 1e-20
        flat = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)
        flatness[c] = float(np.median(flat))
    structured = live & (flatness <= STRUCTURED_FLATNESS)
    if structured.any():
        noise = live & (flatness >= NOISE_FLATNESS)
    return noise


class _RangeOutput:
    """Routes 16 kHz output of one range: DC removal per global cell, then VAD from
    `vad_from_sample`, audio from `start_sample`, both up to `end_sample`."""

    def __init__(self, link: ChildLink, r: DecodeRange, vad, first_sample: int):
        self.link = link
        self.r = r
        self.vad = vad.segmented(r.vad_from_sample) if vad is not None else None
        self.pos = first_sample  # global index of the next sample given to `push`
        self._pend: list[np.ndarray] = []
        self._pend_start = first_sample
        self._pend_n = 0
        self.sent = 0

    @property
    def done(self) -> bool:
        return self.r.end_sample is not None and self.pos >= self.r.end_sample

    def push(self, y: np.ndarray) -> None:
        start = self.pos
        self.pos += y.size
        lo = self.r.vad_from_sample
        if self.pos <= lo:
            return
        if start < lo:
            y, start = y[lo - start :], lo
        if self.r.end_sample is not None and self.pos > self.r.end_sample:
            y = y[: max(0, self.r.end_sample - start)]
        if not self._pend:
            self._pend_start = start
        self._pend.append(y)
        self._pend_n += y.size
        edge = (self._pend_start // DC_CELL_SAMPLES + 1) * DC_CELL_SAMPLES
        if self._pend_start + self._pend_n >= edge:
            self._emit(final=False)

    def _emit(self, final: bool) -> None:
        data = np.concatenate(self._pend) if len(self._pend) > 1 else self._pend[0]
        start = self._pend_start
        if final:
            cut = data.size
        else:
            cut = (start + data.size) // DC_CELL_SAMPLES * DC_CELL_SAMPLES - start
        head, rest = data[:cut], data[cut:]
        self._pend = [rest] if rest.size else []
        self._pend_start = start + cut
        self._pend_n = rest.size
        if not head.size:
            return
        head = head.astype(np.float32, copy=True)
        # cells: [start, next grid edge), then whole cells
        first_edge = min(head.size, (start // DC_CELL_SAMPLES + 1) * DC_CELL_SAMPLES - start)
        bounds = [0, first_edge] + list(range(first_edge + DC_CELL_SAMPLES, head.size, DC_CELL_SAMPLES))
        if bounds[-1] != head.size:
            bounds.append(head.size)
        for a, b in zip(bounds, bounds[1:]):
            if b > a:
                head[a:b] -= np.float32(head[a:b].mean(dtype=np.float64))
        skip = max(0, self.r.start_sample - start)
        if skip < head.size:  # audio first: spans the VAD settles never reach past it
            audio = head[skip:]
            self.link.audio(start + skip, audio)
            self.sent += audio.size
        if self.vad is not None:
            self._send_probs(self.vad.feed(head))

    def _send_probs(self, probs: np.ndarray) -> None:
        """Send the VAD's scores (the segmented VAD already left out its warm-up frames)."""
        if probs.size:
            self.link.send(Kind.PROBS, probs)

    def finish(self) -> None:
        if self._pend:
            self._emit(final=True)
        if self.vad is not None:
            self._send_probs(self.vad.finish())


def _frames(container, stream, name: str, state: dict) -> Iterator[object]:
    """Decoded frames; damaged packets are skipped (counted), a damaged tail ends the stream."""
    import av

    ctx = stream.codec_context
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
            state["packets"] += 1
            if packet.pos is not None and packet.pos >= 0:
                if state["first_pos"] is None:
                    state["first_pos"] = packet.pos
                state["end_pos"] = packet.pos + packet.size
        except StopIteration:
            break
        except av.error.FFmpegError as e:
            log.warning("'%s': stopped reading at a damaged part: %s", name, e)
            state["bad"] += 1
            state["truncated"] = True
            break
        try:
            yield from packet.decode()
            state["good_bytes"] += packet.size
        except av.error.FFmpegError as e:
            state["bad"] += 1
            if state["bad"] <= 3:
                log.warning("'%s': skipped a packet the decoder rejected: %s", name, e)
    try:
        yield from ctx.decode(None)
    except av.error.FFmpegError:
        pass


def audio_past(path: str, name: str, fix, stream_index: int, at_s: float) -> bool:
    """Whether the file holds a decodable audio frame at or after `at_s` (its own timestamps):
    seeks a second copy of the container there, so the one being decoded is not disturbed."""
    import av

    container = open_input(path, name, fix)
    try:
        stream = container.streams.audio[stream_index]
        target = at_s + 1.0
        try:
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
        except av.error.FFmpegError:
            return False
        for n, packet in enumerate(container.demux(stream)):
            if n >= 50:
                return False
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for frame in frames:
                if frame.pts is not None and frame.samples:
                    return float(frame.pts * frame.time_base) >= at_s
        return False
    except av.error.FFmpegError:
        return False
    finally:
        container.close()


def _origin_s(container, stream) -> float:
    """Timestamp of the first decoded sample: the zero of the output timeline."""
    for frame in container.decode(stream):
        if frame.pts is not None:
            return float(frame.pts * frame.time_base)
        break
    return 0.0


def decode_range(container, stream, r: DecodeRange, origin_s: float | None, vad, link: ChildLink,
                 limits: AudioLimits, name: str) -> tuple[RangeSummary, float | None]:
    """Decode one range and stream it; `origin_s` None means decode from the start (no seek).
    Also returns the first frame's timestamp (the timeline's zero) when decoding from the start."""
    state = {"bad": 0, "truncated": False, "packets": 0, "good_bytes": 0, "first_pos": None, "end_pos": None}
    first_pts_s: float | None = None
    seek = origin_s is not None and r.vad_from_sample > 0
    if seek:
        target_s = origin_s + r.vad_from_sample / SAMPLE_RATE - PREROLL_S
        container.seek(max(0, int(math.floor(target_s / stream.time_base))), stream=stream, backward=True)
        stream.codec_context.flush_buffers()
    out: _RangeOutput | None = None if seek else _RangeOutput(link, r, vad, 0)
    run: _Run | None = None
    block = 0
    nonfinite = clipped = 0
    dropped: set[int] = set()
    reason = ""

    def retire(last: bool) -> None:
        if run is None:
            return
        y = run.flush(last=last)
        if y.size and out is not None:
            out.push(y)

    for frame in _frames(container, stream, name, state):
        skip = 0
        if first_pts_s is None and not seek and frame.pts is not None:
            first_pts_s = float(frame.pts * frame.time_base)
        if out is None:  # first frame after a seek: place it on the global 16 kHz grid
            if frame.pts is None:
                raise DecoderBug(f"'{name}': a frame without a timestamp after seeking")
            rate = int(frame.sample_rate)
            m = round((float(frame.pts * frame.time_base) - origin_s) * rate)
            period = rate // math.gcd(rate, SAMPLE_RATE)
            skip = (-m) % period
            if skip >= frame.samples:  # the alignment point lies in a later frame
                continue
            first = (m + skip) * SAMPLE_RATE // rate
            if first > r.vad_from_sample:
                raise DecoderBug(f"'{name}': seeking landed after the range start ({first} > {r.vad_from_sample})")
            out = _RangeOutput(link, r, vad, first)
        if run is None or (frame.sample_rate, frame.layout.name, frame.format.name) != run.key:
            policy.check_format(name, int(frame.sample_rate), len(frame.layout.channels), limits, from_header=False)
            if run is not None:
                retire(last=True)
                nonfinite += run.nonfinite
                clipped += run.clipped
                dropped |= run.dropped
                reason = reason or run.reason
            run = _Run(frame)
            block = int(_BLOCK_S * run.sample_rate)
        run.add(frame, skip)
        if run.pending >= block:
            retire(last=False)
            policy.check_duration(name, out.pos, limits)
            if out.done:
                break
    else:
        retire(last=True)
    if out is None:
        out = _RangeOutput(link, r, vad, r.vad_from_sample)
    policy.check_decodable(name, state["bad"], state["packets"], stream.codec_context.name)
    if state["first_pos"] is not None and state["end_pos"] is not None:
        policy.check_coverage(name, container.format.name, state["good_bytes"], state["end_pos"] - state["first_pos"])
    policy.check_duration(name, out.pos, limits)
    if run is not None:
        nonfinite += run.nonfinite
        clipped += run.clipped
        dropped |= run.dropped
        reason = reason or run.reason
    out.finish()
    truncated_at = out.pos / SAMPLE_RATE if state["truncated"] else None
    return RangeSummary(index=r.index, samples=out.sent, bad_packets=state["bad"], nonfinite_samples=nonfinite,
                        truncated_at_s=truncated_at, clipped_samples=clipped,
                        dropped_channels=tuple(sorted(dropped)), channel_reason=reason), first_pts_s


def run(request: ChildRequest, link: ChildLink, vad=None) -> None:
    """Decode this child's ranges of the file; `vad` is the child's warm Silero session (made
    here if the warm-up could not make it)."""
    name = request.display_name
    fix = check_input(request.path, name).length_fix
    container = open_input(request.path, name, fix)
    try:
        stream, index, count = choose_stream(container, name)
        ctx = stream.codec_context
        header_s = container.duration / 1_000_000 if container.duration and container.duration > 0 else None
        seekable = container.format.name in policy.SEEKABLE_FORMATS and header_s is not None
        if fix is not None:
            # What the header said (the front end warns that it understated the length); one
            # sequential range, since only the stated part of the file has a trusted layout.
            if fix.actual_bytes:
                header_s = (header_s or 0.0) * fix.stated_bytes / fix.actual_bytes
            seekable = False
            log.info("'%s': the header states %d bytes of audio where %d follow; decoding to the end",
                     name, fix.stated_bytes, fix.actual_bytes)
        info = StreamInfo(container=container.format.name, codec=ctx.name, sample_rate=int(ctx.sample_rate or 0),
                          channels=int(ctx.channels or 0), header_duration_s=header_s, stream_index=index,
                          audio_streams=count, seekable=seekable)
        policy.check_format(name, info.sample_rate, info.channels, request.limits, from_header=True)
        if request.worker == 0 and fix is None:
            all_streams = list(container.streams.audio)
            policy.stated_too_long(
                name, header_s, container.format.name, os.path.getsize(request.path),
                lambda at_s: audio_past(request.path, name, None, all_streams.index(stream), at_s), request.limits)
        plan = policy.plan_ranges(header_s, seekable, request.limits.max_duration_s)
        if request.worker == 0:
            link.send(Kind.INFO, info)
            link.send(Kind.PLAN, RangePlan(plan))
        mine = [r for r in plan if r.index % request.workers == request.worker]
        if not mine:
            return
        if not request.with_vad:
            vad = None
        elif vad is None:
            from ..frontend.vad import SileroVad

            vad = SileroVad()
        origin: float | None = None
        for r in mine:
            if r.vad_from_sample == 0:  # from the start, no seek: range 0, always a child's first
                summary, origin = decode_range(container, stream, r, None, vad, link, request.limits, name)
                origin = origin or 0.0
            else:
                if origin is None:  # the timeline's zero: the first decoded frame's timestamp
                    origin = _origin_s(container, stream)
                summary, _ = decode_range(container, stream, r, origin, vad, link, request.limits, name)
            link.send(Kind.RANGE_DONE, summary)
            if summary.truncated_at_s is not None:
                break
    finally:
        container.close()


def _limit_self(spec: ChildSpec) -> None:
    """For life: no core files, the address space, and the hard CPU limit (see ChildSpec)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if spec.memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (spec.memory_bytes, spec.memory_bytes))
    if spec.cpu_s > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (int(spec.cpu_s) + 1, spec.cpu_hard_s))


def _limit_file(spec: ChildSpec) -> None:
    """The soft CPU limit for the next file: `cpu_s` more than used so far (SIGXCPU past it)."""
    if spec.cpu_s > 0:
        used = _cpu_s()
        resource.setrlimit(resource.RLIMIT_CPU, (min(int(used + spec.cpu_s) + 1, spec.cpu_hard_s - 5),
                                                 spec.cpu_hard_s))


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _idle(files: int) -> ChildIdle:
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as f:
        vm_pages, rss_pages = (int(v) for v in f.read().split()[:2])
    return ChildIdle(files=files, cpu_s=round(_cpu_s(), 3), vm_bytes=vm_pages * page, rss_bytes=rss_pages * page,
                     fds=len(os.listdir("/proc/self/fd")) - 1)  # less the listing's own


def _warm_up():
    """Import what every file needs and load the VAD once, before any file waits for it. A
    failure here is left for the first file to meet (and report as that file's error)."""
    try:
        import av  # noqa: F401
        import soxr  # noqa: F401

        from ..frontend import loudness
        from ..frontend.vad import SileroVad

        vad = SileroVad()
        loudness.normalise(np.full(SAMPLE_RATE, 0.1, dtype=np.float32))  # imports its filters
        return vad
    except Exception:  # noqa: BLE001 - reported by the file that needs it
        log.exception("decoder warm-up failed; the first file will try again")
        return None


def _give_back_memory() -> None:
    """Return freed heap to the system after a file, so a warm child stays as small as a new one."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def serve_file(request: ChildRequest, out_fd: int, commands: Commands, vad,
               before_decode: Callable[[str], None] | None) -> int | None:
    """One file, start to END: None when it ended cleanly (ready for another), else the
    status to exit with (after its error was sent, or when the parent is gone)."""
    limits = request.limits
    link = None
    try:
        if before_decode is not None:
            before_decode(request.path)
        link = ChildLink(request, out_fd, commands)
        run(request, link, vad)
        link.serve()
        return None if link.ended else 0
    except ASRError as e:
        write(out_fd, Kind.ERROR, ErrorInfo(ErrorKind.of(e), str(e)))
    except MemoryError:
        message = (f"decoding '{request.display_name}' needed more than the decoder's "
                   f"{limits.decoder_memory_bytes // 2**20} MB memory limit; the file is probably damaged")
        write(out_fd, Kind.ERROR, ErrorInfo(ErrorKind.FAILURE, message))
    except BrokenPipeError:
        return 1  # the parent went away (cancelled or stopped): nothing left to tell
    except Exception as e:  # a bug here, not a bad file: say so instead of blaming the upload
        import traceback

        traceback.print_exc()  # to stderr, which the parent logs
        message = f"internal error in the audio decoder ({type(e).__name__}: {e}); please report it"
        write(out_fd, Kind.ERROR, ErrorInfo(ErrorKind.BUG, message))
    finally:
        if link is not None:
            link.close()
        if request.timeline_fd >= 0:
            os.close(request.timeline_fd)
    return 0


def main(argv: list[str], before_decode=None) -> int:
    """`before_decode(path)` is a hook for fault-injection tests (see asr.media.faults)."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    spec = ChildSpec.from_json(argv[1])
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    _limit_self(spec)
    commands = Commands(0)
    vad = _warm_up()
    files = 0
    try:
        write(out_fd, Kind.IDLE, _idle(files))
        while True:
            got = commands.next_request()
            if got is None:
                return 0  # the parent let this child go
            request, fd = got
            request = replace(request, timeline_fd=fd)
            _limit_file(spec)
            status = serve_file(request, out_fd, commands, vad, before_decode)
            if status is not None:
                return status
            files += 1
            _give_back_memory()
            write(out_fd, Kind.IDLE, _idle(files))
    except BrokenPipeError:
        return 1
    except ASRError as e:  # a protocol error between files
        write(out_fd, Kind.ERROR, ErrorInfo(ErrorKind.of(e), str(e)))
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
