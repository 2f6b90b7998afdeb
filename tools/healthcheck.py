"""Liveness probe for the service: exit 0 while it is alive, 1 when a supervisor should restart it.

    python tools/healthcheck.py [--url http://127.0.0.1:5000] [--state /tmp/asr-health.json]

Alive: READY or STARTING; or BUSY for less than a bound derived from the configured limits
(see asr/health.py). Prints one line saying why. Docker:

    HEALTHCHECK --interval=30s --timeout=15s --start-period=10m --retries=3 \\
      CMD ["python", "/src/tools/healthcheck.py"]

Kubernetes (the container's own Python; a startupProbe covers the model load):

    livenessProbe:
      exec: {command: ["python", "/src/tools/healthcheck.py"]}
      periodSeconds: 30
      timeoutSeconds: 15
      failureThreshold: 3
    startupProbe:
      httpGet: {path: /health-check, port: 5000}
      periodSeconds: 10
      failureThreshold: 60
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asr.health import Bounds, activity_file, check  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT', '5000')}")
    ap.add_argument("--state", default="/tmp/asr-health.json", help="where BUSY's first sighting is kept")
    ap.add_argument("--max-run-s", type=float, default=None, help="override the bound on one prediction")
    ap.add_argument("--max-idle-busy-s", type=float, default=None,
                    help="override the bound on BUSY with no prediction running")
    args = ap.parse_args(argv)
    bounds = Bounds.from_env()
    bounds = Bounds(max_run_s=args.max_run_s if args.max_run_s is not None else bounds.max_run_s,
                    max_idle_busy_s=args.max_idle_busy_s if args.max_idle_busy_s is not None
                    else bounds.max_idle_busy_s)
    verdict = check(args.url, bounds, Path(args.state), activity_file())
    print(("alive: " if verdict.alive else "dead: ") + verdict.reason)
    return 0 if verdict.alive else 1


if __name__ == "__main__":
    sys.exit(main())
