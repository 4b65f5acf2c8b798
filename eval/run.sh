#!/usr/bin/env bash
# The evaluation protocol of foryou (see eval/README.md); `make eval` runs it after
# `make loadable`. No arguments. QUICK=1 runs the smoke variant (1 seed, tiny grid).
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(bash scripts/python-venv.sh .venv-eval eval/requirements.txt)
if [ ! -e target/release/libforyou.so ]; then
    echo "eval: target/release/libforyou.so is missing; run 'make loadable' (or 'make eval')" >&2
    exit 1
fi
# One BLAS thread; implicit and the extension each get 2 worker threads (set in kuairec.py).
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are left as the machine sets them.
export OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_NUM_THREADS=1
"$python" eval/kuairec.py
"$python" eval/incremental.py
