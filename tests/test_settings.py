"""asr.settings: every ASR_* variable read in one place, typed, with errors that name it."""

from __future__ import annotations

import pytest

from asr import settings
from asr.types import AudioLimits


def test_defaults_when_unset(monkeypatch):
    for name in ("ASR_MODEL", "ASR_LID_MODEL", "ASR_DIAR_MODEL", "ASR_DEVICE", "ASR_BATCH_SIZE",
                 "ASR_XATTN_CACHE", "ASR_FRONTEND_WORKERS", "ASR_MAX_DURATION_S"):
        monkeypatch.delenv(name, raising=False)
    assert settings.model_spec() == "nvidia/canary-1b-v2"
    assert settings.lid_model() == "langid_ambernet"
    assert settings.diar_model() == "nvidia/diar_streaming_sortformer_4spk-v2"
    assert (settings.device(), settings.batch_size(), settings.xattn_cache()) == ("auto", None, True)
    assert settings.frontend_workers() is None
    assert AudioLimits.from_env().max_duration_s == 4 * 3600


def test_none_turns_an_optional_model_off_and_a_flag_wins(monkeypatch):
    monkeypatch.setenv("ASR_LID_MODEL", "None")
    monkeypatch.setenv("ASR_DIAR_MODEL", " /models/diar.nemo ")
    assert settings.lid_model() is None
    assert settings.lid_model("/models/lid.nemo") == "/models/lid.nemo"  # the CLI's --lid-model
    assert settings.diar_model() == "/models/diar.nemo"
    assert settings.diar_model("none") is None


@pytest.mark.parametrize("name, value, message", [
    ("ASR_BATCH_SIZE", "many", "ASR_BATCH_SIZE='many' is not a whole number"),
    ("ASR_BATCH_SIZE", "0", "ASR_BATCH_SIZE must be at least 1"),
    ("ASR_XATTN_CACHE", "maybe", "ASR_XATTN_CACHE='maybe' is not one of"),
    ("ASR_MAX_DURATION_S", "4h", "ASR_MAX_DURATION_S='4h' is not a number"),
])
def test_bad_values_name_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    read = {"ASR_BATCH_SIZE": settings.batch_size, "ASR_XATTN_CACHE": settings.xattn_cache,
            "ASR_MAX_DURATION_S": AudioLimits.from_env}[name]
    with pytest.raises(ValueError, match=message):
        read()
