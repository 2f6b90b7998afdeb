"""Start the real service (`make serve`) and talk to it over HTTP: shared by tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tiny_model_key(kind: str) -> str:
    """Everything the tiny model of `kind` is built from: the builder's modules (its own, the
    shared testing helpers, the adapter constants it imports), the languages it writes, and
    NeMo's version. A change in any of them means a fresh model."""
    import hashlib
    import importlib
    import importlib.metadata

    from asr.testing import KINDS

    module = importlib.import_module(KINDS[kind])
    digest = hashlib.sha256()
    sources = sorted({Path(module.__file__), *(ROOT / "asr" / "testing").glob("*.py"), ROOT / "asr" / "languages.py",
                      ROOT / "asr" / "models" / "runtime.py", ROOT / "asr" / "models" / "aed.py"})
    for path in sources:
        digest.update(path.read_bytes())
    digest.update(repr(getattr(module, "LANGUAGES", ())).encode())
    digest.update(importlib.metadata.version("nemo_toolkit").encode())
    return digest.hexdigest()[:12]


def ensure_tiny_model(kind: str = "canary") -> Path:
    """The tiny model of `kind` (canary, parakeet-tdt, ctc, ...), built with `python -m asr
    tiny-model --kind KIND` and cached under .cache as tiny-KIND-KEY.nemo (see tiny_model_key)."""
    import sys

    path = ROOT / ".cache" / f"tiny-{kind}-{tiny_model_key(kind)}.nemo"
    if not path.is_file():
        for stale in path.parent.glob(f"tiny-{kind}-*.nemo"):  # built from older inputs
            if stale.name.count("-") == path.name.count("-"):  # not another kind sharing the prefix
                stale.unlink()
        result = subprocess.run([sys.executable, "-m", "asr", "tiny-model", str(path), "--kind", kind],
                                cwd=ROOT, capture_output=True, text=True, timeout=600)
        if result.returncode != 0 or not result.stdout.strip().endswith(path.name):
            raise RuntimeError(f"tiny-model --kind {kind} failed:\n{result.stderr[-3000:]}")
    return path


def session_processes(sid: int) -> dict[int, str]:
    """pid -> command line of every live process in session `sid` (the server and its worker)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) == sid:
                out[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            pass
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def decoder_children_of(parent: int) -> list[int]:
    """The decoder processes `parent` started (each runs in a session of its own)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent and b"asr.media." in (d / "cmdline").read_bytes():
                out.append(int(d.name))
        except (OSError, ValueError):
            pass
    return out


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


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


def start_server(tiny_model: Path | str, log_path: Path, env: dict | None = None) -> Server:
    """`tiny_model`: one model path, or an ASR_MODEL list (comma-separated). The language
    identifier and the diarizer are the tiny ones unless `env` or the environment names others."""
    port = free_port()
    full_env = dict(os.environ, ASR_MODEL=str(tiny_model), PORT=str(port),
                    ASR_ACTIVITY_FILE=str(log_path.parent / "activity.json"), **(env or {}))
    for var, kind in (("ASR_LID_MODEL", "langid"), ("ASR_DIAR_MODEL", "sortformer")):
        full_env.setdefault(var, str(ensure_tiny_model(kind)))
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
