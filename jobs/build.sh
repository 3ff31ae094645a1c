#!/usr/bin/env bash
# Configure and build lethe into build/ (or $LETHE_BUILD). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${LETHE_BUILD:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" > "$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)"
