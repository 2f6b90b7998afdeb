"""The only reader of `ASR_*` environment variables: each setting typed, defaulted and checked in
one place, with an error that names the variable and what it accepts.

Read at the moment a setting is needed (loading a model, starting a file), not at import, so a
server, a CLI run and a test each see the environment they were started with. The README's
tables list every variable.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "nvidia/canary-1b-v2"
DEFAULT_LID_MODEL = "langid_ambernet"
DEFAULT_DIAR_MODEL = "nvidia/diar_streaming_sortformer_4spk-v2"
DEFAULT_ACTIVITY_FILE = "/tmp/asr-activity.json"
OFF = "none"
"""Value of ASR_LID_MODEL / ASR_DIAR_MODEL that turns the language identifier / diarizer off."""


def text(name: str, default: str | None = None) -> str | None:
    """A string setting; unset or blank means `default`."""
    raw = os.environ.get(name, "").strip()
    return raw or default


def number(name: str, default: float) -> float:
    raw = text(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as e:
        raise ValueError(f"environment variable {name}={raw!r} is not a number") from e


def whole(name: str, default: int | None, minimum: int = 0) -> int | None:
    raw = text(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise ValueError(f"environment variable {name}={raw!r} is not a whole number") from e
    if value < minimum:
        raise ValueError(f"environment variable {name} must be at least {minimum}, not {value}")
    return value


def flag(name: str, default: bool) -> bool:
    raw = text(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"environment variable {name}={raw!r} is not one of 1, 0, true, false, yes, no, on, off")


# -- the settings, by the part that uses them ----------------------------------------------------

def model_spec() -> str:
    """ASR_MODEL: comma-separated Hugging Face names or .nemo paths (the first is the default)."""
    return text("ASR_MODEL", DEFAULT_MODEL)


def optional_model(name: str, default: str, given: str | None = None) -> str | None:
    """ASR_LID_MODEL / ASR_DIAR_MODEL (or `given`, e.g. a CLI flag): what to load, or None when
    turned off with `none`."""
    value = (given or "").strip() or text(name, default)
    return None if value.lower() == OFF else value


def lid_model(given: str | None = None) -> str | None:
    return optional_model("ASR_LID_MODEL", DEFAULT_LID_MODEL, given)


def diar_model(given: str | None = None) -> str | None:
    return optional_model("ASR_DIAR_MODEL", DEFAULT_DIAR_MODEL, given)


def device() -> str:
    """ASR_DEVICE: auto (default), cpu, cuda or cuda:N."""
    return text("ASR_DEVICE", "auto").lower()


def batch_size() -> int | None:
    """ASR_BATCH_SIZE: chunks per model call (None: chosen from the device)."""
    return whole("ASR_BATCH_SIZE", None, minimum=1)


def xattn_cache() -> bool:
    """ASR_XATTN_CACHE: the decoder's cross-attention projection cache (on by default)."""
    return flag("ASR_XATTN_CACHE", True)


def fast_decoder() -> bool:
    """ASR_FAST_DECODER: the AED models' own greedy decoder (on by default; 0 decodes with NeMo's
    generator, for comparison)."""
    return flag("ASR_FAST_DECODER", True)


def cuda_graphs() -> bool:
    """ASR_CUDA_GRAPHS: replay the decoder's token step from CUDA graphs (on by default; CUDA only)."""
    return flag("ASR_CUDA_GRAPHS", True)


def frontend_workers() -> int | None:
    """ASR_FRONTEND_WORKERS: decoder children per file (unset or 0: every usable core)."""
    return whole("ASR_FRONTEND_WORKERS", None) or None


def decoder_pool() -> int | None:
    """ASR_DECODER_POOL: decoder children kept warm for the next files (unset: every usable
    core; 0: none, each file starts its own)."""
    return whole("ASR_DECODER_POOL", None)


def decoder_idle_s() -> float:
    """ASR_DECODER_IDLE_S: seconds a warm decoder child waits for a file before it exits."""
    return number("ASR_DECODER_IDLE_S", 300.0)


def fault_injection() -> bool:
    """ASR_FAULT_INJECTION: the decoder's test-only failure hook (off unless 1)."""
    return text("ASR_FAULT_INJECTION") == "1"


def activity_file() -> Path:
    """ASR_ACTIVITY_FILE: where the worker records when predictions start and end."""
    return Path(text("ASR_ACTIVITY_FILE", DEFAULT_ACTIVITY_FILE))


def queue_bytes(default: int) -> int:
    """ASR_QUEUE_MB: audio (MiB) that may wait for the model, all predictions together; the front
    ends wait when it is full."""
    mb = whole("ASR_QUEUE_MB", None, minimum=1)
    return default if mb is None else mb * 2**20


def batch_wait_s(default: float) -> float:
    """ASR_BATCH_WAIT_MS: how long a part-full batch waits for more chunks while its predictions
    are still sending them."""
    ms = whole("ASR_BATCH_WAIT_MS", None, minimum=0)
    return default if ms is None else ms / 1000.0


DEFAULT_MAX_CONCURRENCY = 32
"""Predictions one worker accepts at once. Their chunks share the GPU's batches (asr.serving), so
more predictions cost no GPU memory, only host memory (a running file holds its front end, about
0.3 GB for an hour of audio) and cores (the front ends share them, asr.serving.cores)."""


def max_concurrency() -> int:
    """ASR_MAX_CONCURRENCY (or coglet's own COG_MAX_CONCURRENCY): predictions one worker accepts
    at once (their chunks share batches)."""
    return whole("ASR_MAX_CONCURRENCY", whole("COG_MAX_CONCURRENCY", DEFAULT_MAX_CONCURRENCY, minimum=1), minimum=1)

def sweep_stale_s() -> float:
    """ASR_SWEEP_STALE_S: how long an unowned download or coglet's empty prediction folder must
    have been unchanged before the sweeper removes it (asr.sweeper)."""
    return number("ASR_SWEEP_STALE_S", 60.0)


def sweep_interval_s() -> float:
    """ASR_SWEEP_INTERVAL_S: seconds between sweeps of the service's temp folder."""
    return number("ASR_SWEEP_INTERVAL_S", 30.0)
