"""Check every model variable before anything is loaded, and say what fixes each problem.

Loading stops at the first model that cannot be restored, and each takes seconds to minutes, so
an operator who follows one error message at a time restarts once per variable. `check_models()`
looks at ASR_MODEL, ASR_LID_MODEL and ASR_DIAR_MODEL together, without torch or NeMo: a path must
be a file; a Hugging Face (or NGC) name must be in the local cache or the hub must answer. It
cannot tell that a file is a valid checkpoint: loading still can fail, with its own message.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import settings
from .errors import ModelLoadError

WEIGHTS = {
    "ASR_MODEL": "weights/canary-1b-v2.nemo",
    "ASR_LID_MODEL": "weights/langid_ambernet.nemo",
    "ASR_DIAR_MODEL": "weights/diar_streaming_sortformer_4spk-v2.nemo",
}
"""What `make weights` writes for each variable (tools/download_weights.py names files by model)."""

TINY = {
    "ASR_MODEL": ("/tmp/tiny-canary.nemo", "canary"),
    "ASR_LID_MODEL": ("/tmp/tiny-langid.nemo", "langid"),
    "ASR_DIAR_MODEL": ("/tmp/tiny-sortformer.nemo", "sortformer"),
}
"""A random-weight stand-in for each variable, to try the service without the real weights."""


@dataclass(frozen=True)
class ModelProblem:
    """One model variable that cannot work as set, and the command that fixes it."""

    variable: str
    value: str
    why: str
    fix: str

    def __str__(self) -> str:
        return f"{self.variable}={self.value}: {self.why}\n    fix: {self.fix}"


def hub_unreachable(timeout_s: float = 5.0) -> str | None:
    """None when Hugging Face answers (or HF_HUB_OFFLINE is not set and the endpoint replies),
    else why not, in a few words. One short request, so an offline machine answers at once."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        with urllib.request.urlopen(f"{endpoint}/api/models?limit=1", timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None  # it answered: the name is judged when the model loads
    except (urllib.error.URLError, OSError) as e:
        return f"cannot reach {endpoint} ({getattr(e, 'reason', e)})"


def is_path(value: str) -> bool:
    """A .nemo file or anything written like a path; everything else is a hub name."""
    return value.endswith(".nemo") or value.startswith(("/", ".", "~")) or Path(value).expanduser().exists()


def cached(name: str) -> bool:
    """Whether a hub name was downloaded before (Hugging Face's cache, or NeMo's for NGC names)."""
    from huggingface_hub import constants

    base = name.split("/")[-1]
    hf = Path(constants.HF_HUB_CACHE)
    if name.count("/") == 1 and (hf / f"models--{name.replace('/', '--')}" / "snapshots").is_dir():
        return True
    if any(hf.glob(f"models--*--{base}/snapshots")):
        return True
    nemo_cache = Path(os.environ.get("NEMO_CACHE_DIR", Path.home() / ".cache" / "torch" / "NeMo"))
    return any(nemo_cache.glob(f"**/{base}*.nemo")) if nemo_cache.is_dir() else False


def fix_for(variable: str) -> str:
    tiny, kind = TINY[variable]
    parts = [f"`make weights` (needs network access), then {variable}={WEIGHTS[variable]}"]
    if variable != "ASR_MODEL":
        parts.append(f"{variable}=none to turn it off")
    parts.append(f"to try without weights: `asr tiny-model {tiny} --kind {kind}`, then {variable}={tiny}")
    return "; or ".join(parts)


def check_models(hub=hub_unreachable) -> list[ModelProblem]:
    """Every problem with ASR_MODEL, ASR_LID_MODEL and ASR_DIAR_MODEL (empty: all look loadable).
    `hub` says why Hugging Face cannot be reached (None when it can); asked at most once."""
    from .models.loading import parse_spec

    problems: list[ModelProblem] = []
    wanted: list[tuple[str, str]] = []
    spec = settings.model_spec() or ""
    try:
        wanted += [("ASR_MODEL", e.name) for e in parse_spec(spec)]
    except ModelLoadError as e:
        problems.append(ModelProblem("ASR_MODEL", spec, str(e), "set it to NAME or PATH, comma-separated"))
    for variable, value in (("ASR_LID_MODEL", settings.lid_model()), ("ASR_DIAR_MODEL", settings.diar_model())):
        if value is not None:
            wanted.append((variable, value))
    offline: list[str | None] = []
    for variable, value in wanted:
        if is_path(value):
            path = Path(value).expanduser()
            if not path.is_file():
                problems.append(ModelProblem(variable, value, "no such file", fix_for(variable)))
            continue
        if cached(value):
            continue
        if not offline:
            offline.append(hub())
        if offline[0]:
            problems.append(ModelProblem(
                variable, value, f"not downloaded yet, and {offline[0]}", fix_for(variable)))
    return problems


def report(problems: list[ModelProblem]) -> str:
    """One message for all of them: a line per variable, then its fix."""
    head = "1 model variable cannot work" if len(problems) == 1 else f"{len(problems)} model variables cannot work"
    return head + ":\n" + "\n".join(f"  {p}" for p in problems)
