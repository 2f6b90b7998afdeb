"""Language codes and their names, and Canary's (source, target) pair rule.

`NAMES` is the table every message uses (ISO 639-1 code -> English name); it covers the languages
NeMo's public speech models transcribe. What a particular model accepts is not decided here: it is
read from the checkpoint (see `asr.models.Capabilities`). `LANGUAGES`/`CODES` stay Canary-1B-v2's
25 languages, the default model's set.

Canary's rule: speech recognition in every language (X -> X); translation from English to each
other language and from each other language to English; no other pair (model card, NeMo 3.0).
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

NAMES: dict[str, str] = {
    **LANGUAGES,
    "ar": "Arabic", "be": "Belarusian", "bn": "Bengali", "ca": "Catalan", "cy": "Welsh",
    "eu": "Basque", "fa": "Persian", "ga": "Irish", "gl": "Galician", "gu": "Gujarati",
    "he": "Hebrew", "hi": "Hindi", "hy": "Armenian", "id": "Indonesian", "is": "Icelandic",
    "ja": "Japanese", "ka": "Georgian", "kk": "Kazakh", "kn": "Kannada", "ko": "Korean",
    "ml": "Malayalam", "mr": "Marathi", "ms": "Malay", "no": "Norwegian", "or": "Odia",
    "pa": "Punjabi", "rw": "Kinyarwanda", "sr": "Serbian", "sw": "Swahili", "ta": "Tamil",
    "te": "Telugu", "th": "Thai", "tr": "Turkish", "ur": "Urdu", "uz": "Uzbek",
    "vi": "Vietnamese", "zh": "Chinese",
}
"""Every code a request may name (the union offered as `source_lang` choices)."""
ALL_CODES: tuple[str, ...] = tuple(sorted(NAMES))


def describe(codes) -> str:
    """'de (German), en (English)' for messages."""
    return ", ".join(f"{c} ({NAMES.get(c, c)})" for c in sorted(codes))


def normalise_code(code: str | None, what: str, accepted=None) -> str:
    """Lower-case, trimmed ISO 639-1 code; a clear error for anything not in `accepted`
    (default: Canary's 25)."""
    accepted = CODES if accepted is None else tuple(sorted(accepted))
    listed = describe(accepted) if len(accepted) <= 5 else ", ".join(accepted)  # names while short
    if code is None or not str(code).strip():
        raise LanguageError(f"{what} is required; accepted: {listed}")
    c = str(code).strip().lower().replace("_", "-")
    if c not in accepted:
        base = c.split("-")[0]
        hint = f" (did you mean '{base}'?)" if base in accepted else ""
        raise LanguageError(
            f"{what} '{code}' is not supported{hint}; accepted: {listed}"
        )
    return c


def resolve_pair(source_lang: str | None, target_lang: str | None) -> tuple[str, str, str]:
    """(source, target, task) for Canary-1B-v2; an omitted target means transcription."""
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


def pivot_pairs(codes) -> frozenset[tuple[str, str]]:
    """Canary's translation pairs over `codes`: English <-> each other language."""
    if PIVOT not in codes:
        return frozenset()
    return frozenset(p for c in codes if c != PIVOT for p in ((PIVOT, c), (c, PIVOT)))
