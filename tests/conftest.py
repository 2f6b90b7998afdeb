from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.media import SHARED_AUDIO, load_reference  # noqa: E402


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    """The real recordings beside the project (../shared/audio, or $ASR_TEST_AUDIO_DIR)."""
    if not (SHARED_AUDIO / "jfk.flac").is_file():
        pytest.skip(f"real recordings not found in {SHARED_AUDIO} (set ASR_TEST_AUDIO_DIR)")
    return SHARED_AUDIO


@pytest.fixture(scope="session")
def jfk(shared_audio) -> tuple[np.ndarray, int]:
    """JFK's 11 s excerpt, (2, n) float32 at 44.1 kHz."""
    return load_reference("jfk.flac")


@pytest.fixture(scope="session")
def speech60(shared_audio) -> tuple[np.ndarray, int]:
    """Silero's 60 s test clip, (1, n) float32 at 16 kHz."""
    return load_reference("test.wav")


@pytest.fixture(scope="session")
def frontend():
    from asr.frontend import FrontEnd

    return FrontEnd()


# ------------------------------------------------------------------------------------------
# The tiny Canary-shaped model, and the real Cog HTTP server running it.
# ------------------------------------------------------------------------------------------

import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """Built with `python -m asr tiny-model`; cached under .cache keyed by the builder's source."""
    digest = hashlib.sha256((ROOT / "asr" / "engine.py").read_bytes()).hexdigest()[:12]
    path = ROOT / ".cache" / f"tiny-canary-{digest}.nemo"
    if not path.is_file():
        result = subprocess.run(
            [sys.executable, "-m", "asr", "tiny-model", str(path)],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().endswith(path.name)
    return path


@pytest.fixture(scope="session")
def transcriber(tiny_model):
    from asr.pipeline import Transcriber

    return Transcriber.load(str(tiny_model), device="cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `make serve` (coglet) and a small JSON client for it."""

    def __init__(self, url: str, proc: subprocess.Popen, log_path: Path):
        self.url = url
        self.proc = proc
        self.log_path = log_path

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 300,
                headers: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return e.code, {"raw": raw.decode("utf-8", "replace")}

    def predict(self, **inputs) -> tuple[int, dict]:
        return self.request("POST", "/predictions", {"input": inputs})

    def health(self) -> str:
        return self.request("GET", "/health-check", timeout=30)[1].get("status", "")

    def ready(self, within_s: float = 5.0) -> bool:
        """READY again within a short time (coglet frees the slot just after it answers)."""
        deadline = time.monotonic() + within_s
        while True:
            status = self.health()
            if status == "READY" or time.monotonic() > deadline:
                return status == "READY"
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(tiny_model: Path, log_path: Path, env: dict | None = None) -> Server:
    port = free_port()
    full_env = dict(os.environ, ASR_MODEL=str(tiny_model), PORT=str(port), **(env or {}))
    log = open(log_path, "w")
    proc = subprocess.Popen(["make", "--no-print-directory", "serve"], cwd=ROOT, env=full_env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + 300
    status = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"make serve exited with {proc.returncode}:\n{server.log()[-3000:]}")
        try:
            status = server.health()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            status = ""
        if status and status != "STARTING":
            return server
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"server not ready (status {status!r}):\n{server.log()[-3000:]}")


def stop_server(server: Server) -> None:
    try:
        os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(server.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session")
def server(tiny_model, tmp_path_factory):
    srv = start_server(tiny_model, tmp_path_factory.mktemp("server") / "server.log")
    assert srv.health() == "READY", srv.log()[-3000:]
    yield srv
    stop_server(srv)
