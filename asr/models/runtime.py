"""Device, dtype, batch size, memory release, NeMo log quieting and checkpoint restore.

Shared by every model loader (speech models, the language identifier, the diarizer), so each
checkpoint is found, loaded and reported on the same way. torch and NeMo are imported lazily.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from .. import settings
from ..errors import ModelLoadError

log = logging.getLogger(__name__)

MAX_CUDA_BATCH = 128
"""The Open ASR Leaderboard measures Canary-1B-v2 at batch 128; larger batches are untested."""
CHUNK_BYTES_ESTIMATE = 96 * 2**20
"""Activation memory of one 20 s chunk in bf16 for Canary-1B-v2 with its aligner (the 8x
subsampling's first convolution alone holds 256 x 1000 x 64 values, 33 MB); rounded up for the
rest. Smaller models use less, so the estimate errs on the safe side for them."""
CPU_BATCH = 4
"""On CPU larger batches only add latency."""


def pick_device(requested: str | None = None) -> str:
    """`requested`, else $ASR_DEVICE, else CUDA when available, else CPU."""
    import torch

    want = (requested or settings.device()).lower()
    if want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"ASR_DEVICE={want} was asked for but no CUDA device is available")
    return want


def dtype_for(device: str):
    """bf16 autocast on CUDA, float32 on CPU."""
    import torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def autocast(device: str):
    """The autocast context for inference on `device` (none on CPU)."""
    import torch

    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=dtype_for(device))
    return contextlib.nullcontext()


def default_batch_size(device: str) -> int:
    """Chunks per model call: $ASR_BATCH_SIZE if set; on CUDA as many as half the free memory
    holds, up to MAX_CUDA_BATCH; on CPU, CPU_BATCH."""
    value = settings.batch_size()
    if value is not None:
        return value
    if device.startswith("cuda"):
        import torch

        free_bytes, _ = torch.cuda.mem_get_info(torch.device(device))
        return max(1, min(MAX_CUDA_BATCH, int(free_bytes * 0.5 // CHUNK_BYTES_ESTIMATE)))
    return CPU_BATCH


def release(device: str) -> None:
    """Return cached GPU memory (no-op on CPU)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


class _KnownNoise(logging.Filter):
    """Drops log records NeMo's dependencies emit on every load that look alarming but are not:
    hydra's 'Error getting class ... get_nemo_transformer' (NeMo then calls the function, as
    intended) and the telemetry library announcing it is off."""

    PATTERNS = ("get_nemo_transformer: Located non-class", "OneLogger: Setting error_handling_strategy",
                "No exporters were provided")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p in message for p in self.PATTERNS)


def silence_known_noise() -> None:
    noise = _KnownNoise()
    for name in ("hydra.utils", "nv_one_logger.api.config",
                 "nv_one_logger.training_telemetry.api.training_telemetry_provider"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _KnownNoise) for f in logger.filters):
            logger.addFilter(noise)


@contextlib.contextmanager
def quiet_nemo():
    """NeMo logs every config it touches at INFO; keep our logs readable."""
    silence_known_noise()
    try:
        from nemo.utils import logging as nemo_logging
    except ImportError:
        yield
        return
    level = nemo_logging.getEffectiveLevel()
    nemo_logging.setLevel(max(level, logging.WARNING))  # a quieter caller (the CLI) stays quieter
    try:
        yield
    finally:
        nemo_logging.setLevel(level)


def restore(name_or_path: str, device: str, env_var: str = "ASR_MODEL", cls=None, hint: str = ""):
    """A NeMo model from a `.nemo` path (restore_from) or a Hugging Face name (from_pretrained),
    on `device`, in eval mode. `cls` is the NeMo base class to load through (default ASRModel).
    Every failure is a ModelLoadError that names `env_var`, so an operator knows what to fix;
    `hint` adds what else the variable accepts (e.g. 'none')."""
    silence_known_noise()
    try:
        import torch

        if cls is None:
            from nemo.collections.asr.models import ASRModel as cls
    except ImportError as e:
        raise ModelLoadError(
            f"NeMo is not installed ({e}); install nemo_toolkit[asr] to load {env_var}={name_or_path}"
        ) from e
    local = Path(name_or_path).expanduser()
    try:
        with quiet_nemo():
            if local.suffix == ".nemo" or local.exists():
                if not local.is_file():
                    raise ModelLoadError(f"{env_var}={name_or_path}: no such .nemo file")
                model = cls.restore_from(str(local), map_location=torch.device(device))
            else:
                model = cls.from_pretrained(name_or_path, map_location=torch.device(device))
    except ModelLoadError:
        raise
    except Exception as e:  # network, missing cache, corrupt archive: all mean "no model"
        raise ModelLoadError(
            f"could not load the model {env_var}={name_or_path}: {type(e).__name__}: {e}. "
            f"Set {env_var} to a local .nemo file, or make the Hugging Face model reachable "
            f"(network access or a pre-filled HF_HOME cache){hint}"
        ) from e
    if not isinstance(model, cls):
        raise ModelLoadError(f"{env_var}={name_or_path} is a {type(model).__name__}, not a {cls.__name__}{hint}")
    model.eval()
    return model


class StageTimer:
    """Wall seconds per stage of the adapters' batch path (batch build and transfer, features,
    encoder, decoder, alignment), for benchmarks. Off unless `enabled`: measuring a stage means
    waiting for the device at its end, which the serving path must not do."""

    def __init__(self):
        self.enabled = False
        self.seconds: dict[str, float] = {}
        self._device = "cpu"
        self._t = 0.0

    def start(self, device: str) -> None:
        if self.enabled:
            self._device = device
            self._sync()
            import time

            self._t = time.perf_counter()

    def mark(self, stage: str) -> None:
        if self.enabled:
            import time

            self._sync()
            now = time.perf_counter()
            self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._t
            self._t = now

    def reset(self) -> dict[str, float]:
        out, self.seconds = self.seconds, {}
        return out

    def _sync(self) -> None:
        if self._device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
