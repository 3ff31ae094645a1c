#!/usr/bin/env bash
# analysis/*.py on synthetic metrics files written here with h5py, then on a
# real run of `lethe train`: every script writes non-empty PNG files (PNG
# signature, > 1 kB), prints what it wrote, and fails with a message naming
# the dataset or file it misses. The shared module's CL metrics are checked
# against hand values, and compare_runs.py groups runs like `lethe report`.
source "$(dirname "$0")/common.sh"
A="$SRC/analysis"

# ---------------------------------------------------------------- synthetic files
mkdir -p syn
"$PY" - <<'PY'
import h5py, numpy as np
rng = np.random.default_rng(1)

def deck(lr, seed):
    return (f"[data]\npath = x.h5\n\n[optim]\nlr = {lr}\n\n[train]\nepochs = 5\n\n"
            f"[run]\nseed = {seed}\nout = runs/lr{lr}-s{seed}\n")

def write(path, lr, seed, T=5, steps=300, P=4, epochs=5):
    with h5py.File(path, "w") as f:
        for k, v in dict(lethe_version="0.1.0", git_revision="abc", ranks=P, blis_kernels="haswell",
                         blis_threads=1, created="2026-01-01T00:00:00Z", seed=seed,
                         deck=deck(lr, seed)).items():
            f.attrs[k] = v
        s = np.arange(steps)
        f["train/loss"] = 2.3 * np.exp(-s / 80) + 0.3 + 0.05 * rng.standard_normal(steps)
        f["train/lr"] = lr * 0.5 * (1 + np.cos(np.pi * s / steps))
        f["train/step_time"] = 0.01 + 0.001 * rng.random(steps)
        f["ranks/step_time"] = 0.01 * (1 + 0.1 * np.arange(P))[:, None] + 0.001 * rng.random((P, steps))
        acc = 1 - 0.5 * np.exp(-np.arange(1, epochs + 1) / 2)
        f["epoch/train_loss"] = 1 - acc
        f["epoch/train_acc"] = acc
        f["epoch/test_loss"] = 1.1 - acc
        f["epoch/test_acc"] = np.where(np.arange(epochs) % 2 == 0, acc - 0.02, np.nan)
        f["epoch/samples_per_s"] = np.full(epochs, 1e4)
        f["epoch/time"] = np.full(epochs, 1.0)
        R = np.zeros((T, T))
        for i in range(T):
            for j in range(T):
                R[i, j] = 0.95 - 0.1 * (i - j) if j <= i else 0.1 * rng.random()
        f["cl/acc"] = R + 0.02 * rng.random((T, T)) * (seed % 3)
        f["cl/acc_task_il"] = np.minimum(1, R + 0.05)
        f["cl/acc_init"] = 0.1 * np.ones(T)
        f.attrs["test_acc"] = float(acc[-1] - 0.01 * seed)
        f.attrs["test_loss"] = float(1.1 - acc[-1])
        f.attrs["samples_per_s"] = 1e4 + 100 * seed

write("syn/one.h5", 0.05, 1)
for lr in (0.05, 0.1):
    for seed in (1, 2, 3):
        d = f"syn/lr{lr}-s{seed}"
        import os; os.makedirs(d, exist_ok=True)
        write(f"{d}/metrics.h5", lr, seed)
with h5py.File("syn/plain.h5", "w") as f:   # a lethe file with neither /cl nor /ranks
    f.attrs["lethe_version"] = "0.1.0"
    f["train/loss"] = np.linspace(2, 1, 50)
PY

# png_ok NAME FILE: PNG signature and more than 1 kB
png_ok() {
  if [ ! -f "$2" ]; then bad "$1: $2 not written"; return; fi
  local size sig
  size=$(stat -c %s "$2")
  sig=$(head -c 8 "$2" | od -An -tx1 | tr -d ' \n')
  if [ "$sig" = 89504e470d0a1a0a ] && [ "$size" -gt 1024 ]; then
    ok "$1: $(basename "$2") is a PNG of $size bytes"
  else
    bad "$1: $2 is not a PNG > 1 kB (signature $sig, $size bytes)"
  fi
}
# script NAME OUTFILE args...: run an analysis script (exit code echoed)
script() {
  local name=$1 out=$2
  shift 2
  timeout 120 "$PY" "$A/$name.py" "$@" >"$out" 2>&1
  echo $?
}
# expect_png SCRIPT PNG... -- args...: the script exits 0, prints 'wrote X' and writes each PNG
expect_png() {
  local name=$1 pngs=()
  shift
  while [ "$1" != -- ]; do pngs+=("$1"); shift; done
  shift
  local rc
  rc=$(script "$name" "$name.out" "$@")
  if [ "$rc" != 0 ]; then bad "$name $*: exit $rc"; sed 's/^/    /' "$name.out"; return; fi
  for p in "${pngs[@]}"; do
    grep -qx "wrote $p" "$name.out" || bad "$name did not print 'wrote $p'"
    png_ok "$name" "$p"
  done
}
# expect_error SCRIPT PATTERN args...: exit 1 and a message matching PATTERN on stderr
expect_error() {
  local name=$1 pat=$2
  shift 2
  local rc
  rc=$(script "$name" "$name.err" "$@")
  if [ "$rc" = 1 ] && grep -qE -- "$pat" "$name.err"; then
    ok "$name fails clearly (exit 1): $(grep -m1 -E -- "$pat" "$name.err" | cut -c1-140)"
  else
    bad "$name $*: exit $rc, expected 1 with /$pat/"; sed 's/^/    /' "$name.err"
  fi
}

for s in plot_acc_matrix plot_task_curves plot_loss plot_rank_times compare_runs; do
  rc=$(script $s help.out --help)
  [ "$rc" = 0 ] && grep -q -- "--out DIR" help.out && ok "$s --help" || bad "$s --help: exit $rc"
done

expect_png plot_acc_matrix png/acc_matrix.png png/acc_matrix_task_il.png -- syn/one.h5 --out png
expect_png plot_task_curves png/task_curves.png png/task_curves_task_il.png -- syn/one.h5 --out png
expect_png plot_loss png/loss.png -- syn/one.h5 --out png
expect_png plot_rank_times png/rank_times.png -- syn/one.h5 --out png
# default --out: the run directory
expect_png plot_loss syn/lr0.05-s1/loss.png -- syn/lr0.05-s1
# default --out of compare_runs: the runs' common parent directory
expect_png compare_runs syn/compare_runs.png -- syn/lr0.05-s1 syn/lr0.1-s1 syn/lr0.05-s2 syn/lr0.1-s2 syn/lr0.05-s3 syn/lr0.1-s3
expect_png compare_runs png/compare_runs.png -- syn/lr0.05-s1 syn/lr0.05-s2 --out png

# missing datasets, files and foreign files
expect_error plot_acc_matrix "'syn/plain\.h5' has no dataset /cl/acc" syn/plain.h5 --out png
expect_error plot_task_curves "'syn/plain\.h5' has no dataset /cl/acc" syn/plain.h5 --out png
expect_error plot_rank_times "'syn/plain\.h5' has no dataset /ranks/step_time" syn/plain.h5 --out png
expect_error plot_loss "'nothere' does not exist" nothere
"$PY" -c "import h5py; h5py.File('foreign.h5', 'w')['x'] = [1.0]"
expect_error compare_runs "'foreign\.h5' is not a lethe metrics file" syn/lr0.05-s1 foreign.h5 --out png
mkdir -p emptyrun
expect_error plot_loss "run directory 'emptyrun' has no metrics\.h5" emptyrun
# plot_loss needs only /train/loss: it works on the plain file (no /epoch, no /train/lr)
expect_png plot_loss png/plain/loss.png -- syn/plain.h5 --out png/plain

# the shared module's CL metrics against the hand values of test_report.sh's 3 x 3 matrix:
# ACC 2.15/3, BWT -0.2, FWT 0.05, forgetting 0.225 (exact up to double rounding: 1e-12)
if PYTHONPATH="$A" "$PY" - <<'PY'
import math, lethe_h5
R = [[0.90, 0.10, 0.05], [0.95, 0.85, 0.20], [0.60, 0.75, 0.80]]
m = lethe_h5.cl_metrics(__import__("numpy").array(R), [0.10, 0.12, 0.08])
want = dict(ACC=2.15 / 3, BWT=-0.2, FWT=0.05, forgetting=0.225)
bad = {k: (m[k], v) for k, v in want.items() if not abs(m[k] - v) < 1e-12}
one = lethe_h5.cl_metrics(__import__("numpy").array([[0.7]]))
assert math.isnan(one["BWT"]) and math.isnan(one["FWT"]) and one["ACC"] == 0.7, one
raise SystemExit(f"mismatch {bad}" if bad else 0)
PY
then ok "lethe_h5.cl_metrics matches the hand values (1e-12)"; else bad "lethe_h5.cl_metrics"; fi

# compare_runs.py groups like lethe report: same partition of the six runs
runs6="syn/lr0.05-s1 syn/lr0.1-s1 syn/lr0.05-s2 syn/lr0.1-s2 syn/lr0.05-s3 syn/lr0.1-s3"
rc=$(run 1 60 report6.out report $runs6)
rc2=$(script compare_runs compare6.out $runs6 --out png)
lethe_groups=$(sed -n '/^runs/,/^groups/p' report6.out | awk '$1 ~ /^[0-9]+$/ {printf "%s ", $2}')
py_groups=$(awk '/^group [0-9]+:/ {g = $2; sub(":", "", g)} /^  syn\// {printf "%s=%s ", $1, g}' compare6.out)
want="syn/lr0.05-s1/metrics.h5=1 syn/lr0.05-s2/metrics.h5=1 syn/lr0.05-s3/metrics.h5=1 syn/lr0.1-s1/metrics.h5=2 syn/lr0.1-s2/metrics.h5=2 syn/lr0.1-s3/metrics.h5=2 "
if [ "$rc" = 0 ] && [ "$rc2" = 0 ] && [ "$lethe_groups" = "1 2 1 2 1 2 " ] && [ "$py_groups" = "$want" ]; then
  ok "compare_runs.py and lethe report group the six runs alike (by lr, seeds pooled)"
else
  bad "grouping: lethe report '$lethe_groups' (exit $rc), compare_runs '$py_groups' (exit $rc2)"
fi

# ---------------------------------------------------------------- a real run
"$PY" - <<'PY'
import struct, random
random.seed(0)
n, h, w = 96, 4, 4
# three classes with different mean brightness, so a tiny MLP learns something
labels = [i % 3 for i in range(n)]
pix = bytes(min(255, max(0, 60 + 70 * y + random.randrange(-40, 40))) for y in labels for _ in range(h * w))
open("img.idx", "wb").write(struct.pack(">IIII", 0x803, n, h, w) + pix)
open("lab.idx", "wb").write(struct.pack(">II", 0x801, n) + bytes(labels))
PY
"$MPIEXEC" --oversubscribe -n 1 "$LETHE" data import-idx img.idx lab.idx img.idx lab.idx tiny.h5 \
  >import.out 2>&1 || { bad "import of the tiny dataset failed"; sed 's/^/    /' import.out; }
cat >tiny.ini <<EOF
[data]
path = tiny.h5
[model]
hidden = 8
[optim]
batch_size = 8
[train]
epochs = 3
[run]
out = run-tiny
progress = none
EOF
rc=$(run 2 120 train.out train tiny.ini)
if [ "$rc" != 0 ] || [ ! -s run-tiny/metrics.h5 ]; then
  bad "tiny training run failed (exit $rc)"; sed 's/^/    /' train.out
else
  ok "tiny training run at 2 ranks wrote run-tiny/metrics.h5"
  expect_png plot_loss run-tiny/loss.png -- run-tiny
  have() { "$PY" -c "import h5py, sys; sys.exit(0 if '$1' in h5py.File('run-tiny/metrics.h5', 'r') else 1)"; }
  if have ranks/step_time; then
    expect_png plot_rank_times run-tiny/rank_times.png -- run-tiny
  else
    echo "skip - plot_rank_times on the real run: lethe train does not write /ranks/step_time yet"
    expect_error plot_rank_times "has no dataset /ranks/step_time" run-tiny
  fi
  if have cl/acc; then
    expect_png plot_acc_matrix run-tiny/acc_matrix.png -- run-tiny
    expect_png plot_task_curves run-tiny/task_curves.png -- run-tiny
  else
    expect_error plot_acc_matrix "run-tiny/metrics\.h5' has no dataset /cl/acc" run-tiny
  fi
  # lethe report on the same run prints the stored final accuracy (6 decimals: 6e-7)
  rc=$(run 2 60 report_real.out report run-tiny)
  want=$("$PY" -c "import h5py; print(h5py.File('run-tiny/metrics.h5', 'r').attrs['test_acc'])")
  got=$(grep -m1 '^  test_acc ' report_real.out | awk '{print $2}')
  if [ "$rc" = 0 ] && awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= 6e-7) }'; then
    ok "lethe report on the real run: test_acc $got (stored $want)"
  else
    bad "lethe report on the real run: exit $rc, test_acc '$got' vs stored $want"; sed 's/^/    /' report_real.out
  fi
fi
finish
