#!/usr/bin/env bash
# jobs/lethe.sbatch on a private one-node Slurm: preemption signal -> snapshot -> requeue ->
# resume -> completion, with tests/slurm/fake_lethe.sh (lethe's checkpoint contract, no training)
# in place of lethe, so the job machinery is tested on its own:
# - `scancel --signal=USR1 --batch` reaches the batch shell, which forwards SIGUSR1 through
#   mpirun to every rank; every rank stops at a step boundary with exit 75;
# - the job requeues itself (Restarts >= 1), starts again with --resume RUN_DIR and finishes
#   the remaining steps from the snapshot's step; the job ends COMPLETED with exit 0;
# - ranks = --ntasks, BLIS_NUM_THREADS = --cpus-per-task; user --set arguments pass through.
source "$(dirname "$0")/common.sh"
FAKE=$SRC/tests/slurm/fake_lethe.sh
STEPS=60

id=$(LETHE=$FAKE FAKE_STEPS=$STEPS submit --ntasks=2 --cpus-per-task=1 --output="$SCRATCH/job-%j.out" \
  "$SRC/jobs/lethe.sbatch" run deck.ini --set optim.lr=0.1) || { bad "sbatch failed"; finish; exit; }
out=$SCRATCH/job-$id.out
ok "submitted job $id"

progress() { [ "$(cat run/progress 2>/dev/null || echo 0)" -ge 5 ]; }
if wait_until 60 progress; then
  ok "job $id runs: step $(cat run/progress)"
else
  bad "job $id made no progress in 60 s"; show_job "$id" "$out"; finish; exit
fi

timeout 10 scancel --signal=USR1 --batch "$id" || bad "scancel --signal=USR1 --batch failed"
if wait_until 60 restarted "$id"; then
  ok "job $id requeued after the signal (Restarts=$(job_field "$id" Restarts))"
else
  bad "job $id not requeued within 60 s"; show_job "$id" "$out"
fi
if wait_until 180 job_over "$id"; then
  st=$(job_field "$id" JobState) ec=$(job_field "$id" ExitCode)
  [ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] && ok "job $id $st, exit $ec" || { bad "job $id ended $st, exit $ec"; show_job "$id" "$out"; }
else
  bad "job $id not finished within 180 s"; show_job "$id" "$out"
fi

# what every rank saw: two segments, the first ended by the forwarded SIGUSR1
ckpt=$(cat run/ckpt/LATEST 2>/dev/null)
k=$((10#${ckpt#step-}))
for r in 0 1; do
  log=run/rank-$r.log
  mapfile -t L <"$log"
  starts=$(grep -c '^start' "$log") sigs=$(grep -c '^signal USR1' "$log")
  if [ "$starts" = 2 ] && [ "$sigs" -ge 1 ] &&
    [[ ${L[0]} == "start step=0 np=2 threads=1 restart=none args=train deck.ini --set run.out=run --set optim.lr=0.1" ]] &&
    grep -qx "start step=$k np=2 threads=1 restart=1 args=train deck.ini --set run.out=run --resume run --set optim.lr=0.1" "$log" &&
    grep -qx "exit 75 step=[0-9]*" "$log" && [ "${L[-1]}" = "exit 0 step=$STEPS" ]; then
    ok "rank $r: SIGUSR1 forwarded ($sigs), exit 75, resumed at step $k with --resume, finished at $STEPS"
  else
    bad "rank $r: unexpected history (snapshot $ckpt)"; sed 's/^/    /' "$log"
  fi
done
[ "$(cat run/done 2>/dev/null)" = "$STEPS" ] && ok "run finished all $STEPS steps" || bad "run/done missing"
if grep -q "requeueing job $id" "$out" && grep -q "resuming run from ckpt/$ckpt" "$out"; then
  ok "job log (append mode) shows the requeue and the resume"
else
  bad "job log lacks the requeue/resume lines"; show_job "$id" "$out"
fi

# argument errors are caught before anything runs (no Slurm needed)
msg=$(bash "$SRC/jobs/lethe.sbatch" deck.ini run 2>&1)
[ $? = 2 ] && [[ $msg == *"first argument is the run directory"* ]] && ok "deck as first argument: exit 2" || bad "deck first: '$msg'"
msg=$(bash "$SRC/jobs/lethe.sbatch" run deck.ini --set run.out=x 2>&1)
[ $? = 2 ] && [[ $msg == *"run.out is set by this script"* ]] && ok "--set run.out rejected: exit 2" || bad "run.out: '$msg'"
finish
