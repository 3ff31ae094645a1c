#!/usr/bin/env bash
# K-FAC Laplace (cl.penalty = kfac) on the continual-learning study's protocols:
# input/cl/split_til_kfac.ini (Split Fashion-MNIST, task-IL training) and
# input/cl/permuted_kfac.ini (Permuted Fashion-MNIST, 10 tasks), seeds 1..3 at the
# decks' lambda, plus the lambda grid (split: every seed; permuted: seed 1), then
# results/cl/kfac_summary.md beside the EWC / online EWC rows of the continual-learning study
# (same decks but for the penalty, made by jobs/cl_study.sh): split from
# results/cl/summary_b128.md (the split K-FAC deck's lr 0.01 / batch 128), permuted from
# results/cl/summary.md (batch 32).
#
#   jobs/kfac_study.sh [-n RANKS] [--only REGEX] [--summary-only]
#
# A run whose metrics.h5 says every task was trained is skipped; an unfinished one
# continues from its last task-end snapshot (--resume); a diverged one is marked
# RUN_DIR/DIVERGED and skipped. Runs: runs/cl/NAME-sSEED, logs in runs/cl/logs/.
# Environment: LETHE (build/src/lethe), BLIS_NUM_THREADS (1), LETHE_MPIRUN_ARGS
# (--oversubscribe).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
np=2 only='' summary_only=0
while [ $# -gt 0 ]; do
  case $1 in
    -n) np=${2:?-n takes a rank count}; shift 2 ;;
    --only) only=${2:?--only takes a regex}; shift 2 ;;
    --summary-only) summary_only=1; shift ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "kfac_study: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
LETHE=${LETHE:-build/src/lethe}
export BLIS_NUM_THREADS=${BLIS_NUM_THREADS:-1} HDF5_USE_FILE_LOCKING=FALSE
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
runs=runs/cl
mkdir -p "$runs/logs" results/cl

# NAME DECK SEED LAMBDA
plan=()
for s in 1 2 3; do
  plan+=("split_til_kfac-lambda0.1 split_til_kfac $s 0.1" "permuted_kfac-lambda0.3 permuted_kfac $s 0.3")
done
for s in 1 2 3; do
  plan+=("split_til_kfac-lambda0.03 split_til_kfac $s 0.03" "split_til_kfac-lambda0.3 split_til_kfac $s 0.3")
done
plan+=("permuted_kfac-lambda0.1 permuted_kfac 1 0.1" "permuted_kfac-lambda1 permuted_kfac 1 1")

done_tasks() { # RUN_DIR -> tasks_trained (0 if none)
  /usr/bin/python3 - "$1/metrics.h5" <<'PY' 2>/dev/null || echo 0
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    print(int(f["/cl"].attrs.get("tasks_trained", 0)))
PY
}

if [ "$summary_only" = 0 ]; then
  for p in "${plan[@]}"; do
    read -r name deck seed lam <<<"$p"
    [ -n "$only" ] && ! grep -qE -- "$only" <<<"$name" && continue
    dir=$runs/$name-s$seed log=$runs/logs/$name-s$seed.log
    tasks=$(awk -F= '$1 ~ /^tasks *$/ { gsub(/ /, "", $2); print $2 }' "input/cl/$deck.ini")
    [ -e "$dir/DIVERGED" ] && { echo "kfac_study: $name-s$seed diverged before: skipped"; continue; }
    [ "$(done_tasks "$dir")" = "$tasks" ] && { echo "kfac_study: $name-s$seed complete"; continue; }
    args=(train "input/cl/$deck.ini" --set run.seed="$seed" --set run.out="$dir"
          --set cl.kfac_lambda="$lam" --set run.progress=none)
    [ -s "$dir/ckpt/LATEST" ] && args+=(--resume "$dir")
    echo "kfac_study: $(date +%T) $name-s$seed ($np ranks)"
    # shellcheck disable=SC2086
    mpirun ${LETHE_MPIRUN_ARGS---oversubscribe} -n "$np" "$LETHE" "${args[@]}" >>"$log" 2>&1
    rc=$?
    if [ $rc != 0 ]; then
      if grep -q "training diverged" "$log"; then touch "$dir/DIVERGED"; fi
      echo "kfac_study: $name-s$seed failed (exit $rc), see $log"
    fi
  done
fi

/usr/bin/python3 - "$runs" results/cl/summary.md results/cl/kfac_summary.md "$(git rev-parse --short=12 HEAD)" "$np" <<'PY'
import glob, math, os, re, sys, h5py
runs, base, out, rev, np_ = sys.argv[1:6]
revs = set()
for d in glob.glob(f"{runs}/*kfac*-s[0-9]*"):
    try:
        with h5py.File(os.path.join(d, "metrics.h5"), "r") as f:
            v = f.attrs.get("git_revision")
            revs.add(v.decode() if isinstance(v, bytes) else str(v))
    except Exception:
        pass
if revs: rev = ", ".join(sorted(revs))
def attrs(d):
    try:
        with h5py.File(os.path.join(d, "metrics.h5"), "r") as f:
            return {k: float(v) for k, v in f["/cl"].attrs.items()}
    except Exception:
        return None
def stat(xs):
    xs = [100 * x for x in xs]
    if not xs: return "-"
    m = sum(xs) / len(xs)
    if len(xs) == 1: return f"{m:.1f}"
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    return f"{m:.1f} ± {s:.1f}"
def row(name, label, tasks):
    done, div = [], 0
    for d in sorted(glob.glob(f"{runs}/{name}-s[0-9]*")):
        a = attrs(d)
        if os.path.exists(os.path.join(d, "DIVERGED")): div += 1
        elif a and int(a.get("tasks_trained", 0)) == tasks: done.append(a)
    cols = ["ACC", "BWT", "forgetting", "ACC_task_il", "BWT_task_il", "forgetting_task_il"]
    n = f"{len(done)}" + (f" (+{div} diverged)" if div else "")
    if not done and not div:
        return f"| {label} | 0 | not run yet |" + " |" * 5
    return f"| {label} | {n} | " + " | ".join(stat([a[c] for a in done]) for c in cols) + " |"
hdr = ("| run | n | class-IL ACC | class-IL BWT | class-IL forgetting | task-IL ACC | task-IL BWT "
       "| task-IL forgetting |\n|---|--:|--:|--:|--:|--:|--:|--:|")
def base_rows(path, section, pattern):
    rows, inside = [], False
    for line in open(path):
        if line.startswith("## "): inside = line.startswith("## " + section)
        if inside and re.match(pattern, line):
            c = [x.strip() for x in line.strip().strip("|").split("|")]
            rows.append("| " + c[0] + " (cl_study) | " + " | ".join(c[1:8]) + " |")
    return rows
L = ["# K-FAC Laplace beside EWC and online EWC (Fashion-MNIST, MLP 784-400-400-10)", "",
     f"Written by `jobs/kfac_study.sh` from `{runs}/` (K-FAC runs: lethe git {rev}, {np_} ranks x "
     "1 BLIS thread). Percent, mean ± sample std over the complete seeds (n). The EWC,",
     "online EWC and naive rows are copied from the continual-learning study (jobs/cl_study.sh,",
     "same decks but for the penalty: same data, model, SGD, batch, epochs, seeds): split from",
     "results/cl/summary_b128.md (lr 0.01, batch 128, the split K-FAC deck's protocol), permuted",
     "from results/cl/summary.md (batch 32).",
     "K-FAC factors: the true Fisher (sampled labels) over each whole task, online (gamma 1:",
     "G the sum over tasks, A the mean).", "",
     "## Split Fashion-MNIST, task-IL training (5 tasks x 2 classes, SGD lr 0.01, batch 128)",
     "", hdr]
L += base_rows(base.replace("summary.md", "summary_b128.md"), "Split", r"\| task-IL training: (naive|EWC|online EWC)")
L.append(row("split_til_kfac-lambda0.1", "task-IL training: K-FAC Laplace, lambda 0.1", 5))
L += ["", "## Permuted Fashion-MNIST (10 tasks, SGD lr 0.1, batch 32)", "", hdr]
L += base_rows(base, "Permuted", r"\| (naive|EWC, lambda|online EWC)")
L.append(row("permuted_kfac-lambda0.3", "K-FAC Laplace, lambda 0.3", 10))
L += ["", "## K-FAC lambda grid (split: seeds 1-3; permuted: seed 1)", "", hdr]
for lam in ["0.03", "0.1", "0.3"]:
    L.append(row(f"split_til_kfac-lambda{lam}", f"split task-IL, K-FAC lambda {lam}", 5))
for lam in ["0.1", "0.3", "1"]:
    L.append(row(f"permuted_kfac-lambda{lam}", f"permuted, K-FAC lambda {lam}", 10))
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
