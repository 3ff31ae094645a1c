#!/usr/bin/env bash
# The MixtureGrowth study on Fashion-MNIST: hidden layers growing from 2 x 512 to 2 x 1024
# (input/grow/), over seeds, then results/grow/summary.md (mean +- sample std).
#
#   jobs/grow_study.sh [--seeds "1 2 3"] [--only REGEX] [--summary-only] [-n RANKS] [--valid N]
#
# --valid N chooses the protocol without the test split: every run holds out the last N
# training samples as its evaluation set ([data] valid), runs go to runs/grow/valid, the
# summary to results/grow/valid.md, seeds default to "1 2", and the rows are the candidate
# protocols of the same 9 epochs in all (phases 3 + 3 + 3 or 2 + 2 + 5; grown phase
# restarting at lr 0.05 or 0.1), with the plain 2 x 1024 MLP beside them.
#
# Phases of 2 + 2 + 5 epochs (member 0, member 1, grown network: 9 in all); every deck uses
# lr 0.05, and the grown network's cosine schedule restarts at lr 0.1 (both chosen with
# --valid, above; results/grow/valid.md).
# Rows (each run: RUN_DIR = runs/grow/NAME-sSEED, log runs/grow/logs/NAME-sSEED.log; the
# last row is a sensitivity check, not a tuned choice):
#   mg_orthogonal, mg_copy, mg_zero, mg_random   MixtureGrowth with each [grow] init
#   plain_epochs    plain 784-1024-1024-10 for the same total epochs (9)
#   plain_flops     the same, cut ([train] max_steps) to mg_orthogonal's training FLOPs
#   template_full   the full-width template network from scratch, same total epochs
#   member_phase    member 0 alone for its phase (2 epochs)
#   member_total    member 0 alone for the same total epochs (9)
#   mg_orth_lr005   mg_orthogonal with the grown phase restarting at lr 0.05 ([grow] lr)
# A run whose log ends with lethe's "done" line is complete and skipped (run again to
# continue an interrupted study). Two instances (e.g. one with --only for some rows) share
# the work: each run is claimed first (runs/grow/claims/NAME-sSEED). Environment: LETHE (default build/src/lethe),
# BLIS_NUM_THREADS (default 1), LETHE_GROW_RUNS (runs/grow), LETHE_GROW_RESULTS (results/grow).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
usage='usage: jobs/grow_study.sh [--seeds "1 2 3"] [--only REGEX] [--summary-only] [-n RANKS] [--valid N]'
seeds='' only='' summary_only=0 np=${LETHE_RANKS:-2} valid=0
while [ $# -gt 0 ]; do
  case $1 in
    --seeds) seeds=${2:?$usage}; shift 2 ;;
    --only) only=${2:?$usage}; shift 2 ;;
    --summary-only) summary_only=1; shift ;;
    -n) np=${2:?$usage}; shift 2 ;;
    --valid) valid=${2:?$usage}; shift 2 ;;
    -h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "grow_study: unknown argument '$1'; $usage" >&2; exit 2 ;;
  esac
done
LETHE=${LETHE:-build/src/lethe}
case $valid in '' | *[!0-9]*) echo "grow_study: --valid takes a sample count" >&2; exit 2 ;; esac
RUNS=${LETHE_GROW_RUNS:-runs/grow}
RESULTS=${LETHE_GROW_RESULTS:-results/grow}
summary=$RESULTS/summary.md extra=()
if [ "$valid" -gt 0 ]; then
  RUNS=$RUNS/valid summary=$RESULTS/valid.md extra=(--set data.valid="$valid")
  seeds=${seeds:-1 2}
fi
seeds=${seeds:-1 2 3}
export BLIS_NUM_THREADS=${BLIS_NUM_THREADS:-1}
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
mkdir -p "$RUNS/logs" "$RESULTS"

# one NAME SEED DECK [--set ...]: run unless complete
one() {
  local name=$1 seed=$2 deck=$3
  shift 3
  local dir="$RUNS/$name-s$seed" log="$RUNS/logs/$name-s$seed.log"
  if [ -n "$only" ] && ! grep -qE -- "$only" <<<"$name"; then return 0; fi
  if [ -f "$log" ] && grep -q '^done ' "$log"; then return 0; fi
  # several instances may share the list: a run is claimed with mkdir (remove stale claims
  # in $RUNS/claims when no study runs)
  mkdir -p "$RUNS/claims"
  mkdir "$RUNS/claims/$name-s$seed" 2>/dev/null || return 0
  echo "grow_study: $name seed $seed" >&2
  rm -rf "$dir"
  mpirun --oversubscribe -n "$np" "$LETHE" train "$deck" --set run.seed="$seed" \
    --set run.out="$dir" --set run.progress=none --set checkpoint.every_epochs=0 "${extra[@]}" "$@" >"$log" 2>&1 ||
    echo "grow_study: $name seed $seed failed (see $log)" >&2
  rmdir "$RUNS/claims/$name-s$seed"
}

flops_of() { sed -n 's/^flops  \([0-9.e+]*\) training FLOPs.*/\1/p' "$RUNS/logs/$1.log" 2>/dev/null | tail -1; }

if [ $summary_only = 0 ] && [ "$valid" -gt 0 ]; then
  for s in $seeds; do
    for lr in 0.05 0.1; do
      one "mg_p333_lr$lr" "$s" input/grow/mixturegrowth.ini --set grow.member_epochs=3 \
        --set train.epochs=3 --set grow.lr=$lr
      one "mg_p225_lr$lr" "$s" input/grow/mixturegrowth.ini --set grow.member_epochs=2 \
        --set train.epochs=5 --set grow.lr=$lr
    done
    one plain_epochs "$s" input/grow/plain_2x1024.ini
  done
elif [ $summary_only = 0 ]; then
  for s in $seeds; do # the acceptance rows first, then the others
    one mg_orthogonal "$s" input/grow/mixturegrowth.ini --set grow.init=orthogonal
    one plain_epochs "$s" input/grow/plain_2x1024.ini
    f=$(flops_of "mg_orthogonal-s$s")
    if [ -n "$f" ]; then # steps of 128 rows of the plain MLP within mg_orthogonal's FLOPs
      steps=$(/usr/bin/python3 -c "
io = [784 * 1024, 1024 * 1024, 1024 * 10]; out = [1024, 1024, 10]
per_row = sum(4 * a for a in io) + 2 * sum(out) + 2 * sum(io[1:])
print(int($f // (per_row * 128)))")
      one plain_flops "$s" input/grow/plain_2x1024.ini --set train.max_steps="$steps"
    fi
  done
  for s in $seeds; do
    for init in zero copy random; do
      one "mg_$init" "$s" input/grow/mixturegrowth.ini --set grow.init=$init
    done
    one template_full "$s" input/grow/template_full.ini
    one member_phase "$s" input/grow/member.ini --set grow.member_epochs=2
    one member_total "$s" input/grow/member.ini --set grow.member_epochs=9
    one mg_orth_lr005 "$s" input/grow/mixturegrowth.ini --set grow.init=orthogonal --set grow.lr=0.05
  done
fi

# summary: test (or validation) accuracy and training FLOPs from each run's metrics.h5
/usr/bin/python3 - "$RUNS" "$summary" "$valid" <<'PY'
import glob, os, re, statistics, subprocess, sys
import h5py
runs, out, valid = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [("mg_p333_lr0.05", "MixtureGrowth (orthogonal), phases 3 + 3 + 3, grown lr 0.05"),
        ("mg_p333_lr0.1", "MixtureGrowth (orthogonal), phases 3 + 3 + 3, grown lr 0.1"),
        ("mg_p225_lr0.05", "MixtureGrowth (orthogonal), phases 2 + 2 + 5, grown lr 0.05"),
        ("mg_p225_lr0.1", "MixtureGrowth (orthogonal), phases 2 + 2 + 5, grown lr 0.1"),
        ("plain_epochs", "plain 2 x 1024, 9 epochs")] if valid else [("mg_orthogonal", "MixtureGrowth, init orthogonal (default)"),
        ("mg_copy", "MixtureGrowth, init copy"),
        ("mg_zero", "MixtureGrowth, init zero"),
        ("mg_random", "MixtureGrowth, init random"),
        ("plain_epochs", "plain 2 x 1024, same total epochs (9)"),
        ("plain_flops", "plain 2 x 1024, same total FLOPs as MixtureGrowth (orthogonal)"),
        ("template_full", "full-width template network from scratch, 9 epochs"),
        ("member_phase", "2 x 512 member alone, its phase (2 epochs)"),
        ("member_total", "2 x 512 member alone, same total epochs (9)"),
        ("mg_orth_lr005", "MixtureGrowth, init orthogonal, grown phase restarting at lr 0.05")]
def ms(v):
    if not v: return "n/a"
    if len(v) == 1: return f"{v[0]:.2f}"
    return f"{statistics.mean(v):.2f} +- {statistics.stdev(v):.2f}"
what = f"validation accuracy (%, last {valid} training samples)" if valid else "test accuracy (%)"
lines = [f"| run | seeds | {what} | training FLOPs (1e12) | epochs |", "|---|---|---|---|---|"]
res = {}
for key, label in rows:
    acc, fl, ep, seeds = [], [], [], []
    for d in sorted(glob.glob(f"{runs}/{key}-s*")):
        log = f"{runs}/logs/{os.path.basename(d)}.log"
        if not os.path.exists(log) or not any(l.startswith("done ") for l in open(log)):
            continue
        with h5py.File(f"{d}/metrics.h5", "r") as f:
            acc.append(100 * float(f.attrs["test_acc"]))
            fl.append(float(f.attrs["train_flops"]) / 1e12)
            ep.append(len(f["epoch/test_acc"]))
        seeds.append(re.sub(r".*-s", "", d))
    res[key] = acc
    lines.append(f"| {label} | {','.join(seeds) or '-'} | {ms(acc)} | {ms(fl)} | {ep[0] if ep else '-'} |")
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
note = []
if res.get("mg_orthogonal") and res.get("plain_epochs"):
    d = statistics.mean(res["mg_orthogonal"]) - statistics.mean(res["plain_epochs"])
    note.append(f"MixtureGrowth (orthogonal) minus plain 2 x 1024 (same epochs): {d:+.3f} points "
                f"(criterion: >= -0.5).")
mg = {k: statistics.mean(v) for k, v in res.items() if k.startswith("mg_p") and v}
if valid and mg:
    best = max(mg, key=mg.get)
    note.append(f"Best candidate on the hold-out: {best} ({mg[best]:.2f}%).")
title = "protocol choice on a hold-out of the training split" if valid else "study"
with open(out, "w") as f:
    f.write(f"# MixtureGrowth {title} (Fashion-MNIST, lethe {rev})\n\n" + "\n".join(lines) + "\n\n" +
            "\n".join(note) + "\n")
print(open(out).read())
PY
