"""From the language identifier's chunk probabilities to the language (and prompt) of every chunk.

Pure numpy, so it is tested without torch. The rules (see RoutingOptions for the numbers):

1. Probabilities are renormalised over the languages the chosen ASR model accepts, so routing can
   never pick a language the model cannot transcribe.
2. The file's language is the argmax of the speech-duration-weighted mean of the chunk
   probabilities: a long chunk counts more than a short one, and no single chunk decides alone.
3. A chunk keeps the file's language unless its own evidence for another language is strong: that
   language has at least `switch_min_probability` in the chunk AND the chunk holds at least
   `switch_min_speech_s` of speech. Short chunks (a name, a loanword, a cough) never switch, and
   the probability bar sits far above what a one-language recording shows in noisy chunks, so a
   one-language file is not split; a recording that really switches (an interview, a debate with
   an interpreter) has long stretches where the identifier is sure.
4. With a target language, each chunk gets (source, target, task): transcribe where the chunk is
   already in the target, translate where the model has that pair, and a LanguageError naming the
   detected language and the pairs that work otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .errors import LanguageError, ModelLoadError
from .languages import LANGUAGES


@dataclass(frozen=True)
class RoutingOptions:
    """The documented thresholds of the routing rules (module docstring)."""

    switch_min_probability: float = 0.9
    """A chunk leaves the file's language only for a language this probable in the chunk itself."""
    switch_min_speech_s: float = 4.0
    """...and only if the chunk holds at least this much speech (short chunks are the noisy ones)."""
    doubtful_probability: float = 0.6
    """Below this file-level probability the result carries a warning."""
    short_speech_s: float = 3.0
    """With less speech than this in the whole file, detection is called unreliable."""
    min_supported_mass: float = 0.5
    """If the languages the model accepts hold less than this share of the identifier's
    probability (duration-weighted), the speech is probably in a language the model lacks."""


@dataclass(frozen=True)
class Routing:
    """What detection decided for one file."""

    language: str
    """The file's language (ISO code as the identifier labels it)."""
    probability: float
    """Its duration-weighted mean probability, renormalised over the accepted languages."""
    chunk_languages: tuple[str, ...]
    """The language each chunk is transcribed in (the file's, unless the chunk switched)."""
    chunk_probabilities: tuple[float, ...]
    """Each chunk's own (renormalised) probability for its language."""
    top: tuple[tuple[str, float], ...]
    """The file's three most probable accepted languages, best first (for messages and logs)."""
    warnings: tuple[str, ...] = ()

    @property
    def mixed(self) -> bool:
        """True when chunks are transcribed in more than one language."""
        return len(set(self.chunk_languages)) > 1

    @property
    def languages(self) -> tuple[str, ...]:
        """The distinct chunk languages, in order of first appearance."""
        return tuple(dict.fromkeys(self.chunk_languages))


def _name(code: str) -> str:
    return f"{LANGUAGES[code]} ({code})" if code in LANGUAGES else code


def route(
    probs: np.ndarray,
    labels: Sequence[str],
    durations_s: Sequence[float],
    accepted: Sequence[str] | frozenset[str],
    options: RoutingOptions = RoutingOptions(),
) -> Routing:
    """Decide the file's language and each chunk's. `probs` is (n_chunks, len(labels)) as
    `LanguageIdentifier.score` returns it; `durations_s` is each chunk's speech duration;
    `accepted` the languages the ASR model transcribes. Needs at least one chunk."""
    p = np.asarray(probs, dtype=np.float64)
    d = np.asarray(durations_s, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(labels) or p.shape[0] != d.shape[0]:
        raise ValueError(f"probabilities {p.shape} do not match {len(labels)} labels and {d.shape[0]} durations")
    if p.shape[0] == 0:
        raise ValueError("no chunks to identify the language of (no speech)")
    accepted_set = set(accepted)
    columns = [i for i, label in enumerate(labels) if label in accepted_set]
    if not columns:
        raise ModelLoadError(
            f"the language identifier knows none of the ASR model's languages "
            f"({', '.join(sorted(accepted_set))}); its labels: {', '.join(labels[:20])}..."
        )
    codes = [labels[i] for i in columns]
    weights = d / d.sum() if d.sum() > 0 else np.full(d.shape, 1.0 / d.size)

    sub = p[:, columns]
    mass = sub.sum(axis=1)
    safe = np.where(mass[:, None] > 1e-12, sub / np.maximum(mass, 1e-12)[:, None], 1.0 / len(columns))
    file_p = weights @ safe
    order = np.argsort(-file_p, kind="stable")
    file_idx = int(order[0])
    language = codes[file_idx]

    chunk_langs, chunk_probs = [], []
    for row, speech_s in zip(safe, d):
        best = int(np.argmax(row))
        switch = (best != file_idx and row[best] >= options.switch_min_probability
                  and speech_s >= options.switch_min_speech_s)
        chosen = best if switch else file_idx
        chunk_langs.append(codes[chosen])
        chunk_probs.append(float(row[chosen]))

    top = tuple((codes[int(i)], float(file_p[int(i)])) for i in order[:3])
    routing = Routing(language=language, probability=float(file_p[file_idx]),
                      chunk_languages=tuple(chunk_langs), chunk_probabilities=tuple(chunk_probs), top=top)
    warnings = _warnings(routing, p, labels, d, weights, float(weights @ mass), options)
    return replace(routing, warnings=warnings)


def _warnings(routing: Routing, raw: np.ndarray, labels: Sequence[str], durations_s: np.ndarray,
              weights: np.ndarray, supported_mass: float, options: RoutingOptions) -> tuple[str, ...]:
    out = []
    if supported_mass < options.min_supported_mass:
        raw_file = weights @ raw
        best = labels[int(np.argmax(raw_file))]
        out.append(
            f"the speech sounds most like {_name(best)} ({float(raw_file.max()):.2f}), which this model does "
            f"not transcribe; it was treated as {_name(routing.language)}, the most probable of the model's languages"
        )
    if routing.probability < options.doubtful_probability:
        runner_up = "".join(f", then {_name(c)} {q:.2f}" for c, q in routing.top[1:2])
        out.append(
            f"language detection is unsure: {_name(routing.language)} with probability "
            f"{routing.probability:.2f}{runner_up}; set source_lang if you know the language"
        )
    speech_s = float(durations_s.sum())
    if speech_s < options.short_speech_s:
        out.append(
            f"only {speech_s:.1f} s of speech: language detection on very short recordings is "
            f"unreliable; set source_lang if you know the language"
        )
    if routing.mixed:
        per_lang = {c: 0.0 for c in routing.languages}
        for c, s in zip(routing.chunk_languages, durations_s):
            per_lang[c] += float(s)
        parts = ", ".join(f"{_name(c)} {s:.1f} s" for c, s in per_lang.items())
        out.append(f"the recording switches language ({parts}); each part was processed in its own "
                   f"language (see each segment's language)")
    return tuple(out)


def prompts(
    routing: Routing,
    target_lang: str | None,
    translation_pairs: frozenset[tuple[str, str]],
) -> list[tuple[str, str, str]]:
    """(source, target, task) per chunk. No target: transcribe each chunk in its own language.
    With a target: transcribe chunks already in it, translate those the model has a pair for,
    and raise LanguageError for a chunk whose language cannot reach the target."""
    out = []
    for i, (src, p) in enumerate(zip(routing.chunk_languages, routing.chunk_probabilities)):
        if target_lang is None or src == target_lang:
            out.append((src, src, "transcribe"))
        elif (src, target_lang) in translation_pairs:
            out.append((src, target_lang, "translate"))
        else:
            raise LanguageError(_unreachable(src, p, target_lang, translation_pairs, routing))
    return out


def _unreachable(src: str, p: float, tgt: str, pairs: frozenset[tuple[str, str]], routing: Routing) -> str:
    where = "the recording" if not routing.mixed else "part of the recording"
    into = sorted(s for s, t in pairs if t == tgt)
    out_of = sorted(t for s, t in pairs if s == src)
    works = []
    if into:
        works.append(f"into {tgt}: from {', '.join(into)}")
    if out_of:
        works.append(f"from {src}: into {', '.join(out_of)}")
    detected = f"{where} was detected as {_name(src)} (probability {p:.2f})"
    if not pairs:
        return (
            f"{detected}, and the model does not translate ({src} -> {tgt}); omit target_lang to "
            f"transcribe, choose a model that translates, or set source_lang if the detection is wrong"
        )
    hint = "; ".join(works) if works else "none"
    return (
        f"{detected}, and the model cannot translate {src} -> {tgt}. Translations that work {hint}. "
        f"Choose one of those target languages, omit target_lang to transcribe, or set source_lang "
        f"if the detection is wrong"
    )
