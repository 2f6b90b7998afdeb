"""Decoding: every listed container, channel layouts, rates, sample formats, and bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soxr

from asr.media import decode
from asr.errors import AudioTooLongError, InputError
from asr.types import SAMPLE_RATE, AudioLimits
from tests.media import RECIPES, Recipe, load_reference, write_media, write_pcm16_wav, write_wav_raw


def _best_alignment(a: np.ndarray, b: np.ndarray, max_lag: int = 4000) -> float:
    """Highest normalised correlation between a window of b and a at any lag up to max_lag
    samples either way (codecs add priming delay; ADTS AAC keeps it, MP4 trims it)."""
    ref = b[max_lag : b.size - max_lag]
    scores = np.correlate(a[: ref.size + 2 * max_lag], ref, "valid")
    i = int(np.argmax(scores))
    seg = a[i : i + ref.size]
    return float(scores[i] / (np.linalg.norm(seg) * np.linalg.norm(ref) + 1e-12))


@pytest.mark.parametrize("name, seconds", [("jfk.flac", 11.0), ("test.wav", 60.0), ("test.opus", 8.064), ("test.mp3", 2.534)])
def test_shared_recordings_decode_to_their_length(shared_audio, name, seconds):
    audio = decode(shared_audio / name)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert abs(audio.duration_s - seconds) < 0.03
    assert np.isfinite(audio.samples).all()
    assert 0.05 < np.abs(audio.samples).max() <= 1.0


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_container_decodes_to_the_same_speech(tmp_path, jfk, recipe):
    x, rate = jfk
    excerpt = x[:, : 4 * rate]
    path = write_media(tmp_path / f"speech{RECIPES[recipe].suffix}", excerpt, rate, RECIPES[recipe])
    audio = decode(path)
    assert audio.info.channels == 2
    # AAC adds up to ~50 ms of priming/padding; everything else is sample-exact in length.
    assert abs(audio.duration_s - 4.0) < 0.06, audio.duration_s
    expected = soxr.resample(excerpt.mean(axis=0), rate, SAMPLE_RATE)
    assert _best_alignment(audio.samples, expected) > 0.9


def test_stereo_is_averaged_dead_channels_left_out_and_lfe_ignored(tmp_path):
    n = SAMPLE_RATE
    t = np.arange(n) / SAMPLE_RATE
    tone = 0.5 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    both = np.stack([tone, 0.5 * tone])
    a = decode(write_pcm16_wav(tmp_path / "both.wav", both, SAMPLE_RATE))
    assert np.allclose(a.samples, 0.75 * tone, atol=2e-4)
    assert all(r.dropped_channels == () for r in a.ranges)

    # A dead channel is left out instead of halving the speech.
    stereo = np.stack([tone, np.zeros(n, np.float32)])
    a = decode(write_pcm16_wav(tmp_path / "st.wav", stereo, SAMPLE_RATE))
    assert np.allclose(a.samples, tone, atol=2e-4)
    assert a.ranges[0].dropped_channels == (1,)

    # 5.1: FL FR FC LFE BL BR. A loud rumble on the LFE channel must not reach the mix.
    six = np.zeros((6, n), np.float32)
    six[2] = tone
    six[3] = 0.9 * np.sin(2 * np.pi * 40 * t)
    six[[0, 1, 4, 5]] = 0.3 * tone
    path = write_media(tmp_path / "six.wav", six, SAMPLE_RATE, Recipe(".wav", "wav", "pcm_s16le"), layout="5.1")
    a = decode(path)
    assert a.info.channels == 6
    assert np.allclose(a.samples, (tone + 4 * 0.3 * tone) / 5, atol=3e-4)


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000])
def test_any_rate_becomes_16k_with_the_pitch_kept(tmp_path, rate):
    t = np.arange(int(1.5 * rate)) / rate
    tone = (0.4 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    a = decode(write_pcm16_wav(tmp_path / f"tone{rate}.wav", tone, rate)).samples
    assert abs(a.size - int(1.5 * SAMPLE_RATE)) <= 2
    spectrum = np.abs(np.fft.rfft(a[2000:-2000]))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / (a.size - 4000)
    assert abs(peak_hz - 1000) < 2
    assert abs(np.sqrt(np.mean(a[2000:-2000] ** 2)) - 0.4 / np.sqrt(2)) < 0.01


@pytest.mark.parametrize("sample_format", ["u8", "s16", "s24", "s32", "f32", "f64"])
def test_sample_formats_keep_their_scale(tmp_path, sample_format):
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    a = decode(write_wav_raw(tmp_path / "f.wav", tone, SAMPLE_RATE, sample_format)).samples
    tol = 0.02 if sample_format == "u8" else 1e-3
    assert np.max(np.abs(a - tone)) < tol


@pytest.mark.parametrize("rate", [16000, 44100])
def test_float_wav_with_nan_and_inf_decodes_finite(tmp_path, rate):
    x = (0.3 * np.sin(np.arange(rate) / 10)).astype(np.float32)
    x[1000:1100] = np.nan
    x[3000] = np.inf
    x[3001] = -np.inf
    a = decode(write_wav_raw(tmp_path / "nan.wav", x, rate, "f32"))
    assert np.isfinite(a.samples).all()
    assert sum(r.nonfinite_samples for r in a.ranges) == 102
    # The rest of the signal survives (resampling did not smear the bad samples over it).
    assert np.abs(a.samples[SAMPLE_RATE // 2 :]).max() > 0.25


def test_duration_cap_counts_decoded_samples_and_stops_early(tmp_path):
    # 2 hours of 8 kHz silence compresses to a small FLAC; the cap must stop decoding early.
    silence = np.zeros((1, 8000 * 7200), np.float32)
    path = write_media(tmp_path / "long.flac", silence, 8000, RECIPES["flac"])
    assert path.stat().st_size < 3_000_000
    start = time.monotonic()
    with pytest.raises(AudioTooLongError) as e:
        decode(path, AudioLimits(max_duration_s=120))
    assert time.monotonic() - start < 10
    assert "2 min" in str(e.value) and "limit" in str(e.value)


def test_header_that_understates_the_length_is_not_trusted(tmp_path):
    # A WAV whose RIFF/data sizes claim 1 s but which holds 30 s (streamed WAVs look like this).
    x = (0.1 * np.random.default_rng(0).standard_normal(SAMPLE_RATE * 30)).astype(np.float32)
    path = write_pcm16_wav(tmp_path / "lie.wav", x, SAMPLE_RATE)
    raw = bytearray(path.read_bytes())
    data_at = raw.index(b"data")
    raw[data_at + 4 : data_at + 8] = (0xFFFFFFFF).to_bytes(4, "little")  # "unknown size" marker
    path.write_bytes(bytes(raw))
    a = decode(path)
    assert abs(a.duration_s - 30.0) < 0.01
    with pytest.raises(AudioTooLongError):
        decode(path, AudioLimits(max_duration_s=10))


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"", "empty"),
        (b"hello, this is a text file and not audio\n" * 20, "is a text file, not audio"),
        (bytes(np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8)), "could not read"),
        (b"ffconcat version 1.0\nfile '/etc/passwd'\n", "an FFmpeg concat list"),
    ],
    ids=["empty", "text", "random-bytes", "concat-list"],
)
def test_bad_input_gives_a_clear_error(tmp_path, content, needle):
    path = tmp_path / "upload.mp3"
    path.write_bytes(content)
    with pytest.raises(InputError) as e:
        decode(path)
    message = str(e.value)
    assert needle in message
    assert "upload.mp3" in message
    assert str(tmp_path) not in message  # no server paths leak into user-facing errors


def test_truncated_file_keeps_what_was_decodable(tmp_path, jfk):
    x, rate = jfk
    path = write_media(tmp_path / "cut.mp3", x, rate, RECIPES["mp3"])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    a = decode(path)
    assert 4.5 < a.duration_s < 6.5


def test_truncated_header_is_an_error(tmp_path, jfk):
    x, rate = jfk
    path = write_media(tmp_path / "h.m4a", x, rate, RECIPES["m4a"])
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(InputError):
        decode(path)


def test_video_without_audio_is_an_error(tmp_path):
    import av

    path = tmp_path / "silent-film.mp4"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=10)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    with pytest.raises(InputError) as e:
        decode(path)
    assert "no audio stream" in str(e.value) and "video" in str(e.value)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(InputError):
        decode(tmp_path / "nope.wav")


def test_reference_loader_matches_decoder_on_16k_wav(shared_audio):
    x, rate = load_reference("test.wav")
    a = decode(shared_audio / "test.wav").samples
    assert rate == SAMPLE_RATE and a.size == x.shape[1]
    # The decoder removes DC offset per cell of DC_CELL_SAMPLES; otherwise the samples are the file's.
    from asr.media.child import DC_CELL_SAMPLES

    ref = x[0].astype(np.float64)
    for i in range(0, ref.size, DC_CELL_SAMPLES):
        ref[i : i + DC_CELL_SAMPLES] -= ref[i : i + DC_CELL_SAMPLES].mean()
    assert np.max(np.abs(a - ref)) < 1e-6
