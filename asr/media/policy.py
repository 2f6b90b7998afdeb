"""Format policy and limits: which inputs are opened, which track is used, how a file is split
into independently decodable time ranges, and the checks every decoder child applies."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import AudioTooLongError, InputError
from ..types import SAMPLE_RATE, AudioLimits
from .protocol import DecodeRange, StreamInfo

ACCEPTED_FORMATS: tuple[str, ...] = (
    # audio containers and raw codec streams
    "wav", "w64", "rf64", "aiff", "caf", "au", "voc", "ircam", "sox", "nistsphere",
    "flac", "mp3", "aac", "loas", "ac3", "eac3", "dts", "dtshd", "truehd", "mlp",
    "ogg", "amr", "amrnb", "amrwb", "ape", "wv", "tta", "tak", "shn", "mpc", "mpc8",
    "gsm", "qcp", "dsf", "wsaud", "xwma", "oma", "spx", "iamf",
    # video containers, whose default (else first) audio track is used
    "mov", "matroska", "asf", "avi", "flv", "mpegts", "mpeg", "mxf", "nut", "rm", "dv",
)
"""FFmpeg demuxers the decoder may use (checked against the probed format). Playlists, concat
lists, image sequences and anything else that can open other files or URLs are not on it."""

SEEKABLE_FORMATS: frozenset[str] = frozenset({
    "wav", "w64", "aiff", "caf", "flac", "mp3", "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "ogg",
})
"""Containers whose seeking lands on exact timestamps, so time ranges can be decoded in separate
processes and joined sample-exactly. Anything else is decoded by one sequential child."""

FORMAT_NAMES = {
    "concat": "an FFmpeg concat list", "hls": "an HLS playlist", "dash": "a DASH manifest",
    "sdp": "an SDP session description", "png_pipe": "a PNG image", "jpeg_pipe": "a JPEG image",
    "gif": "a GIF image", "gif_pipe": "a GIF image", "webp_pipe": "a WebP image", "bmp_pipe": "a BMP image",
    "tiff_pipe": "a TIFF image", "svg_pipe": "an SVG image", "image2": "an image", "bin": "binary data",
    "tty": "a text file", "srt": "a subtitle file", "webvtt": "a subtitle file", "ass": "a subtitle file",
    "lrc": "a lyrics file", "ffmetadata": "an FFmpeg metadata file",
}
"""Plain words for formats FFmpeg recognises but this service refuses."""

ACCEPTED_HINT = "audio or video files such as WAV, MP3, M4A/AAC, FLAC, OGG/Vorbis, Opus, WebM, MP4, MKV or MOV"

CAP_TOLERANCE_S = 1.0
"""Decoded audio may exceed the duration cap by this much: codec padding (encoder delay, the
last frame filled up) must not turn an exactly-4-hour recording away."""

MIN_AUDIO_S = 0.1
"""Less decoded audio than this cannot hold a word: it is refused with a clear error."""

VAD_FRAME_SAMPLES = 512
SEGMENT_SAMPLES = 60 * 16_384
"""Grid (~61.4 s at 16 kHz, on the VAD frame and DC cell grids) on which the file is split into
ranges that children decode independently, and on which the VAD's state restarts (see
asr.media.child.SegmentedVad): the same for any number of cores, so the plan is too."""
VAD_WARMUP_SAMPLES = 96 * VAD_FRAME_SAMPLES
"""Audio (~3.1 s) the VAD hears before each grid point, so it starts a segment warmed up."""
BYTES_PER_WORKER = 1 << 18
"""A file smaller than this per extra worker is not worth another process."""


def fmt_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min"
    if m:
        return f"{m} min {s:02d} s"
    return f"{seconds:.1f} s"


def check_format(name: str, rate: int, channels: int, limits: AudioLimits, from_header: bool) -> None:
    if from_header and rate == 0:
        return  # some containers only know the rate once a frame is decoded
    if not limits.min_sample_rate <= rate <= limits.max_sample_rate:
        raise InputError(
            f"'{name}' has a sample rate of {rate} Hz; accepted: "
            f"{limits.min_sample_rate} to {limits.max_sample_rate} Hz"
        )
    if channels > limits.max_channels:
        raise InputError(f"'{name}' has {channels} audio channels; accepted: at most {limits.max_channels}")


def check_duration(name: str, decoded_samples: int, limits: AudioLimits) -> None:
    """Refuse once decoded audio passes the cap (plus codec-padding tolerance)."""
    cap_s = limits.max_duration_s
    if decoded_samples > (cap_s + CAP_TOLERANCE_S) * SAMPLE_RATE:
        raise AudioTooLongError(
            f"'{name}' is longer than the {fmt_duration(cap_s)} limit (stopped after decoding "
            f"{fmt_duration(decoded_samples / SAMPLE_RATE)}); split it into parts of at most {fmt_duration(cap_s)}"
        )


STATED_LENGTH_FORMATS: frozenset[str] = frozenset({
    "wav", "w64", "rf64", "aiff", "caf", "au", "flac", "ogg", "matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2",
})
"""Containers whose header states the audio's length exactly (not an estimate from a bitrate)."""
ESTIMATED_LENGTH_SLACK = 0.25
"""Other containers (MP3, ADTS, ...) estimate their length; only a larger gap is worth a warning."""


def length_warnings(name: str, info: StreamInfo, decoded_s: float, truncated: bool) -> tuple[str, ...]:
    """A warning when the file held more audio than its header said (all of it was decoded):
    the header is wrong, and a player trusting it would stop early."""
    stated = info.header_duration_s
    if truncated or stated is None or decoded_s < 1.0:
        return ()
    slack = 0.02 if info.container in STATED_LENGTH_FORMATS else ESTIMATED_LENGTH_SLACK
    if decoded_s <= stated * (1 + slack) + 1.0:
        return ()
    return (f"The header of '{name}' understates its length ({fmt_duration(stated)}); all "
            f"{fmt_duration(decoded_s)} of its audio were decoded.",)


MIN_ESTIMATED_BITRATE = 8_000
"""Bits per second below which a stream whose timestamps are estimated from its bitrate (MP3,
ADTS, ...) cannot really be as long as its header says: its stated length is not trusted."""


def stated_too_long(name: str, header_s: float | None, container: str, size_bytes: int,
                    audio_past_cap: Callable[[float], bool], limits: AudioLimits) -> None:
    """Refuse, before decoding, a file whose header states a length over the cap when that is
    backed by evidence: a decodable frame past the cap (found by seeking there) and, for streams
    whose timestamps are only estimated, a size that can hold that much audio. A header that
    overstates passes on to decoding, where the decoded-sample cap still holds."""
    cap_s = limits.max_duration_s
    limit_s = cap_s + CAP_TOLERANCE_S
    if not header_s or header_s <= limit_s:
        return
    if container not in STATED_LENGTH_FORMATS and size_bytes * 8 / header_s < MIN_ESTIMATED_BITRATE:
        return
    if not audio_past_cap(limit_s):
        return
    raise AudioTooLongError(
        f"'{name}' is longer than the {fmt_duration(cap_s)} limit ({fmt_duration(header_s)}, as its header "
        f"states; refused before decoding); split it into parts of at most {fmt_duration(cap_s)}"
    )


UNDECODABLE_MIN_PACKETS = 8
"""Rejected packets below this never refuse a file: a few damaged packets are skipped with a warning."""


def check_decodable(name: str, bad_packets: int, packets: int, codec: str) -> None:
    """Refuse a file (or time range) where the decoder rejected most of what was read: that is
    data FFmpeg's probe mistook for audio, or a file damaged beyond use, not audio with a few
    damaged packets (those are skipped, and the front end warns)."""
    if bad_packets >= UNDECODABLE_MIN_PACKETS and 2 * bad_packets > packets:
        raise InputError(
            f"most of '{name}' could not be decoded ({bad_packets} of {packets} {codec} packets were rejected): "
            f"it is probably not audio, or damaged beyond use; accepted: {ACCEPTED_HINT}"
        )


RAW_STREAM_FORMATS: frozenset[str] = frozenset({"mp3", "aac", "loas", "ac3", "eac3", "dts", "amr", "amrnb", "amrwb"})
"""Bare codec streams: their demuxer skips bytes it cannot read as frames without a word (it
resyncs on the next frame header), so damage shows as bytes never decoded, not rejected packets."""
MIN_COVERED_FRACTION = 0.5
COVERAGE_MIN_BYTES = 64 * 1024


def check_coverage(name: str, container: str, decoded_bytes: int, span_bytes: int) -> None:
    """Refuse a bare codec stream of which less than half the bytes read (from its first frame
    to its last) were frames that decoded: data that only here and there resembles audio."""
    if container not in RAW_STREAM_FORMATS or span_bytes < COVERAGE_MIN_BYTES:
        return
    if decoded_bytes < MIN_COVERED_FRACTION * span_bytes:
        raise InputError(
            f"most of '{name}' could not be decoded (only {100 * decoded_bytes / span_bytes:.0f} % of the "
            f"{span_bytes} bytes read were {container} frames that decoded): it is probably not audio, or "
            f"damaged beyond use; accepted: {ACCEPTED_HINT}"
        )


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_count(path: str | os.PathLike, requested: int | None) -> int:
    """How many decoder children to use for one file: the cores asked for (default: all this
    process may use), but no more than the file's size makes worthwhile."""
    cores = requested or usable_cores()
    try:
        size = Path(path).stat().st_size
    except OSError:
        return 1
    return max(1, min(cores, 1 + size // BYTES_PER_WORKER))


def plan_ranges(header_duration_s: float | None, seekable: bool, max_duration_s: float | None = None
                ) -> tuple[DecodeRange, ...]:
    """Split the timeline into ranges on the SEGMENT_SAMPLES grid (the same plan in every child:
    a pure function of the header). The last range is open-ended, so a header that under-states
    the length loses nothing; one that over-states it gives empty ranges at the end."""
    if header_duration_s and max_duration_s:  # a header claiming days plans no more than the cap
        header_duration_s = min(header_duration_s, max_duration_s + 2 * SEGMENT_SAMPLES / SAMPLE_RATE)
    if not seekable or not header_duration_s or header_duration_s * SAMPLE_RATE < 2 * SEGMENT_SAMPLES:
        return (DecodeRange(0, 0, None, 0),)
    count = int(header_duration_s * SAMPLE_RATE // SEGMENT_SAMPLES)
    ranges = []
    for i in range(count):
        start = i * SEGMENT_SAMPLES
        end = (i + 1) * SEGMENT_SAMPLES if i + 1 < count else None
        ranges.append(DecodeRange(i, start, end, max(0, start - VAD_WARMUP_SAMPLES)))
    return tuple(ranges)
