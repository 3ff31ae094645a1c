#!/usr/bin/env bash
# Fine-tuning through lethe train on a small synthetic dataset (10 classes of
# Gaussian clusters): pretraining on classes 0-4, then [finetune] on classes 5-9
# with [run] seeds. Checks that 4 ranks as 2 groups of 2 give, per seed, exactly
# the per-step losses and final accuracy of two separate 2-rank runs with those
# seeds (the same computation on the same rank count), that /finetune's summary
# attributes equal mean/std/min/max/failed recomputed here from its per-seed
# accuracies, that 2 ranks as 2 groups of 1 agree with 1-rank runs, and that a
# checkpoint with a mismatching hidden layer is refused naming the layer.
source "$(dirname "$0")/common.sh"

"$PY" - <<'PY' || exit 1
import h5py, numpy as np
r = np.random.default_rng(1)
K, d = 10, 20
cent = r.normal(0, 1, (K, d)).astype(np.float32)
def make(n):
    y = r.integers(0, K, n)
    return (cent[y] + 1.2 * r.normal(0, 1, (n, d))).astype(np.float32), y.astype(np.int32)
with h5py.File('syn.h5', 'w') as f:
    x, y = make(2000); f['train/x'] = x; f['train/y'] = y
    x, y = make(600); f['test/x'] = x; f['test/y'] = y
    f.attrs['num_classes'] = 10; f.attrs['name'] = 'syn'
PY

deck() { # deck HIDDEN
  cat <<EOF2
[data]
path = syn.h5
scale = false
[model]
hidden = $1
[optim]
lr = 0.05
batch_size = 10
[train]
epochs = 4
eval_every = 0
[checkpoint]
every_epochs = 0
at_task_end = false
[finetune]
classes = 5,6,7,8,9
samples_per_class = 10
[run]
progress = none
EOF2
}
deck 24,16,12 > ft.ini
deck 24,20,12 > ft_other.ini
rc=$(run 2 60 pre.out train ft.ini --set finetune.classes=0,1,2,3,4 --set finetune.samples_per_class=0 \
  --set checkpoint.at_task_end=true --set train.epochs=2 --set run.out=pre)
[ "$rc" = 0 ] && [ -f pre/ckpt/LATEST ] && ok "pretraining on classes 0-4" || { bad "pretraining (exit $rc)"; cat pre.out; }

rc=$(run 4 120 grp.out train ft.ini --set finetune.from=pre --set run.seeds=11,12 \
  --set run.ranks_per_seed=2 --set run.out=grp)
[ "$rc" = 0 ] && ok "4 ranks, seeds 11,12 in 2 groups of 2" || { bad "groups (exit $rc)"; cat grp.out; }
for s in 11 12; do
  rc=$(run 2 60 sep$s.out train ft.ini --set finetune.from=pre --set run.seed=$s --set run.out=sep$s)
  [ "$rc" = 0 ] || { bad "separate run seed $s (exit $rc)"; cat sep$s.out; }
done
rc=$(run 2 120 one.out train ft.ini --set finetune.from=pre --set finetune.reinit_top=1 \
  --set finetune.llrd=0.7 --set run.seeds=3 --set run.seed=20 --set run.out=one)
[ "$rc" = 0 ] && ok "2 ranks, 3 seeds in 2 groups of 1" || { bad "groups of 1 (exit $rc)"; cat one.out; }
for s in 20 22; do
  rc=$(run 1 60 solo$s.out train ft.ini --set finetune.from=pre --set finetune.reinit_top=1 \
    --set finetune.llrd=0.7 --set run.seed=$s --set run.out=solo$s)
  [ "$rc" = 0 ] || { bad "1-rank run seed $s (exit $rc)"; cat solo$s.out; }
done

"$PY" - <<'PY' && ok "replicas equal separate runs bit for bit; /finetune summary recomputed" || bad "replica results"
import h5py, numpy as np, sys
def same(g, i, run):
    a = h5py.File(run + '/metrics.h5', 'r')
    loss = g['train_loss'][i]
    want = a['train/loss'][:]
    assert loss.shape[0] == want.shape[0], (run, loss.shape, want.shape)
    assert np.array_equal(loss, want), (run, 'train loss differs', np.max(np.abs(loss - want)))
    assert g['acc'][i] == a.attrs['test_acc'], (run, g['acc'][i], a.attrs['test_acc'])
    assert g['test_loss'][i] == a.attrs['test_loss'], run
    # the replica's own run directory holds the same file contents
def check(path, runs):
    f = h5py.File(path, 'r')
    g = f['finetune']
    seeds = list(g['seeds'][:])
    for s, run in runs.items():
        same(g, seeds.index(s), run)
    acc = g['acc'][:]
    assert np.all(np.isfinite(acc)) and not g['diverged'][:].any()
    assert abs(g.attrs['mean'] - acc.mean()) < 1e-12
    assert abs(g.attrs['std'] - acc.std(ddof=1)) < 1e-12
    assert g.attrs['min'] == acc.min() and g.attrs['max'] == acc.max()
    thr = 1.0 / 5 + 0.1
    assert abs(g.attrs['threshold'] - thr) < 1e-15 and abs(g.attrs['chance'] - 0.2) < 1e-15
    assert g.attrs['failed'] == int((acc < thr).sum()) == int(g['failed'][:].sum())
    assert g.attrs['n_seeds'] == len(seeds)
    return g
g = check('grp/metrics.h5', {11: 'sep11', 12: 'sep12'})
assert list(g['seeds'][:]) == [11, 12] and g.attrs['groups'] == 2 and g.attrs['ranks_per_group'] == 2
g = check('one/metrics.h5', {20: 'solo20', 22: 'solo22'})
assert list(g['seeds'][:]) == [20, 21, 22] and g.attrs['groups'] == 2
# different seeds: different subsets and inits, so different curves
assert not np.array_equal(g['train_loss'][0], g['train_loss'][1])
PY

expect_fail mismatch 2 "layer 'fc2' has shape 16x24 in the snapshot but 20x24" \
  train ft_other.ini --set finetune.from=pre --set run.out=mm
expect_fail freeze_all 2 "freeze_bottom = 4: allowed 0..3" \
  train ft.ini --set finetune.from=pre --set finetune.freeze_bottom=4 --set run.out=fz
expect_fail reinit_needs_from 2 "reinit_top = 1 needs \[finetune\] from" \
  train ft.ini --set finetune.reinit_top=1 --set run.out=ri
expect_fail too_few 2 "class 5 of syn has only [0-9]+ training samples" \
  train ft.ini --set finetune.samples_per_class=5000 --set run.out=tf
finish
