#!/usr/bin/env bash
# lethe itself under jobs/lethe.sbatch on a private one-node Slurm, at 2 ranks x 1 thread:
# 1. the reference: the deck run uninterrupted with mpirun directly;
# 2. a plain sbatch run to completion: same per-step losses as the reference, bit for bit
#    (same ranks, threads and seed: lethe's steps are deterministic);
# 3. preemption: once the job wrote its epoch-1 snapshot, `scancel --signal=USR1 --batch` -> lethe
#    writes a snapshot and exits 75 -> the job requeues itself (Restarts >= 1) -> resumes with
#    --resume -> COMPLETED; the final snapshot's /model/theta and the per-step losses in
#    metrics.h5 equal the reference's bit for bit (a restart at the same rank count continues
#    bit for bit, DESIGN.md section 5).
# Part 3 is skipped (exit 77, after parts 1-2 passed) by a lethe without `train --resume`.
source "$(dirname "$0")/common.sh"
NP=2
EPOCHS=12

# a small dataset (random 8x8 images, 10 classes) written as IDX independently of lethe
"$PY" - <<'PY'
import struct, random
random.seed(1)
n, h, w = 2000, 8, 8
lab = [random.randrange(10) for _ in range(n)]
px = bytes(min(255, max(0, int(random.gauss(40 + 20 * ((i + y) % 10), 30)))) for y in lab for i in range(h * w))
open('img.idx', 'wb').write(struct.pack('>IIII', 0x803, n, h, w) + px)
open('lab.idx', 'wb').write(struct.pack('>II', 0x801, n) + bytes(lab))
PY
"$MPIEXEC" --oversubscribe -n 1 "$LETHE" data import-idx img.idx lab.idx img.idx lab.idx tiny.h5 >import.out 2>&1 ||
  { cat import.out; bad "import failed"; finish; exit; }
# wide layers so that an epoch takes ~1 s at 2 ranks: the signal lands mid-run
cat >tiny.ini <<EOF
[data]
path = $SCRATCH/tiny.h5
[model]
hidden = 1024,1024
[optim]
kind = adam
lr = 0.001
batch_size = 16
[train]
epochs = $EPOCHS
eval_every = 4
[checkpoint]
every_epochs = 1
[run]
seed = 3
out = unused
progress = lines
EOF

# 1. reference
rc=$(run $NP 300 ref.out train tiny.ini --set run.out=ref)
[ "$rc" = 0 ] && ok "reference run (mpirun -n $NP): $(grep -m1 '^done' ref.out | cut -c1-90)" ||
  { bad "reference run failed (exit $rc)"; sed 's/^/    /' ref.out; finish; exit; }

# losses A B: /train/loss of two run directories equal bit for bit (prints the verdict)
losses() {
  "$PY" - "$1/metrics.h5" "$2/metrics.h5" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(f, 'r')['train/loss'][...] for f in sys.argv[1:3])
same = a.shape == b.shape and a.tobytes() == b.tobytes()
print(f"{a.size} vs {b.size} steps, {'identical' if same else 'DIFFERENT'}")
sys.exit(0 if same else 1)
PY
}

# 2. plain run through sbatch
id=$(LETHE=$LETHE submit --ntasks=$NP --cpus-per-task=1 --output="$SCRATCH/plain-%j.out" \
  "$SRC/jobs/lethe.sbatch" plain tiny.ini) || { bad "sbatch failed"; finish; exit; }
if wait_until 300 job_over "$id" && [ "$(job_field "$id" JobState)" = COMPLETED ]; then
  ok "plain sbatch job $id COMPLETED"
  msg=$(losses ref plain 2>&1) && ok "plain job vs reference: per-step losses $msg" || bad "plain job vs reference: $msg"
else
  bad "plain sbatch job $id did not complete"; show_job "$id" "$SCRATCH/plain-$id.out"
fi

# 3. preemption and requeue
help=$("$LETHE" train --help 2>&1) # (not piped into grep -q: with pipefail, SIGPIPE would read as absent)
if [[ $help != *--resume* ]]; then
  echo "SKIP - preemption: \`lethe train --help\` has no --resume (checkpoints not implemented yet)"
  echo "$PASSES passed, $FAILS failed, 1 skipped"
  [ "$FAILS" = 0 ] && exit 77
  exit 1
fi
id=$(LETHE=$LETHE submit --ntasks=$NP --cpus-per-task=1 --output="$SCRATCH/preempt-%j.out" \
  "$SRC/jobs/lethe.sbatch" preempt tiny.ini) || { bad "sbatch failed"; finish; exit; }
out=$SCRATCH/preempt-$id.out
# progress: the snapshot after epoch 1 ([checkpoint] every_epochs = 1); the signal then lands in epoch 2
snapshot() { [ -s preempt/ckpt/LATEST ]; }
if wait_until 120 snapshot; then
  ok "job $id running: first snapshot $(cat preempt/ckpt/LATEST)"
else
  bad "job $id wrote no snapshot in 120 s"; show_job "$id" "$out"; finish; exit
fi
timeout 10 scancel --signal=USR1 --batch "$id" || bad "scancel --signal=USR1 --batch failed"
if wait_until 120 restarted "$id"; then
  ok "job $id requeued (Restarts=$(job_field "$id" Restarts))"
else
  bad "job $id not requeued within 120 s"; show_job "$id" "$out"
fi
if wait_until 300 job_over "$id"; then
  st=$(job_field "$id" JobState) ec=$(job_field "$id" ExitCode)
  [ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] && ok "job $id $st, exit $ec" || { bad "job $id ended $st, exit $ec"; show_job "$id" "$out"; }
else
  bad "job $id not finished within 300 s"; show_job "$id" "$out"
fi
grep -q 'lethe wrote a snapshot and stopped (exit 75)' "$out" && grep -q 'resuming preempt from ckpt/' "$out" &&
  ok "first segment exited 75, second resumed from $(grep -m1 -o 'resuming preempt from ckpt/[^ ]*' "$out" | cut -d/ -f2-)" ||
  { bad "job log lacks the exit 75 / resume lines"; show_job "$id" "$out"; }

msg=$(losses ref preempt 2>&1) && ok "preempted job vs reference: per-step losses $msg" || bad "preempted job vs reference: $msg"

# the final parameters of the two runs, bit for bit
msg=$("$PY" - ref preempt <<'PY' 2>&1
import sys, os, h5py, numpy as np
theta = []
for d in sys.argv[1:3]:
    name = open(os.path.join(d, 'ckpt', 'LATEST')).read().strip()
    with h5py.File(os.path.join(d, 'ckpt', name), 'r') as f:
        theta.append((name, f['model/theta'][...]))
(na, a), (nb, b) = theta
if na != nb:
    sys.exit(f"final snapshots differ: reference {na}, preempted {nb}")
if a.dtype != np.float32 or a.shape != b.shape:
    sys.exit(f"theta {a.dtype}{a.shape} vs {b.dtype}{b.shape}")
n = int(np.count_nonzero(a.view(np.uint32) != b.view(np.uint32)))
print(f"{na}: {a.size} parameters, {n} differ (max |diff| {float(np.max(np.abs(a - b))):.3g})")
sys.exit(1 if n else 0)
PY
)
[ $? = 0 ] && ok "final theta equals the reference bit for bit: $msg" || bad "final theta vs reference: $msg"
finish
