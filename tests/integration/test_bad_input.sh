#!/usr/bin/env bash
# Bad input at 2 ranks: every case exits non-zero with a message naming the
# problem, and nothing hangs (each run is killed after 60 s).
source "$(dirname "$0")/common.sh"

# Small IDX files written independently of lethe (python3, struct + gzip).
"$PY" - <<'PY'
import gzip, struct, random
random.seed(0)
n, h, w = 64, 4, 4
imgs = struct.pack('>IIII', 0x803, n, h, w) + bytes(random.randrange(256) for _ in range(n*h*w))
labs = struct.pack('>II', 0x801, n) + bytes(i % 3 for i in range(n))
open('img.idx', 'wb').write(imgs)
open('lab.idx', 'wb').write(labs)
gzip.open('img.idx.gz', 'wb').write(imgs)
gzip.open('lab.idx.gz', 'wb').write(labs)
g = open('img.idx.gz', 'rb').read()
open('corrupt.idx.gz', 'wb').write(g[: len(g) // 2])          # truncated stream
bad = bytearray(g); bad[len(g) // 2] ^= 0xFF; bad[len(g) // 2 + 1] ^= 0xFF
open('flipped.idx.gz', 'wb').write(bytes(bad))                # corrupted stream
open('badmagic.idx', 'wb').write(struct.pack('>IIII', 0x802, n, h, w) + imgs[16:])
open('short.idx', 'wb').write(struct.pack('>II', 0x801, n - 1) + labs[8:-1])
PY

"$MPIEXEC" --oversubscribe -n 1 "$LETHE" data import-idx img.idx.gz lab.idx.gz img.idx lab.idx good.h5 \
  > import.out 2>&1 || { cat import.out; bad "import of valid IDX files failed"; }

expect_fail missing_dataset 2 "nonexistent\.h5" train "$SRC/input/quickstart.ini" --set data.path=nonexistent.h5
expect_fail corrupt_gzip 2 "corrupt|truncated" data import-idx corrupt.idx.gz lab.idx.gz out1.h5
expect_fail flipped_gzip 2 "corrupt|truncated|invalid" data import-idx flipped.idx.gz lab.idx.gz out2.h5
expect_fail wrong_magic 2 "badmagic\.idx.*(magic|IDX)" data import-idx badmagic.idx lab.idx out3.h5
expect_fail count_mismatch 2 "64.*63|63.*64" data import-idx img.idx short.idx out4.h5
[ -e out1.h5 ] || [ -e out3.h5 ] && bad "a failed import left an output file" || ok "failed imports left no output file"

# label out of range: num_classes = 2 but labels go up to 2
"$PY" - <<'PY'
import h5py, numpy as np
with h5py.File('good.h5', 'r') as f, h5py.File('badlabel.h5', 'w') as g:
    for s in ('train', 'test'):
        g[f'{s}/x'] = f[f'{s}/x'][...]
        g[f'{s}/y'] = f[f'{s}/y'][...]
    g.attrs['num_classes'] = 2
    g.attrs['name'] = 'badlabel'
PY
cat > small.ini <<EOF2
[data]
path = good.h5
[model]
hidden = 8
[optim]
batch_size = 8
[train]
epochs = 1
[run]
out = run-small
progress = none
EOF2
expect_fail label_range 2 "label.*(2|range)" train small.ini --set data.path=badlabel.h5
expect_fail unknown_key 2 "unknown key 'lrr'.*did you mean \[optim\] lr" train small.ini --set optim.lrr=0.1
expect_fail negative_lr 2 "\[optim\] lr = '-0.1'.*allowed" train small.ini --set optim.lr=-0.1
printf '[train]\nepoch = 3\n' > bad.ini
expect_fail deck_typo_file 2 "bad\.ini:2: unknown key 'epoch'.*did you mean \[train\] epochs" train bad.ini
expect_fail unknown_layer 2 "unknown layer 'fc9'" train small.ini --set optim.freeze=fc9
expect_fail not_hdf5 2 "small\.ini" train small.ini --set data.path=small.ini
expect_fail unknown_command 1 "unknown command" frobnicate
expect_fail valid_too_big 2 "\[data\] valid = 64.*allowed: 0 to 63" train small.ini --set data.valid=64

# the valid small deck runs (at 3 ranks, uneven batch split) and writes its files
rc=$(run 3 120 ok.out train small.ini --set train.epochs=2)
if [ "$rc" = 0 ] && [ -s run-small/metrics.h5 ] && [ -s run-small/deck.ini ]; then
  ok "valid small deck trains at 3 ranks: $(grep -m1 '^done' ok.out | cut -c1-100)"
else
  bad "valid small deck failed (exit $rc)"; sed 's/^/    /' ok.out
fi

# [data] valid: the last 16 training samples become the evaluation set (the test split is not read)
rc=$(run 2 120 valid.out train small.ini --set data.valid=16 --set run.out=run-valid)
if [ "$rc" = 0 ] && grep -q '48 train / 16 valid samples' valid.out && grep -q '^done   valid accuracy' valid.out &&
  "$PY" -c "import h5py,sys; f=h5py.File('run-valid/metrics.h5','r'); v=f.attrs['valid_samples']; sys.exit(0 if float(getattr(v, 'flat', [v])[0]) == 16 else 1)"; then
  ok "[data] valid = 16 holds out 16 of 64 samples: $(grep -m1 '^data' valid.out | cut -c1-110)"
else
  bad "[data] valid = 16 run (exit $rc)"; sed 's/^/    /' valid.out
fi
finish
