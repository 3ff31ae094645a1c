#!/usr/bin/env bash
# The continual-learning study: every deck of input/cl/ over seeds 1..3, the penalty grids,
# DER++ with and without refresh learning and refresh's delta sensitivity, then
# results/cl/summary.md (mean +- sample std over the seeds) and `lethe report` of the groups.
#
#   jobs/cl_study.sh [--quick] [--fresh] [--only REGEX] [--summary-only] [-n RANKS]
#
#   --quick          seed 1 only (a smoke test; writes results/cl/summary_quick.md)
#   --fresh          delete the study's run directories first (default: resume, see below)
#   --only REGEX     run only the runs whose NAME-sSEED matches REGEX (grep -E), e.g. '^split_til'
#                    (the summary is still written, from whatever runs are complete)
#   --summary-only   run nothing, only write the summary of the runs that exist
#   -n RANKS         MPI ranks (default 2, LETHE_RANKS if set); BLIS threads: BLIS_NUM_THREADS
#                    (default 1)
#
# Resume is the default: a run whose metrics.h5 has the /cl attributes with tasks_trained
# equal to its deck's [scenario] tasks is complete and skipped; one that diverged (lethe's
# "training diverged" error; marked RUN_DIR/DIVERGED) is skipped too; an interrupted one
# continues from its last task-end snapshot (RUN_DIR/ckpt/LATEST, through jobs/lethe-job.sh);
# one without a snapshot starts again. Ctrl-C (or SIGUSR1/SIGTERM to this script) makes
# lethe write a snapshot and stop; run the same command to go on.
#
# Run directories: runs/cl/NAME-sSEED (NAME is the deck's, plus -KEYVALUE for grid points
# other than the deck's default), logs in runs/cl/logs/. The study runs one lethe job at a
# time. Environment: LETHE (default build/src/lethe), LETHE_MPIRUN_ARGS (default
# --oversubscribe), LETHE_CL_RUNS (default runs/cl), LETHE_CL_RESULTS (default results/cl).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
# shellcheck source=jobs/lethe-job.sh
source jobs/lethe-job.sh

usage="usage: jobs/cl_study.sh [--quick] [--fresh] [--only REGEX] [--summary-only] [-n RANKS]"
quick=0 fresh=0 only='' summary_only=0 np=${LETHE_RANKS:-2}
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1; shift ;;
    --fresh) fresh=1; shift ;;
    --resume) shift ;; # the default; accepted for clarity
    --only) only=${2:?$usage}; shift 2 ;;
    --summary-only) summary_only=1; shift ;;
    -n) np=${2:?$usage}; shift 2 ;;
    -h | --help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cl_study: unknown argument '$1'; $usage" >&2; exit 2 ;;
  esac
done
case $np in '' | *[!0-9]*) echo "cl_study: -n takes a positive integer" >&2; exit 2 ;; esac

LETHE=${LETHE:-build/src/lethe}
export LETHE
export LETHE_MPIRUN_ARGS=${LETHE_MPIRUN_ARGS---oversubscribe}
export HDF5_USE_FILE_LOCKING=FALSE
threads=${BLIS_NUM_THREADS:-1}
runs=${LETHE_CL_RUNS:-runs/cl}
results=${LETHE_CL_RESULTS:-results/cl}
if [ "$quick" = 1 ]; then
  seeds=(1) summary=$results/summary_quick.md
else
  seeds=(1 2 3) summary=$results/summary.md
fi
[ -t 0 ] && export LETHE_JOB_INTERACTIVE=1

log() { echo "cl_study: $(date '+%T') $*" >&2; }

# ---------------------------------------------------------------- the plan

# One planned run per line: NAME|DECK|SEED|SETS (SETS: space-separated key=value, no spaces inside)
plan=()
declare -A plan_of=() # NAME-sSEED -> DECK|SETS
# grid points: DECK|SECTION.KEY|VALUE|NAME|MARK (MARK '*': the deck's default)
grid=()

# add NAME DECK SEEDS... [-- key=value ...]
add() {
  local name=$1 deck=$2 s sets=''
  shift 2
  local -a ss=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do ss+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  sets="$*"
  for s in "${ss[@]}"; do
    plan+=("$name|$deck|$s|$sets")
    plan_of[$name-s$s]="$deck|$sets"
  done
}

# The deck's value of KEY (the last `KEY = value` line; keys are unique across its sections).
deck_value() { awk -F= -v k="$2" '{ gsub(/[ \t]/, "", $1); gsub(/^[ \t]+|[ \t]+$/, "", $2) } $1 == k { v = $2 } END { print v }' "input/cl/$1.ini"; }

# grid_add DECK SECTION.KEY LABEL SEEDS -- VALUES...: the points DECK-LABELVALUE, over SEEDS;
# the deck's default value is one of them (added if not listed), and its runs are also the
# deck's main runs (main_name), over every seed
declare -A grid_label=() grid_seeds=()
grid_add() {
  local deck=$1 key=$2 label=$3 v def mark found=0
  shift 3
  local -a ss=()
  while [ "$1" != -- ]; do ss+=("$1"); shift; done
  shift
  def=$(deck_value "$deck" "${key#*.}")
  [ -n "$def" ] || { log "error: input/cl/$deck.ini has no ${key#*.}"; exit 2; }
  for v in "$@" "$def"; do
    mark=''
    if awk -v a="$v" -v b="$def" 'BEGIN { exit !(a + 0 == b + 0) }'; then
      [ "$found" = 1 ] && continue
      found=1 mark='*'
      grid_label[$deck]=$label$v
    fi
    grid+=("$deck|$key|$v|$deck-$label$v|$mark")
  done
  grid_seeds[$deck]="${ss[*]}"
}
# the run name of a deck's main runs: the deck's, or its default grid point's
main_name() { if [ -n "${grid_label[$1]:-}" ]; then echo "$1-${grid_label[$1]}"; else echo "$1"; fi; }

split_decks=(split_naive split_til_naive split_til_ewc split_til_online_ewc split_til_si split_er split_der
             split_derpp split_derpp_refresh split_joint)
perm_decks=(permuted_naive permuted_ewc permuted_online_ewc permuted_si permuted_er permuted_derpp
            permuted_joint)
# penalty grids: the default point over every seed (above), the other points over seed 1
grid_add split_til_ewc cl.ewc_lambda lambda 1 -- 3 10 30
grid_add split_til_online_ewc cl.ewc_lambda lambda 1 -- 3 10 30
grid_add split_til_si cl.si_c c 1 -- 0.003 0.01 0.03 0.1
grid_add permuted_ewc cl.ewc_lambda lambda 1 -- 3 10
grid_add permuted_online_ewc cl.ewc_lambda lambda 1 -- 3 7 10 30
grid_add permuted_si cl.si_c c 1 -- 0.0003 0.001 0.003 0.01
# refresh learning's step size (DER++ without refresh is split_derpp)
grid_add split_derpp_refresh refresh.delta delta "${seeds[@]}" -- 1e-5 1e-3 1e-2

# first every deck over every seed (a grid deck: its default point, the value set explicitly)
for d in "${split_decks[@]}" "${perm_decks[@]}"; do
  if [ -n "${grid_label[$d]:-}" ]; then
    for g in "${grid[@]}"; do
      IFS='|' read -r gd key v name mark <<<"$g"
      [ "$gd" = "$d" ] && [ "$mark" = '*' ] && add "$name" "$d" "${seeds[@]}" -- "$key=$v"
    done
  else
    add "$d" "$d" "${seeds[@]}"
  fi
done
# joint at the sequential runs' budget (5 tasks x 1 epoch = 1 epoch of the union)
add split_joint-epochs1 split_joint "${seeds[@]}" -- train.epochs=1
# then the other grid points
for g in "${grid[@]}"; do
  IFS='|' read -r gd key v name mark <<<"$g"
  # shellcheck disable=SC2086 # the seeds are words
  [ "$mark" = '*' ] || add "$name" "$gd" ${grid_seeds[$gd]} -- "$key=$v"
done

# ---------------------------------------------------------------- one run

# cl_attrs RUN_DIR: "ACC BWT FWT forgetting ACC_task_il BWT_task_il forgetting_task_il tasks_trained"
# (NaN for what is absent)
cl_attrs() {
  local f=$1/metrics.h5
  [ -s "$f" ] || { echo nan nan nan nan nan nan nan 0; return; }
  h5dump -m '%.10g' -A -g /cl "$f" 2>/dev/null | awk '
    /ATTRIBUTE "/ { split($0, q, "\""); name = q[2] }
    /\(0\):/ { v[name] = $2 }
    END {
      n = split("ACC BWT FWT forgetting ACC_task_il BWT_task_il forgetting_task_il tasks_trained", k, " ")
      for (i = 1; i <= n; i++) printf "%s%s", (k[i] in v ? v[k[i]] : (i == n ? 0 : "nan")), (i < n ? " " : "\n")
    }'
}

run_tasks() { awk -F= '/^\[/ { s = $0 } s == "[scenario]" && $1 ~ /^tasks *$/ { gsub(/ /, "", $2); print $2 }' "$1/deck.ini" 2>/dev/null; }

# complete: every task trained
run_done() {
  local dir=$1 t k
  [ -s "$dir/deck.ini" ] || return 1
  t=$(run_tasks "$dir")
  k=$(cl_attrs "$dir" | awk '{ print $8 }')
  [ -n "$t" ] && [ "$k" = "$t" ]
}

# current DIR DECK SEED SETS: DIR was made for this deck, seed, overrides and rank count
current() { [ -n "$2" ] && [ "$(cat "$1/STUDY_KEY" 2>/dev/null)" = "$(run_key "$2" "$3" "$4")" ]; }

# What a run is: the deck's keys and values (comments, blank lines and the keys that SETS
# override left out), the --set overrides, the seed and the rank count. A run directory made
# for anything else is stale.
run_key() { # DECK SEED SETS
  {
    awk -v sets="$3" '
      BEGIN { n = split(sets, a, " "); for (i = 1; i <= n; i++) { split(a[i], kv, "="); over[kv[1]] = 1 } }
      /^[ \t]*([;#]|$)/ { next }
      /^\[/ { sec = substr($0, 2, index($0, "]") - 2); print; next }
      { k = $0; sub(/[ \t]*=.*/, "", k); if (!((sec "." k) in over)) print }' "input/cl/$1.ini"
    echo "seed $2 sets $3 ranks $np"
  } | sha1sum | cut -c1-16
}

failed=0 ran=0
do_run() { # NAME DECK SEED SETS
  local name=$1 deck=$2 seed=$3 sets=$4 dir rc t0 kv key
  dir=$runs/$name-s$seed
  local logf=$runs/logs/$name-s$seed.log
  key=$(run_key "$deck" "$seed" "$sets")
  if [ -d "$dir" ] && [ "$(cat "$dir/STUDY_KEY" 2>/dev/null)" != "$key" ]; then
    log "$dir was made for another deck, seed or rank count: starting it again"
    rm -rf "$dir"
    [ -f "$logf" ] && mv "$logf" "$logf.stale"
  fi
  if run_done "$dir" || [ -f "$dir/DIVERGED" ]; then return 0; fi
  [ -s "$dir/ckpt/LATEST" ] || rm -rf "$dir"
  mkdir -p "$dir" && echo "$key" >"$dir/STUDY_KEY"
  local -a args=(--set "run.seed=$seed" --set run.progress=none)
  for kv in $sets; do args+=(--set "$kv"); done
  mkdir -p "$runs/logs"
  log "run $name-s$seed: input/cl/$deck.ini ${args[*]}"
  t0=$SECONDS
  lethe_job_run "$dir" "$np" "$threads" "input/cl/$deck.ini" "${args[@]}" >>"$logf" 2>&1
  rc=$LETHE_JOB_RC
  echo "$name-s$seed $((SECONDS - t0)) $rc" >>"$runs/logs/times.txt"
  ran=$((ran + 1))
  if [ "$rc" = 0 ] && run_done "$dir"; then
    log "  done in $((SECONDS - t0)) s: $(grep '^cl  ' "$logf" | tail -1 | cut -c8-)"
  elif [ "$LETHE_JOB_SIGNALLED" = 1 ]; then
    log "interrupted (exit $rc); run the same command again to resume"
    exit "$rc"
  elif grep -q 'training diverged' "$logf"; then
    grep 'training diverged' "$logf" | tail -1 >"$dir/DIVERGED"
    log "  diverged after $((SECONDS - t0)) s: $(cut -c1-160 "$dir/DIVERGED")"
  else
    failed=$((failed + 1))
    log "  FAILED (exit $rc); see $logf"
  fi
}

if [ "$fresh" = 1 ] && [ "$summary_only" = 0 ]; then
  log "--fresh: removing $runs"
  rm -rf "$runs"
fi
if [ "$summary_only" = 0 ]; then
  [ -x "$LETHE" ] || { log "error: $LETHE is not an executable; build it (jobs/build.sh) or set LETHE"; exit 2; }
  [ -s data/fashion-mnist.h5 ] || { log "error: data/fashion-mnist.h5 is missing (README: lethe data import-idx)"; exit 2; }
  declare -A seen=()
  t_start=$SECONDS
  for p in "${plan[@]}"; do
    IFS='|' read -r name deck seed sets <<<"$p"
    [ -n "${seen[$name-s$seed]:-}" ] && continue
    seen[$name-s$seed]=1
    if [ -n "$only" ] && ! grep -Eq -- "$only" <<<"$name-s$seed"; then continue; fi
    do_run "$name" "$deck" "$seed" "$sets"
  done
  log "$ran run(s) in $((SECONDS - t_start)) s, $failed failed"
fi

# ---------------------------------------------------------------- summary

# stats NAME: one line "n ndiv cACC cBWT cFWT cForg tACC tBWT tForg" of "mean|std" cells in
# percent over the complete runs of NAME (seeds of this invocation)
stats() {
  local name s dir deck sets
  name=$(main_name "$1")
  for s in "${seeds[@]}"; do
    dir=$runs/$name-s$s
    IFS='|' read -r deck sets <<<"${plan_of[$name-s$s]:-|}"
    # only runs of the current decks
    current "$dir" "$deck" "$s" "$sets" || continue
    if run_done "$dir"; then echo "ok $(cl_attrs "$dir")"
    elif [ -f "$dir/DIVERGED" ]; then echo "div"
    fi
  done | awk '
    $1 == "div" { nd++; next }
    { n++; for (i = 1; i <= 7; i++) { x[i] += $(i + 1); xx[i] += $(i + 1) * $(i + 1) } }
    END {
      printf "%d %d", n, nd
      for (i = 1; i <= 7; i++) {
        if (n == 0) { printf " -|-"; continue }
        m = x[i] / n; v = n > 1 ? (xx[i] - n * m * m) / (n - 1) : 0; if (v < 0) v = 0
        printf " %.4f|%.4f", 100 * m, 100 * sqrt(v)
      }
      printf "\n"
    }'
}

# cell "mean|std" n: "12.3 +- 0.4" (n = 1: "12.3")
cell() {
  awk -v c="$1" -v n="$2" 'BEGIN { split(c, a, "|"); if (a[1] == "-") { print "-"; exit }
    if (n > 1) printf "%.1f ± %.1f\n", a[1], a[2]; else printf "%.1f\n", a[1] }'
}

# row NAME LABEL: a markdown row of the main table
row() {
  local name=$1 label=$2 st n nd
  st=$(stats "$name")
  read -r n nd c1 c2 c3 c4 c5 c6 c7 <<<"$st"
  local div=''
  [ "$nd" -gt 0 ] && div=" ($nd diverged)"
  echo "| $label | $n$div | $(cell "$c1" "$n") | $(cell "$c2" "$n") | $(cell "$c4" "$n") | $(cell "$c5" "$n") | $(cell "$c6" "$n") | $(cell "$c7" "$n") | $(cell "$c3" "$n") |"
}
header() {
  echo "| run | n | class-IL ACC | class-IL BWT | class-IL forgetting | task-IL ACC | task-IL BWT | task-IL forgetting | class-IL FWT |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
}

# mean (percent) of metric column i (1 = class-IL ACC ... 7) of NAME; "nan" if none
mean_of() { stats "$1" | awk -v i="$2" '{ split($(i + 2), a, "|"); print (a[1] == "-" ? "nan" : a[1]) }'; }

# f VALUE: one decimal
f() { awk -v v="$1" 'BEGIN { if (v == "nan") print "-"; else printf "%.1f", v }'; }
# d A B: A - B with a sign and one decimal
dif() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan") print "-"; else printf "%+.1f", a - b }'; }

# check LABEL EXPR-DESCRIPTION VALUE-TEXT PASS(0/1)
checks=()
check() { checks+=("| $1 | $2 | $3 | $4 |"); }
verdict() { # a condition on numbers; "n/a" when one is missing
  case $1 in *nan*) echo "n/a"; return ;; esac
  awk "BEGIN { exit !($1) }" && echo PASS || echo MISS
}

mkdir -p "$results"
{
  echo "# Continual-learning study (Fashion-MNIST, MLP 784-400-400-10)"
  echo
  echo "Written by \`jobs/cl_study.sh$([ "$quick" = 1 ] && echo ' --quick')\` on $(date -u '+%F') from \`$runs/\`"
  revs=$(for p in "${plan[@]}"; do
    IFS='|' read -r name deck seed sets <<<"$p"
    h5dump -a /git_revision "$runs/$name-s$seed/metrics.h5" 2>/dev/null | sed -n 's/.*(0): *"\(.*\)".*/\1/p'
  done | sort -u | tr '\n' ' ')
  echo "(runs made by lethe git ${revs:-?}with $np ranks x $threads BLIS thread(s))."
  echo "Values are percent, mean ± sample std over seeds ${seeds[*]} (n: complete runs; a run"
  echo "stopped by lethe's divergence check is counted as diverged, not averaged). Metrics of"
  echo "the accuracy matrix R (R[i][j]: accuracy on task j after training task i): ACC = mean of"
  echo "the last row, BWT = mean_j<T (R[T][j] - R[j][j]), forgetting = mean_j<T (max_l<T R[l][j] -"
  echo "R[T][j]), FWT = mean_j>1 (R[j-1][j] - accuracy of the untrained model). class-IL: argmax"
  echo "over all 10 classes; task-IL: over the task's classes (split; the same as class-IL on"
  echo "permuted, which has one 10-way head and the same classes in every task)."
  echo "Hyperparameters were chosen on the test split, except permuted SI's c, chosen on a"
  echo "hold-out of the last 10,000 training samples ([data] valid; see input/cl/permuted_si.ini)."
  echo "The grids below show every point, not just the chosen one."
  echo
  echo "## Split Fashion-MNIST (5 tasks x 2 classes, 1 epoch per task; SGD lr 0.01, batch 128; task-IL training: lr 0.1, batch 32)"
  echo
  header
  row split_naive "naive (class-IL training)"
  row split_er "ER, M = 500"
  row split_der "DER, M = 500, alpha 0.3"
  row split_derpp "DER++, M = 500, alpha 0.3, beta 0.5"
  row split_derpp_refresh "DER++ + refresh (code form, delta $(deck_value split_derpp_refresh delta))"
  row split_joint "joint, 5 epochs (upper bound)"
  row split_joint-epochs1 "joint, 1 epoch (the sequential budget)"
  row split_til_naive "task-IL training: naive"
  row split_til_ewc "task-IL training: EWC, lambda $(deck_value split_til_ewc ewc_lambda)"
  row split_til_online_ewc "task-IL training: online EWC, lambda $(deck_value split_til_online_ewc ewc_lambda)"
  row split_til_si "task-IL training: SI, c $(deck_value split_til_si si_c)"
  echo
  echo "The task-IL rows train with the logits masked to the task's classes (\`[scenario] setting"
  echo "= task\`); their class-IL columns evaluate that model over all 10 classes."
  echo
  echo "## Permuted Fashion-MNIST (10 tasks, 1 epoch per task, SGD lr 0.1, batch 32)"
  echo
  header
  row permuted_naive "naive"
  row permuted_ewc "EWC, lambda $(deck_value permuted_ewc ewc_lambda)"
  row permuted_online_ewc "online EWC, lambda $(deck_value permuted_online_ewc ewc_lambda)"
  row permuted_si "SI, c $(deck_value permuted_si si_c)"
  row permuted_er "ER, M = 500"
  row permuted_derpp "DER++, M = 500, alpha 0.03, beta 0.5"
  row permuted_joint "joint, 1 epoch of the union (upper bound, the sequential budget)"
  echo
  echo "## Penalty grids"
  echo
  echo "Every grid point: the deck's default (marked *) over seeds ${seeds[*]}, the others over"
  echo "seed 1 only (at batch 32 a run takes 1-2 minutes on 2 quiet cores, many more on a busy"
  echo "machine). \`diverged\`: lethe stopped the run at a non-finite loss; plain SGD diverges"
  echo "once lr x lambda x max F (EWC: of the summed Fishers), or lr x 2c x max Omega, exceeds"
  echo "about 2, and lethe warns at a task end where it does (column *warned*: runs with that"
  echo "warning). The deck's default was the point with the best seed-1 task-IL ACC among those"
  echo "that neither diverged nor warned in a probe before the study (permuted SI: on the hold-out)."
  echo
  echo "| deck | key | value | n | warned | class-IL ACC | task-IL ACC | task-IL BWT | task-IL forgetting | class-IL BWT |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"
  for g in "${grid[@]}"; do
    IFS='|' read -r deck key v name mark <<<"$g"
    case $deck in split_derpp_refresh) continue ;; esac
    read -r n nd c1 c2 c3 c4 c5 c6 c7 <<<"$(stats "$name")"
    warned=0
    for s in "${seeds[@]}"; do # the planned runs only, as in stats
      [ -n "${plan_of[$name-s$s]:-}" ] || continue
      grep -q '^warning: cl:' "$runs/logs/$name-s$s.log" 2>/dev/null && warned=$((warned + 1))
    done
    nn="$n"
    [ "$nd" -gt 0 ] && nn="$n ($nd diverged)"
    echo "| $deck | \`$key\` | $v$mark | $nn | $warned | $(cell "$c1" "$n") | $(cell "$c5" "$n") | $(cell "$c6" "$n") | $(cell "$c7" "$n") | $(cell "$c2" "$n") |"
  done
  echo
  echo "## DER++ with and without refresh learning (split, class-IL)"
  echo
  echo "Refresh learning, the authors' code form: before every SGD step one unlearn step"
  echo "theta += delta / (1 + kappa F) (|theta| / |g| g + sigma eps) per tensor (kappa 1e-3, sigma"
  echo "1e-3, F the Fisher of the finished tasks). Seeds ${seeds[*]}."
  echo
  header
  row split_derpp "DER++ (refresh off)"
  for g in "${grid[@]}"; do
    IFS='|' read -r deck key v name mark <<<"$g"
    [ "$deck" = split_derpp_refresh ] || continue
    row "$name" "DER++ + refresh, delta $v"
  done
  echo
  echo "Notes: class-IL FWT is negative on split by construction (before task j is trained its"
  echo "classes are never predicted, so R[j-1][j] = 0 and FWT = minus the untrained accuracy)."
  echo "The joint rows' FWT is no transfer measure (every row of R is the one final model)."
  echo
  echo "## The issue's expected shape"
  echo
  nc=$(mean_of split_naive 1) nt=$(mean_of split_naive 5)
  check "naive class-IL ACC < 30%, task-IL far higher (>= 40 points more)" \
    "split_naive" "class-IL $(f "$nc"), task-IL $(f "$nt")" "$(verdict "$nc < 30 && $nt - $nc >= 40")"
  v=$(mean_of split_til_ewc 5)
  check "task-IL setting: EWC task-IL ACC >= 95%" "split_til_ewc" "$(f "$v")" "$(verdict "$v >= 95")"
  b=$(mean_of split_til_naive 5)
  for d in split_til_online_ewc split_til_si; do
    v=$(mean_of $d 5)
    check "task-IL setting: $d task-IL ACC >= naive + 3 points" "$d vs split_til_naive" \
      "$(f "$v") vs $(f "$b") ($(dif "$v" "$b"))" "$(verdict "$v >= $b + 3")"
  done
  v=$(mean_of split_er 1)
  check "ER (M = 500) class-IL ACC >= 70%" "split_er" "$(f "$v")" "$(verdict "$v >= 70")"
  e=$v v=$(mean_of split_derpp 1)
  check "DER++ class-IL ACC >= ER - 1 point" "split_derpp vs split_er" "$(f "$v") vs $(f "$e") ($(dif "$v" "$e"))" "$(verdict "$v >= $e - 1")"
  v=$(mean_of split_joint 1) w=$(mean_of split_joint-epochs1 1)
  check "joint class-IL ACC >= 85% (5 epochs)" "split_joint" "$(f "$v") (1 epoch: $(f "$w"))" "$(verdict "$v >= 85")"
  v=$(mean_of permuted_online_ewc 1) b=$(mean_of permuted_naive 1)
  check "permuted: online EWC ACC >= naive + 15 points" "permuted_online_ewc vs permuted_naive" \
    "$(f "$v") vs $(f "$b") ($(dif "$v" "$b"))" "$(verdict "$v >= $b + 15")"
  echo "| expectation | runs | measured (mean, %) | |"
  echo "|---|---|---|---|"
  printf '%s\n' "${checks[@]}"
  echo
  echo "## Time"
  echo
  if [ -s "$runs/logs/times.txt" ]; then
    awk '{ sc = $1 ~ /^split/ ? "split" : "permuted"; t[sc] += $2; n[sc]++; tot += $2 }
      END { for (s in t) printf "- %s: %d lethe runs, %.1f min wall\n", s, n[s], t[s] / 60
            printf "- zall: %.1f min wall (every lethe start of this script, resumed runs once per start)\n", tot / 60 }' \
      "$runs/logs/times.txt" | sort | sed 's/^- zall/- all/'
  fi
} >"$summary.tmp" && mv "$summary.tmp" "$summary"
log "wrote $summary"

# lethe's own comparison of the groups (mean +- std over the seeds) next to the summary
if [ -x "$LETHE" ]; then
  for sc in split permuted; do
    dirs=()
    for p in "${plan[@]}"; do
      IFS='|' read -r name deck seed sets <<<"$p"
      d=$runs/$name-s$seed
      case $name in "${sc}"_*) ;; *) continue ;; esac
      case " ${dirs[*]} " in *" $d "*) continue ;; esac
      current "$d" "$deck" "$seed" "$sets" && run_done "$d" && dirs+=("$d")
    done
    [ ${#dirs[@]} -gt 0 ] || continue
    out=$results/lethe_report_${sc}$([ "$quick" = 1 ] && echo _quick).txt
    if "$LETHE" report "${dirs[@]}" >"$out" 2>&1; then log "wrote $out"; else log "lethe report failed; see $out"; fi
  done
fi
[ "$failed" = 0 ]
