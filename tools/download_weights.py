"""Download the Canary checkpoint into weights/ so `cog build` bakes it into the image.

    python tools/download_weights.py [--model nvidia/canary-1b-v2] [--out weights]

Needs network access to Hugging Face. The .nemo holds the main model and the auxiliary CTC
aligner that word timestamps need (about 6 GB together).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path


def reachable(model: str, timeout_s: float = 10.0) -> str | None:
    """None when the hub answers for `model`, else why not. One quick request (proxies from the
    environment apply), so an offline machine gets one line instead of minutes of retries."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        with urllib.request.urlopen(f"{endpoint}/api/models/{model}", timeout=timeout_s):
            return None
    except urllib.error.HTTPError as e:
        return f"{endpoint} answered HTTP {e.code} for {model}"
    except (urllib.error.URLError, OSError) as e:
        return f"cannot reach {endpoint}: {getattr(e, 'reason', e)}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nvidia/canary-1b-v2")
    ap.add_argument("--out", default="weights")
    args = ap.parse_args()
    why = reachable(args.model)
    if why:
        print(f"error: {why}. Run `make weights` on a machine with network access and copy weights/ here, "
              "or set ASR_MODEL to a .nemo file you already have.", file=sys.stderr)
        return 1
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    from huggingface_hub import hf_hub_download, list_repo_files

    name = args.model.split("/")[-1]
    try:
        files = [f for f in list_repo_files(args.model) if f.endswith(".nemo")]
    except Exception as e:  # the hub's own errors vary by version; one line, not a traceback
        print(f"error: cannot list {args.model} on Hugging Face: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if not files:
        print(f"{args.model} has no .nemo file", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cached = hf_hub_download(args.model, files[0])
    target = out / f"{name}.nemo"
    shutil.copyfile(cached, target)
    # The public name the service reports for this file (asr.names.public_model_name), so the
    # output says nvidia/canary-1b-v2 rather than the path the image keeps it at.
    target.with_name(target.name + ".source").write_text(args.model + "\n", encoding="utf-8")
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
