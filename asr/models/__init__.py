"""Everything that touches torch and NeMo: one interface over every ASR family.

- `SpeechModel` (base): what the pipeline calls; `Capabilities` (capabilities): what a model can
  do, read from its checkpoint, and `resolve()` to check a request against it.
- `load_models(spec)` (loading): ASR_MODEL -> `ModelSet`, each model wrapped by its family's
  adapter, chosen by class: `aed.AEDModel` (Canary), `transducer.TransducerModel` (Parakeet
  TDT/RNN-T), `ctc.CTCModel`.
- `runtime`: device, dtype, batch size, memory release, log quieting, `restore()` (shared by
  every loader: speech models, language identifier, diarizer).

Importing this package does not import torch or NeMo; loading a model does.
"""

from .base import SpeechModel
from .capabilities import Capabilities
from .loading import DEFAULT_MODEL, ModelEntry, ModelSet, adapt, load_models, parse_spec

__all__ = ["Capabilities", "DEFAULT_MODEL", "ModelEntry", "ModelSet", "SpeechModel", "adapt", "load_models",
           "parse_spec"]
