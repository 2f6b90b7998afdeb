"""Canary-1B-v2's 25 languages and the (source, target) pairs it supports.

Speech recognition works in every language (X -> X). Translation works from English to each other
language and from each other language to English; no other pair (model card, NeMo 3.0).
"""

from __future__ import annotations

from .errors import LanguageError

LANGUAGES: dict[str, str] = {
    "bg": "Bulgarian", "hr": "Croatian", "cs": "Czech", "da": "Danish", "nl": "Dutch",
    "en": "English", "et": "Estonian", "fi": "Finnish", "fr": "French", "de": "German",
    "el": "Greek", "hu": "Hungarian", "it": "Italian", "lv": "Latvian", "lt": "Lithuanian",
    "mt": "Maltese", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "sk": "Slovak",
    "sl": "Slovenian", "es": "Spanish", "sv": "Swedish", "ru": "Russian", "uk": "Ukrainian",
}
CODES: tuple[str, ...] = tuple(sorted(LANGUAGES))
PIVOT = "en"


def normalise_code(code: str | None, what: str) -> str:
    """Lower-case, trimmed ISO 639-1 code; a clear error for anything Canary does not know."""
    if code is None or not str(code).strip():
        raise LanguageError(f"{what} is required; accepted: {', '.join(CODES)}")
    c = str(code).strip().lower().replace("_", "-")
    if c not in LANGUAGES:
        base = c.split("-")[0]
        hint = f" (did you mean '{base}'?)" if base in LANGUAGES else ""
        raise LanguageError(
            f"{what} '{code}' is not supported{hint}; accepted: {', '.join(CODES)}"
        )
    return c


def resolve_pair(source_lang: str | None, target_lang: str | None) -> tuple[str, str, str]:
    """(source, target, task) for a request; an omitted target means transcription."""
    src = normalise_code(source_lang, "source_lang")
    tgt = src if target_lang is None or not str(target_lang).strip() else normalise_code(target_lang, "target_lang")
    if src == tgt:
        return src, tgt, "transcribe"
    if PIVOT not in (src, tgt):
        raise LanguageError(
            f"translation from {LANGUAGES[src]} ({src}) to {LANGUAGES[tgt]} ({tgt}) is not supported: "
            f"Canary translates English to any of its languages and any of them to English; "
            f"translate {src} -> en, or transcribe with target_lang={src}"
        )
    return src, tgt, "translate"
