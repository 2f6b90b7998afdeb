"""The errors a user can see. Each message says what was wrong and what is accepted."""

from __future__ import annotations


class ASRError(Exception):
    """Base for every error this package raises on purpose."""


class InputError(ASRError):
    """The audio the user sent cannot be used (empty, undecodable, unsupported, over a limit)."""


class AudioTooLongError(InputError):
    """The decoded audio is longer than the configured duration cap."""


class DecoderFailure(InputError):
    """The decoder process crashed, hung or ran out of memory on this file."""


class DecoderBug(ASRError):
    """The decoder process failed in a way that is this service's fault, not the file's."""


class LanguageError(InputError):
    """An unknown language code or an unsupported (source, target) pair."""


class ModelLoadError(ASRError):
    """The model could not be loaded (missing weights, no network, bad file)."""


class Stopped(ASRError):
    """Work was stopped because nobody waits for its result any more (cancelled upstream)."""


class UnknownModelError(InputError):
    """A request named a model that is not loaded (ASR_MODEL lists the loaded ones)."""
