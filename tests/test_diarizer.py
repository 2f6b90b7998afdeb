"""The Streaming Sortformer diarizer, restored from a tiny .nemo through the real loader."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from asr.errors import ModelLoadError
from asr.post.speakers import assign_speakers
from asr.types import SAMPLE_RATE, Segment, Word

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def diarizer(tmp_path_factory):
    from asr.models.diarizer import Diarizer
    from asr.testing.sortformer import build_tiny_sortformer

    path = build_tiny_sortformer(tmp_path_factory.mktemp("sortformer") / "tiny.nemo")
    return Diarizer.load(str(path), device="cpu")


@pytest.fixture(scope="module")
def jfk(shared_audio) -> np.ndarray:
    """A real voice: the tiny diarizer's slots follow the spectral tilt of human speech, which
    the project's synthetic samples do not have (their frames fall either side of the line)."""
    from asr.media import decode

    return decode(shared_audio / "jfk.flac").samples


def test_frame_probabilities_cover_the_recording(diarizer, voice_16k):
    act = diarizer.diarize(voice_16k)
    duration_s = voice_16k.size / SAMPLE_RATE
    assert act.frame_s == pytest.approx(0.08)
    assert act.probabilities.dtype == np.float32
    assert act.probabilities.shape[1] == 4
    assert abs(act.duration_s - duration_s) <= act.frame_s
    assert np.all((act.probabilities >= 0) & (act.probabilities <= 1))


@pytest.mark.parametrize("async_streaming", [False, True])
def test_same_probabilities_as_nemos_own_streaming_forward(diarizer, speech_16k, async_streaming, monkeypatch):
    # window-by-window features + NeMo's streaming step == NeMo's forward over the whole file,
    # in both of NeMo's state-update modes (checkpoints set `async_streaming` either way)
    monkeypatch.setattr(diarizer.model, "async_streaming", async_streaming)
    audio = speech_16k[: 40 * SAMPLE_RATE]
    ours = diarizer.diarize(audio).probabilities
    with torch.inference_mode():
        ref = diarizer.model.forward(torch.from_numpy(audio)[None], torch.tensor([audio.size]))[0].numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_a_voice_and_the_same_voice_an_octave_up_are_two_speakers(diarizer, jfk):
    # the tiny model's slots follow spectral tilt (asr.testing.sortformer): a real voice, a
    # second of silence, the voice resampled an octave up, silence, the real voice again
    high = soxr.resample(jfk, SAMPLE_RATE, SAMPLE_RATE // 2).astype(np.float32)
    gap = np.zeros(SAMPLE_RATE, dtype=np.float32)
    audio = np.concatenate([jfk, gap, high, gap, jfk])
    act = diarizer.diarize(audio)
    t1 = jfk.size / SAMPLE_RATE + 1.0
    t2 = t1 + high.size / SAMPLE_RATE + 1.0
    spans = [(0.5, t1 - 1.5), (t1 + 0.5, t2 - 1.5), (t2 + 0.5, t2 + 10.0)]
    words = [Word(a + k * 0.5, a + k * 0.5 + 0.3, f"w{i}{k}") for i, (a, b) in enumerate(spans)
             for k in range(int((b - a) / 0.5))]
    segments = [Segment(words[0].start_s, words[-1].end_s, " ".join(w.text for w in words), tuple(words))]
    r = assign_speakers(segments, act)
    by_span = [{w.speaker for s in r.segments for w in s.words if w.text.startswith(f"w{i}")} for i in range(3)]
    assert by_span == [{"SPEAKER_1"}, {"SPEAKER_2"}, {"SPEAKER_1"}]
    assert [k.speaker for k in r.speakers] == ["SPEAKER_1", "SPEAKER_2"]


def test_streaming_memory_does_not_grow_with_the_recording(diarizer, speech_16k):
    # every streaming step sees at most chunk + contexts of new features and a state bounded by
    # the speaker cache and FIFO, however long the recording: record what each step receives
    clip = speech_16k
    audio = np.resize(clip, 100 * SAMPLE_RATE).astype(np.float32)
    sm = diarizer.model.sortformer_modules
    seen_windows, seen_state = [], []
    pre, step = diarizer.model.preprocessor.forward, diarizer.model.forward_streaming_step

    def preprocessor(*, input_signal, length):
        seen_windows.append(input_signal.shape[1])
        return pre(input_signal=input_signal, length=length)

    def streaming_step(**kw):
        state = kw["streaming_state"]
        seen_state.append(state.spkcache.shape[1] + state.fifo.shape[1])
        return step(**kw)

    diarizer.model.preprocessor.forward = preprocessor
    diarizer.model.forward_streaming_step = streaming_step
    try:
        act = diarizer.diarize(audio)
    finally:
        del diarizer.model.preprocessor.forward, diarizer.model.forward_streaming_step
    sub = sm.subsampling_factor
    window_frames = (sm.chunk_len + sm.chunk_left_context + sm.chunk_right_context) * sub + 8
    assert len(seen_state) == int(np.ceil(100 / (sm.chunk_len * 0.08)))
    assert max(seen_windows) <= window_frames * 160
    assert max(seen_state) <= sm.spkcache_len + sm.fifo_len
    assert seen_state[-1] == sm.spkcache_len + sm.fifo_len  # the cache filled, and stayed bounded
    assert act.probabilities.shape[0] == int(np.ceil(100 / 0.08))


def test_silence_and_very_short_audio(diarizer):
    act = diarizer.diarize(np.zeros(3 * SAMPLE_RATE, dtype=np.float32))
    assert act.probabilities.shape == (int(np.ceil(3 / 0.08)), 4)
    assert act.num_speakers() == 0
    assert diarizer.diarize(np.zeros(100, dtype=np.float32)).probabilities.shape[1] == 4


def test_a_missing_model_names_the_variable(tmp_path):
    from asr.models.diarizer import Diarizer

    with pytest.raises(ModelLoadError, match="ASR_DIAR_MODEL"):
        Diarizer.load(str(tmp_path / "absent.nemo"), device="cpu")
