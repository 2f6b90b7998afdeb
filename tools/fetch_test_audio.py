"""Fetch the public recordings the tests and benchmarks use (`make test-audio`).

    python tools/fetch_test_audio.py [--out .cache/test-audio] [--manifest tools/test_audio.json]

Each file comes from the URL in the manifest and must match its sha256; files already present
with the right checksum are kept. Standard library only, so it works before `make venv`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(entry: dict, out: Path, timeout_s: float) -> str:
    """Download one manifest entry into `out` (atomically); return what was done."""
    target = out / entry["name"]
    if target.is_file() and sha256_of(target) == entry["sha256"]:
        return "present"
    partial = target.with_suffix(target.suffix + ".part")
    with urllib.request.urlopen(entry["url"], timeout=timeout_s) as r, open(partial, "wb") as f:
        while block := r.read(1 << 16):
            f.write(block)
    got = sha256_of(partial)
    if got != entry["sha256"]:
        partial.unlink()
        raise ValueError(f"{entry['url']} has sha256 {got}, expected {entry['sha256']} (the file changed upstream)")
    partial.replace(target)
    return "fetched"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / ".cache" / "test-audio"))
    ap.add_argument("--manifest", default=str(ROOT / "tools" / "test_audio.json"))
    ap.add_argument("--timeout-s", type=float, default=30.0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for entry in json.loads(Path(args.manifest).read_text())["files"]:
        try:
            what = fetch(entry, out, args.timeout_s)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            print(f"error: could not fetch {entry['name']} from {entry['url']}: {reason}. "
                  f"Copy the files listed in tools/test_audio.json into {out} by hand, or point "
                  "ASR_TEST_AUDIO_DIR at a folder that holds them.", file=sys.stderr)
            return 1
        print(f"{what}: {out / entry['name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
