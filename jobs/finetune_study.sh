#!/usr/bin/env bash
# The fine-tuning stability study (README "Fine-tuning"): pretrain an MLP 784-(256 x 6)-5 on
# Fashion-MNIST classes 0-4 (input/finetune/pretrain.ini), then fine-tune it on classes 5-9
# (input/finetune/finetune.ini) for every cell
#     samples_per_class in {10, 100} x lr in {moderate, aggressive}
#     x remedy in {scratch, plain, freeze1, freeze2, llrd0.8, llrd0.5, reinit1}
# with SEEDS seeds per cell. Every cell is one `lethe train` with [run] seeds: the MPI world
# is split into groups (ranks_per_seed each) that run the replicas at the same time, and the
# cell's per-seed accuracies, loss curves and summary land in RUN/metrics.h5 /finetune.
# Seed s draws the same class-balanced subset (and the same fresh head) for every remedy,
# so the remedies can be compared pairwise per seed. Then analysis/finetune_table.py writes
# results/finetune/summary.md and analysis/plot_finetune_box.py the box plots.
#
#   jobs/finetune_study.sh [-n RANKS] [--seeds N] [--fresh] [--summary-only]
#
# Defaults: 2 ranks (groups of 1 rank), 20 seeds, BLIS_NUM_THREADS=1; a cell whose
# metrics.h5 already holds /finetune is skipped (resume by running the same command).
# Environment: LETHE (default build/src/lethe), LETHE_FT_RUNS (default runs/finetune),
# LETHE_FT_RESULTS (default results/finetune), LETHE_FT_LRS (default "0.01 0.03").
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
usage="usage: jobs/finetune_study.sh [-n RANKS] [--seeds N] [--fresh] [--summary-only]"
np=2 seeds=20 fresh=0 summary_only=0
while [ $# -gt 0 ]; do
  case $1 in
    -n) np=${2:?$usage}; shift 2 ;;
    --seeds) seeds=${2:?$usage}; shift 2 ;;
    --fresh) fresh=1; shift ;;
    --summary-only) summary_only=1; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
LETHE=${LETHE:-build/src/lethe}
RUNS=${LETHE_FT_RUNS:-runs/finetune}
RESULTS=${LETHE_FT_RESULTS:-results/finetune}
LRS=${LETHE_FT_LRS:-0.01 0.03}
export BLIS_NUM_THREADS=${BLIS_NUM_THREADS:-1}
mpi=(mpirun --oversubscribe --bind-to none -n "$np")
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)
mkdir -p "$RUNS/logs" "$RESULTS"
[ "$fresh" = 1 ] && rm -rf "${RUNS:?}"/spc* "$RUNS/pretrain"

has_finetune() { /usr/bin/python3 -c "import h5py,sys; sys.exit(0 if 'finetune' in h5py.File(sys.argv[1],'r') else 1)" "$1" 2>/dev/null; }

if [ "$summary_only" = 0 ]; then
  if [ ! -f "$RUNS/pretrain/ckpt/LATEST" ]; then
    echo "pretrain -> $RUNS/pretrain"
    "${mpi[@]}" "$LETHE" train input/finetune/pretrain.ini --set run.out="$RUNS/pretrain" \
      >"$RUNS/logs/pretrain.log" 2>&1 || { echo "pretraining failed: $RUNS/logs/pretrain.log" >&2; exit 1; }
  fi
  for spc in 10 100; do
    epochs=$([ "$spc" = 10 ] && echo 30 || echo 10) # 150 and 500 steps of batch 10
    for lr in $LRS; do
      for remedy in scratch plain freeze1 freeze2 llrd0.8 llrd0.5 reinit1; do
        name=spc$spc-lr$lr-$remedy
        out=$RUNS/$name
        if [ -f "$out/metrics.h5" ] && has_finetune "$out/metrics.h5"; then continue; fi
        set -- --set finetune.samples_per_class="$spc" --set optim.lr="$lr" \
          --set train.epochs="$epochs" --set run.seeds="$seeds" --set run.out="$out" \
          --set finetune.from="$RUNS/pretrain"
        case $remedy in
          scratch) set -- "$@" --set finetune.from= ;;
          freeze*) set -- "$@" --set finetune.freeze_bottom="${remedy#freeze}" ;;
          llrd*) set -- "$@" --set finetune.llrd="${remedy#llrd}" ;;
          reinit*) set -- "$@" --set finetune.reinit_top="${remedy#reinit}" ;;
        esac
        t0=$(date +%s)
        "${mpi[@]}" "$LETHE" train input/finetune/finetune.ini "$@" --set run.log_level=info \
          >"$RUNS/logs/$name.log" 2>&1 || { echo "$name failed: $RUNS/logs/$name.log" >&2; exit 1; }
        echo "$name: $(grep -m1 '^seeds  accuracy' "$RUNS/logs/$name.log") ($(( $(date +%s) - t0 )) s)"
      done
    done
  done
fi
/usr/bin/python3 analysis/finetune_table.py "$RUNS" >"$RESULTS/summary.md" || exit 1
/usr/bin/python3 analysis/plot_finetune_box.py "$RUNS" "$RESULTS/box.png" || exit 1
echo "wrote $RESULTS/summary.md and $RESULTS/box.png"
