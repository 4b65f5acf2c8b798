#!/usr/bin/env bash
# The foryou benchmark (issue 5), side by side with implicit and sqlite-vec; see
# bench/README.md. `make bench` runs it after `make loadable`; `make bench-quick` runs
# it with QUICK=1 (small shapes, a few minutes). No arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(bash scripts/python-venv.sh .venv-bench bench/requirements.txt)
if [ ! -e target/release/libforyou.so ]; then
    echo "bench: target/release/libforyou.so is missing; run 'make loadable' (or 'make bench')" >&2
    exit 1
fi
# One BLAS thread (implicit warns otherwise); implicit and foryou get 2 worker threads
# each (bench/settings.py).
export OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_NUM_THREADS=1
"$python" bench/bench.py
# External content against a copy (bench/results-content*.md).
exec "$python" bench/content.py
