#!/usr/bin/env bash
# The quick-start deck at 2 ranks on real Fashion-MNIST (Debian's
# dataset-fashion-mnist): test accuracy >= 85% in under 2 minutes of wall time.
source "$(dirname "$0")/common.sh"
d=/usr/share/datasets/fashion-mnist
[ -f "$d/train-images-idx3-ubyte.gz" ] || { echo "missing $d (apt-get install dataset-fashion-mnist)"; exit 1; }
mkdir -p data
"$MPIEXEC" --oversubscribe -n 1 "$LETHE" data import-idx "$d/train-images-idx3-ubyte.gz" \
  "$d/train-labels-idx1-ubyte.gz" "$d/t10k-images-idx3-ubyte.gz" "$d/t10k-labels-idx1-ubyte.gz" \
  data/fashion-mnist.h5 --name fashion-mnist > import.out 2>&1 || { cat import.out; exit 1; }
start=$(date +%s.%N)
rc=$(run 2 300 train.out train "$SRC/input/quickstart.ini" --set run.out=run-qs --set run.progress=lines)
end=$(date +%s.%N)
cat train.out
wall=$("$PY" -c "print(f'{$end - $start:.1f}')")
[ "$rc" = 0 ] && ok "quick-start exit 0" || bad "quick-start exit $rc"
acc=$("$PY" -c "import h5py; print(h5py.File('run-qs/metrics.h5','r').attrs['test_acc'])" 2>/dev/null || echo 0)
"$PY" -c "import sys; sys.exit(0 if float('$acc') >= 0.85 else 1)" \
  && ok "test accuracy $acc >= 0.85" || bad "test accuracy $acc < 0.85"
"$PY" -c "import sys; sys.exit(0 if $wall < 120 else 1)" \
  && ok "wall time $wall s < 120 s (2 ranks)" || bad "wall time $wall s >= 120 s"
# the metrics file agrees with the log
"$PY" - <<'PY' && ok "metrics.h5 matches the final log line" || bad "metrics.h5 inconsistent with the log"
import h5py, re, sys
f = h5py.File('run-qs/metrics.h5', 'r')
line = [l for l in open('train.out') if l.startswith('done')][0]
acc = float(re.search(r'test accuracy ([0-9.]+)', line).group(1))
assert abs(acc - f.attrs['test_acc']) < 1e-4, (acc, f.attrs['test_acc'])
assert abs(f['epoch/test_acc'][-1] - f.attrs['test_acc']) < 1e-12
assert f['train/loss'].shape[0] > 0 and f['train/loss'][-1] < f['train/loss'][0]
assert f.attrs['ranks'] == 2
PY
finish
