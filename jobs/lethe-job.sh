# shellcheck shell=bash
# The part of jobs/lethe.sbatch, jobs/seeds.sbatch and jobs/local.sh that they share; sourced.
#
#   lethe_job_run RUN_DIR NP THREADS DECK [ARGS...]
#       mpirun -n NP lethe train DECK --set run.out=RUN_DIR [--resume RUN_DIR] ARGS
#       with BLIS_NUM_THREADS=THREADS; --resume is added when RUN_DIR/ckpt/LATEST exists.
#       SIGUSR1 or SIGTERM to this shell become a SIGUSR1 to mpirun, which forwards it to
#       every rank (Open MPI 4.1's mpirun forwards SIGUSR1/SIGUSR2 but answers SIGTERM by
#       killing the ranks within ~2 s); lethe then writes a snapshot at the next step
#       boundary and exits 75. With LETHE_JOB_INTERACTIVE=1, mpirun gets its own process
#       group (a terminal's Ctrl-C reaches only this shell), a first SIGINT is forwarded as
#       SIGUSR1 and a second one (1 s or more later) as SIGTERM (abort without snapshot).
#       Sets LETHE_JOB_RC (lethe's exit code) and LETHE_JOB_SIGNALLED (1 if this shell was
#       signalled) and returns LETHE_JOB_RC.
#   lethe_job_slurm RUN_DIR DECK [ARGS...]
#       lethe_job_run with NP = SLURM_NTASKS and THREADS = SLURM_CPUS_PER_TASK; on exit code
#       75 requeues the job (scontrol requeue) and returns 0, at most LETHE_MAX_REQUEUE times
#       (default 50; counted by SLURM_RESTART_COUNT).
#
# Environment: LETHE (the executable; default LETHE_HOME/build/src/lethe), LETHE_HOME (the
# repository; default: the folder above this file), LETHE_MPIRUN (default mpirun),
# LETHE_MPIRUN_ARGS (extra mpirun arguments, split on spaces).

LETHE_HOME=${LETHE_HOME:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

lethe_job_log() { echo "lethe-job: $(date '+%F %T') $*" >&2; }

# lethe_job_reject_keys 'KEY...' ARGS...: exit code 2 if ARGS set one of the deck keys the script sets
lethe_job_reject_keys() {
  local keys=$1 a k
  shift
  for a in "$@"; do
    for k in $keys; do
      case $a in "$k="* | "--set=$k="*)
        lethe_job_log "error: '$a': $k is set by this script (see its usage)"; return 2 ;;
      esac
    done
  done
}

# the handler of USR1/TERM/INT: forward as SIGUSR1 (a second SIGINT as SIGTERM)
_lethe_job_signal() {
  local sig=$1 fwd=USR1
  if [ "$sig" = INT ]; then
    # a second Ctrl-C aborts; one within 1 s of the first is the same key press delivered twice
    # (a wrapper such as timeout(1) passes on the SIGINT its process group already got)
    local now=${EPOCHREALTIME/./}
    if [ -n "$_lethe_job_int_at" ]; then
      [ $((now - _lethe_job_int_at)) -lt 1000000 ] && return
      fwd=TERM
    fi
    _lethe_job_int_at=$now
  fi
  LETHE_JOB_SIGNALLED=1
  _lethe_job_interrupted=1
  if [ -z "${_lethe_job_pid:-}" ]; then
    lethe_job_log "got SIG$sig before mpirun started; forwarding once it runs"
    _lethe_job_pending=$fwd
    return
  fi
  if [ "$fwd" = USR1 ]; then
    lethe_job_log "got SIG$sig: SIGUSR1 to mpirun (pid $_lethe_job_pid) so lethe checkpoints and exits 75"
  else
    lethe_job_log "got SIG$sig again: SIGTERM to mpirun (pid $_lethe_job_pid), no checkpoint"
  fi
  kill -s "$fwd" "$_lethe_job_pid" 2>/dev/null
}

lethe_job_run() {
  local run_dir=${1:?lethe_job_run: RUN_DIR} np=${2:?NP} threads=${3:?THREADS} deck=${4:?DECK}
  shift 4
  local lethe=${LETHE:-$LETHE_HOME/build/src/lethe} mpirun=${LETHE_MPIRUN:-mpirun}
  local -a margs=(--bind-to none -n "$np")
  local -a targs=(train "$deck" --set "run.out=$run_dir")
  local rc

  # shellcheck disable=SC2034 # LETHE_JOB_SIGNALLED is for the callers
  LETHE_JOB_RC=2 LETHE_JOB_SIGNALLED=0
  [ -x "$lethe" ] || { lethe_job_log "error: $lethe is not an executable; build it (jobs/build.sh) or set LETHE"; return 2; }
  [ "$(id -u)" = 0 ] && margs=(--allow-run-as-root "${margs[@]}")
  # shellcheck disable=SC2206
  [ -n "${LETHE_MPIRUN_ARGS:-}" ] && margs+=(${LETHE_MPIRUN_ARGS})
  if [ -s "$run_dir/ckpt/LATEST" ]; then
    targs+=(--resume "$run_dir")
    lethe_job_log "resuming $run_dir from ckpt/$(head -c 200 "$run_dir/ckpt/LATEST")"
  fi
  export BLIS_NUM_THREADS=$threads

  _lethe_job_int_at='' _lethe_job_pid='' _lethe_job_pending=''
  trap '_lethe_job_signal USR1' USR1
  trap '_lethe_job_signal TERM' TERM
  trap '_lethe_job_signal INT' INT
  lethe_job_log "$mpirun ${margs[*]} $lethe ${targs[*]} $* (BLIS_NUM_THREADS=$threads)"
  if [ "${LETHE_JOB_INTERACTIVE:-0}" = 1 ]; then
    set -m # own process group: a terminal's Ctrl-C goes to this shell only
    "$mpirun" "${margs[@]}" "$lethe" "${targs[@]}" "$@" </dev/null &
    _lethe_job_pid=$!
    set +m
  else
    "$mpirun" "${margs[@]}" "$lethe" "${targs[@]}" "$@" </dev/null &
    _lethe_job_pid=$!
  fi
  [ -n "$_lethe_job_pending" ] && kill -s "$_lethe_job_pending" "$_lethe_job_pid" 2>/dev/null
  # a trapped signal interrupts `wait` (status > 128): wait again until mpirun has exited
  while :; do
    _lethe_job_interrupted=0
    wait "$_lethe_job_pid"
    rc=$?
    [ "$_lethe_job_interrupted" = 1 ] && [ "$rc" -gt 128 ] && continue
    break
  done
  trap - USR1 TERM INT
  _lethe_job_pid=''
  LETHE_JOB_RC=$rc
  case $rc in
    0) lethe_job_log "lethe finished (exit 0)" ;;
    75) lethe_job_log "lethe wrote a snapshot and stopped (exit 75); it resumes from $run_dir" ;;
    138) lethe_job_log "lethe failed (exit 138: a rank died of SIGUSR1; does this lethe write checkpoints?)" ;;
    *) lethe_job_log "lethe failed (exit $rc)" ;;
  esac
  return "$rc"
}

lethe_job_slurm() {
  local run_dir=${1:?lethe_job_slurm: RUN_DIR}
  shift
  local np=${SLURM_NTASKS:-1} threads=${SLURM_CPUS_PER_TASK:-1} restarts=${SLURM_RESTART_COUNT:-0}
  lethe_job_log "job ${SLURM_JOB_ID:-?} (restart $restarts) on $(hostname -s): $np ranks x $threads threads, run dir $run_dir"
  lethe_job_run "$run_dir" "$np" "$threads" "$@"
  [ "$LETHE_JOB_RC" = 75 ] || return "$LETHE_JOB_RC"
  if [ "$restarts" -ge "${LETHE_MAX_REQUEUE:-50}" ]; then
    lethe_job_log "not requeued: $restarts restarts already (LETHE_MAX_REQUEUE); resubmit to resume"
    return 75
  fi
  if [ -z "${SLURM_JOB_ID:-}" ]; then
    lethe_job_log "not under Slurm (no SLURM_JOB_ID): run again to resume"
    return 75
  fi
  lethe_job_log "requeueing job $SLURM_JOB_ID"
  # Slurm ends this shell once the requeue is done; exit 0 in case it has not yet
  if timeout 60 scontrol requeue "$SLURM_JOB_ID"; then
    return 0
  fi
  lethe_job_log "scontrol requeue $SLURM_JOB_ID failed (is the job --requeue?); resubmit to resume"
  return 75
}
