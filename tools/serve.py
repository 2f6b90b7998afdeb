"""Run Cog's HTTP server (coglet) for `make serve`, and stop with a plain message if setup fails.

Before starting anything it checks every model variable (ASR_MODEL, ASR_LID_MODEL,
ASR_DIAR_MODEL: asr/preflight.py) and, if any cannot work, names them all in one message with the
command that fixes each, and exits 1. coglet reports a failed setup only as SETUP_FAILED in a JSON
log line and keeps running, answering every prediction with a misleading 503 "Setup has not
finished yet". This wrapper watches GET /health-check while the server starts: on READY it prints
one plain line and leaves the server running; on SETUP_FAILED it prints the setup error (which
names the variable) and what to do, stops the server and exits 1.

    python tools/serve.py [--host 127.0.0.1] [--port 5000]     (environment as for coglet)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from asr.preflight import WEIGHTS, check_models, report  # noqa: E402

HINT = (
    "To get the real weights: `make weights` (needs network access to Hugging Face), then "
    + " ".join(f"{k}={v}" for k, v in WEIGHTS.items()) + " make serve. "
    "To try the service without them: the tiny models (README, Quick start)."
)


def health(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url + "/health-check", timeout=5) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return None


def setup_error(status: dict) -> str:
    """The useful end of coglet's nested setup message ("... setup failed: ModelLoadError: ...")."""
    logs = str((status.get("setup") or {}).get("logs") or "").strip()
    marker = "setup failed: "
    return logs[logs.rfind(marker) + len(marker):] if marker in logs else (logs or "no message")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    args = ap.parse_args()
    problems = check_models()
    if problems:
        print(f"error: the service could not start: {report(problems)}", file=sys.stderr, flush=True)
        return 1
    env = dict(os.environ, PORT=str(args.port))
    # coglet sizes its prediction slots from COG_MAX_CONCURRENCY; the runner's @concurrent(max=...)
    # reads ASR_MAX_CONCURRENCY (asr/settings.py). Keep the two equal.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from asr import settings

    env.setdefault("COG_MAX_CONCURRENCY", str(settings.max_concurrency()))
    server = subprocess.Popen([sys.executable, "-m", "cog.server.http", "--host", args.host], env=env)

    def forward(signum, _frame):
        server.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    url = f"http://{args.host}:{args.port}"
    while server.poll() is None:
        status = health(url) or {}
        state = status.get("status")
        if state == "SETUP_FAILED":
            print(f"\nerror: the service could not start: {setup_error(status)}\n{HINT}", file=sys.stderr, flush=True)
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            return 1
        if state and state != "STARTING":
            print(f"\nserving on {url} ({state}); stop with Ctrl-C", file=sys.stderr, flush=True)
            break
        time.sleep(0.5)
    while True:
        try:
            return server.wait()
        except KeyboardInterrupt:  # a second Ctrl-C while the server shuts down
            continue


if __name__ == "__main__":
    sys.exit(main())
