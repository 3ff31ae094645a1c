# Shared by the integration tests: arguments, mpirun, assertions.
# $1 lethe executable, $2 source dir, $3 scratch dir, $4 mpiexec
set -uo pipefail
LETHE=$1 SRC=$2 SCRATCH=$3 MPIEXEC=${4:-mpirun}
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH" && cd "$SCRATCH" || exit 1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 BLIS_NUM_THREADS=${BLIS_NUM_THREADS:-1}
FAILS=0 PASSES=0
# Debian's interpreter: python3-h5py/numpy are installed for it, not for other pythons on PATH
PY=/usr/bin/python3

# run NP TIMEOUT_S OUTFILE args...: lethe under mpirun; prints the exit code (124 = timed out)
run() {
  local np=$1 to=$2 out=$3
  shift 3
  timeout -k 5 "$to" "$MPIEXEC" --oversubscribe --bind-to none -n "$np" "$LETHE" "$@" >"$out" 2>&1
  echo $?
}

ok() { PASSES=$((PASSES + 1)); echo "ok   - $*"; }
bad() { FAILS=$((FAILS + 1)); echo "FAIL - $*"; }

# expect_fail NAME NP PATTERN args...: non-zero exit, no hang, output matches PATTERN (grep -E)
expect_fail() {
  local name=$1 np=$2 pat=$3
  shift 3
  local out="$SCRATCH/$name.out"
  local rc
  rc=$(run "$np" 60 "$out" "$@")
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    bad "$name: hung (killed after 60 s)"; sed 's/^/    /' "$out"; return
  fi
  if [ "$rc" = 0 ]; then bad "$name: exit 0, expected failure"; sed 's/^/    /' "$out"; return; fi
  if ! grep -qE -- "$pat" "$out"; then
    bad "$name: output lacks /$pat/"; sed 's/^/    /' "$out"; return
  fi
  ok "$name (exit $rc): $(grep -m1 -E -- "$pat" "$out" | cut -c1-150)"
}

finish() {
  echo "$PASSES passed, $FAILS failed"
  [ "$FAILS" = 0 ]
}

# tiny_dataset FILE SEED: a small learnable dataset (3 classes, 20 features, 512 train and
# 128 test samples around fixed centres), independent of lethe
tiny_dataset() {
  "$PY" - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
rng = np.random.default_rng(int(sys.argv[2]))
centers = np.array([[1, 0, 0, 0] * 5, [0, 1, 0, 0] * 5, [0, 0, 1, 0] * 5], dtype=np.float32)
def make(n):
    y = rng.integers(0, 3, n)
    return (centers[y] + 0.8 * rng.standard_normal((n, 20))).astype(np.float32), y.astype(np.uint8)
with h5py.File(sys.argv[1], 'w') as f:
    for split, n in (('train', 512), ('test', 128)):
        x, y = make(n)
        f[f'{split}/x'] = x
        f[f'{split}/y'] = y
    f.attrs['num_classes'] = 3
    f.attrs['name'] = 'tiny'
PY
}
