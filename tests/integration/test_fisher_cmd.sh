#!/usr/bin/env bash
# lethe fisher DECK --from CKPT (issue 5) on a tiny synthetic data set: a short
# training run leaves a snapshot; lethe fisher at 1 and 2 ranks writes the K-FAC
# spectra, the diagonal Fisher and the block errors. Checked against independent
# computations in numpy: the first layer's A is E[[x 1][x 1]^T], so its eigenvalues
# sum to mean ||x||^2 + 1 over the samples used; the exact block's diagonal equals
# the diagonal Fisher (computed by another path, lt_fisher_diag) at the block's
# weights; err_diag and err_kfac recomputed from the stored blocks; A and G are PSD
# (eigenvalues ascending, >= -1e-9 max); the 1- and
# 2-rank files agree (empirical labels: the same samples and labels at any P).
# Then analysis/plot_fisher_spectra.py writes its PNG, and bad uses fail cleanly.
source "$(dirname "$0")/common.sh"

"$PY" - <<'PY'
import h5py, numpy as np
rng = np.random.default_rng(3)
centres = rng.normal(0, 1.0, (4, 10))
def split(n):
    y = np.tile(np.arange(4), n // 4)
    x = centres[y] + rng.normal(0, 0.7, (len(y), 10))
    return x.astype(np.float32), y.astype(np.int32)
with h5py.File('blobs.h5', 'w') as f:
    for s, n in (('train', 400), ('test', 80)):
        x, y = split(n)
        f[f'{s}/x'] = x
        f[f'{s}/y'] = y
    f.attrs['num_classes'] = 4
    f.attrs['name'] = 'blobs'
PY
cat > f.ini <<EOF2
[data]
path = blobs.h5
scale = false
[model]
hidden = 12,8
activation = tanh
[optim]
lr = 0.05
batch_size = 20
[train]
epochs = 2
[checkpoint]
every_epochs = 1
[cl]
fisher = empirical
fisher_batch = 32
kfac_block = 4
kfac_block_sample = 5
[run]
progress = none
out = run
EOF2
rc=$(run 2 120 train.out train f.ini)
[ "$rc" = 0 ] || { bad "training run exit $rc"; sed 's/^/    /' train.out; finish; exit 1; }
for np in 1 2; do
  rc=$(run $np 120 fisher$np.out fisher f.ini --from run --out fisher$np.h5 --samples 300)
  if [ "$rc" = 0 ] && [ -s fisher$np.h5 ]; then ok "lethe fisher at $np rank(s): $(grep -c '^| fc' fisher$np.out) layers"
  else bad "lethe fisher at $np rank(s): exit $rc"; sed 's/^/    /' fisher$np.out; fi
done

if "$PY" - <<'PY'
import h5py, numpy as np, sys
bad = []
x = h5py.File('blobs.h5', 'r')['train/x'][:300].astype(np.float64)
files = [h5py.File(f'fisher{p}.h5', 'r') for p in (1, 2)]
for f in files:
    if f.attrs['samples'] != 300: bad.append(f"samples attribute {f.attrs['samples']}")
    layers = list(f['fisher'])
    if layers != ['fc1', 'fc2', 'fc3']: bad.append(f"layers {layers}")
    for name in layers:
        g = f['fisher'][name]
        inn, out = int(g.attrs['in']), int(g.attrs['out'])
        eA, eG = g['eig_A'][:], g['eig_G'][:]
        if eA.size != inn + 1 or eG.size != out: bad.append(f"{name}: spectra sizes {eA.size}, {eG.size}")
        for e, what in ((eA, 'A'), (eG, 'G')):
            if np.any(np.diff(e) < 0) or e.min() < -1e-9 * e.max(): bad.append(f"{name}: eig_{what} not ascending/PSD")
        if name == 'fc1':  # tr A = mean ||x||^2 + 1 (float32 data, double sums: 1e-9)
            want = (x ** 2).sum(1).mean() + 1
            if abs(eA.sum() - want) > 1e-6 * want: bad.append(f"fc1: sum eig_A {eA.sum()}, want {want}")
        r, c = g['block_rows'][:].astype(int), g['block_cols'][:].astype(int)
        S = r.size * c.size
        E, K = g['block_exact'][:].reshape(S, S), g['block_kfac'][:].reshape(S, S)
        dW, db = g['diag_W'][:].reshape(out, inn), g['diag_b'][:]
        d = np.array([db[i] if j == inn else dW[i, j] for i in r for j in c])
        # float32 per-sample gradients, summed two ways: 1e-5 of the largest entry
        if np.abs(np.diag(E) - d).max() > 1e-5 * d.max(): bad.append(f"{name}: block diagonal != diagonal Fisher")
        if np.abs(E - E.T).max() > 1e-12 * np.abs(E).max(): bad.append(f"{name}: exact block not symmetric")
        ed = np.linalg.norm(E - np.diag(np.diag(E))) / np.linalg.norm(E)
        ek = np.linalg.norm(E - K) / np.linalg.norm(E)
        if abs(ed - g.attrs['err_diag']) > 1e-9 or abs(ek - g.attrs['err_kfac']) > 1e-9:
            bad.append(f"{name}: errors {g.attrs['err_diag']}, {g.attrs['err_kfac']} vs {ed}, {ek}")
        if not (0 < ed < 1.0001): bad.append(f"{name}: err_diag {ed}")
# 1 vs 2 ranks: the same samples and labels, sums in another order (1e-9 relative)
for name in files[0]['fisher']:
    for ds in ('eig_A', 'eig_G', 'diag_W', 'block_exact'):
        a, b = files[0]['fisher'][name][ds][:], files[1]['fisher'][name][ds][:]
        if np.abs(a - b).max() > 1e-6 * np.abs(a).max(): bad.append(f"{name}/{ds}: 1 and 2 ranks differ")
print("\n".join(bad) if bad else "all checks hold")
sys.exit(1 if bad else 0)
PY
then ok "spectra, diagonal, block errors and rank agreement"; else bad "numpy checks (above)"; fi

if timeout 120 "$PY" "$SRC/analysis/plot_fisher_spectra.py" fisher2.h5 --out plots >plot.out 2>&1 &&
   [ "$(head -c 4 plots/fisher_spectra.png | od -An -c | tr -d ' ')" = '211PNG' ] &&
   [ "$(stat -c %s plots/fisher_spectra.png)" -gt 1000 ]; then
  ok "plot_fisher_spectra.py: $(cat plot.out)"
else
  bad "plot_fisher_spectra.py"; sed 's/^/    /' plot.out
fi

expect_fail exists 2 "overwrites nothing" fisher f.ini --from run --out fisher1.h5
expect_fail nofrom 2 "no such file or directory" fisher f.ini --from nowhere --out x.h5
expect_fail batchmean 2 "batch_mean has no K-FAC" fisher f.ini --from run --out y.h5 --set cl.fisher=batch_mean
finish
