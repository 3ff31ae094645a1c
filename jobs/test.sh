#!/usr/bin/env bash
# The test command: install what is missing, build with warnings as errors, run
# the default test suite (everything but the `bench` and `slurm` labels).
set -euo pipefail
cd "$(dirname "$0")/.."
./jobs/install-deps.sh
LETHE_BUILD=${LETHE_BUILD:-build} ./jobs/build.sh -DLETHE_WERROR=ON
cd "${LETHE_BUILD:-build}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --output-on-failure -LE 'bench|slurm' -j 2 "$@"
