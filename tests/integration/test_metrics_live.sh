#!/usr/bin/env bash
# metrics.h5 is readable by h5py while the run goes on (between flushes the file
# is closed), and its /cl summary attributes equal the values recomputed from the
# accuracy matrices, mid-run and at the end.
source "$(dirname "$0")/common.sh"

"$PY" - <<'PY'
import h5py, numpy as np
rng = np.random.default_rng(1)
centres = rng.normal(0, 1.0, (10, 16))
with h5py.File('blobs.h5', 'w') as f:
    for s, n in (('train', 2000), ('test', 500)):
        y = np.repeat(np.arange(10), n // 10)
        f[f'{s}/x'] = (centres[y] + rng.normal(0, 0.8, (len(y), 16))).astype(np.float32)
        f[f'{s}/y'] = y.astype(np.int32)
    f.attrs['num_classes'] = 10
PY
cat > live.ini <<EOF2
[data]
path = blobs.h5
scale = false
[model]
hidden = 64
[optim]
lr = 0.05
momentum = 0
batch_size = 16
[train]
epochs = 3
[scenario]
kind = split
tasks = 5
[cl]
replay = er
buffer_size = 100
[checkpoint]
every_epochs = 0
[run]
out = live
progress = none
EOF2

check='
import h5py, numpy as np, sys
f = h5py.File("live/metrics.h5", "r")
g = f["cl"]
k = int(g.attrs["tasks_trained"])
R, b = g["acc"][...], g["acc_init"][...]
T = R.shape[0]
assert 1 <= k <= T, k
last = R[k - 1]
acc = last[:k].mean()
assert abs(acc - g.attrs["ACC"]) < 1e-12, (acc, g.attrs["ACC"])
if k >= 2:
    bwt = np.mean([last[j] - R[j, j] for j in range(k - 1)])
    fgt = np.mean([R[:k - 1, j].max() - last[j] for j in range(k - 1)])
    fwt = np.mean([R[j - 1, j] - b[j] for j in range(1, k)])
    for name, v in (("BWT", bwt), ("forgetting", fgt), ("FWT", fwt)):
        assert abs(v - g.attrs[name]) < 1e-12, (name, v, g.attrs[name])
assert np.isnan(R[k:]).all()
assert f["train/loss"].shape[0] > 0
print(k)
'
# every task end snapshot sleeps 1 s with metrics.h5 flushed and closed
LETHE_FAULT_CKPT_SLEEP=1 timeout -k 5 120 "$MPIEXEC" --oversubscribe --bind-to none -n 2 "$LETHE" \
  train live.ini > live.out 2>&1 &
pid=$!
seen=""
for _ in $(seq 1 600); do
  kill -0 "$pid" 2>/dev/null || break
  if [ -f live/metrics.h5 ] && k=$("$PY" -c "$check" 2>/dev/null) && [ "$k" -lt 5 ]; then
    kill -0 "$pid" 2>/dev/null && { seen=$k; break; }
  fi
  sleep 0.1
done
[ -n "$seen" ] && ok "read metrics.h5 while the run was going (after task $seen of 5): summaries equal the matrices" \
               || bad "never read a mid-run metrics.h5 with /cl"
wait "$pid"
rc=$?
[ "$rc" = 0 ] && ok "run finished (exit 0)" || { bad "run exit $rc"; sed 's/^/    /' live.out; }
grep -q "HDF5-DIAG" live.out && bad "HDF5 printed its own error stack" || ok "no HDF5 error stack in the output"
k=$("$PY" -c "$check") && [ "$k" = 5 ] && ok "final summaries equal the matrices (5 tasks)" \
                                     || bad "final metrics check failed (tasks_trained '$k')"
finish
