"""Download the wheels the GPU check installs on a host without a package index.

    python tools/gpu_wheels.py [--out build/gpu-wheels] [--python-version 3.12]

Reads tools/gpu_wheels.txt; binary wheels come from the registry for CPython 3.12 manylinux
x86-64, pure-Python packages published only as source are built into wheels here. The silero-vad
wheel is slimmed to the one ONNX model the service runs (11 MB -> 1.2 MB), because everything
carried to the GPU host, working tree included, must stay under 64 MiB.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_BYTES = 56 * 2**20
"""What the wheels may take of the 64 MiB carried to the GPU host (the tree takes ~1 MB)."""
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_27_x86_64", "manylinux_2_28_x86_64")
SOURCE_ONLY = {"antlr4-python3-runtime"}
"""Published without a wheel; pure Python, so a wheel built here works on any Python 3."""
SILERO_KEEP = ("silero_vad/__init__.py", "silero_vad/data/__init__.py", "silero_vad/data/silero_vad_16k_sequence.onnx")


def requirements() -> list[str]:
    lines = (ROOT / "tools" / "gpu_wheels.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args], check=True)


def slim_silero(out: Path) -> None:
    """Rewrite the silero-vad wheel with only what asr.frontend reads (its package marker and the
    16 kHz sequence model); its __init__ is replaced by an empty one, so importing the package
    (which the service never does) cannot pull in torch."""
    for wheel in out.glob("silero_vad-*.whl"):
        slim = wheel.with_suffix(".slim")
        record_name, rows = "", []
        with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
            for item in src.infolist():
                name = item.filename
                if name.endswith(".dist-info/RECORD"):
                    record_name = name
                    continue
                if ".dist-info/" not in name and name not in SILERO_KEEP:
                    continue
                data = b"" if name.endswith("__init__.py") else src.read(item)
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                rows.append(f"{name},sha256={digest},{len(data)}")
                dst.writestr(item, data)
            dst.writestr(record_name, "\n".join(rows + [f"{record_name},,"]) + "\n")
        slim.replace(wheel)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "build" / "gpu-wheels"))
    ap.add_argument("--python-version", default="3.12")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reqs = requirements()
    binary = [r for r in reqs if r.split("==")[0] not in SOURCE_ONLY]
    source = [r for r in reqs if r.split("==")[0] in SOURCE_ONLY]
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    pip("download", "--no-deps", "--only-binary=:all:", "--implementation", "cp",
        "--python-version", args.python_version, *platforms, "-d", str(out), *binary)
    if source:
        pip("wheel", "--no-deps", "-w", str(out), *source)
    slim_silero(out)
    total = sum(p.stat().st_size for p in out.glob("*.whl"))
    print(f"{len(list(out.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB in {out}")
    if total > BUDGET_BYTES:
        print(f"over the {BUDGET_BYTES / 2**20:.0f} MiB budget for the GPU host", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
