"""Liveness of a running server, for a supervisor (Docker HEALTHCHECK, Kubernetes probe).

Cog's `GET /health-check` says READY or BUSY but not for how long, and coglet 0.23.1 has faults
that leave its only slot BUSY for good (a prediction id of 256+ bytes or containing NUL) or for as
long as a client likes (a URL input that trickles in, with no overall download deadline). So the
worker touches an activity file when a prediction starts and ends (`mark`), and `check` judges:

- READY or STARTING: alive;
- BUSY while a prediction runs: alive until it has run longer than the longest file the limits
  allow could take (`ASR_DECODE_TIMEOUT_S` + `ASR_MAX_DURATION_S` x `ASR_HEALTH_RTF`);
- BUSY while none runs (a download, or a slot coglet never freed): alive for `ASR_HEALTH_IDLE_BUSY_S`;
- anything else (SETUP_FAILED, DEFUNCT, UNHEALTHY, no answer): dead.

Stdlib only, so the check runs in any container that has Python.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import settings

def activity_file() -> Path:
    return settings.activity_file()


def mark(running: bool, path: Path | None = None) -> None:
    """Record that a prediction started (running=True) or ended, atomically (write, then rename)."""
    path = path or activity_file()
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".asr-activity-")
        with os.fdopen(fd, "w") as f:
            json.dump({"running": running, "at": time.time()}, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only disk must not fail predictions; the check then sees no activity


@dataclass(frozen=True)
class Bounds:
    max_run_s: float
    """Longest a single prediction may run before the server counts as hung."""
    max_idle_busy_s: float
    """Longest the slot may be BUSY with no prediction running (downloading, or stuck)."""

    @classmethod
    def from_env(cls) -> "Bounds":
        from .types import AudioLimits

        limits = AudioLimits.from_env()
        rtf = settings.number("ASR_HEALTH_RTF", 0.5)  # seconds of work per second of audio, worst case
        return cls(max_run_s=limits.decode_timeout_s + limits.max_duration_s * rtf + 60.0,
                   max_idle_busy_s=settings.number("ASR_HEALTH_IDLE_BUSY_S", 300.0))


@dataclass(frozen=True)
class Verdict:
    alive: bool
    reason: str


def check(url: str, bounds: Bounds, state_file: Path, activity: Path, timeout_s: float = 10.0,
          now: float | None = None) -> Verdict:
    """One probe. `state_file` keeps, between probes, when BUSY was first seen."""
    now = time.time() if now is None else now
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health-check", timeout=timeout_s) as r:
            status = json.loads(r.read() or b"{}").get("status", "")
    except (urllib.error.URLError, OSError, ValueError) as e:
        return Verdict(False, f"no answer from {url}: {e}")
    if status != "BUSY":
        state_file.unlink(missing_ok=True)
        return Verdict(status in ("READY", "STARTING"), f"status {status or 'missing'}")
    try:
        busy_since = float(json.loads(state_file.read_text())["busy_since"])
    except (OSError, ValueError, KeyError, TypeError):
        busy_since = now
        state_file.write_text(json.dumps({"busy_since": now}))
    try:
        act = json.loads(activity.read_text())
        running, at = bool(act["running"]), float(act["at"])
    except (OSError, ValueError, KeyError, TypeError):
        running, at = False, 0.0
    if running:
        busy_s, limit_s, what = now - at, bounds.max_run_s, "running one prediction"
    else:
        busy_s, limit_s, what = now - max(busy_since, at), bounds.max_idle_busy_s, "with no prediction running"
    alive = busy_s <= limit_s
    return Verdict(alive, f"BUSY {what} for {busy_s:.0f} s (limit {limit_s:.0f} s)")
