#!/usr/bin/env bash
# Per-step cost of each continual-learning strategy relative to naive, and the
# memory of the strategy state per rank at 1 and 2 ranks (CTest bench.cl, label
# bench). Split Fashion-MNIST, MLP 784-400-400-10, plain SGD, batch 128, the first
# task only (the replay buffer filled by then, the penalties active from the
# second task: run two tasks), each strategy at 1 and 2 ranks (BLIS 1 thread),
# all in one run so that they share the machine's load. Cost = median step time
# (metrics.h5 /train/step_time of rank 0, the second task's steps) / naive's.
#
#   bench_cl.sh LETHE SOURCE_DIR BUILD_DIR [MPIEXEC]
set -uo pipefail
[ $# -ge 3 ] || { echo "usage: $0 LETHE SOURCE_DIR BUILD_DIR [MPIEXEC]" >&2; exit 2; }
lethe=$1 src=$2 build=$3 mpiexec=${4:-mpirun}
work=$build/bench/cl
results=$build/bench_cl.txt
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 BLIS_NUM_THREADS=1
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
d=/usr/share/datasets/fashion-mnist
"$mpiexec" -n 1 "$lethe" data import-idx "$d/train-images-idx3-ubyte.gz" "$d/train-labels-idx1-ubyte.gz" \
  "$d/t10k-images-idx3-ubyte.gz" "$d/t10k-labels-idx1-ubyte.gz" fmnist.h5 > import.log 2>&1 \
  || { cat import.log; exit 1; }
common=(--set data.path=fmnist.h5 --set scenario.kind=split --set scenario.tasks=5
        --set model.hidden=400,400 --set optim.schedule=constant --set optim.warmup_steps=0
        --set optim.momentum=0 --set optim.nesterov=false --set optim.weight_decay=0
        --set optim.lr=0.01 --set train.epochs=1 --set train.max_steps=186
        --set run.progress=none --set checkpoint.at_task_end=false --set checkpoint.every_epochs=0)
strategies=("naive:" "ewc:--set cl.penalty=ewc --set cl.ewc_lambda=10"
            "online_ewc:--set cl.penalty=online_ewc --set cl.ewc_lambda=10" "si:--set cl.penalty=si"
            "er:--set cl.replay=er" "der:--set cl.replay=der" "derpp:--set cl.replay=derpp"
            "derpp+refresh:--set cl.replay=derpp --set refresh.kind=code")
fails=0
declare -A ms kb
for np in 1 2; do
  for s in "${strategies[@]}"; do
    name=${s%%:*}
    # shellcheck disable=SC2206
    extra=(${s#*:})
    out=run-$name-$np
    timeout -k 5 600 "$mpiexec" --oversubscribe --bind-to none -n "$np" "$lethe" train \
      "$src/input/quickstart.ini" "${common[@]}" "${extra[@]}" --set run.out="$out" > "$out.log" 2>&1 \
      || { echo "bench_cl: $name at $np rank(s) failed" >&2; tail -5 "$out.log" >&2; fails=$((fails + 1)); continue; }
    ms[$name,$np]=$("$PY" -c "
import h5py, numpy as np
t = h5py.File('$out/metrics.h5', 'r')['train/step_time'][...]
print('%.3f' % (1e3 * np.median(t[len(t) // 2:])))")
    kb[$name,$np]=$(grep -o 'strategy state [0-9.]* KB' "$out.log" | awk '{print $3}')
  done
done
{
  echo "lethe CL strategy cost: Split Fashion-MNIST, MLP 784-400-400-10, SGD lr 0.01, global batch 128,"
  echo "2 tasks (186 steps), BLIS 1 thread per rank; $(date -u +%FT%TZ), git $(git -C "$src" rev-parse --short=12 HEAD 2>/dev/null)"
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
  printf '%-16s %12s %10s %14s %12s %10s %14s\n' strategy "ms/step 1r" "vs naive" "state KB 1r" "ms/step 2r" "vs naive" "state KB/rank 2r"
  for s in "${strategies[@]}"; do
    name=${s%%:*}
    r1=$(awk -v a="${ms[$name,1]:-0}" -v b="${ms[naive,1]:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b }')
    r2=$(awk -v a="${ms[$name,2]:-0}" -v b="${ms[naive,2]:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b }')
    printf '%-16s %12s %10s %14s %12s %10s %14s\n' "$name" "${ms[$name,1]:-}" "$r1" "${kb[$name,1]:-}" \
      "${ms[$name,2]:-}" "$r2" "${kb[$name,2]:-}"
  done
  echo "state: per-parameter arrays (EWC: one Fisher + anchor per finished task) live on the owning"
  echo "rank's slice only and halve at 2 ranks; the replay buffer is sharded (M/P samples per rank)."
} | tee "$results"
[ "$fails" = 0 ]
