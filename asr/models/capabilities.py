"""What one loaded model can do, read from its checkpoint, and the request check built on it.

Pure Python (no torch), so the pipeline and the Cog adapter can validate a request before any
audio or model work.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import LanguageError
from ..languages import ALL_CODES, NAMES, describe, normalise_code, pivot_pairs

TIMESTAMP_SOURCES = ("aligner", "tokens", "native", "none")


@dataclass(frozen=True)
class Capabilities:
    """Declared by each adapter from its checkpoint (prompt tokens, tokenizer, config)."""

    languages: frozenset[str] = frozenset()
    """Codes the model transcribes; empty = the checkpoint does not say."""
    picks_language: bool = False
    """The model decides the spoken language itself (e.g. parakeet-tdt-0.6b-v3, or an undeclared
    model); `source_lang` then only labels the output."""
    translation_pairs: frozenset[tuple[str, str]] = frozenset()
    """(source, target) pairs it translates; empty for Parakeet and CTC models."""
    timestamps: str = "none"
    """Where times come from: "aligner" (Canary-1B-v2's auxiliary CTC model), "tokens" (timestamp
    tokens, Canary flash), "native" (transducer/CTC frame offsets), "none"."""
    word_timestamps: bool = False
    """Word-level times are available (for transcription)."""
    needs_prompt: bool = False
    """One prompt (languages, task) per model call: batches must not mix requests (AED)."""
    boosting: bool = False
    """It can boost hotwords (NeMo's phrase boosting needs a subword tokenizer)."""
    cased: bool = True
    """It writes capitals (hotwords are matched in the case the model writes)."""

    def __post_init__(self) -> None:
        if self.timestamps not in TIMESTAMP_SOURCES:
            raise ValueError(f"timestamps must be one of {TIMESTAMP_SOURCES}, not {self.timestamps!r}")

    @property
    def accepted_languages(self) -> frozenset[str]:
        """What `source_lang` may be: the declared languages, or any known code if undeclared."""
        return self.languages or frozenset(ALL_CODES)

    def describe(self) -> str:
        """One short line for messages and logs (at most a few hundred characters): the codes, and
        the translation pairs as a rule where they follow Canary's. The names and the full lists
        are in the README and GET /openapi.json."""
        if not self.languages:
            langs = "any language (not declared by the checkpoint)"
        elif len(self.languages) == 1:
            langs = describe(self.languages)
        else:
            langs = f"{len(self.languages)} languages ({' '.join(sorted(self.languages))})"
        if self.picks_language and self.languages:
            langs += "; it detects the language itself"
        pairs = self.translation_pairs
        if not pairs:
            rule = "none"
        elif pairs == pivot_pairs(self.languages):
            rule = "English to each of the others and each of them to English"
        elif len(pairs) <= 6:
            rule = ", ".join(f"{s}->{t}" for s, t in sorted(pairs))
        else:
            rule = f"{len(pairs)} pairs (listed in the README)"
        return f"transcribes {langs}; translation: {rule}"

    def resolve(self, source_lang: str | None, target_lang: str | None, model_name: str) -> tuple[str, str, str]:
        """(source, target, task) for a request to `model_name`; an omitted target (or the source
        itself) means transcription. Raises LanguageError naming the model and what it accepts."""
        accepted = self.accepted_languages
        try:
            src = normalise_code(source_lang, "source_lang", accepted)
        except LanguageError as e:
            raise LanguageError(f"model {model_name}: {e}") from e
        if target_lang is None or not str(target_lang).strip():
            return src, src, "transcribe"
        tgt = str(target_lang).strip().lower().replace("_", "-")
        if tgt == src:
            return src, src, "transcribe"
        if (src, tgt) in self.translation_pairs:
            return src, tgt, "translate"
        if not self.translation_pairs:
            raise LanguageError(
                f"model {model_name} does not translate (asked {src} -> {target_lang}); it {self.describe()}. "
                f"Omit target_lang to transcribe, or choose a model that translates"
            )
        targets = sorted(t for s, t in self.translation_pairs if s == src)
        hint = (f"from {src} it translates to {', '.join(targets)}" if targets
                else f"it does not translate from {src}")
        raise LanguageError(
            f"model {model_name} cannot translate {NAMES.get(src, src)} ({src}) to "
            f"{NAMES.get(tgt, target_lang)} ({target_lang}): {hint}; it {self.describe()}"
        )
