"""Tiny random-weight models, one builder module per kind, for `python -m asr tiny-model`, the
tests and the benchmarks. Never imported by the serving path.

Each kind's builder is `build(out_path, seed=0) -> Path`; `KINDS` maps the `--kind` name to the
module that holds it (each module also says what its model outputs, so tests can predict it).
"""

from __future__ import annotations

import importlib
from pathlib import Path

KINDS: dict[str, str] = {
    "canary": "asr.testing.canary",
    "parakeet-tdt": "asr.testing.parakeet",
    "ctc": "asr.testing.ctc",
    "langid": "asr.testing.langid",
    "sortformer": "asr.testing.sortformer",
}
"""--kind -> builder module (imported only when that kind is built)."""


def builder_module(kind: str):
    if kind not in KINDS:
        raise ValueError(f"unknown tiny-model kind {kind!r}; known: {', '.join(KINDS)}")
    return importlib.import_module(KINDS[kind])


def build(kind: str, out_path, seed: int = 0) -> Path:
    """Write the tiny model of `kind` to `out_path` (a .nemo file)."""
    return builder_module(kind).build(out_path, seed=seed)
