#!/usr/bin/env bash
# The GPU check: the whole service measured on one GPU host in a few minutes, in one go.
#
#   bash benchmarks/gpu_check.sh              # on the GPU host (Python 3.12 + its own PyTorch, no NeMo,
#                                             # no package index): installs build/gpu-wheels, then measures
#   bash benchmarks/gpu_check.sh --rehearse   # here, on CPU with the tiny models, in about a minute
#
# Before going to the GPU host: `make gpu-wheels` (downloads the missing packages as cp312 wheels
# into build/gpu-wheels, which travels with the working tree). Results: one JSON line per
# measurement and a markdown table on stdout, both also written to $OUT (or build/gpu-check).
# Exits non-zero if any part failed, and says which.
set -uo pipefail
cd "$(dirname "$0")/.."
out_dir="${OUT:-build/gpu-check}"
mkdir -p "$out_dir"
if [ "${1:-}" = "--rehearse" ]; then
  py="${PYTHON:-.venv/bin/python}"
  exec "$py" benchmarks/gpu_check.py --rehearse --out "$out_dir"
fi
py="${PYTHON:-python3}"
if ! "$py" -c "import nemo" 2>/dev/null; then
  if ! ls build/gpu-wheels/*.whl >/dev/null 2>&1; then
    echo "gpu_check: NeMo is not installed and build/gpu-wheels is empty; run 'make gpu-wheels' first" >&2
    exit 2
  fi
  echo "gpu_check: installing $(ls build/gpu-wheels/*.whl | wc -l) wheels (no index, no dependencies)" >&2
  t0=$(date +%s)
  # into a folder of its own (the host's environment stays untouched), first on the path
  site="${GPU_CHECK_SITE:-/tmp/asr-gpu-site}"
  "$py" -m pip install --quiet --no-index --no-deps --no-compile --disable-pip-version-check --upgrade \
    --target "$site" build/gpu-wheels/*.whl || { echo "gpu_check: installing the wheels failed" >&2; exit 2; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  echo "gpu_check: installed in $(( $(date +%s) - t0 )) s" >&2
fi
exec "$py" benchmarks/gpu_check.py --out "$out_dir" "$@"
