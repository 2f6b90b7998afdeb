"""The spoken-language identifier: NeMo's AmberNet (`langid_ambernet`, an EncDecSpeakerLabelModel
with 107 VoxLingua107 labels) scoring in-memory chunks.

Loaded once, from a .nemo path or a pretrained name. `score` runs the model's own `forward` on
padded batches (NeMo's `get_label` only reads files, one at a time) and returns softmax
probabilities over the model's labels; which of them the ASR model can use is `asr.routing`'s job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from .. import settings
from ..errors import ModelLoadError

log = logging.getLogger(__name__)

DEFAULT_LID_MODEL = settings.DEFAULT_LID_MODEL
ENV_VAR = "ASR_LID_MODEL"
SAMPLE_RATE = 16_000
DEFAULT_BATCH_SIZE = {"cpu": 8, "cuda": 64}
"""Chunks (up to 20 s each) per forward call. AmberNet's activations for a 20 s chunk are about
2000 frames x 3072 channels (25 MB in float32), so 64 fit easily beside Canary on a GPU."""
MIN_SAMPLES = SAMPLE_RATE // 10
"""Shorter chunks are zero-padded to 0.1 s so the convolutions see at least a few frames."""


class LanguageIdentifier:
    """AmberNet (or any EncDecSpeakerLabelModel with language labels), loaded once."""

    def __init__(self, model, name: str, device: str, batch_size: int | None = None, load_s: float = 0.0):
        self._model = model
        self.name = name
        self.device = device
        self.batch_size = int(batch_size or DEFAULT_BATCH_SIZE.get(device.split(":")[0], 8))
        self.load_s = load_s
        self.labels: tuple[str, ...] = _labels_of(model, name)

    @classmethod
    def load(cls, name_or_path: str | None = None, device: str = "cpu",
             batch_size: int | None = None) -> "LanguageIdentifier":
        """Restore from a .nemo file or fetch a pretrained name (default langid_ambernet).
        Every failure raises ModelLoadError naming ASR_LID_MODEL; `none` is for callers to handle."""
        from nemo.collections.asr.models import EncDecSpeakerLabelModel

        from .runtime import restore

        name = name_or_path or DEFAULT_LID_MODEL
        start = time.perf_counter()
        model = restore(name, device, ENV_VAR, cls=EncDecSpeakerLabelModel,
                        hint=f"; or set {ENV_VAR}=none to turn language detection off")
        ident = cls(model, name=name, device=device, batch_size=batch_size,
                    load_s=time.perf_counter() - start)
        log.info("loaded language identifier %s on %s (%d labels) in %.1f s",
                 name, device, len(ident.labels), ident.load_s)
        return ident

    def score(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        """(len(audios), len(labels)) softmax probabilities for 16 kHz mono float32 chunks (each
        up to 20 s), in batches of `batch_size`; a row depends only on its own chunk."""
        import torch

        out = np.zeros((len(audios), len(self.labels)), dtype=np.float64)
        # Similar lengths together: less padding to compute (results do not depend on it).
        order = sorted(range(len(audios)), key=lambda i: len(audios[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                signal, lengths = _pad([audios[i] for i in idx])
                logits, _ = self._model.forward(
                    input_signal=torch.from_numpy(signal).to(self.device),
                    input_signal_length=torch.from_numpy(lengths).to(self.device),
                )
                out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return out

    def release(self) -> None:
        """Drop the model (and its GPU memory)."""
        self._model = None


def _pad(audios: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A zero-padded (n, max_len) float32 batch and the true lengths (at least MIN_SAMPLES)."""
    arrays = []
    for a in audios:
        x = np.asarray(a, dtype=np.float32).reshape(-1)
        if x.size < MIN_SAMPLES:
            x = np.pad(x, (0, MIN_SAMPLES - x.size))
        arrays.append(x)
    lengths = np.array([x.size for x in arrays], dtype=np.int64)
    batch = np.zeros((len(arrays), int(lengths.max()) if arrays else 0), dtype=np.float32)
    for row, x in zip(batch, arrays):
        row[: x.size] = x
    return batch, lengths


def _labels_of(model, name: str) -> tuple[str, ...]:
    """The class labels in logit order, as the checkpoint stores them (cfg.train_ds.labels)."""
    cfg = model.cfg
    stored = None
    for section in ("train_ds", "validation_ds"):
        if cfg.get(section) is not None and cfg[section].get("labels") is not None:
            stored = list(cfg[section].labels)
            break
    if stored is None and getattr(model, "labels", None):
        stored = list(model.labels)
    n_classes = int(model.decoder.final.out_features)
    if stored is None or len(stored) != n_classes:
        raise ModelLoadError(
            f"{ENV_VAR}={name} does not store its {n_classes} class labels (cfg.train_ds.labels); "
            f"a language identifier needs them to say which language each class is"
        )
    return tuple(str(label).strip().lower() for label in stored)
