#!/usr/bin/env bash
# Snapshots, exact restart and preemption (lethe train --resume, SIGUSR1, exit 75):
#  (a) an uninterrupted run vs a resume from a mid-epoch snapshot: the same final
#      theta and state hash, at 1 and at 2 ranks; the hashes printed by lethe equal
#      FNV-1a computed here (Python) over the snapshot's datasets;
#  (b) SIGUSR1 to mpirun mid-run: exit 75 and a snapshot; the resume ends with the
#      uninterrupted run's state hash and metrics.h5 rows (timing columns aside);
#  (c) a snapshot written at 3 ranks resumed at 2 (reshard): same theta hash, exit 0;
#  (d) SIGKILL of one rank while the second snapshot is being written
#      (LETHE_FAULT_CKPT_SLEEP): LATEST still names the first, and the run resumes;
#  (e) --resume with a truncated snapshot, a foreign HDF5 file, a text file, another
#      model: non-zero exit, the file named, no hang;
#  (f) [checkpoint] every_seconds writes snapshots on rank 0's clock.
source "$(dirname "$0")/common.sh"

# A tiny learnable dataset (3 classes, 20 features), independent of lethe.
tiny_dataset tiny.h5 0
cat > tiny.ini <<'EOF'
[data]
path = tiny.h5
scale = false
[model]
hidden = 16
[optim]
kind = adam
lr = 0.01
batch_size = 32
schedule = cosine
[train]
epochs = 4
[checkpoint]
every_steps = 7
keep = 0
[run]
progress = none
EOF

# hash KIND FILE: the theta or state hash on the last line of FILE starting with done/stop
hash() { grep -E '^(done|stop) ' "$2" | tail -1 | sed -n "s/.* $1 \([0-9a-f]\{16\}\).*/\1/p"; }

# bg NP OUT ARGS...: lethe under mpirun in the background (BG_PID: mpirun's pid)
bg() {
  local np=$1 out=$2
  shift 2
  "$MPIEXEC" --oversubscribe --bind-to none -x LETHE_FAULT_CKPT_SLEEP -n "$np" "$LETHE" "$@" \
    >"$out" 2>&1 &
  BG_PID=$!
}
# wait_bg TIMEOUT_S: wait for the background run; BG_RC = its exit code (124: killed on timeout)
wait_bg() {
  local i
  for ((i = 0; i < $1 * 10; i++)); do kill -0 "$BG_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$BG_PID" 2>/dev/null; then
    pkill -KILL -P "$BG_PID"; kill -KILL "$BG_PID"; wait "$BG_PID"; BG_RC=124; return
  fi
  wait "$BG_PID"
  BG_RC=$?
}
# until_true TIMEOUT_S CMD...: poll CMD every 0.05 s; false on timeout
until_true() {
  local to=$1 i
  shift
  for ((i = 0; i < to * 20; i++)); do "$@" && return 0; sleep 0.05; done
  return 1
}
export LETHE_FAULT_CKPT_SLEEP=0

# FNV-1a over the snapshot's datasets, from the definitions in checkpoint.h
cat > fnv.py <<'PY'
import sys, h5py, numpy as np
def fnv(data, h=0xcbf29ce484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h
f = h5py.File(sys.argv[1], 'r')
P = int(f.attrs['ranks'])
theta = f['model/theta'][...].astype('<f4')
n = theta.size
q = 16 * P                          # lt_model pads n to a multiple of 16 P
slice_ = (n + q - 1) // q * q // P
names = f.attrs['sharded_state'].split(',')
vecs = [f[k][...].astype('<f4') for k in names]
per = b''
for r in range(P):
    lo, hi = r * slice_, min((r + 1) * slice_, n)
    h = 0xcbf29ce484222325
    for v in vecs:
        h = fnv(v[lo:hi].tobytes(), h) if hi > lo else h
    per += h.to_bytes(8, 'little')
print(f'{fnv(theta.tobytes()):016x} {fnv(per):016x}')
PY

# ------------------------------------------------------------------ (a)
for np_ in 1 2; do
  rc=$(run "$np_" 120 a$np_.out train tiny.ini --set run.out=a$np_)
  full_t=$(hash theta a$np_.out) full_s=$(hash state a$np_.out)
  if [ "$rc" != 0 ] || [ -z "$full_s" ]; then bad "(a) $np_ rank(s): uninterrupted run failed (exit $rc)"; sed 's/^/    /' a$np_.out; continue; fi
  last=$(cat a$np_/ckpt/LATEST)
  py=$("$PY" fnv.py "a$np_/ckpt/$last")
  [ "$py" = "$full_t $full_s" ] && ok "(a) $np_ rank(s): printed hashes = FNV-1a of $last's datasets ($py)" \
    || bad "(a) $np_ rank(s): printed theta/state $full_t $full_s, FNV-1a of $last: $py"
  n_snap=$(ls a$np_/ckpt/step-*.h5 | wc -l)
  # steps 7, 14, 21, ... (every_steps), 16, 32, 48 (epochs), 64 (end): 9 + 3 + 1 = 13
  [ "$n_snap" = 13 ] && ok "(a) $np_ rank(s): 13 snapshots with keep = 0" || bad "(a) $np_ rank(s): $n_snap snapshots, expected 13"
  cp -r a$np_ a${np_}r
  rc=$(run "$np_" 120 a${np_}r.out train tiny.ini --set run.out=a${np_}r --resume a${np_}r/ckpt/step-00000021.h5)
  if [ "$rc" = 0 ] && [ "$(hash state a${np_}r.out)" = "$full_s" ] && [ "$(hash theta a${np_}r.out)" = "$full_t" ] \
     && grep -q '^resume .*step-00000021.h5: epoch 2 step 5 (global step 21)' a${np_}r.out; then
    ok "(a) $np_ rank(s): resume from step 21 (epoch 2, step 5) ends with state $full_s"
  else
    bad "(a) $np_ rank(s): resume from step 21: exit $rc, state $(hash state a${np_}r.out), uninterrupted $full_s"
    sed 's/^/    /' a${np_}r.out
  fi
done

# ------------------------------------------------------------------ (b)
echo "# (a) took $SECONDS s so far"
b_args=(train tiny.ini --set train.epochs=300 --set checkpoint.every_steps=0 --set checkpoint.every_epochs=0)
rc=$(run 2 120 b_ref.out "${b_args[@]}" --set run.out=b_ref)
[ "$rc" = 0 ] || { bad "(b) reference run failed (exit $rc)"; sed 's/^/    /' b_ref.out; }
bg 2 b_sig.out "${b_args[@]}" --set run.out=b_sig
if until_true 60 grep -q '^epoch   3 ' b_sig.out; then kill -USR1 "$BG_PID"; fi
wait_bg 60
if [ "$BG_RC" = 75 ] && grep -q '^stop   SIGUSR1' b_sig.out && [ -s b_sig/ckpt/LATEST ]; then
  ok "(b) SIGUSR1 to mpirun: exit 75, $(cat b_sig/ckpt/LATEST) written: $(grep -m1 '^stop' b_sig.out | cut -c1-80)"
else
  bad "(b) SIGUSR1 to mpirun: exit $BG_RC (expected 75; 0 means the run ended before the signal)"
  sed 's/^/    /' b_sig.out | tail -20
fi
rc=$(run 2 120 b_res.out "${b_args[@]}" --set run.out=b_sig --resume b_sig)
if [ "$rc" = 0 ] && [ -n "$(hash state b_ref.out)" ] && [ "$(hash state b_res.out)" = "$(hash state b_ref.out)" ]; then
  ok "(b) resumed run ends with the uninterrupted run's state $(hash state b_ref.out)"
else
  bad "(b) resumed run: exit $rc, state $(hash state b_res.out), uninterrupted $(hash state b_ref.out)"
  sed 's/^/    /' b_res.out | tail -20
fi
"$PY" - <<'PY' && ok "(b) metrics.h5 rows equal the uninterrupted run's (loss, lr, epoch rows)" || bad "(b) metrics.h5 rows differ"
import h5py, numpy as np, sys
a, b = h5py.File('b_ref/metrics.h5', 'r'), h5py.File('b_sig/metrics.h5', 'r')
for k in ('train/loss', 'train/lr', 'epoch/train_loss', 'epoch/train_acc', 'epoch/test_loss', 'epoch/test_acc'):
    x, y = a[k][...], b[k][...]
    if x.shape != y.shape or not np.array_equal(x, y, equal_nan=True):
        print(f'    {k}: {x.shape} vs {y.shape}, first difference at',
              next((i for i in range(min(x.size, y.size)) if not (x[i] == y[i] or (x[i] != x[i] and y[i] != y[i]))), None))
        sys.exit(1)
assert a['train/loss'].shape[0] == 300 * 16 and b['ranks/step_time'].shape == (2, 300 * 16)
assert not np.isnan(b['train/step_time'][...]).any()
PY

echo "# (b) took $SECONDS s so far"
# ------------------------------------------------------------------ (c)
rc=$(run 3 120 c3.out train tiny.ini --set train.epochs=2 --set checkpoint.every_steps=10 --set run.out=c)
t20=$(sed -n 's/^ckpt .*step-00000020.h5 .* theta \([0-9a-f]\{16\}\).*/\1/p' c3.out)
rc2=$(run 2 120 c2.out train tiny.ini --set train.epochs=2 --set checkpoint.every_steps=10 --set run.out=c --resume c/ckpt/step-00000020.h5)
r20=$(sed -n 's/^resume .* theta \([0-9a-f]\{16\}\).*/\1/p' c2.out)
if [ "$rc" = 0 ] && [ "$rc2" = 0 ] && [ -n "$t20" ] && [ "$t20" = "$r20" ] && grep -q 'resharded from 3 to 2' c2.out; then
  ok "(c) snapshot of 3 ranks resumed at 2: theta $r20 as written, exit 0"
else
  bad "(c) reshard 3 -> 2: exits $rc/$rc2, theta written $t20, read $r20"; sed 's/^/    /' c2.out | tail -12
fi

# ------------------------------------------------------------------ (d)
LETHE_FAULT_CKPT_SLEEP=2 bg 2 d.out train tiny.ini --set train.epochs=3 --set checkpoint.every_steps=5 \
  --set checkpoint.every_epochs=0 --set run.out=d
if until_true 60 test -s d/ckpt/LATEST && until_true 60 test -e d/ckpt/step-00000010.h5.tmp; then
  first=$(cat d/ckpt/LATEST)
  victim=$(pgrep -P "$BG_PID" | tail -1)
  sleep 0.5 # well inside the 2 s that every rank sleeps before closing the file
  [ -n "$victim" ] && kill -KILL "$victim"
  wait_bg 60
  if [ "$BG_RC" != 0 ] && [ "$BG_RC" != 124 ] && [ "$first" = step-00000005.h5 ] &&
     [ "$(cat d/ckpt/LATEST)" = "$first" ] && [ ! -e d/ckpt/step-00000010.h5 ]; then
    ok "(d) rank pid $victim killed while writing step 10: mpirun exit $BG_RC, LATEST still $first"
  else
    bad "(d) after the kill: exit $BG_RC, LATEST '$(cat d/ckpt/LATEST)' (first '$first'), $(ls d/ckpt | tr '\n' ' ')"
  fi
  rc=$(run 2 120 d_res.out train tiny.ini --set train.epochs=3 --set checkpoint.every_steps=5 \
         --set checkpoint.every_epochs=0 --set run.out=d --resume d)
  if [ "$rc" = 0 ] && grep -q '^resume d/ckpt/step-00000005.h5' d_res.out && [ ! -e d/ckpt/step-00000010.h5.tmp ]; then
    ok "(d) resume from the run directory continues at step 5 and finishes (leftover .tmp removed)"
  else
    bad "(d) resume after the crash: exit $rc"; sed 's/^/    /' d_res.out | tail -12
  fi
else
  wait_bg 60
  bad "(d) the snapshots of the fault-injection run did not appear (exit $BG_RC)"; sed 's/^/    /' d.out | tail -12
fi

# ------------------------------------------------------------------ (e)
snap=a2/ckpt/step-00000021.h5
head -c $(($(stat -c %s $snap) / 2)) $snap > truncated.h5
"$PY" -c "import h5py; h5py.File('foreign.h5', 'w')['foo'] = [1, 2, 3]"
echo "not a snapshot" > notes.txt
expect_fail "(e)_truncated" 2 "truncated\.h5.*truncated" train tiny.ini --set run.out=e --resume truncated.h5
expect_fail "(e)_foreign_hdf5" 2 "foreign\.h5.*not a lethe snapshot" train tiny.ini --set run.out=e --resume foreign.h5
expect_fail "(e)_text_file" 2 "notes\.txt.*not an HDF5 file" train tiny.ini --set run.out=e --resume notes.txt
expect_fail "(e)_other_model" 2 "step-00000021\.h5.*'fc1': shape 16x20 in the snapshot, 17x20" \
  train tiny.ini --set run.out=e --set model.hidden=17 --resume $snap
expect_fail "(e)_no_snapshot" 2 "no snapshot there" train tiny.ini --set run.out=e --resume .

# ------------------------------------------------------------------ (f)
rc=$(run 2 120 f.out train tiny.ini --set train.epochs=200 --set checkpoint.every_steps=0 \
       --set checkpoint.every_epochs=0 --set checkpoint.every_seconds=0.02 --set checkpoint.keep=0 --set run.out=f)
n_sec=$(grep -c '^ckpt .*(every_seconds)' f.out)
[ "$rc" = 0 ] && [ "$n_sec" -ge 2 ] && ok "(f) every_seconds = 0.02: $n_sec timed snapshots" \
  || { bad "(f) every_seconds: exit $rc, $n_sec timed snapshots"; tail -5 f.out; }
echo "# all took $SECONDS s"
finish
