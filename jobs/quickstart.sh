#!/usr/bin/env bash
# Quick start: install what is missing, build, import Fashion-MNIST, and train
# input/quickstart.ini with mpirun on the local cores (one rank per core).
set -euo pipefail
cd "$(dirname "$0")/.."
./jobs/install-deps.sh
./jobs/build.sh
d=/usr/share/datasets/fashion-mnist
if [ ! -f data/fashion-mnist.h5 ]; then
  mkdir -p data
  build/src/lethe data import-idx "$d/train-images-idx3-ubyte.gz" "$d/train-labels-idx1-ubyte.gz" \
    "$d/t10k-images-idx3-ubyte.gz" "$d/t10k-labels-idx1-ubyte.gz" data/fashion-mnist.h5 \
    --name fashion-mnist
fi
np=${LETHE_RANKS:-$(nproc)}
extra=()
[ "$(id -u)" = 0 ] && extra+=(--allow-run-as-root)
export BLIS_NUM_THREADS=${BLIS_NUM_THREADS:-1}
exec mpirun "${extra[@]}" --oversubscribe -n "$np" build/src/lethe train input/quickstart.ini "$@"
