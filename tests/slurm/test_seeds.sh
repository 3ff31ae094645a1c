#!/usr/bin/env bash
# jobs/seeds.sbatch on a private one-node Slurm with tests/slurm/fake_lethe.sh in place of lethe:
# a 2-task array whose time limit (2 min) is too short for the first segment, so Slurm's
# --signal=B:USR1@100 (the time-limit warning, sent up to 60 s early) must reach every rank,
# each task must requeue itself alone, resume its own seed-N directory with run.seed=N and finish.
source "$(dirname "$0")/common.sh"
FAKE=$SRC/tests/slurm/fake_lethe.sh
# first segment: 1000 x 0.25 s = 250 s > 120 s time limit; resumed: ~0.02 s a step
STEPS=1000

id=$(LETHE=$FAKE FAKE_STEPS=$STEPS FAKE_STEP_S=0.25 FAKE_RESUMED_STEP_S=0.01 \
  submit --array=0-1 --ntasks=1 --cpus-per-task=1 --time=00:02:00 --signal=B:USR1@100 \
  --output="$SCRATCH/seeds-%A_%a.out" "$SRC/jobs/seeds.sbatch" base deck.ini --set optim.lr=0.1) ||
  { bad "sbatch failed"; finish; exit; }
ok "submitted array job $id"

for t in 0 1; do
  if wait_until 240 job_over "${id}_$t"; then
    st=$(job_field "${id}_$t" JobState) ec=$(job_field "${id}_$t" ExitCode) rs=$(job_field "${id}_$t" Restarts)
    if [ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] && [ "$rs" -ge 1 ]; then
      ok "task $t: $st, exit $ec, Restarts=$rs"
    else
      bad "task $t ended $st, exit $ec, Restarts=$rs"; show_job "${id}_$t" "$SCRATCH/seeds-${id}_$t.out"
    fi
  else
    bad "task $t not finished within 240 s"; show_job "${id}_$t" "$SCRATCH/seeds-${id}_$t.out"
  fi
  log=base/seed-$t/rank-0.log
  ckpt=$(cat "base/seed-$t/ckpt/LATEST" 2>/dev/null)
  k=$((10#${ckpt#step-}))
  if grep -qx "start step=0 np=1 threads=1 restart=none args=train deck.ini --set run.out=base/seed-$t --set run.seed=$t --set optim.lr=0.1" "$log" &&
    grep -q '^signal USR1' "$log" &&
    grep -qx "start step=$k np=1 threads=1 restart=1 args=train deck.ini --set run.out=base/seed-$t --resume base/seed-$t --set run.seed=$t --set optim.lr=0.1" "$log" &&
    [ "$(tail -1 "$log")" = "exit 0 step=$STEPS" ]; then
    ok "seed $t: time-limit SIGUSR1 at step $k, resumed with run.seed=$t from its own directory, finished"
  else
    bad "seed $t: unexpected history"; sed 's/^/    /' "$log"
  fi
done
finish
