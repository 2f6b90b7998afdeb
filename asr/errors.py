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


class ServerPathError(InputError):
    """`audio` named a file on the server instead of sending one (URL or data URI). The message
    is the same whether or not that file exists, so it tells a caller nothing about the server."""

    def __init__(self) -> None:
        super().__init__(
            "audio must be sent, not named: give an http(s) URL or a data URI "
            "(data:audio/mpeg;base64,...); paths of files on the server are not read"
        )


class UnknownModelError(InputError):
    """A request named a model that is not loaded (ASR_MODEL lists the loaded ones)."""


class ModelFailure(ASRError):
    """The model failed while running a batch that held this request's audio (the server keeps
    serving; after a device fault it reports itself unhealthy so it is restarted)."""
