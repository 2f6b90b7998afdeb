"""ASR_MODEL -> a ModelSet: parse the list, load each model once, pick its adapter by class."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .. import settings
from ..errors import ModelLoadError, UnknownModelError
from ..languages import NAMES
from ..names import clip, public_model_name
from . import runtime
from .base import SpeechModel

log = logging.getLogger(__name__)

DEFAULT_MODEL = settings.DEFAULT_MODEL
_ENTRY = re.compile(r"^(?P<name>[^\[\]]+?)\s*(?:\[(?P<langs>[^\[\]]*)\])?$")


@dataclass(frozen=True)
class ModelEntry:
    """One item of ASR_MODEL: a Hugging Face name or .nemo path, and optional declared languages
    (`name[hi]`, `name[en de fr]`) for checkpoints that do not declare their own."""

    name: str
    languages: frozenset[str] = frozenset()


def parse_spec(spec: str) -> list[ModelEntry]:
    """Split ASR_MODEL on commas outside brackets; validate annotations."""
    items, depth, cur = [], 0, ""
    for ch in spec:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    entries: list[ModelEntry] = []
    for raw in (i.strip() for i in items):
        if not raw:
            continue
        m = _ENTRY.match(raw)
        if not m:
            raise ModelLoadError(f"ASR_MODEL entry {raw!r} is not NAME or NAME[lang lang ...]")
        langs = frozenset(c.lower() for c in re.split(r"[\s,+]+", m.group("langs") or "") if c)
        unknown = sorted(langs - set(NAMES))
        if unknown:
            raise ModelLoadError(f"ASR_MODEL entry {raw!r}: unknown language code(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(sorted(NAMES))}")
        entries.append(ModelEntry(m.group("name").strip(), langs))
    if not entries:
        raise ModelLoadError(f"ASR_MODEL={spec!r} names no model")
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ModelLoadError(f"ASR_MODEL={spec!r} names a model twice")
    return entries


def adapt(model, name: str, device: str, batch_size: int | None = None,
          languages: frozenset[str] = frozenset()) -> SpeechModel:
    """Wrap a restored NeMo model in its family's adapter, told apart by class."""
    from nemo.collections.asr.models import EncDecCTCModel, EncDecMultiTaskModel, EncDecRNNTModel

    from .aed import AEDModel
    from .ctc import CTCModel
    from .transducer import TransducerModel

    for cls, adapter in ((EncDecMultiTaskModel, AEDModel), (EncDecRNNTModel, TransducerModel),
                         (EncDecCTCModel, CTCModel)):
        if isinstance(model, cls):
            return adapter(model, name=name, device=device, batch_size=batch_size, languages=languages or None)
    raise ModelLoadError(
        f"ASR_MODEL={name} is a {type(model).__name__}; supported: EncDecMultiTaskModel (Canary), "
        f"EncDecRNNTModel and subclasses (Parakeet TDT/RNN-T, hybrid), EncDecCTCModel(BPE) (CTC)"
    )


class ModelSet:
    """The loaded models by name, in ASR_MODEL order; the first is the default."""

    def __init__(self, models: list[SpeechModel]):
        if not models:
            raise ValueError("a ModelSet needs at least one model")
        self._models = {m.name: m for m in models}
        if len(self._models) != len(models):
            raise ModelLoadError(f"ASR_MODEL names two models called {', '.join(m.name for m in models)}; "
                                 "give each checkpoint its own file name")

    @property
    def names(self) -> list[str]:
        return list(self._models)

    @property
    def default(self) -> SpeechModel:
        return next(iter(self._models.values()))

    def __iter__(self):
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def get(self, name: str | None = None) -> SpeechModel:
        """The model called `name`: its ASR_MODEL entry, or the entry's last part (a Hugging Face
        name without the organisation; a .nemo file's name, with or without `.nemo`). None or ""
        means the default."""
        if name is None or not str(name).strip():
            return self.default
        want = str(name).strip()
        if want in self._models:
            return self._models[want]
        for key, model in self._models.items():
            p = Path(key)
            if (want == p.name or (p.suffix == ".nemo" and want == p.stem)
                    or (want.endswith(".nemo") and want[: -len(".nemo")] in (key, p.name))):
                return model
        raise UnknownModelError(f"model '{clip(name)}' is not loaded; loaded: {', '.join(self.short_names)}")

    @property
    def short_names(self) -> list[str]:
        """What a request may use for each model: the HF name, or a .nemo file's stem."""
        return [Path(n).stem if n.endswith(".nemo") else n for n in self._models]

    def all_languages(self) -> frozenset[str]:
        """Every code some loaded model accepts (for choices and messages)."""
        out: set[str] = set()
        for m in self:
            out |= m.capabilities.accepted_languages
        return frozenset(out)

    def release(self) -> None:
        for m in self:
            m.release()


def load_models(spec: str | None = None, device: str | None = None, batch_size: int | None = None) -> ModelSet:
    """Load every model of `spec` (default: $ASR_MODEL, else nvidia/canary-1b-v2) once, through
    NeMo's own loaders. Every failure names ASR_MODEL."""
    spec = spec or settings.model_spec()
    entries = parse_spec(spec)
    dev = runtime.pick_device(device)
    models = []
    for entry in entries:
        start = time.perf_counter()
        nemo_model = runtime.restore(entry.name, dev, env_var="ASR_MODEL")
        model = adapt(nemo_model, public_model_name(entry.name), dev, batch_size, entry.languages)
        log.info("loaded %s (%s) on %s in %.1f s, batch %d: %s", entry.name, type(model).__name__, dev,
                 time.perf_counter() - start, model.batch_size, model.capabilities.describe())
        models.append(model)
    return ModelSet(models)
