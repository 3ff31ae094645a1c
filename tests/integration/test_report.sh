#!/usr/bin/env bash
# lethe report on metrics files written here with h5py (independently of
# lethe): printed values against numbers worked out by hand below, grouping of
# several runs by deck, graceful skipping of absent datasets, and errors that
# name the file (non-zero exit, no hang at 2 ranks).
source "$(dirname "$0")/common.sh"

"$PY" - <<'PY'
import h5py, numpy as np
nan = float("nan")

def deck(lr, seed, out, with_seed=True):
    run = f"seed = {seed}\nout = {out}\n" if with_seed else f"out = {out}\n"
    return ("[data]\npath = good.h5\nscale = true\n\n[model]\nhidden = 8\n\n"
            f"[optim]\nkind = sgd\nlr = {lr}\nbatch_size = 8\n\n[train]\nepochs = 2\n\n"
            f"[run]\n{run}progress = none\n")

def provenance(f, **extra):
    a = dict(lethe_version="0.1.0", git_revision="abc123", ranks=3, blis_kernels="haswell",
             blis_threads=2, created="2026-01-01T00:00:00Z")
    a.update(extra)
    for k, v in a.items():
        f.attrs[k] = v

# A continual-learning run with a known 3 x 3 R (values in the checks below).
R = [[0.90, 0.10, 0.05],
     [0.95, 0.85, 0.20],
     [0.60, 0.75, 0.80]]
Rt = [[0.95, 0.50, 0.50],
      [0.90, 0.90, 0.50],
      [0.85, 0.88, 0.92]]
b = [0.10, 0.12, 0.08]
def cl_file(name, stored, init=True, rows=R):
    with h5py.File(name, "w") as f:
        provenance(f, deck=deck(0.05, 7, "runs/cl"), seed=7, test_acc=0.8125, test_loss=0.4321,
                   samples_per_s=12345.5)
        f["train/loss"] = [2.0, 1.5, 1.7, 0.9, 1.1]
        f["train/lr"] = [0.1, 0.1, 0.05, 0.05, 0.01]
        f["train/step_time"] = [1.0, 2.0, 3.0, 6.0]
        f["ranks/step_time"] = [[1, 1, 1, 1], [2, 2, 2, 2], [1, 2, 3, 6]]
        f["epoch/train_loss"] = [1.5, 1.0]
        f["epoch/test_acc"] = [nan, 0.8]
        f["cl/acc"] = np.array(rows)
        f["cl/acc_task_il"] = np.array(Rt)
        if init:
            f["cl/acc_init"] = np.array(b)
        for k, v in stored.items():
            f["cl"].attrs[k] = v
cl_file("cl.h5", dict(ACC=2.15 / 3, BWT=-0.2, FWT=0.05, forgetting=0.225))
cl_file("cl_bad.h5", dict(ACC=2.15 / 3, BWT=-0.2 + 1e-6, FWT=0.05), init=False)
cl_file("cl_partial.h5", {}, rows=[R[0], R[1], [nan, nan, nan]])

# Seeds of two configurations (lr 0.05: three seeds with CL matrices, the seed
# as an attribute; lr 0.1: two seeds without /cl, the seed only in the deck).
cfg_a = [(1, 0.80, 0.5, 1000.0, [[0.9, 0.1], [0.6, 0.8]]),
         (2, 0.82, 0.6, 1100.0, [[0.9, 0.1], [0.7, 0.9]]),
         (3, 0.84, 0.7, 1300.0, [[0.9, 0.1], [0.8, 1.0]])]
for s, acc, loss, rate, r in cfg_a:
    with h5py.File(f"a_s{s}.h5", "w") as f:
        provenance(f, deck=deck(0.05, s, f"runs/a{s}"), seed=s, test_acc=acc, test_loss=loss,
                   samples_per_s=rate)
        f["cl/acc"] = np.array(r)
for s, acc, loss in [(1, 0.70, 0.9), (2, 0.74, 1.0)]:
    with h5py.File(f"b_s{s}.h5", "w") as f:
        provenance(f, deck=deck(0.1, s, f"runs/b{s}"), test_acc=acc, test_loss=loss,
                   samples_per_s=2000.0)

with h5py.File("minimal.h5", "w") as f:          # a lethe file with nothing in it
    f.attrs["lethe_version"] = "0.1.0"
with h5py.File("foreign.h5", "w") as f:          # some other HDF5 file
    f["x"] = np.arange(4.0)
with h5py.File("ds.h5", "w") as f:               # a lethe dataset file, not metrics
    f["train/x"] = np.zeros((2, 3), np.uint8)
    f.attrs["num_classes"] = 3
with h5py.File("nonsquare.h5", "w") as f:
    f.attrs["lethe_version"] = "0.1.0"
    f["cl/acc"] = np.zeros((2, 3))
open("notes.txt", "w").write("not hdf5\n")
PY
mkdir -p emptydir rundir && cp cl.h5 rundir/metrics.h5

# field FILE REGEX N: field N of the first line matching REGEX (grep -E)
field() { grep -m1 -E -- "$2" "$1" | awk -v n="$3" '{print $n}'; }
# check NAME GOT WANT TOL: GOT is a number within TOL of WANT
check() {
  local name=$1 got=$2 want=$3 tol=$4
  if [[ "$got" =~ ^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]] &&
    awk -v a="$got" -v b="$want" -v t="$tol" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; then
    ok "$name = $got (expected $want +- $tol)"
  else
    bad "$name: got '$got', expected $want +- $tol"
  fi
}
# check_text NAME GOT WANT: exact string
check_text() { if [ "$2" = "$3" ]; then ok "$1 = $2"; else bad "$1: got '$2', expected '$3'"; fi; }
# Values are printed with 6 decimals (samples/s with 1): the printed value is
# within half a unit of the last digit of the exact one, so 6e-7 (0.06).
T6=6e-7 T1=0.06

# ---------------------------------------------------------------- one CL run
rc=$(run 1 60 cl.out report rundir)
[ "$rc" = 0 ] && ok "report of a run directory exits 0" || { bad "report rundir: exit $rc"; sed 's/^/    /' cl.out; }
check_text "file of a run directory" "$(field cl.out '^run ' 2)" "rundir/metrics.h5"
check_text "version" "$(field cl.out '^  lethe ' 2)" "0.1.0"
check_text "git" "$(field cl.out '^  lethe ' 4)" "abc123)"
check_text "ranks" "$(field cl.out '^  ranks ' 2)" "3"
check_text "BLIS" "$(field cl.out '^  BLIS ' 2) $(field cl.out '^  BLIS ' 4)" "haswell 2"
check_text "seed" "$(field cl.out '^  seed ' 2)" "7"
check_text "created" "$(field cl.out '^  created ' 2)" "2026-01-01T00:00:00Z"
check "final test_acc" "$(field cl.out '^  test_acc ' 2)" 0.8125 $T6
check "final test_loss" "$(field cl.out '^  test_loss ' 2)" 0.4321 $T6
check "final samples/s" "$(field cl.out '^  samples/s ' 2)" 12345.5 $T1
# loss [2.0, 1.5, 1.7, 0.9, 1.1]: first 2.0 (step 1), last 1.1 (step 5), min 0.9 (step 4)
check "loss first" "$(field cl.out '^  first ' 2)" 2.0 $T6
check "loss last" "$(field cl.out '^  last ' 2)" 1.1 $T6
check "loss min" "$(field cl.out '^  min ' 2)" 0.9 $T6
check_text "loss min step" "$(field cl.out '^  min ' 4)" "4)"
check_text "lr first, max, last" "$(field cl.out '^  lr ' 3) $(field cl.out '^  lr ' 5) $(field cl.out '^  lr ' 7)" "0.1, 0.1, 0.01"
# epoch table: test_acc [NaN, 0.8] prints '-' for the epoch without evaluation
check_text "epoch 1 (train_loss, test_acc)" "$(field cl.out '^ +1 +1\.5' 2) $(field cl.out '^ +1 +1\.5' 3)" "1.500000 -"
check "epoch 2 test_acc" "$(field cl.out '^ +2 +1\.0' 3)" 0.8 $T6
# R row 'after 1' as written
check_text "R row after 1" "$(grep -m1 '^  after 1 ' cl.out | awk '{print $3, $4, $5}')" "0.9500 0.8500 0.2000"
# By hand, 0-based, T = 3 (class-IL R, b = acc_init):
#   ACC = (0.60 + 0.75 + 0.80) / 3 = 2.15 / 3 = 0.716667
#   BWT = ((0.60 - 0.90) + (0.75 - 0.85)) / 2 = (-0.30 - 0.10) / 2 = -0.20
#   FWT = ((R01 - b1) + (R12 - b2)) / 2 = ((0.10 - 0.12) + (0.20 - 0.08)) / 2 = 0.05
#   forgetting = ((max(0.90, 0.95) - 0.60) + (max(0.10, 0.85) - 0.75)) / 2 = (0.35 + 0.10) / 2 = 0.225
#   (differs from -BWT because R[1][0] > R[0][0]: the max runs over l < T-1, not just l = j)
# task-IL Rt: ACC = (0.85 + 0.88 + 0.92) / 3 = 0.883333; BWT = ((0.85 - 0.95) + (0.88 - 0.90)) / 2 = -0.06
#   forgetting = ((0.95 - 0.85) + (0.90 - 0.88)) / 2 = 0.06; FWT: no task-IL baseline, '-'
check "ACC" "$(field cl.out '^  ACC ' 2)" 0.7166666667 $T6
check "BWT" "$(field cl.out '^  BWT ' 2)" -0.2 $T6
check "FWT" "$(field cl.out '^  FWT ' 2)" 0.05 $T6
check "forgetting" "$(field cl.out '^  forgetting ' 2)" 0.225 $T6
check "task-IL ACC" "$(field cl.out '^  ACC ' 3)" 0.8833333333 $T6
check "task-IL BWT" "$(field cl.out '^  BWT ' 3)" -0.06 $T6
check_text "task-IL FWT" "$(field cl.out '^  FWT ' 3)" "-"
check "task-IL forgetting" "$(field cl.out '^  forgetting ' 3)" 0.06 $T6
check "stored ACC shown" "$(field cl.out '^  ACC ' 4)" 0.7166666667 $T6
grep -q "warning" cl.out && bad "stored attributes equal to the hand values gave a warning" ||
  ok "stored attributes that match give no warning"
# /ranks/step_time rows [1,1,1,1], [2,2,2,2], [1,2,3,6] s: means 1, 2, 3 s; totals 4, 8, 12 s;
# imbalance = 12 / 8 = 1.5; per step: slowest ranks 2+2+3+6 = 13 s over mean ranks 8 s = 1.625
for r in 0 1 2; do
  check "rank $r mean step [ms]" "$(field cl.out "^ +$r +[0-9]+\.[0-9]{4} +[0-9]+\.[0-9]{4}\$" 2)" $(((r + 1) * 1000)) 1e-4
  check "rank $r total [ms]" "$(field cl.out "^ +$r +[0-9]+\.[0-9]{4} +[0-9]+\.[0-9]{4}\$" 3)" $(((r + 1) * 4000)) 1e-4
done
check "imbalance" "$(field cl.out '^  imbalance ' 2)" 1.5 1e-4
check "per-step imbalance" "$(field cl.out '^  per step ' 3)" 1.625 1e-4

# stored BWT off by 1e-6 -> warning; stored FWT without acc_init -> cannot be recomputed
rc=$(run 1 60 bad.out report cl_bad.h5)
[ "$rc" = 0 ] && ok "a mismatching stored attribute is a warning, exit 0" || bad "cl_bad: exit $rc"
grep -qE "warning: 'cl_bad\.h5': /cl attribute BWT = .*differs.* by 1e-06" bad.out &&
  ok "warning for BWT: $(grep -m1 'BWT =' bad.out | cut -c1-120)" || { bad "no BWT warning"; sed 's/^/    /' bad.out; }
grep -qE "FWT = .*cannot be recomputed \(no /cl/acc_init\)" bad.out && ok "stored FWT without acc_init noted" ||
  bad "no note for FWT without /cl/acc_init"
grep -qE "attribute ACC" bad.out && bad "a matching ACC was warned about" || ok "matching ACC not warned about"

# a run in progress: rows after task 1 are NaN -> metrics of the 2 tasks trained:
# ACC = (0.95 + 0.85) / 2 = 0.90, BWT = 0.95 - 0.90 = 0.05, FWT = 0.10 - 0.12 = -0.02
rc=$(run 1 60 partial.out report cl_partial.h5)
grep -q "2 of 3 tasks trained" partial.out && ok "partial R noted" || bad "partial R not noted (exit $rc)"
check "partial ACC" "$(field partial.out '^  ACC ' 2)" 0.90 $T6
check "partial BWT" "$(field partial.out '^  BWT ' 2)" 0.05 $T6
check "partial FWT" "$(field partial.out '^  FWT ' 2)" -0.02 $T6

# a lethe file without any dataset: only provenance, no failure
rc=$(run 1 60 minimal.out report minimal.h5)
if [ "$rc" = 0 ] && grep -q '^  test_acc  *-$' minimal.out && ! grep -qE "^(epochs|training loss|continual|load)" minimal.out; then
  ok "absent datasets and attributes are skipped"
else
  bad "minimal file: exit $rc"; sed 's/^/    /' minimal.out
fi

# ---------------------------------------------------------------- several runs
# interleaved order; groups in order of first appearance: 1 = lr 0.05, 2 = lr 0.1, 3 = no deck
rc=$(run 1 60 many.out report a_s1.h5 b_s1.h5 a_s2.h5 a_s3.h5 b_s2.h5 minimal.h5)
[ "$rc" = 0 ] && ok "report of 6 runs exits 0" || { bad "several runs: exit $rc"; sed 's/^/    /' many.out; }
runs_of() { sed -n '/^runs/,/^groups/p' many.out | awk -v c="$1" '$1 ~ /^[0-9]+$/ {printf "%s ", $c}'; }
check_text "group of each run" "$(runs_of 2)" "1 2 1 1 2 3 "
check_text "seed of each run (attribute or deck)" "$(runs_of 3)" "1 1 2 3 2 - "
grp() { sed -n '/^groups/,/^deck lines/p' many.out | awk -v g="$1" -v c="$2" '$1 == g {print $c}'; }
check_text "group sizes" "$(grp 1 2) $(grp 2 2) $(grp 3 2)" "3 2 1"
# group 1: test_acc 0.80, 0.82, 0.84 -> mean 0.82, sample std sqrt((0.02^2 + 0 + 0.02^2) / 2) = 0.02
#          test_loss 0.5, 0.6, 0.7 -> 0.6 +- 0.1
#          samples/s 1000, 1100, 1300 -> mean 3400/3 = 1133.33; deviations -133.33, -33.33, 166.67,
#            squares 17777.8 + 1111.1 + 27777.8 = 46666.7, / 2 = 23333.3, sqrt = 152.753
#          ACC from R: (0.6+0.8)/2, (0.7+0.9)/2, (0.8+1.0)/2 = 0.7, 0.8, 0.9 -> 0.8 +- 0.1
#          BWT = R10 - R00 = -0.3, -0.2, -0.1 -> -0.2 +- 0.1; forgetting = 0.9 - R10 -> 0.2 +- 0.1; FWT '-'
check "g1 test_acc mean" "$(grp 1 3)" 0.82 $T6
check "g1 test_acc std" "$(grp 1 5)" 0.02 $T6
check "g1 test_loss mean" "$(grp 1 6)" 0.6 $T6
check "g1 test_loss std" "$(grp 1 8)" 0.1 $T6
check "g1 samples/s mean" "$(grp 1 9)" 1133.3333 $T1
check "g1 samples/s std" "$(grp 1 11)" 152.7525 $T1
check "g1 ACC mean" "$(grp 1 12)" 0.8 $T6
check "g1 ACC std" "$(grp 1 14)" 0.1 $T6
check "g1 BWT mean" "$(grp 1 15)" -0.2 $T6
check "g1 BWT std" "$(grp 1 17)" 0.1 $T6
check_text "g1 FWT (no acc_init)" "$(grp 1 18)" "-"
check "g1 forgetting mean" "$(grp 1 19)" 0.2 $T6
check "g1 forgetting std" "$(grp 1 21)" 0.1 $T6
# group 2: test_acc 0.70, 0.74 -> 0.72 +- sqrt(2 * 0.02^2 / 1) = 0.0282843; test_loss 0.9, 1.0 -> 0.95 +- 0.0707107
check "g2 test_acc mean" "$(grp 2 3)" 0.72 $T6
check "g2 test_acc std" "$(grp 2 5)" 0.0282843 $T6
check "g2 test_loss std" "$(grp 2 8)" 0.0707107 $T6
check "g2 samples/s std" "$(grp 2 11)" 0 $T1
check_text "g2 CL columns absent" "$(grp 2 12) $(grp 2 13) $(grp 2 14) $(grp 2 15)" "- - - -"
check_text "g3 (one run, nothing stored)" "$(grp 3 3)" "-"
grep -qE "^  group 1: \[optim\] lr = 0\.05$" many.out && grep -qE "^  group 2: \[optim\] lr = 0\.1$" many.out &&
  ok "deck lines that set groups apart: lr 0.05 / 0.1 (seed and out ignored)" ||
  { bad "group differences"; sed -n '/^deck lines/,$p' many.out | sed 's/^/    /'; }
grep -qE "^  group 3: no deck attribute in 'minimal\.h5'" many.out && ok "deckless run is its own group" ||
  bad "deckless run not reported"

# one configuration only
rc=$(run 1 60 same.out report a_s1.h5 a_s2.h5)
grep -q "all runs share one deck" same.out && check_text "one group of 2" "$(sed -n '/^groups/,$p' same.out | awk '$1 == 1 {print $2}')" 2 ||
  bad "two seeds of one deck: exit $rc"

# ---------------------------------------------------------------- errors
expect_fail missing 1 "'nofile\.h5' does not exist" report nofile.h5
expect_fail missing_in_list 1 "'nofile\.h5' does not exist" report a_s1.h5 nofile.h5 a_s2.h5
grep -q '^groups' missing_in_list.out && bad "a table was printed although a file is missing" ||
  ok "no table when one of the files is missing"
expect_fail foreign 1 "'foreign\.h5' is not a lethe metrics file" report foreign.h5
expect_fail dataset_file 1 "'ds\.h5' is not a lethe metrics file.*dataset file" report ds.h5
expect_fail not_hdf5 1 "'notes\.txt' is not a readable HDF5 file" report notes.txt
expect_fail empty_dir 1 "run directory 'emptydir' has no metrics\.h5" report emptydir
expect_fail nonsquare 1 "nonsquare\.h5.*/cl/acc is 2 x 3" report nonsquare.h5
expect_fail foreign_2ranks 2 "'foreign\.h5' is not a lethe metrics file" report a_s1.h5 foreign.h5
check_text "error printed once at 2 ranks" "$(grep -c 'not a lethe metrics file' foreign_2ranks.out)" 1
for cf in missing:nofile.h5 foreign:foreign.h5 not_hdf5:notes.txt; do
  rc=$(run 1 60 "rc_${cf%%:*}.out" report "${cf#*:}")
  check_text "exit code of ${cf%%:*} (${cf#*:})" "$rc" 1
done
rc=$(run 1 60 noargs.out report)
check_text "exit code without arguments (usage)" "$rc" 2
grep -q "usage: lethe report" noargs.out && ok "usage shown without arguments" || bad "no usage without arguments"
rc=$(run 1 60 badopt.out report --frob cl.h5)
check_text "exit code of an unknown option" "$rc" 2
rc=$(run 1 60 help.out report --help)
[ "$rc" = 0 ] && grep -q "usage: lethe report" help.out && ok "report --help" || bad "report --help: exit $rc"

# ---------------------------------------------------------------- 2 ranks
rc=$(run 2 60 np2.out report cl.h5)
[ "$rc" = 0 ] && check_text "one report at 2 ranks" "$(grep -c '^run ' np2.out)" 1 || { bad "np 2: exit $rc"; sed 's/^/    /' np2.out; }
finish
