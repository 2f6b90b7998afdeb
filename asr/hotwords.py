"""Hotwords: the user's phrase list, checked, then put in the forms a model writes.

NeMo's phrase boosting (a boosting tree over the tokenizer's tokens, asr.models.boosting) only
raises tokens that spell a phrase exactly as the model would write it, so casing matters: a model
that writes capitals (Canary, parakeet-tdt-0.6b-v3 with punctuation) writes "Kubernetes", a
lower-case model writes "kubernetes". `for_model` handles that for the user: on a cased model each
phrase is boosted as given and with each word's first letter capitalised (names, sentence starts);
on a lower-case model (or Canary with `pnc` off) it is lower-cased, and the output says so.

Pure Python, so the request is checked before any audio or model work.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from .errors import InputError
from .types import Hotwords

MAX_PHRASES = 100
MAX_PHRASE_CHARS = 50
MIN_BOOST, MAX_BOOST, DEFAULT_BOOST = 0.1, 10.0, 1.0
"""The boosting tree's weight (NeMo's `boosting_tree_alpha`): 1.0 is NeMo's own example value; higher
finds more of the phrases and wrongly inserts more of them too."""


def parse(phrases: Iterable[str] | str | None, boost: float = DEFAULT_BOOST) -> tuple[str, ...]:
    """The user's phrases, each stripped and checked (at most MAX_PHRASES of at most
    MAX_PHRASE_CHARS characters, no control characters, not empty), in their order, repeats
    removed. None or an empty list: no hotwords. Raises InputError naming what was wrong."""
    if phrases is None:
        return ()
    if isinstance(phrases, str):
        phrases = [phrases]
    items = list(phrases)
    if not MIN_BOOST <= float(boost) <= MAX_BOOST:
        raise InputError(f"hotwords_boost {boost:g} is outside {MIN_BOOST:g} to {MAX_BOOST:g}")
    if len(items) > MAX_PHRASES:
        raise InputError(f"hotwords: {len(items)} phrases given; at most {MAX_PHRASES} are accepted")
    out: list[str] = []
    for n, raw in enumerate(items, start=1):
        if not isinstance(raw, str):
            raise InputError(f"hotwords: phrase {n} is not text ({type(raw).__name__}); give a list of strings")
        phrase = " ".join(raw.split())
        if not phrase:
            raise InputError(f"hotwords: phrase {n} is empty; give words to boost, or leave hotwords out")
        if len(phrase) > MAX_PHRASE_CHARS:
            raise InputError(f"hotwords: phrase {n} ({phrase[:20]!r}...) has {len(phrase)} characters; "
                             f"at most {MAX_PHRASE_CHARS} are accepted")
        if any(unicodedata.category(c).startswith("C") for c in phrase):
            raise InputError(f"hotwords: phrase {n} contains a control or invisible character; give plain text")
        if phrase not in out:
            out.append(phrase)
    return tuple(out)


def _capitalised(phrase: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in phrase.split(" "))


def for_model(phrases: tuple[str, ...], boost: float, cased: bool) -> tuple[Hotwords | None, tuple[str, ...]]:
    """(the Hotwords to decode with, warnings) for a model that writes capitals (`cased`) or not."""
    if not phrases:
        return None, ()
    warnings: tuple[str, ...] = ()
    if cased:
        forms = set(phrases) | {_capitalised(p) for p in phrases}
    else:
        forms = {p.lower() for p in phrases}
        if any(p != p.lower() for p in phrases):
            warnings = ("Hotwords were lower-cased: this model (or pnc off) writes lower case only.",)
    return Hotwords(phrases=tuple(sorted(forms)), boost=float(boost)), warnings
