#!/usr/bin/env bash
# lethe's benchmark (CTest bench.mlp, label bench): one table, side by side.
#
#   run_bench.sh LETHE BENCH_GEMM SOURCE_DIR BUILD_DIR [MPIEXEC]
#
# 1. imports Fashion-MNIST into BUILD_DIR/data/fashion-mnist.h5 if it is not there;
# 2. trains input/bench_mlp.ini (MLP 784-1024-1024-10, SGD momentum, batch 128,
#    one epoch) with lethe at 1 rank x 1 thread, 1 rank x 2 threads and
#    2 ranks x 1 thread (mpirun --oversubscribe --bind-to none), with --profile;
# 3. trains the same model with PyTorch (tests/bench/torch_mlp.py, 2 threads),
#    once with the kernels BLIS picks for torch by itself and once with the
#    kernel set lethe runs (BLIS_ARCH_TYPE = lethe's choice);
# 4. times the step's GEMMs alone with bench_gemm at the matching local batch
#    and threads, for the roofline fraction
#       6 * parameters * samples/s / (GEMM GFLOP/s on the same cores)
#    (2 ranks x 1 thread: twice the 1-thread rate at local batch 64; at 1 rank
#    the better of `bench_gemm gemm` and the GEMMs-alone timing of `bench_gemm step`),
#    and splits lethe's step into its parts (bench_gemm step);
# 5. times the diagonal empirical Fisher: lethe's lt_fisher_diag (bench_gemm
#    fisher, 1 rank x 2 threads) against PyTorch's single-sample loop (2 threads).
# The table goes to stdout and BUILD_DIR/bench_results.txt; logs to BUILD_DIR/bench/.
#
# Two throughputs per training run: the epoch's (what `lethe train` prints:
# rows / summed step times) and the one at the median step time (lethe's
# metrics.h5 /train/step_time; torch_mlp.py times its steps the same way). On a
# shared machine bursts of other load slow some steps down; the median ignores
# them, so ratios and the roofline use the median figures. Likewise the GEMM
# rates are at the median step, the Fisher rates at the median pass (lethe) and
# the median sample (torch).
#
# Targets are printed as PASS/MISS but never fail the test (timings are noisy);
# the test fails only when a run crashes or prints no result.
# Environment: LETHE_BENCH_REPEAT=N runs N interleaved rounds and keeps the best
# of each figure (default 1); LETHE_BENCH_WAIT_QUIET=S waits up to S seconds
# before each measurement until no other process is runnable for 3 s (default 0);
# LETHE_BENCH_PYTHON picks the Python with torch and h5py.
set -uo pipefail

if [ $# -lt 4 ]; then
  echo "usage: $0 LETHE BENCH_GEMM SOURCE_DIR BUILD_DIR [MPIEXEC]" >&2
  exit 2
fi
lethe=$1 gemm=$2 src=$3 build=$4 mpiexec=${5:-mpirun}
deck=$src/input/bench_mlp.ini
work=$build/bench
logs=$work/logs
data=$build/data/fashion-mnist.h5
results=$build/bench_results.txt
repeat=${LETHE_BENCH_REPEAT:-1}
mkdir -p "$logs" "$build/data"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset BLIS_NUM_THREADS OMP_NUM_THREADS # set per configuration below

failfile=$work/failures.txt # runs happen in $(...) subshells: collect failures in a file
: > "$failfile"
fail() { echo "$1" >> "$failfile"; echo "bench: FAILED: $1" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(loadavg)

# ------------------------------------------------------------------ dataset
if [ ! -s "$data" ]; then
  d=/usr/share/datasets/fashion-mnist
  echo "bench: importing Fashion-MNIST from $d into $data"
  if ! "$lethe" data import-idx "$d/train-images-idx3-ubyte.gz" "$d/train-labels-idx1-ubyte.gz" \
      "$d/t10k-images-idx3-ubyte.gz" "$d/t10k-labels-idx1-ubyte.gz" "$data" \
      --name fashion-mnist > "$logs/import.log" 2>&1; then
    cat "$logs/import.log" >&2
    echo "bench: cannot import the dataset (is dataset-fashion-mnist installed?)" >&2
    exit 1
  fi
fi

# ------------------------------------------------------------------ helpers
# best VALUE...: the largest of the positive numeric values (empty if none).
best() { printf '%s\n' "$@" | awk 'NF && $1+0 > 0 { if (m == "" || $1 + 0 > m) m = $1 + 0 } END { if (m != "") printf "%.1f", m }'; }

# field LOG KEY: value of "KEY=value" on the last RESULT line that has it; the key
# lethe_samples_per_s is the throughput on lethe train's final "done" line.
field() {
  if [ "$1" = "" ] || [ ! -f "$1" ]; then return; fi
  if [ "$2" = lethe_samples_per_s ]; then
    sed -n 's/^done .*training throughput \([0-9.]*\) samples\/s.*/\1/p' "$1" | tail -1
  else
    grep '^RESULT ' "$1" | grep -o "$2=[^ ]*" | tail -1 | cut -d= -f2
  fi
}

# quiet_wait: up to LETHE_BENCH_WAIT_QUIET seconds, until the count of runnable
# tasks (/proc/loadavg, which counts this check itself) stays at 1 for 3 samples.
quiet_wait() {
  local max=${LETHE_BENCH_WAIT_QUIET:-0} waited=0 calm=0 r
  while [ "$waited" -lt "$max" ] && [ $calm -lt 3 ]; do
    read -r _ _ _ r _ < /proc/loadavg # a builtin: no process of ours counts but this shell
    r=${r%/*}
    if [ "$r" -le 1 ]; then calm=$((calm + 1)); else calm=0; fi
    sleep 1
    waited=$((waited + 1))
  done
}

# once LOG KEY CMD...: run CMD with output to LOG; print the RESULT value KEY, or
# record a failure (crash, or no result) and print nothing.
once() {
  local log=$1 key=$2 rc v
  shift 2
  quiet_wait
  "$@" > "$log" 2>&1
  rc=$?
  v=$(field "$log" "$key")
  if [ $rc -ne 0 ] || [ -z "$v" ]; then
    fail "exit $rc: $* (see $log)"
    tail -20 "$log" >&2
    return
  fi
  echo "$v"
}

# Python with torch and h5py
python=
for p in ${LETHE_BENCH_PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$p" > /dev/null 2>&1 && "$p" -c 'import torch, h5py' > /dev/null 2>&1; then
    python=$p
    break
  fi
done

# lethe_train NAME RANKS THREADS: one epoch of the bench deck, with timers
lethe_train() {
  BLIS_NUM_THREADS=$3 "$mpiexec" --oversubscribe --bind-to none -n "$2" "$lethe" train "$deck" \
    --set "data.path=$data" --set "run.out=$work/runs/$1" --set run.progress=none --profile
}
# step_parts RANKS THREADS LOCAL_BATCH: bench_gemm's split of one step (median ms)
step_parts() {
  BLIS_NUM_THREADS=$2 "$mpiexec" --oversubscribe --bind-to none -n "$1" "$gemm" step "$3"
}

# lethe_median NAME LOG: global batch / median step time of the last run NAME
lethe_median() {
  [ -n "$python" ] || return
  local gb
  gb=$(sed -n 's/.*global batch \([0-9]*\).*/\1/p' "$2" | head -1)
  [ -n "$gb" ] || return
  "$python" -c 'import sys, h5py, numpy
with h5py.File(sys.argv[1], "r") as f:
    t = f["train/step_time"][:]
print("%.1f" % (int(sys.argv[2]) / numpy.median(t)))' "$work/runs/$1/metrics.h5" "$gb" 2> /dev/null
}

# torch_run MODE [VAR=VALUE...] [--as-installed]: the PyTorch peer at 2 threads
# (torch.set_num_threads(2)); with BLIS_NUM_THREADS=2 unless --as-installed, which
# leaves it unset as a user would (BLIS then runs torch's GEMMs on one thread).
torch_run() {
  local mode=$1 w envs=(BLIS_NUM_THREADS=2) args=()
  shift
  for w in "$@"; do
    if [ "$w" = --as-installed ]; then envs=("${envs[@]:1}"); args+=("$w"); else envs+=("$w"); fi
  done
  env "${envs[@]}" "$python" "$src/tests/bench/torch_mlp.py" "$mode" "$data" --threads 2 "${args[@]}"
}

# lethe's kernel set, and its BLIS 0.9 arch_t id for running torch on the same kernels
arch=$(BLIS_NUM_THREADS=1 "$gemm" gemm 8 0.01 2> /dev/null | awk '/^blis / { print $4; exit }')
case $arch in
  skx) arch_id=0 ;; knl) arch_id=1 ;; haswell) arch_id=3 ;; sandybridge) arch_id=4 ;;
  zen3) arch_id=6 ;; zen2) arch_id=7 ;; zen) arch_id=8 ;; *) arch_id= ;;
esac

# ------------------------------------------------------------------ runs
# Configurations: NAME -> ranks, threads, local batch and GEMM multiplier of its roofline.
lethe_cfgs=(1x1 1x2 2x1)
declare -A NP=([1x1]=1 [1x2]=1 [2x1]=2) NT=([1x1]=1 [1x2]=2 [2x1]=1)
declare -A GB=([1x1]=128 [1x2]=128 [2x1]=64) GX=([1x1]=1 [1x2]=1 [2x1]=2)
declare -A EP=() MED=() GF=() # best epoch and median-step samples/s; GEMM GFLOP/s (one rank)
declare -A STEP=() STEPLOG=() # bench_gemm step: best samples/s and the log of that round
f_lethe='' f_torch=''
torch_cfgs=()
if [ -n "$python" ]; then
  torch_cfgs=(torch_installed torch_default)
  [ -n "$arch_id" ] && torch_cfgs+=(torch_lethe_kernels)
fi
declare -A TENV=([torch_installed]="--as-installed" [torch_default]=""
  [torch_lethe_kernels]="BLIS_ARCH_TYPE=$arch_id")

# Each lethe configuration runs right after the GEMM timing it is compared with,
# and rounds are interleaved, so that a burst of load from other users hits
# both sides of a ratio alike.
for ((i = 1; i <= repeat; i++)); do
  for c in "${lethe_cfgs[@]}"; do
    echo "bench: round $i of $repeat: lethe ${NP[$c]} rank(s) x ${NT[$c]} thread(s)"
    GF[$c]=$(best "${GF[$c]:-}" "$(BLIS_NUM_THREADS=${NT[$c]} once "$logs/gemm_$c.$i.log" gflops "$gemm" gemm "${GB[$c]}")")
    EP[$c]=$(best "${EP[$c]:-}" "$(once "$logs/lethe_$c.$i.log" lethe_samples_per_s lethe_train "$c" "${NP[$c]}" "${NT[$c]}")")
    MED[$c]=$(best "${MED[$c]:-}" "$(lethe_median "$c" "$logs/lethe_$c.$i.log")")
    v=$(once "$logs/step_$c.$i.log" samples_per_s step_parts "${NP[$c]}" "${NT[$c]}" "${GB[$c]}")
    if [ -n "$v" ] && [ "${NP[$c]}" = 1 ]; then
      # the GEMMs-alone time of `bench_gemm step` measures the same rate as `bench_gemm
      # gemm` (same batch and threads, one process): the faster is the less disturbed
      GF[$c]=$(best "${GF[$c]}" "$(awk -v B="${GB[$c]}" '/^RESULT step_ms/ { for (i = 2; i <= NF; i++) {
        split($i, kv, "="); if (kv[1] == "gemms_ms" && kv[2] > 0)
          printf "%.2f", 2 * B * (2 * 784 * 1024 + 3 * 1024 * 1024 + 3 * 1024 * 10) / (kv[2] * 1e6) } }' \
        "$logs/step_$c.$i.log")")
    fi
    if [ -n "$v" ] && [ "$(best "${STEP[$c]:-}" "$v")" = "$(best "$v")" ]; then
      STEP[$c]=$(best "$v")
      STEPLOG[$c]=$logs/step_$c.$i.log # the fastest round's split goes in the table
    fi
  done
  for c in "${torch_cfgs[@]}"; do
    echo "bench: round $i of $repeat: PyTorch ($c, $python)"
    # shellcheck disable=SC2086 # TENV holds zero or one word
    EP[$c]=$(best "${EP[$c]:-}" "$(once "$logs/$c.$i.log" torch_train_samples_per_s torch_run train ${TENV[$c]})")
    MED[$c]=$(best "${MED[$c]:-}" "$(field "$logs/$c.$i.log" torch_median_samples_per_s)")
  done
  echo "bench: round $i of $repeat: Fisher"
  f_lethe=$(best "$f_lethe" "$(BLIS_NUM_THREADS=2 once "$logs/fisher_lethe.$i.log" fisher_samples_per_s "$gemm" fisher 4096 256)")
  [ -n "$python" ] && f_torch=$(best "$f_torch" "$(once "$logs/torch_fisher.$i.log" torch_fisher_samples_per_s torch_run fisher)")
done
load_end=$(loadavg)

# ------------------------------------------------------------------ table
nparams=$(sed -n 's/.*model  MLP .*, \([0-9]*\) parameters.*/\1/p' "$logs"/lethe_1x1.1.log 2>/dev/null | head -1)
[ -n "$nparams" ] || nparams=$((784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10))
lethe_blis=$(grep -h 'BLIS .*kernels' "$logs"/lethe_1x1.1.log 2>/dev/null | head -1)
torch_cfg=$(grep -h '^torch [0-9]' "$logs"/torch_default.1.log 2>/dev/null | head -1)
torch_blas=$(grep -h '^torch BLAS' "$logs"/torch_default.1.log 2>/dev/null | head -1)
torch_arch=$(grep -h '^torch BLAS' "$logs"/torch_lethe_kernels.1.log 2>/dev/null | sed -n 's/.*(\(BLIS [^)]*\)).*/\1/p' | head -1)

# ratio A B -> A/B with 2 decimals, "-" when either is missing
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }
# roof RATE GFLOPS -> fraction 6 N RATE / GFLOPS (empty when either is missing)
roof() { awk -v r="$1" -v g="$2" -v n="$nparams" 'BEGIN { if (r + 0 > 0 && g + 0 > 0) printf "%.3f", 6 * n * r / (g * 1e9) }'; }
pct() { awk -v f="$1" 'BEGIN { if (f != "") printf "%.0f%%", 100 * f; else printf "-" }'; }
mark() { awk -v v="$1" -v t="$2" 'BEGIN { if (v == "" || v == "-") print "n/a"; else if (v + 0 >= t) print "PASS"; else print "MISS" }'; }
num() { if [ -n "$1" ]; then printf '%.0f' "$1"; else printf 'FAILED'; fi; }
# acc CONFIG: test accuracy printed by round 1 (lethe's "done" line or torch's RESULT)
acc() {
  local log=$logs/$1.1.log
  [ -n "${NP[$1]:-}" ] && log=$logs/lethe_$1.1.log
  [ -f "$log" ] || { echo -; return; }
  { sed -n 's/^done .*test accuracy \([0-9.]*\) .*/\1/p' "$log"; field "$log" test_acc; } | head -1
}
robust() { if [ -n "${MED[$1]:-}" ]; then echo "${MED[$1]}"; else echo "${EP[$1]:-}"; fi; }

# GEMM rate on the cores of each configuration; torch runs on 1 rank x 2 threads
declare -A GCORES=() GNOTE=()
for c in "${lethe_cfgs[@]}"; do
  GCORES[$c]=$(awk -v g="${GF[$c]:-}" -v x="${GX[$c]}" 'BEGIN { if (g + 0 > 0) printf "%.1f", x * g }')
  if [ "${GX[$c]}" = 1 ]; then GNOTE[$c]="(B=${GB[$c]})"; else GNOTE[$c]="(${GX[$c]}xB=${GB[$c]})"; fi
done
for c in "${torch_cfgs[@]}"; do GCORES[$c]=${GCORES[1x2]}; GNOTE[$c]=${GNOTE[1x2]}; done

t_ref='' # the fastest torch configuration is the reference
for c in "${torch_cfgs[@]}"; do t_ref=$(best "$t_ref" "$(robust "$c")"); done
t_inst=$(robust torch_installed)
l_best='' roof_best=''
for c in "${lethe_cfgs[@]}"; do
  l_best=$(best "$l_best" "$(robust "$c")")
  roof_best=$(printf '%s\n%s\n' "$roof_best" "$(roof "$(robust "$c")" "${GCORES[$c]}")" |
    awk 'NF { if (m == "" || $1 + 0 > m) m = $1 } END { print m }')
done
t_def=$(robust torch_default)
fisher_ratio=$(ratio "$f_lethe" "$f_torch")
step_flops=$(awk 'BEGIN { W1 = 784 * 1024; W2 = 1024 * 1024; W3 = 1024 * 10;
  printf "%.3f", (2 * W1 + 3 * W2 + 3 * W3) / (784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10) / 3 }')

declare -A LABEL=([1x1]="lethe 1 rank x 1 thread" [1x2]="lethe 1 rank x 2 threads"
  [2x1]="lethe 2 ranks x 1 thread" [torch_installed]="torch as installed (1 BLIS thr.)"
  [torch_default]="torch 2 thr., BLIS's own kernels"
  [torch_lethe_kernels]="torch 2 thr., lethe's kernels")
fmt='%-33s %9s %9s %8s %9s %16s %8s\n'
{
  echo "lethe benchmark: MLP 784-1024-1024-10 ($nparams parameters), Fashion-MNIST, SGD momentum 0.9,"
  echo "global batch 128, 1 epoch (468 steps), $(nproc) CPU(s): $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
  echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)  git $(git -C "$src" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)  best of $repeat round(s)  load average $load_start (start) / $load_end (end)"
  awk -v a="$load_start" -v b="$load_end" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ");
    if (x[1] > 0.5 * n || y[1] > 0.5 * n) printf "WARNING: the machine was busy (load average %s / %s on %d CPUs): other processes shared the cores; figures are low and ratios unreliable\n", x[1], y[1], n }'
  echo "lethe: ${lethe_blis:-?}"
  echo "torch: ${torch_cfg:-not run}"
  [ -n "$torch_blas" ] && echo "       $torch_blas"
  echo
  printf "$fmt" "" "samples/s" "samples/s" "" "" "" ""
  printf "$fmt" configuration "(epoch)" "(median)" "vs torch" roofline "GEMM GFLOP/s" "test acc"
  for c in "${lethe_cfgs[@]}" "${torch_cfgs[@]}"; do
    r=$(robust "$c")
    printf "$fmt" "${LABEL[$c]}" "$(num "${EP[$c]:-}")" "$(num "${MED[$c]:-}")" "$(ratio "$r" "$t_ref")" \
      "$(pct "$(roof "$r" "${GCORES[$c]}")")" "${GCORES[$c]:--} ${GNOTE[$c]}" "$(acc "$c")"
  done
  [ -n "$python" ] || echo "(no Python with torch and h5py found, set LETHE_BENCH_PYTHON: PyTorch rows skipped)"
  echo
  printf '%-36s %10s %8s\n' "Fisher (diagonal, empirical)" samples/s ratio
  printf '%-36s %10s %8s\n' "lethe lt_fisher_diag, 1 x 2 threads" "$(num "$f_lethe")" "$fisher_ratio"
  printf '%-36s %10s %8s\n' "torch single-sample loop, 2 threads" "$(num "$f_torch")" "1.00"
  echo
  echo "where a step's time goes (bench_gemm step: lethe's trainer timers, median step, slowest rank;"
  echo "'gemms' is the step's 8 GEMMs run alone right after each step):"
  printf '%-26s %8s %8s %8s %8s %8s %8s %8s %9s\n' configuration "step ms" "fwd+bwd" gemms reduce update allgather "GEMM %" samples/s
  for c in "${lethe_cfgs[@]}"; do
    [ -n "${STEPLOG[$c]:-}" ] || continue
    awk -v name="${LABEL[$c]}" '/^RESULT step_ms/ {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%-26s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %7.0f%% %9.0f\n", name, v["step_ms"],
          v["fb_ms"], v["gemms_ms"], v["reduce_ms"], v["update_ms"], v["allgather_ms"],
          100 * v["gemms_ms"] / v["step_ms"], v["samples_per_s"] }' "${STEPLOG[$c]}"
  done
  echo
  echo "targets (informational; the test fails only on crashes), on the median-step figures:"
  echo "  lethe best >= 4x PyTorch:    $(ratio "$l_best" "$t_ref")x the fastest torch row  $(mark "$(ratio "$l_best" "$t_ref")" 4)"
  echo "                               $(ratio "$l_best" "$t_def")x torch with BLIS's own kernels  $(mark "$(ratio "$l_best" "$t_def")" 4)"
  echo "                               $(ratio "$l_best" "$t_inst")x torch as installed  $(mark "$(ratio "$l_best" "$t_inst")" 4)"
  echo "  roofline >= 60% (best):      $(pct "$roof_best")  $(mark "$roof_best" 0.6)"
  echo "  Fisher >= 100x torch loop:   ${fisher_ratio}x  $(mark "$fisher_ratio" 100)"
  echo
  echo "notes: roofline = 6 N samples/s / rate of the step's 8 GEMMs alone (bench_gemm) on the same cores;"
  echo "  the step does $step_flops x 6N flops in GEMMs (no dA for fc1), so with every non-GEMM cost at"
  echo "  zero the roofline would read $(awk -v s="$step_flops" 'BEGIN { printf "%.0f%%", 100 / s }')."
  awk -v g="${GCORES[1x2]:-}" -v f="$f_lethe" -v tf="$f_torch" 'BEGIN { W1 = 784 * 1024; W2 = 1024 * 1024; W3 = 1024 * 10;
    fl = 4 * (W1 + W2 + W3) + 2 * (W2 + W3); # forward, (dZ.^2)^T (A.^2), dA: flops per sample
    if (g + 0 > 0) { c = g * 1e9 / fl;
      printf "  Fisher: %.1f MFLOP of GEMMs per sample; at the 1 x 2 GEMM rate of batch 128 (%.1f GFLOP/s)\n", fl / 1e6, g
      printf "  that is %.0f samples/s (lethe: %.0f%%; its 256-row chunks run GEMMs a little faster),\n", c, (f + 0 > 0 ? 100 * f / c : 0)
      printf "  about %.0fx this torch loop: a GEMM-bound Fisher cannot be 100x faster on this machine.\n", (tf + 0 > 0 ? c / tf : 0) } }'
  echo "  step split: medians of each part (slowest rank), so at 2 ranks they need not add up to the step."
  echo "  torch: Debian's torch runs its GEMMs in libblas.so.3 (BLIS here), which ignores"
  echo "  torch.set_num_threads: 'as installed' leaves BLIS_NUM_THREADS unset (one BLIS thread), the"
  echo "  other rows set BLIS_NUM_THREADS=2. 'lethe's kernels': BLIS_ARCH_TYPE=${arch_id:-?}${torch_arch:+ ($torch_arch)}."
  echo "  logs, per-shape GEMM rates and --profile timers: $logs"
} | tee "$results"

for c in "${lethe_cfgs[@]}"; do
  if [ -f "$logs/lethe_$c.1.log" ]; then
    echo
    echo "lethe $c --profile (round 1):"
    sed -n '/^timer /,$p' "$logs/lethe_$c.1.log"
  fi
done | tee -a "$results"

if [ -s "$failfile" ]; then
  echo "bench: $(wc -l < "$failfile") failure(s):" >&2
  sed 's/^/  /' "$failfile" >&2
  exit 1
fi
exit 0
