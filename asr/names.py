"""Names that reach users: a model's public name (never a path on the server) and user-given
strings cut to a length a message can carry."""

from __future__ import annotations

import re
from pathlib import Path

SOURCE_SUFFIX = ".source"
"""`make weights` writes `NAME.nemo.source` beside each checkpoint: the Hugging Face name it came from."""
_HF_NAME = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}")
ECHO_CHARS = 100
"""Longest user-given string repeated in a message; longer ones are cut with an ellipsis."""


def public_model_name(entry: str) -> str:
    """What the output's `model` and every message call the model of an ASR_MODEL entry: a
    Hugging Face name as given; for a .nemo path, the Hugging Face name recorded beside it by
    `make weights`, else the file's name without its folder and `.nemo`. Never a server path."""
    if not (entry.endswith(".nemo") or "/" in entry and Path(entry).exists() or entry.startswith(("/", "."))):
        return entry  # a Hugging Face name (organisation/model)
    path = Path(entry)
    try:
        recorded = path.with_name(path.name + SOURCE_SUFFIX).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        recorded = ""
    if _HF_NAME.fullmatch(recorded):
        return recorded
    return path.stem if path.suffix == ".nemo" else path.name


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` as a message may repeat it: at most `limit` characters, cut with an ellipsis."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
