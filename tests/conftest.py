from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.media import MISSING_AUDIO, SHARED_AUDIO, load_reference, samples_speech  # noqa: E402


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    """The real recordings: $ASR_TEST_AUDIO_DIR, ../shared/audio, or what `make test-audio` fetched."""
    if not (SHARED_AUDIO / "jfk.flac").is_file():
        pytest.skip(MISSING_AUDIO)
    return SHARED_AUDIO


@pytest.fixture(scope="session")
def jfk(shared_audio) -> tuple[np.ndarray, int]:
    """JFK's 11 s excerpt, (2, n) float32 at 44.1 kHz."""
    return load_reference("jfk.flac")


@pytest.fixture(scope="session")
def speech60(shared_audio) -> tuple[np.ndarray, int]:
    """Silero's 60 s test clip, (1, n) float32 at 16 kHz."""
    return load_reference("test.wav")


def have_real_audio() -> bool:
    return (SHARED_AUDIO / "jfk.flac").is_file() and (SHARED_AUDIO / "test.wav").is_file()


@pytest.fixture(scope="session")
def speech_16k() -> np.ndarray:
    """About 60 s of speech, mono float32 at 16 kHz, in every clone: Silero's test.wav when the
    real recordings are present, else speech made from samples/ (tests.media.samples_speech)."""
    if have_real_audio():
        return load_reference("test.wav")[0][0]
    return samples_speech(60.0)


@pytest.fixture(scope="session")
def voice_16k() -> np.ndarray:
    """One speaker for about 11 s, mono float32 at 16 kHz: JFK's excerpt when the real
    recordings are present, else the English and German samples (one synthetic voice)."""
    if have_real_audio():
        from asr.media import decode

        return decode(SHARED_AUDIO / "jfk.flac").samples
    return samples_speech(11.0, ("en.mp3", "de.m4a"))


@pytest.fixture(scope="session")
def frontend():
    from asr.frontend import FrontEnd

    return FrontEnd()


# ------------------------------------------------------------------------------------------
# The tiny models (Canary-, Parakeet-TDT- and CTC-shaped), and the real Cog HTTP server.
# ------------------------------------------------------------------------------------------

from tests.service import ensure_tiny_model, start_server, stop_server  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """Built with `python -m asr tiny-model` (cached under .cache, keyed by the builder's source)."""
    return ensure_tiny_model()


@pytest.fixture(scope="session")
def tiny_parakeet() -> Path:
    return ensure_tiny_model("parakeet-tdt")


@pytest.fixture(scope="session")
def tiny_ctc() -> Path:
    return ensure_tiny_model("ctc")


@pytest.fixture(scope="session")
def tiny_langid() -> Path:
    return ensure_tiny_model("langid")


@pytest.fixture(scope="session")
def tiny_sortformer() -> Path:
    return ensure_tiny_model("sortformer")


@pytest.fixture(scope="session", autouse=True)
def tiny_helper_models(tiny_langid, tiny_sortformer):
    """The language identifier and the diarizer every Transcriber, server and CLI run in the
    tests loads (their defaults are NVIDIA's real checkpoints, which cannot be fetched here)."""
    import os

    saved = {k: os.environ.get(k) for k in ("ASR_LID_MODEL", "ASR_DIAR_MODEL")}
    os.environ["ASR_LID_MODEL"] = str(tiny_langid)
    os.environ["ASR_DIAR_MODEL"] = str(tiny_sortformer)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def transcriber(tiny_model, tiny_helper_models):
    from asr.pipeline import Transcriber

    return Transcriber.load(str(tiny_model), device="cpu")


@pytest.fixture(scope="session")
def server(tiny_model, tiny_parakeet, tiny_ctc, tmp_path_factory):
    """The service as deployed, with the three tiny models (Canary first, the default), limits
    lowered so hostile cases finish fast, the decoder's fault-injection hook on, and a private
    temp directory so leftovers can be counted."""
    base = tmp_path_factory.mktemp("server")
    tmpdir = base / "tmp"
    tmpdir.mkdir()
    env = {"ASR_FAULT_INJECTION": "1", "ASR_DECODE_TIMEOUT_S": "20", "ASR_MAX_DURATION_S": "1800",
           "TMPDIR": str(tmpdir), "ASR_SWEEP_STALE_S": "3", "ASR_SWEEP_INTERVAL_S": "1"}
    srv = start_server(f"{tiny_model},{tiny_parakeet},{tiny_ctc}", base / "server.log", env=env)
    srv.tmpdir = tmpdir
    assert srv.health() == "READY", srv.log()[-3000:]
    yield srv
    stop_server(srv)


@pytest.fixture(autouse=True)
def server_ready_between_tests(request):
    """Every test that uses the shared server starts and ends with it READY: coglet frees the
    slot just after it answers, so a test ending on a prediction would otherwise hand the next
    test a BUSY server (and a 409) now and then."""
    if "server" not in request.fixturenames:
        yield
        return
    srv = request.getfixturevalue("server")
    assert srv.ready(within_s=60), "the server was not READY before the test"
    yield
    assert srv.ready(within_s=60), "the server did not come back READY after the test"
