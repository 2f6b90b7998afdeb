"""`python -m asr client FILE`: send a file to a running server, wait, and print the result.

Standard library only (urllib). A local file travels as a data URI inside the JSON body; Cog's
HTTP server (coglet) refuses bodies over 100 MiB with a plain-text 413, so a file whose body
would be larger is refused here, before anything is sent, with the advice to pass an http(s)
URL instead (which the server downloads itself). One prediction runs at a time per server and
Cog answers `409 At capacity` to the next; the client retries that for a bounded time.
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ASRError
from .names import clip

log = logging.getLogger(__name__)

COG_BODY_LIMIT_BYTES = 100 * 2**20
"""coglet's request body limit (100 MiB): about 78 MB of audio once base64 has added a third."""


class ClientError(ASRError):
    """The request could not be made or the server could not run it (the message says why)."""


class PredictionFailed(ClientError):
    """The server ran the prediction and reported failure; the message is the server's."""


@dataclass(frozen=True)
class ClientOptions:
    url: str = "http://127.0.0.1:5000"
    max_body_bytes: int = COG_BODY_LIMIT_BYTES
    retry_s: float = 300.0
    """How long to keep retrying `409 At capacity` before giving up."""
    timeout_s: float | None = None
    """Socket timeout for the whole wait (a long file takes long); None waits for ever."""


def is_url(file: str) -> bool:
    return file.startswith(("http://", "https://"))


def request_body(file: str, inputs: dict, max_body_bytes: int = COG_BODY_LIMIT_BYTES) -> bytes:
    """The JSON body of `POST /predictions`: `file` as a URL, or a local file as a data URI.
    The size is worked out from the file's length before it is read, so an oversized file is
    refused at once."""
    if is_url(file):
        return json.dumps({"input": {"audio": file, **inputs}}).encode()
    path = Path(file)
    if not path.is_file():
        raise ClientError(f"{file!r} is not a file; give a local audio or video file or an http(s) URL")
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    head, tail = json.dumps({"input": {"audio": "\0", **inputs}}).encode().split(b"\\u0000", 1)
    prefix = f"data:{mime};base64,".encode()
    size = path.stat().st_size
    body_bytes = len(head) + len(prefix) + 4 * ((size + 2) // 3) + len(tail)
    if body_bytes > max_body_bytes:
        raise ClientError(
            f"{file} is {size / 1e6:.1f} MB; sent inline (base64 in the JSON body) the request would be "
            f"{body_bytes / 2**20:.1f} MiB, over the server's limit of {max_body_bytes / 2**20:.0f} MiB "
            f"(about {max_body_bytes * 3 / 4 / 1e6:.0f} MB of file). Put the file where the server can "
            "download it and pass its http(s) URL instead: python -m asr client https://.../file")
    return head + prefix + base64.b64encode(path.read_bytes()) + tail


def server_message(status: int, raw: bytes) -> str:
    """The human part of an error answer: Cog's `error`, a validation `detail`, or the text."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace").strip() or f"HTTP {status}"
    if isinstance(body, dict):
        if body.get("error"):
            return str(body["error"])
        detail = body.get("detail")
        if isinstance(detail, list):
            return "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', [])[1:]) or 'input'}: {d.get('msg', d)}"
                if isinstance(d, dict) else str(d) for d in detail)
        if detail:
            return str(detail)
    return json.dumps(body)


def post(url: str, body: bytes, retry_s: float, timeout_s: float | None,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> dict:
    """POST `body` and return the JSON answer, retrying `409 At capacity` with a growing pause
    (0.25 s doubling to 4 s) until `retry_s` has passed. Other HTTP errors raise ClientError
    with the server's message."""
    deadline = clock() + retry_s
    delay = 0.25
    attempts = 0
    while True:
        attempts += 1
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raw = e.read()
            if e.code == 409 and clock() + delay <= deadline:
                log.info("server busy (409), retrying in %.2f s", delay)
                sleep(delay)
                delay = min(delay * 2, 4.0)
                continue
            message = server_message(e.code, raw)
            if e.code == 409:
                raise ClientError(f"the server stayed busy ({message}) for {retry_s:g} s over {attempts} "
                                  "attempts; try again later, or wait longer with --retry-s") from e
            if e.code == 413:
                raise ClientError(f"the server refused the request as too large ({message}); pass an "
                                  "http(s) URL to the file instead") from e
            raise ClientError(f"the server answered HTTP {e.code}: {message}") from e
        except urllib.error.URLError as e:
            raise ClientError(f"cannot reach {url}: {e.reason} (is the server running? `make serve`)") from e
        except json.JSONDecodeError as e:
            raise ClientError(f"the server's answer from {url} is not JSON: {e}") from e


_COGLET_PREFIX = re.compile(r"^(?:\s*(?:Async )?[Pp]rediction failed:\s*)+(?:[A-Z][A-Za-z]*(?:Error|Exception):\s*)?")
"""What coglet 0.23.1 puts before every failure ("Prediction failed: Prediction failed: InputError: ",
or for an async run() "Async prediction failed: InputError: ")."""


def failure_message(message: str, file: str) -> str:
    """The server's failure as the user should read it: without coglet's doubled prefix and the
    error's class name, and with the local file's name where the server could only say "the
    uploaded file" (a data URI carries no name)."""
    return local_name(_COGLET_PREFIX.sub("", message.strip(), count=1) or message.strip(), file)


def local_name(text: str, file: str) -> str:
    """`text` from the server with "the uploaded file" (quoted or not) replaced by the name of the
    local file that was sent; a URL's name is already the server's own."""
    if is_url(file):
        return text
    return re.sub(r"'?\b[Tt]he uploaded file\b'?", repr(os.path.basename(file)), text)

def check_server_url(url: str) -> None:
    """Refuse a server address urllib would try in some other way (ftp:// waits on a data
    connection with no output) before anything is read or sent."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(f"--url {clip(url)!r} is not an http(s) address of the server; "
                          f"give one like {ClientOptions.url}")


def predict(file: str, inputs: dict, options: ClientOptions = ClientOptions()) -> dict:
    """Run one prediction and return its output (the service's JSON contract)."""
    check_server_url(options.url)
    body = request_body(file, inputs, options.max_body_bytes)
    name = file if is_url(file) else os.path.basename(file)
    log.info("sending %s (%.1f MB request) to %s", name, len(body) / 1e6, options.url)
    answer = post(options.url.rstrip("/") + "/predictions", body, options.retry_s, options.timeout_s)
    for line in str(answer.get("logs") or "").splitlines():  # the server's log of this prediction (-v)
        log.info("server: %s", line)
    status = answer.get("status")
    if status == "succeeded" and isinstance(answer.get("output"), dict):
        output = answer["output"]
        output["warnings"] = [local_name(str(w), file) for w in output.get("warnings") or ()]
        return output
    if status == "failed":
        raise PredictionFailed(failure_message(answer.get("error") or "", file) or "no message from the server")
    raise ClientError(f"the prediction ended as {status!r}: {answer.get('error') or json.dumps(answer)[:500]}")


def render(output: dict, fmt: str) -> str:
    """The output as the CLI prints it: text, json, srt or vtt."""
    if fmt == "text":
        return output.get("text", "") + "\n"
    if fmt == "json":
        return json.dumps(output, ensure_ascii=False, indent=2) + "\n"
    subtitles = output.get(fmt)
    if subtitles is None:
        raise ClientError(f"the server returned no {fmt} (timestamps were off)")
    return subtitles
