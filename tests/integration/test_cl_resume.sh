#!/usr/bin/env bash
# Continual learning, interrupted in the middle of task 3 of 5 and resumed: the
# final parameters, optimizer and strategy state (replay buffer, Fisher, anchors,
# SI path integrals, refresh noise counter) and the accuracy matrices equal the
# uninterrupted run's, bit for bit, at 2 ranks.
source "$(dirname "$0")/common.sh"

# 10 classes of Gaussian blobs in 16 dimensions (class-sorted, as real files often are)
"$PY" - <<'PY'
import h5py, numpy as np
rng = np.random.default_rng(0)
centres = rng.normal(0, 1.0, (10, 16))
def split(n):
    y = np.repeat(np.arange(10), n // 10)
    x = centres[y] + rng.normal(0, 0.8, (len(y), 16))
    return x.astype(np.float32), y.astype(np.int32)
with h5py.File('blobs.h5', 'w') as f:
    for s, n in (('train', 600), ('test', 200)):
        x, y = split(n)
        f[f'{s}/x'] = x
        f[f'{s}/y'] = y
    f.attrs['num_classes'] = 10
    f.attrs['name'] = 'blobs'
PY
cat > cl.ini <<EOF2
[data]
path = blobs.h5
scale = false
[model]
hidden = 32,32
[optim]
lr = 0.05
momentum = 0.9
batch_size = 16
[train]
epochs = 2
[scenario]
kind = split
tasks = 5
[run]
progress = none
[checkpoint]
every_steps = 7
every_epochs = 0
keep = 0
EOF2

# task t (0-based) has 120 samples: 7 steps per epoch, 14 per task; task 3 (1-based)
# spans global steps 29..42, so the snapshot of step 35 lies inside it
for variant in "derpp+online_ewc+refresh:--set cl.replay=derpp --set cl.penalty=online_ewc --set cl.ewc_lambda=10 --set refresh.kind=code --set cl.buffer_size=50 --set cl.replay_batch=8" \
               "si:--set cl.penalty=si --set scenario.setting=task" \
               "ewc+er:--set cl.penalty=ewc --set cl.ewc_lambda=5 --set cl.fisher=empirical --set cl.replay=er --set cl.buffer_size=40"; do
  name=${variant%%:*}
  args=${variant#*:}
  rm -rf "full-$name" "part-$name"
  # shellcheck disable=SC2086
  rc=$(run 2 180 "full-$name.out" train cl.ini --set run.out="full-$name" $args)
  [ "$rc" = 0 ] || { bad "$name: uninterrupted run exit $rc"; sed 's/^/    /' "full-$name.out"; continue; }
  snap="full-$name/ckpt/step-00000035.h5"
  [ -f "$snap" ] || { bad "$name: no snapshot at step 35"; ls "full-$name/ckpt"; continue; }
  task=$("$PY" -c "import h5py; print(h5py.File('$snap','r')['cursor'].attrs['task'])")
  [ "$task" = 2 ] && ok "$name: the step-35 snapshot lies in task 3 (cursor task $task, 0-based)" \
                  || bad "$name: the step-35 snapshot is in task $task, not 2"
  # the interrupted run: its run directory as it stood at step 35 (metrics rows beyond are cut on resume)
  mkdir -p "part-$name/ckpt" && cp "$snap" "part-$name/ckpt/" && cp "full-$name/metrics.h5" "part-$name/"
  echo "step-00000035.h5" > "part-$name/ckpt/LATEST"
  # shellcheck disable=SC2086
  rc=$(run 2 180 "part-$name.out" train cl.ini --set run.out="part-$name" $args --resume "part-$name")
  [ "$rc" = 0 ] || { bad "$name: resumed run exit $rc"; sed 's/^/    /' "part-$name.out"; continue; }
  grep -q "^resume" "part-$name.out" || bad "$name: the run did not resume"
  a=$(grep '^done' "full-$name.out" | grep -o 'theta [0-9a-f]* state [0-9a-f]*')
  b=$(grep '^done' "part-$name.out" | grep -o 'theta [0-9a-f]* state [0-9a-f]*')
  [ -n "$a" ] && [ "$a" = "$b" ] && ok "$name: final $a equal after the resume" \
                                  || bad "$name: final '$a' vs resumed '$b'"
  "$PY" - "full-$name" "part-$name" <<'PY' && ok "$name: accuracy matrices and losses equal" || bad "$name: metrics differ"
import h5py, numpy as np, sys
a, b = (h5py.File(f'{d}/metrics.h5', 'r') for d in sys.argv[1:3])
for k in ('cl/acc', 'cl/acc_task_il', 'cl/acc_init', 'train/loss'):
    assert np.array_equal(a[k][...], b[k][...], equal_nan=True), k
for k in ('ACC', 'BWT', 'forgetting'):
    assert a['cl'].attrs[k] == b['cl'].attrs[k], k
PY
done
finish
