"""Download the Canary checkpoint into weights/ so `cog build` bakes it into the image.

    python tools/download_weights.py [--model nvidia/canary-1b-v2] [--out weights]

Needs network access to Hugging Face. The .nemo holds the main model and the auxiliary CTC
aligner that word timestamps need (about 6 GB together).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nvidia/canary-1b-v2")
    ap.add_argument("--out", default="weights")
    args = ap.parse_args()
    from huggingface_hub import hf_hub_download, list_repo_files

    name = args.model.split("/")[-1]
    files = [f for f in list_repo_files(args.model) if f.endswith(".nemo")]
    if not files:
        print(f"{args.model} has no .nemo file", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cached = hf_hub_download(args.model, files[0])
    target = out / f"{name}.nemo"
    shutil.copyfile(cached, target)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
