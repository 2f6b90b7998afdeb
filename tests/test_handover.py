"""The hand-over between the decoder children and the parent: the children cut and normalise the
chunks, the parent only plans them, and the plan is the one the parts compute on the whole
recording (the golden reference: decode everything, score it, track spans, pack, normalise)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asr.errors import DecoderFailure
from asr.frontend import FrontEnd
from asr.frontend.chunking import chunk_audio, plan_chunks
from asr.frontend.loudness import normalise
from asr.frontend.vad import SileroVad, spans_from_probabilities
from asr.media import decode
from asr.media.policy import SEGMENT_SAMPLES
from asr.types import SAMPLE_RATE
from tests.media import RECIPES, repeat_encoded, write_media
from tests.test_hostile import busy_decoder_children, decoder_children

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ten_minutes_mp3(speech60, tmp_path_factory) -> Path:
    """Ten minutes of MP3 (the 60 s clip's packets repeated): ten ranges, speech across each
    range boundary (the clip's 60 s do not line up with the 61.44 s grid)."""
    x, rate = speech60
    d = tmp_path_factory.mktemp("handover")
    return repeat_encoded(write_media(d / "one.mp3", x, rate, RECIPES["mp3"]), 10, d / "ten.mp3")


def reference_plan(path: Path):
    """The plan computed the way the front end computed it before the hand-over, from its parts
    on the whole decoded recording: [(chunk, normalised samples, lufs)]."""
    audio = decode(path, workers=1).samples
    spans = spans_from_probabilities(SileroVad().probabilities(audio), audio.size)
    out = []
    for chunk in plan_chunks(spans, audio):
        n = normalise(chunk_audio(audio, chunk))
        out.append((chunk, n.samples, n.lufs))
    return out, audio.size


@pytest.mark.parametrize("name", ["jfk.flac", "test.mp3", "test.wav", "test.opus", "ten.mp3"])
def test_plan_equals_the_whole_recording_reference(name, shared_audio, ten_minutes_mp3):
    path = ten_minutes_mp3 if name == "ten.mp3" else shared_audio / name
    expected, total = reference_plan(path)
    run = FrontEnd(workers=3).run(path)
    got = list(run)
    assert [c.chunk for c in got] == [c for c, _, _ in expected]  # same spans, same boundaries
    for c, (_, samples, lufs) in zip(got, expected):
        assert (c.lufs is None) == (lufs is None)
        if lufs is not None:
            assert abs(c.lufs - lufs) <= 0.1
        np.testing.assert_allclose(c.samples, samples, atol=1e-6)
    spans = [s for c in got for s in c.chunk.spans]
    assert all(a.end_sample <= b.start_sample for a, b in zip(spans, spans[1:]))  # each span in one chunk
    assert run.summary.duration_s == total / SAMPLE_RATE
    if name == "ten.mp3":
        assert len(got) > 20
        # the boundary rule: one tracker in the parent settles every span, so a span that runs
        # across a range boundary stays one span (cut only by the packer's 20 s limit)
        crossing = [s for s in spans if s.start_sample // SEGMENT_SAMPLES != (s.end_sample - 1) // SEGMENT_SAMPLES]
        assert crossing


def test_first_chunk_arrives_long_before_decoding_ends(ten_minutes_mp3):
    run = FrontEnd(workers=2).run(ten_minutes_mp3)
    chunks = list(run)
    t = run.summary.timings
    assert t.first_chunk_s is not None and t.loudness_s > 0
    assert t.first_chunk_s < 0.5 * t.decode_vad_s, t  # after the first range, not the tenth
    assert len(chunks) == run.summary.chunks


def test_parent_does_no_per_sample_work():
    """Loudness runs in the children: planning a file never imports pyloudnorm or scipy's
    filters into the parent (they would share the model's process and GIL)."""
    code = (
        "import sys; from asr.frontend import FrontEnd;"
        f"plan = FrontEnd(workers=2).plan({str(ROOT / 'samples' / 'en.mp3')!r});"
        "assert plan.chunks and all(c.lufs is not None for c in plan.chunks), plan;"
        "bad = [m for m in ('pyloudnorm', 'scipy.signal', 'scipy.ndimage') if m in sys.modules];"
        "assert not bad, bad"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_a_child_killed_while_finishing_chunks_fails_clearly(ten_minutes_mp3):
    run = FrontEnd(workers=2).run(ten_minutes_mp3, display_name="talk.mp3")
    gen = iter(run)
    next(gen)
    for pid in decoder_children():
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(DecoderFailure, match="talk.mp3"):
        for _ in gen:
            pass
    assert decoder_children() == []


def test_closing_early_stops_the_children(ten_minutes_mp3):
    """Closed early, the file's children are killed and reaped, not kept warm for another file."""
    gen = iter(FrontEnd(workers=2).run(ten_minutes_mp3))
    next(gen)
    busy = busy_decoder_children()
    assert len(busy) == 2
    gen.close()
    assert busy_decoder_children() == []
    assert not set(busy) & set(decoder_children())
