"""What Cog hands `run()` for a file input, and the name the user knows that file by.

Cog-specific knowledge kept out of predict.py (which stays a thin adapter): how coglet 0.23.1
passes downloaded files, how it names them, and Python's URL cache that Cog fills with uploads.
"""

from __future__ import annotations

import pathlib
import re
import tempfile
import urllib.parse

from .errors import ASRError, ServerPathError

_RANDOM_CHARS = 8
"""Length of the random part of tempfile's names (tempfile._RandomNameSequence)."""
_DATA_URI_NAME = re.compile(r"file(\.[A-Za-z0-9]+)?")
"""What Cog names a data URI's file: "file" plus the extension of its MIME type (cog.types.get_filename)."""


def received_file(audio: object) -> pathlib.Path:
    """The local copy of a file the caller sent, or ServerPathError if `audio` names a server path.

    coglet 0.23.1 turns an input value into a cog Path only when it starts with `http://`,
    `https://` or `data:`; it downloads it into a `tempfile.NamedTemporaryFile` in the temp
    directory and hands run() that Path. Every other string (`/srv/app/samples/en.mp3`,
    `file:///etc/passwd`) reaches run() as a plain `str`. So the type proves the download, and
    nothing a client writes can imitate it; the directory check is a second guard, should a later
    Cog wrap plain strings in Path as its old Python server did. Same message either way, so it
    says nothing about which files exist."""
    from cog import URLPath

    if isinstance(audio, URLPath):  # not downloaded yet (a runtime that defers it to us)
        audio = audio.convert()
    if not isinstance(audio, pathlib.Path):
        raise ServerPathError()
    path = pathlib.Path(audio)
    if (path.parent.resolve() != pathlib.Path(tempfile.gettempdir()).resolve()
            or not path.name.startswith(tempfile.gettempprefix()) or path.is_symlink()):
        raise ServerPathError()
    return path


def display_name(path: str | pathlib.Path) -> str:
    """The name the user knows their file by: the URL's last path segment, or "the uploaded file"
    for a data URI, recovered from Cog's temporary name (`tmpk73nzwlvc` + `short.flac`).
    A URL whose last segment is itself `file.<ext>` reads as "the uploaded file" too."""
    name = pathlib.Path(path).name
    prefix = tempfile.gettempprefix()
    if not name.startswith(prefix) or len(name) < len(prefix) + _RANDOM_CHARS:
        return name
    original = name[len(prefix) + _RANDOM_CHARS :]
    if not original:
        return "the downloaded file"
    if _DATA_URI_NAME.fullmatch(original):
        return "the uploaded file"
    return original


DESCRIPTIONS = ("the uploaded file", "the downloaded file")
"""Names display_name gives where the user's own name for the file is unknown: shown unquoted."""


def public_text(text: str, path: pathlib.Path, name: str) -> str:
    """`text` (an error or a warning) as the user should read it: Cog's temporary name and path
    replaced by `name`, and a description ("the uploaded file") unquoted, with a capital letter
    where it starts the sentence. A file name stays quoted, even one starting "the "."""
    temp = path.name
    shown = name if name in DESCRIPTIONS else f"'{name}'"
    text = text.replace(f"'{path}'", shown).replace(f"'{temp}'", shown)
    text = text.replace(str(path), name).replace(temp, name)
    for description in DESCRIPTIONS:
        text = text.replace(f"'{description}'", description)
        if text.startswith(description):
            text = description[0].upper() + text[1:]
    return text


def with_display_name(error: ASRError, path: pathlib.Path, name: str) -> ASRError:
    """`error` with Cog's temporary file name replaced by `name` (in place: type, chain and
    traceback stay); see public_text."""
    if len(error.args) != 1 or not isinstance(error.args[0], str):
        return error
    error.args = (public_text(error.args[0], path, name),)
    return error


def with_display_names(warnings: tuple[str, ...], path: pathlib.Path, name: str) -> tuple[str, ...]:
    """The output's warnings with Cog's temporary file name replaced by `name`, as in errors."""
    shown = name if name.startswith("the ") else f"'{name}'"
    return tuple(w.replace(f"'{path.name}'", shown).replace(path.name, name) for w in warnings)


def forget_parsed_urls() -> None:
    """Drop Python's cache of parsed URLs. Cog parses each `audio` value with urllib.parse, whose
    `urlsplit` keeps the last 128 distinct inputs alive (an LRU cache), each a data URI of up to
    ~100 MB plus a copy of its path: the worker grew by twice every recent upload's size (measured:
    +43 MB after one 17 MB upload, for good). Parsing is cheap; the cache is not worth it here."""
    urllib.parse.clear_cache()
