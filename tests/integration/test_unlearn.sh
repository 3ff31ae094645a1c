#!/usr/bin/env bash
# lethe unlearn end to end on a small synthetic dataset at 2 ranks: a run, the
# /unlearn group, the stored I_D reused by a second request, the unlearned
# snapshot re-read by lethe unlearn (its "original" row equals the first run's SSD
# row), resumed by lethe train and read by lethe report; bad input (a class that
# does not exist, an empty forget set, a snapshot that does not match the deck, a
# stored I_D of another model, an output directory beside the original) fails
# with a message naming the problem; the original snapshot is never modified.
source "$(dirname "$0")/common.sh"

# 4 classes of Gaussian blobs in 16 dimensions; /train/group = index mod 3
"$PY" - <<'PY'
import h5py, numpy as np
rng = np.random.default_rng(0)
centres = rng.normal(0, 1.0, (4, 16))
def split(n):
    y = rng.integers(0, 4, n)
    x = centres[y] + rng.normal(0, 1.0, (n, 16))
    return x.astype(np.float32), y.astype(np.int32)
with h5py.File('blobs.h5', 'w') as f:
    for s, n in (('train', 800), ('test', 400)):
        x, y = split(n)
        f[f'{s}/x'] = x
        f[f'{s}/y'] = y
    f['train/group'] = (np.arange(800) % 3).astype(np.int32)
    f.attrs['num_classes'] = 4
    f.attrs['name'] = 'blobs'
PY
cat > u.ini <<EOF2
[data]
path = blobs.h5
scale = false
[model]
hidden = 24
[optim]
lr = 0.05
momentum = 0.9
batch_size = 32
[train]
epochs = 3
[unlearn]
forget = class
classes = 1
alpha = 2
batch_size = 16
neggrad_steps = 5
[run]
progress = none
out = run1
EOF2

rc=$(run 2 120 train1.out train u.ini)
[ "$rc" = 0 ] || { bad "train exit $rc"; sed 's/^/    /' train1.out; finish; exit 1; }
snap=run1/ckpt/$(cat run1/ckpt/LATEST)
sum0=$(sha256sum "$snap" | cut -d' ' -f1)
ls0=$(ls run1/ckpt)

rc=$(run 2 120 ul1.out unlearn u.ini --from run1 --set unlearn.out=ul1)
if [ "$rc" = 0 ] && grep -q '^I_D    computed' ul1.out && grep -qE '^ssd +[0-9.]+' ul1.out &&
   grep -qE '^retrain +' ul1.out && grep -qE '^neggrad +' ul1.out; then
  ok "unlearn class 1: $(grep -E '^ssd +' ul1.out)"
else
  bad "unlearn class 1 (exit $rc)"; sed 's/^/    /' ul1.out
fi
[ -f "$snap.importance.h5" ] && ok "I_D stored beside the snapshot" || bad "no $snap.importance.h5"
if "$PY" - <<'PY'
import h5py, sys
f = h5py.File('ul1/metrics.h5')
g = f['unlearn']
m = g.attrs['methods'].split(',')
assert m == ['original', 'ssd', 'retrain', 'finetune', 'neggrad'], m
for c in ('test_acc', 'retain_acc', 'forget_acc', 'mia', 'mia_auc', 'wall_time'):
    assert g[c].shape == (5,), c
assert g.attrs['n_forget'] > 0 and g['grid/alpha'].shape == (1,)
assert 'lethe_version' in f.attrs
PY
then ok "/unlearn group in ul1/metrics.h5"; else bad "/unlearn group"; fi

# the unlearned snapshot, read again: its evaluation equals the SSD row
rc=$(run 2 120 ul2.out unlearn u.ini --from ul1 --set unlearn.out=ul2 --set unlearn.baselines= \
     --set unlearn.importance_file=ul2-I_D.h5)
a=$(grep -E '^ssd +[0-9]' ul1.out | awk '{print $2, $3, $4}')
o=$(grep -E '^original +[0-9]' ul1.out | awk '{print $2, $3, $4}')
b=$(grep -E '^original +[0-9]' ul2.out | awk '{print $2, $3, $4}')
if [ "$rc" = 0 ] && [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" != "$o" ]; then
  ok "unlearned snapshot evaluates to the SSD row again (test, D_r, D_f: $a)"
else
  bad "round trip: exit $rc, SSD row '$a' (original '$o'), re-read '$b'"; sed 's/^/    /' ul2.out
fi
rc=$(run 2 120 resume.out train u.ini --resume ul1 --set run.out=resumed --set train.epochs=4)
grep -q '^done' resume.out && [ "$rc" = 0 ] && ok "lethe train --resume of the unlearned snapshot" ||
  { bad "resume (exit $rc)"; sed 's/^/    /' resume.out; }
rc=$(run 1 60 report.out report ul1)
[ "$rc" = 0 ] && ok "lethe report of the unlearn run" || { bad "report (exit $rc)"; sed 's/^/    /' report.out; }

# a second request reuses I_D
rc=$(run 2 120 ul3.out unlearn u.ini --from run1 --set unlearn.out=ul3 --set unlearn.classes=2 \
     --set unlearn.baselines=neggrad --set unlearn.alpha=2,50 --set unlearn.lambda=0.5,1)
if [ "$rc" = 0 ] && grep -q '^I_D    reused from' ul3.out && grep -q 'WARNING: \[unlearn\] alpha = 50' ul3.out &&
   [ "$(grep -c '^grid ' ul3.out)" = 4 ]; then
  ok "second request reuses I_D; a 2x2 grid; alpha 50 >= N/N_f warned"
else
  bad "second request (exit $rc)"; sed 's/^/    /' ul3.out
fi

# sub-class and random forget sets: exactly the requested samples
nsub=$("$PY" -c "import h5py; f = h5py.File('blobs.h5'); y = f['train/y'][:]; g = f['train/group'][:]; print(int(((y == 1) & (g == 0)).sum()))")
rc=$(run 2 120 sub.out unlearn u.ini --from run1 --set unlearn.out=sub --set unlearn.baselines= \
     --set unlearn.forget=subclass --set unlearn.groups=0)
grep -q "^forget subclass: $nsub of 800 " sub.out && [ "$rc" = 0 ] && ok "sub-class forget set: $nsub samples" ||
  { bad "sub-class (exit $rc, want $nsub)"; sed 's/^/    /' sub.out; }
rc=$(run 2 120 rnd.out unlearn u.ini --from run1 --set unlearn.out=rnd --set unlearn.baselines=neggrad \
     --set unlearn.forget=random --set unlearn.count=40)
grep -q "^forget random: 40 of 800 " rnd.out && [ "$rc" = 0 ] && ok "random forget set: 40 samples" ||
  { bad "random (exit $rc)"; sed 's/^/    /' rnd.out; }

# the analysis scripts on these runs
if "$PY" "$SRC/analysis/plot_unlearn_tradeoff.py" ul1 ul3 --out plots >plot.out 2>&1 &&
   [ -s plots/unlearn_tradeoff.png ]; then ok "plot_unlearn_tradeoff.py"; else bad "plot"; cat plot.out; fi
mkdir -p study/s1 && cp -r ul1 study/s1/class1
if "$PY" "$SRC/analysis/unlearn_summary.py" study >summary.md 2>&1 && grep -qE '^\| ssd \|' summary.md &&
   grep -q 'class1 seed 0: SSD D_f acc' summary.md; then ok "unlearn_summary.py"; else bad "summary"; cat summary.md; fi

# bad input
expect_fail no-class 2 "class 9 does not exist" unlearn u.ini --from run1 --set unlearn.out=e1 \
  --set unlearn.classes=9
expect_fail empty-forget 2 "forget set is empty" unlearn u.ini --from run1 --set unlearn.out=e2 \
  --set unlearn.forget=subclass --set unlearn.groups=7
expect_fail wrong-model 2 "does not match the deck's model: layer 'fc1'" unlearn u.ini --from run1 \
  --set unlearn.out=e3 --set model.hidden=17
expect_fail beside-original 2 "beside the original" unlearn u.ini --from run1 --set unlearn.out=run1
rc=$(run 2 120 train2.out train u.ini --set run.out=run2 --set run.seed=2)
rc2=$(run 2 120 ul4.out unlearn u.ini --from run2 --set run.out=run2 --set unlearn.out=ul4 \
      --set unlearn.baselines=)
if [ "$rc" = 0 ] && [ "$rc2" = 0 ]; then
  other=run2/ckpt/$(cat run2/ckpt/LATEST).importance.h5
  expect_fail foreign-I_D 2 "belongs to another model" unlearn u.ini --from run1 --set unlearn.out=e4 \
    --set unlearn.importance_file="$other"
else
  bad "second model (exit $rc, $rc2)"; sed 's/^/    /' train2.out ul4.out
fi
expect_fail no-from 2 "--from CKPT is required" unlearn u.ini

[ "$(sha256sum "$snap" | cut -d' ' -f1)" = "$sum0" ] && ok "the original snapshot is unchanged" ||
  bad "the original snapshot changed"
want=$(printf '%s\n%s\n' "$ls0" "$(basename "$snap").importance.h5" | sort)
[ "$(ls run1/ckpt)" = "$want" ] && ok "run1/ckpt gained only the stored I_D" ||
  bad "run1/ckpt: $(ls run1/ckpt | tr '\n' ' ')"
finish
