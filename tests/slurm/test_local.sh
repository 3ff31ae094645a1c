#!/usr/bin/env bash
# jobs/local.sh (no Slurm needed) with tests/slurm/fake_lethe.sh in place of lethe:
# - a terminal's Ctrl-C (SIGINT to the script's whole process group) reaches mpirun only as the
#   script's SIGUSR1: every rank gets SIGUSR1 (never SIGINT/SIGTERM), a snapshot is written, exit 75;
# - the same command again resumes (--resume RUN_DIR) from the snapshot and finishes, exit 0;
# - --until-done resumes by itself after a snapshot that the script did not ask for (SIGUSR1 sent
#   straight to the ranks), but not after a Ctrl-C;
# - -n/-t set ranks and BLIS_NUM_THREADS; bad arguments exit 2 before anything runs.
# Args as the integration tests: $1 lethe (unused), $2 source dir, $3 scratch dir, $4 mpiexec.
source "$(dirname "$0")/../integration/common.sh"
export LETHE=$SRC/tests/slurm/fake_lethe.sh FAKE_STEPS=40 FAKE_STEP_S=0.25
LOCAL=$SRC/jobs/local.sh

# start_local OUT ARGS...: local.sh in its own process group with SIGINT at its default, as an
# interactive shell starts a foreground job (without job control bash would make a background
# job ignore SIGINT); sets PID (= the group id)
start_local() {
  local out=$1
  shift
  set -m
  "$LOCAL" "$@" >"$out" 2>&1 &
  PID=$!
  set +m
}
# finish_local: wait (<= 120 s, then kill the group) for local.sh; sets rc to its exit code
finish_local() {
  local i
  for i in $(seq 480); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.25
  done
  kill -0 "$PID" 2>/dev/null && { kill -KILL -- "-$PID"; echo "local.sh hung; killed" >&2; }
  wait "$PID"
  rc=$?
}
# at_step RUN N: wait (<= 30 s) until RUN has passed step N
at_step() {
  local i
  for i in $(seq 120); do
    [ "$(cat "$1/progress" 2>/dev/null || echo 0)" -ge "$2" ] && return 0
    sleep 0.25
  done
  return 1
}
# history RUN: each rank's log on one line, for messages
history() { for f in "$1"/rank-*.log; do echo "    $f: $(tr '\n' '|' <"$f")"; done; }

# 1. Ctrl-C -> snapshot, exit 75
start_local ctrlc.out -n 2 -t 3 run deck.ini --set optim.lr=0.1
at_step run 3 || bad "no progress in 30 s"
kill -INT -- "-$PID"
finish_local
k=$(cat run/ckpt/LATEST 2>/dev/null)
if [ "$rc" = 75 ] && [ -n "$k" ] && [ "$(grep -c '^signal USR1' run/rank-0.log run/rank-1.log | grep -c ':1$')" = 2 ] &&
  ! grep -q '^signal TERM' run/rank-*.log && grep -q '^start step=0 np=2 threads=3 ' run/rank-1.log; then
  ok "Ctrl-C: every rank got SIGUSR1 once, snapshot $k, exit 75"
else
  bad "Ctrl-C: exit $rc, snapshot '$k'"; history run; sed 's/^/    | /' ctrlc.out
fi

# 2. the same command resumes and finishes
rc=$(timeout -k 5 120 "$LOCAL" -n 2 -t 3 run deck.ini --set optim.lr=0.1 >resume.out 2>&1; echo $?)
s=$((10#${k#step-}0 / 10))
if [ "$rc" = 0 ] && grep -qx "start step=$s np=2 threads=3 restart=none args=train deck.ini --set run.out=run --resume run --set optim.lr=0.1" run/rank-0.log &&
  [ "$(cat run/done 2>/dev/null)" = 40 ]; then
  ok "rerun resumed from $k and finished (exit 0)"
else
  bad "rerun: exit $rc"; history run; sed 's/^/    | /' resume.out
fi

# 3. --until-done: a snapshot the script did not ask for is resumed at once
start_local until.out -n 2 --until-done run2 deck.ini
at_step run2 3 || bad "no progress in 30 s"
kill -USR1 "$(cat run2/pid-0)" "$(cat run2/pid-1)"
finish_local
if [ "$rc" = 0 ] && [ "$(grep -c '^start' run2/rank-0.log)" = 2 ] && grep -q -- '--resume run2' run2/rank-0.log &&
  [ "$(cat run2/done 2>/dev/null)" = 40 ] && grep -q 'until-done: resuming' until.out; then
  ok "--until-done resumed after a snapshot from a signal to the ranks, then finished"
else
  bad "--until-done: exit $rc"; history run2; sed 's/^/    | /' until.out
fi

# 4. --until-done stops after a Ctrl-C
start_local until2.out -n 1 --until-done run3 deck.ini
at_step run3 3 || bad "no progress in 30 s"
kill -INT -- "-$PID"
finish_local
[ "$rc" = 75 ] && [ "$(grep -c '^start' run3/rank-0.log)" = 1 ] && ok "--until-done: Ctrl-C stops with exit 75" ||
  { bad "--until-done + Ctrl-C: exit $rc"; history run3; }

# 5. argument errors
for args in "deck.ini run" "-n x run deck.ini" "--frob run deck.ini" "run deck.ini --set run.out=y" "run"; do
  # shellcheck disable=SC2086
  msg=$("$LOCAL" $args 2>&1)
  rc=$?
  [ "$rc" = 2 ] && ok "local.sh $args: exit 2 ($(echo "$msg" | head -1 | cut -c1-90))" || bad "local.sh $args: exit $rc: $msg"
done
finish
