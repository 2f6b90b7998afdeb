"""Make real media files for tests with PyAV (FFmpeg's own encoders and muxers)."""

from __future__ import annotations

import fractions
import os
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FETCHED_AUDIO = ROOT / ".cache" / "test-audio"
"""Where `make test-audio` puts the public recordings (see tools/test_audio.json)."""
SAMPLES = ROOT / "samples"
"""The short recordings the project makes itself (espeak-ng), present in every clone."""


def audio_dirs() -> list[Path]:
    """Where the real recordings are looked for, in order: $ASR_TEST_AUDIO_DIR, ../shared/audio
    beside the project, then the folder `make test-audio` fills."""
    env = os.environ.get("ASR_TEST_AUDIO_DIR")
    return [*([Path(env)] if env else []), ROOT.parent / "shared" / "audio", FETCHED_AUDIO]


def find_audio_dir(probe: str = "jfk.flac") -> Path:
    """The first folder that holds the recordings, or the fetch folder when none does (so that a
    message naming it points where `make test-audio` will put them)."""
    return next((d for d in audio_dirs() if (d / probe).is_file()), FETCHED_AUDIO)


SHARED_AUDIO = find_audio_dir()
MISSING_AUDIO = (
    "real recordings not found (looked in " + ", ".join(map(str, audio_dirs())) + "): "
    "run `make test-audio` to fetch them, or set ASR_TEST_AUDIO_DIR"
)


@dataclass(frozen=True)
class Recipe:
    """One way of storing audio: container format, audio codec, and an optional video track."""

    suffix: str
    container: str
    codec: str
    sample_format: str | None = None
    video_codec: str | None = None
    rate: int | None = None  # force this encoder rate (some codecs accept only a few)


RECIPES = {
    "wav": Recipe(".wav", "wav", "pcm_s16le"),
    "mp3": Recipe(".mp3", "mp3", "libmp3lame"),
    "m4a": Recipe(".m4a", "ipod", "aac"),
    "aac": Recipe(".aac", "adts", "aac"),
    "flac": Recipe(".flac", "flac", "flac"),
    "ogg-vorbis": Recipe(".ogg", "ogg", "vorbis"),
    "opus": Recipe(".opus", "ogg", "libopus", rate=48_000),
    "webm": Recipe(".webm", "webm", "libopus", video_codec="libvpx", rate=48_000),
    "mp4-video": Recipe(".mp4", "mp4", "aac", video_codec="libx264"),
    "mkv-video": Recipe(".mkv", "matroska", "flac", video_codec="mpeg4"),
    "mov-video": Recipe(".mov", "mov", "pcm_s16le", video_codec="mjpeg"),
}


def write_media(
    path: Path,
    samples: np.ndarray,
    rate: int,
    recipe: Recipe,
    layout: str | None = None,
) -> Path:
    """Encode float32 samples shaped (channels, n) into `path` following `recipe`."""
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    channels = samples.shape[0]
    layout = layout or {1: "mono", 2: "stereo", 6: "5.1"}.get(channels, f"{channels}c")
    enc_rate = recipe.rate or rate
    if enc_rate != rate:
        import soxr

        samples = np.stack([soxr.resample(c, rate, enc_rate) for c in samples]).astype(np.float32)
    with av.open(str(path), "w", format=recipe.container) as out:
        if recipe.video_codec:
            vs = out.add_stream(recipe.video_codec, rate=10)
            vs.width, vs.height = 64, 48
            vs.pix_fmt = "yuvj420p" if recipe.video_codec == "mjpeg" else "yuv420p"
        stream = out.add_stream(recipe.codec, rate=enc_rate, layout=layout)
        if recipe.codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}
        fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
        frame_n = stream.codec_context.frame_size or 1024
        pts = 0
        if recipe.video_codec:
            n_video = max(1, int(samples.shape[1] / enc_rate * 10))
            for i in range(n_video):
                img = np.full((48, 64, 3), (i * 7) % 255, dtype=np.uint8)
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts = i
                vf.time_base = fractions.Fraction(1, 10)
                for p in vs.encode(vf):
                    out.mux(p)
        for start in range(0, samples.shape[1], frame_n):
            block = samples[:, start : start + frame_n]
            frame = _frame(block, fmt, layout, enc_rate)
            frame.pts = pts
            frame.time_base = fractions.Fraction(1, enc_rate)
            pts += block.shape[1]
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
        if recipe.video_codec:
            for p in vs.encode(None):
                out.mux(p)
    return path


def _frame(block: np.ndarray, fmt: str, layout: str, rate: int) -> av.AudioFrame:
    planar = fmt.endswith("p")
    base = fmt.rstrip("p")
    conv = {
        "flt": lambda x: x.astype(np.float32),
        "dbl": lambda x: x.astype(np.float64),
        "s16": lambda x: np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16),
        "s32": lambda x: np.clip(np.round(x.astype(np.float64) * 2147483647), -2**31, 2**31 - 1).astype(np.int32),
        "u8": lambda x: np.clip(np.round(x * 127 + 128), 0, 255).astype(np.uint8),
    }[base]
    data = conv(block)
    arr = np.ascontiguousarray(data) if planar else np.ascontiguousarray(data.T.reshape(1, -1))
    frame = av.AudioFrame.from_ndarray(arr, format=fmt, layout=layout)
    frame.sample_rate = rate
    return frame


def write_wav_raw(path: Path, samples: np.ndarray, rate: int, sample_format: str = "s16") -> Path:
    """WAV in an exact PCM sample format (u8, s16, s24 via s32, f32, f64) through FFmpeg's muxer."""
    codec = {"u8": "pcm_u8", "s16": "pcm_s16le", "s24": "pcm_s24le", "s32": "pcm_s32le",
             "f32": "pcm_f32le", "f64": "pcm_f64le"}[sample_format]
    return write_media(path, samples, rate, Recipe(".wav", "wav", codec))


def write_pcm16_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """A plain 16-bit WAV written with the standard library (mono or (channels, n))."""
    x = np.atleast_2d(samples)
    data = np.clip(np.round(x.T * 32767), -32768, 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(x.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def load_reference(name: str) -> tuple[np.ndarray, int]:
    """A shared recording decoded in-process (no resampling): (channels, n) float32 and its rate."""
    frames = []
    with av.open(str(SHARED_AUDIO / name)) as c:
        rate = c.streams.audio[0].rate
        for f in c.decode(audio=0):
            a = f.to_ndarray()
            ch = len(f.layout.channels)
            if not f.format.is_planar:
                a = a.reshape(-1, ch).T
            frames.append(a)
    x = np.concatenate(frames, axis=1)
    scale = {np.dtype(np.int16): 1 / 32768, np.dtype(np.int32): 1 / 2**31}.get(x.dtype, 1.0)
    return (x.astype(np.float64) * scale).astype(np.float32), rate


def samples_mono_16k(path: Path) -> np.ndarray:
    """A file decoded with PyAV's own resampler to mono float32 at 16 kHz (test input only, so
    it does not depend on the decoder under test)."""
    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
        frames = [r.to_ndarray().reshape(-1) for f in c.decode(audio=0) for r in resampler.resample(f)]
        frames += [r.to_ndarray().reshape(-1) for r in resampler.resample(None)]
    return np.concatenate(frames).astype(np.float32)


def samples_speech(seconds: float, names: tuple[str, ...] | None = None) -> np.ndarray:
    """`seconds` of speech the repository makes itself, mono float32 at 16 kHz: the samples/
    recordings (all, or `names` in that order) joined with half-second pauses and repeated to
    length. It stands in for the real recordings on a fresh clone, where those are absent."""
    rate = 16_000
    files = [SAMPLES / n for n in names] if names else [f for f in sorted(SAMPLES.glob("*.*")) if f.suffix != ".py"]
    pause = np.zeros(rate // 2, np.float32)
    one = np.concatenate([p for f in files for p in (samples_mono_16k(f), pause)])
    n = int(round(seconds * rate))
    return np.tile(one, int(np.ceil(n / one.size)))[:n]


def repeat_encoded(src: Path, times: int, out: Path) -> Path:
    """A long file in seconds: the encoded packets of `src` written `times` over (no re-encoding)."""
    with av.open(str(src)) as i, av.open(str(out), "w", format=i.format.name.split(",")[0]) as o:
        ist = i.streams.audio[0]
        packets = [p for p in i.demux(ist) if p.size]
        ost = o.add_stream_from_template(ist)
        pts = [p.pts for p in packets]
        step = sum(p.duration for p in packets)
        for k in range(times):
            for p, t in zip(packets, pts):
                p.pts = p.dts = t + k * step
                p.stream = ost
                o.mux(p)
    return out
