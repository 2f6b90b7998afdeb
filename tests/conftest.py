from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.media import SHARED_AUDIO, load_reference  # noqa: E402


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    """The real recordings beside the project (../shared/audio, or $ASR_TEST_AUDIO_DIR)."""
    if not (SHARED_AUDIO / "jfk.flac").is_file():
        pytest.skip(f"real recordings not found in {SHARED_AUDIO} (set ASR_TEST_AUDIO_DIR)")
    return SHARED_AUDIO


@pytest.fixture(scope="session")
def jfk(shared_audio) -> tuple[np.ndarray, int]:
    """JFK's 11 s excerpt, (2, n) float32 at 44.1 kHz."""
    return load_reference("jfk.flac")


@pytest.fixture(scope="session")
def speech60(shared_audio) -> tuple[np.ndarray, int]:
    """Silero's 60 s test clip, (1, n) float32 at 16 kHz."""
    return load_reference("test.wav")


@pytest.fixture(scope="session")
def frontend():
    from asr.frontend import FrontEnd

    return FrontEnd()
