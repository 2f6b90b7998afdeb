"""The front end's composition: the same plan on any number of cores, a typed summary, and
what it does to awkward audio (quiet, antiphase, dead channel, DC, several tracks, too short)."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from asr.errors import AudioTooLongError, InputError
from asr.frontend import FrontEnd, FrontEndSummary
from asr.media import decode
from asr.types import SAMPLE_RATE, TARGET_LUFS, AudioLimits
from tests.media import RECIPES, Recipe, write_media, write_pcm16_wav


def spans_of(plan) -> list[tuple[int, int]]:
    return [(s.start_sample, s.end_sample) for p in plan.chunks for s in p.chunk.spans]


@pytest.fixture(scope="module")
def five_minutes(speech60) -> np.ndarray:
    x, _ = speech60
    return np.tile(x[0], 5)


def test_plan_is_identical_for_any_core_count_and_for_the_sequential_decoder(tmp_path, five_minutes):
    """WAV seeks exactly: its ranges are decoded by separate children. NUT is decoded by one
    sequential child. Same samples in both, so the plans must match to the sample."""
    wav = write_pcm16_wav(tmp_path / "five.wav", five_minutes, SAMPLE_RATE)
    nut = write_media(tmp_path / "five.nut", five_minutes[None], SAMPLE_RATE, Recipe(".nut", "nut", "pcm_s16le"))
    plans = {}
    for name, path, workers in (("wav1", wav, 1), ("wav3", wav, 3), ("nut", nut, 2)):
        run = FrontEnd(workers=workers).run(path)
        chunks = list(run)
        plans[name] = (spans_of(type("P", (), {"chunks": chunks})), run.summary)
    assert plans["wav3"][1].timings.workers == 3 and plans["wav1"][1].timings.workers == 1
    assert not plans["nut"][1].stream.seekable and plans["wav3"][1].stream.seekable
    assert plans["wav1"][0] == plans["wav3"][0] == plans["nut"][0]
    assert len(plans["wav1"][0]) > 20
    assert plans["wav1"][1].speech_s == plans["wav3"][1].speech_s == plans["nut"][1].speech_s


def test_chunks_stream_before_decoding_ends_and_summary_is_typed(tmp_path, five_minutes):
    path = write_media(tmp_path / "five.mp3", five_minutes[None], SAMPLE_RATE, RECIPES["mp3"])
    decoded = []
    run = FrontEnd(workers=2).run(path, progress=lambda stage, done, total: decoded.append(done),
                                  keep_audio=True, display_name="talk.mp3")
    with pytest.raises(RuntimeError):
        run.summary
    gen = iter(run)
    first = next(gen)
    decoded_at_first_chunk = max(decoded)
    rest = []
    while True:
        try:
            rest.append(next(gen))
        except StopIteration as stop:
            returned = stop.value
            break
    assert isinstance(returned, FrontEndSummary) and returned is run.summary
    s = run.summary
    assert decoded_at_first_chunk < s.duration_s - 30, "the first chunk waited for the whole file"
    assert s.chunks == 1 + len(rest) == run.chunks_total
    starts = [c.chunk.start_s for c in [first, *rest]]
    assert starts == sorted(starts)
    assert s.audio is not None and s.audio.size == round(s.duration_s * SAMPLE_RATE)
    assert abs(s.duration_s - 300) < 0.2 and s.warnings == ()
    assert s.timings.decode_vad_s > 0 and s.timings.workers == 2
    with pytest.raises(AttributeError):
        s.speech_s = 0  # frozen


def test_too_little_audio_is_a_clear_error_naming_the_file(tmp_path):
    empty = write_pcm16_wav(tmp_path / "tmpk73nzwl-empty.wav", np.zeros(0, np.float32), SAMPLE_RATE)
    with pytest.raises(InputError, match="'upload.wav' holds no audio"):
        FrontEnd().plan(empty, display_name="upload.wav")
    short = write_pcm16_wav(tmp_path / "short.wav", np.full(800, 0.1, np.float32), SAMPLE_RATE)
    with pytest.raises(InputError, match=r"only 0\.050 s of audio.*at least 0\.1 s"):
        FrontEnd().plan(short)


def test_duration_cap_tolerates_codec_padding(tmp_path):
    limits = AudioLimits(max_duration_s=10)
    x = np.zeros(SAMPLE_RATE * 10 + SAMPLE_RATE // 2, np.float32)
    assert decode(write_pcm16_wav(tmp_path / "padded.wav", x, SAMPLE_RATE), limits).duration_s == 10.5
    with pytest.raises(AudioTooLongError):
        decode(write_pcm16_wav(tmp_path / "over.wav", np.zeros(SAMPLE_RATE * 12, np.float32), SAMPLE_RATE), limits)


def test_quiet_recording_keeps_its_speech_and_reaches_the_target(tmp_path, speech60, frontend):
    x, _ = speech60
    normal = frontend.plan(write_pcm16_wav(tmp_path / "normal.wav", x[0], SAMPLE_RATE))
    quiet = frontend.plan(write_media(tmp_path / "quiet.flac", x * 10 ** (-35 / 20), SAMPLE_RATE, RECIPES["flac"]))
    assert quiet.speech_s == pytest.approx(normal.speech_s, rel=0.05)
    assert all(c.lufs is not None and abs(c.lufs - TARGET_LUFS) <= 1.0 for c in quiet.chunks)
    # ...while silence and noise are not turned into speech.
    rng = np.random.default_rng(1)
    noise = (0.003 * rng.standard_normal(SAMPLE_RATE * 20)).astype(np.float32)
    silence = np.zeros(SAMPLE_RATE * 20, np.float32)
    for name, y in (("noise.wav", noise), ("silence.wav", silence)):
        assert frontend.plan(write_pcm16_wav(tmp_path / name, y, SAMPLE_RATE)).chunks == ()


@pytest.mark.parametrize("right_gain", [-1.0, -0.9])
def test_antiphase_stereo_does_not_cancel_speech(tmp_path, speech60, frontend, right_gain):
    x, _ = speech60
    speech = x[0, : SAMPLE_RATE * 20] * 0.5
    path = write_pcm16_wav(tmp_path / "phase.wav", np.stack([speech, right_gain * speech]), SAMPLE_RATE)
    run = frontend.run(path)
    chunks = list(run)
    assert run.summary.speech_s > 15, run.summary
    assert any("out of phase" in w for w in run.summary.warnings), run.summary.warnings
    assert len(chunks) >= 1


def test_dead_channel_is_left_out_with_a_warning(tmp_path, speech60, frontend):
    x, _ = speech60
    speech = x[0, : SAMPLE_RATE * 10]
    path = write_pcm16_wav(tmp_path / "left.wav", np.stack([speech, np.zeros_like(speech)]), SAMPLE_RATE)
    run = frontend.run(path, display_name="interview.wav")
    list(run)
    assert any("Channel 2 of 'interview.wav'" in w and "silent" in w for w in run.summary.warnings)


def test_a_noise_only_channel_is_left_out_with_a_warning(tmp_path, speech60, frontend):
    """A channel of loud hiss beside the speech (a dead microphone's preamp, a broken cable) would
    halve the speech and add the hiss in an equal-weight downmix."""
    x, _ = speech60
    speech = x[0, : SAMPLE_RATE * 30]
    rms = float(np.sqrt(np.mean(speech**2)))
    hiss = (2 * rms * np.random.default_rng(3).standard_normal(speech.size)).astype(np.float32)
    clean = frontend.plan(write_pcm16_wav(tmp_path / "mono.wav", speech, SAMPLE_RATE))
    run = frontend.run(write_pcm16_wav(tmp_path / "hiss.wav", np.stack([speech, hiss]), SAMPLE_RATE),
                       display_name="call.wav")
    chunks = list(run)
    assert run.summary.speech_s == pytest.approx(clean.speech_s, rel=0.05)
    # what the model hears is the speech, not speech under hiss
    a, b = clean.chunks[0], chunks[0]
    assert a.chunk.spans[0].start_sample == b.chunk.spans[0].start_sample
    n = min(a.samples.size, b.samples.size, 5 * SAMPLE_RATE)
    assert np.corrcoef(a.samples[:n], b.samples[:n])[0, 1] > 0.95
    assert any("Channel 2 of 'call.wav'" in w and "only noise" in w for w in run.summary.warnings), run.summary.warnings
    # speech on both sides, each with its own faint room noise: an ordinary stereo file, left alone
    room = (0.05 * rms * np.random.default_rng(4).standard_normal((2, speech.size))).astype(np.float32)
    run = frontend.run(write_pcm16_wav(tmp_path / "stereo.wav", np.stack([speech, 0.8 * speech]) + room, SAMPLE_RATE))
    list(run)
    assert not any("Channel" in w for w in run.summary.warnings), run.summary.warnings


def test_dc_offset_is_removed_before_vad(tmp_path, speech60, frontend):
    x, _ = speech60
    speech = x[0, : SAMPLE_RATE * 20]
    clean = frontend.plan(write_pcm16_wav(tmp_path / "clean.wav", 0.5 * speech, SAMPLE_RATE))
    shifted_path = write_pcm16_wav(tmp_path / "dc.wav", 0.5 * speech + 0.3, SAMPLE_RATE)
    assert abs(float(decode(shifted_path).samples.mean())) < 1e-3
    shifted = frontend.plan(shifted_path)
    assert shifted.speech_s == pytest.approx(clean.speech_s, rel=0.02)


def test_default_track_is_used_and_the_choice_reported(tmp_path, speech60, frontend):
    """First track silent, second marked default (the issue's video case)."""
    x, _ = speech60
    speech = x[0, : SAMPLE_RATE * 8]
    path = tmp_path / "film.mkv"
    with av.open(str(path), "w", format="matroska") as out:
        tracks = [out.add_stream("flac", rate=SAMPLE_RATE, layout="mono") for _ in range(2)]
        tracks[0].disposition = 0
        tracks[1].disposition = av.stream.Disposition.default
        for i in range(0, speech.size, 4096):
            for track, data in zip(tracks, (np.zeros_like(speech), speech)):
                block = np.round(data[i : i + 4096] * 32767).astype(np.int16)[None]
                frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, i, fractions.Fraction(1, SAMPLE_RATE)
                for p in track.encode(frame):
                    out.mux(p)
        for track in tracks:
            for p in track.encode(None):
                out.mux(p)
    run = frontend.run(path, display_name="film.mkv")
    chunks = list(run)
    assert run.summary.speech_s > 5 and chunks
    assert run.summary.stream.stream_index == 1
    assert any("2 audio tracks" in w and "track 2" in w for w in run.summary.warnings), run.summary.warnings


def test_non_finite_samples_are_reported(tmp_path, frontend):
    from tests.media import write_wav_raw

    x = (0.3 * np.sin(np.arange(SAMPLE_RATE * 2) / 10)).astype(np.float32)
    x[1000:1100] = np.nan
    run = frontend.run(write_wav_raw(tmp_path / "nan.wav", x, SAMPLE_RATE, "f32"))
    list(run)
    assert any("100 invalid (non-finite) samples" in w for w in run.summary.warnings), run.summary.warnings
