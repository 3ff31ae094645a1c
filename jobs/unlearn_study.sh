#!/usr/bin/env bash
# The machine-unlearning study (issue 6): Fashion-MNIST, MLP 784-400-400-10
# (input/unlearn/fmnist_mlp.ini), seeds 1..3. For each seed: train (skipped when
# RUN/ckpt/LATEST exists), then `lethe unlearn` for full-class forgetting of classes
# 0, 3 and 7 and random forgetting of 1% of the training set, each with SSD (the
# default alpha 5, lambda 0.5 first, then the alpha x lambda grid) and the baselines
# retrain, finetune, neggrad. The first unlearn job of a seed computes I_D and stores
# it beside the snapshot; the others reuse it. Then results/unlearn/summary.md
# (analysis/unlearn_summary.py) and the trade-off plots (analysis/plot_unlearn_tradeoff.py).
#
#   jobs/unlearn_study.sh [-n RANKS] [--seeds "1 2 3"] [--summary-only]
#
# A finished job (OUT/DONE) is skipped, so rerunning resumes. Runs go to
# runs/unlearn/sSEED (LETHE_UNLEARN_RUNS), logs to runs/unlearn/logs. Environment:
# LETHE (default build/src/lethe), BLIS_NUM_THREADS (default 1).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
np=${LETHE_RANKS:-2} seeds="1 2 3" summary_only=0
while [ $# -gt 0 ]; do
  case $1 in
    -n) np=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --summary-only) summary_only=1; shift ;;
    *) echo "usage: jobs/unlearn_study.sh [-n RANKS] [--seeds \"1 2 3\"] [--summary-only]" >&2; exit 2 ;;
  esac
done
LETHE=${LETHE:-build/src/lethe}
RUNS=${LETHE_UNLEARN_RUNS:-runs/unlearn}
RESULTS=${LETHE_UNLEARN_RESULTS:-results/unlearn}
DECK=input/unlearn/fmnist_mlp.ini
export BLIS_NUM_THREADS=${BLIS_NUM_THREADS:-1}
root=()
[ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
mpi() { mpirun "${root[@]}" --oversubscribe --bind-to none -n "$np" "$LETHE" "$@"; }
GRID=(--set unlearn.alpha=5,1,2,3,8 --set unlearn.lambda=0.5,0.1,1)
mkdir -p "$RUNS/logs" "$RESULTS"

if [ "$summary_only" = 0 ]; then
  for s in $seeds; do
    run=$RUNS/s$s
    if [ ! -f "$run/ckpt/LATEST" ]; then
      echo "== train seed $s"
      mpi train "$DECK" --set run.seed="$s" --set run.out="$run" --set run.progress=none \
        >"$RUNS/logs/train-s$s.log" 2>&1 || { echo "train seed $s failed (see the log)"; exit 1; }
    fi
    for job in class0 class3 class7 random1; do
      out=$run/$job
      [ -f "$out/DONE" ] && continue
      case $job in
        class*) forget=(--set unlearn.forget=class --set unlearn.classes="${job#class}") ;;
        random1) forget=(--set unlearn.forget=random --set unlearn.fraction=0.01) ;;
      esac
      echo "== unlearn seed $s $job"
      if mpi unlearn "$DECK" --from "$run" --set run.seed="$s" --set run.out="$run" \
           --set unlearn.out="$out" "${forget[@]}" "${GRID[@]}" >"$RUNS/logs/$job-s$s.log" 2>&1; then
        touch "$out/DONE"
        sed -n '/^unlearn /,$p' "$RUNS/logs/$job-s$s.log"
      else
        echo "unlearn seed $s $job failed (see $RUNS/logs/$job-s$s.log)"
      fi
    done
  done
fi
/usr/bin/python3 analysis/unlearn_summary.py "$RUNS" --out "$RESULTS/summary.md"
/usr/bin/python3 analysis/plot_unlearn_tradeoff.py "$RUNS"/s*/class* --out "$RESULTS"
