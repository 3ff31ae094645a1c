# shellcheck shell=bash
# Shared by the Slurm tests: the integration tests' helpers plus a private cluster and job queries.
# $1 lethe executable, $2 source dir, $3 scratch dir, $4 mpiexec, $5 cluster dir (optional: without
# it, or when that cluster is not running, the test starts its own under $3 and stops it at exit).
# shellcheck source=tests/integration/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/common.sh"
CLUSTER_SH=$SRC/tests/slurm/cluster.sh
CLUSTER=${5:-}
OWN_CLUSTER=0
if [ -z "$CLUSTER" ] || ! "$CLUSTER_SH" status "$CLUSTER" >/dev/null 2>&1; then
  CLUSTER=${CLUSTER:-$SCRATCH/cluster}
  "$CLUSTER_SH" start "$CLUSTER" || { echo "FAIL - cannot start the Slurm cluster"; exit 1; }
  OWN_CLUSTER=1
fi
export SLURM_CONF=$CLUSTER/slurm.conf
# jobs under test inherit this environment (sbatch --export=ALL); they must not see CTest's
unset SLURM_JOB_ID SLURM_RESTART_COUNT SLURM_ARRAY_TASK_ID

# runs at exit: stop a cluster this test started; print the daemons' logs if something failed
slurm_exit() {
  if [ "$FAILS" != 0 ]; then
    echo "--- slurmctld.log (tail)"; tail -20 "$CLUSTER/slurmctld.log" 2>/dev/null
    echo "--- slurmd.log (tail)"; tail -20 "$CLUSTER/slurmd.log" 2>/dev/null
  fi
  # our jobs must not outlive the test
  # shellcheck disable=SC2086
  [ -n "${JOBS:-}" ] && timeout 10 scancel $JOBS 2>/dev/null
  [ "$OWN_CLUSTER" = 1 ] && "$CLUSTER_SH" stop "$CLUSTER"
}
trap slurm_exit EXIT
JOBS=''

# submit ARGS...: sbatch --parsable; prints the job id and remembers it for the cleanup
submit() {
  local id
  id=$(timeout 30 sbatch --parsable "$@") || return 1
  id=${id%%;*}
  JOBS="$JOBS $id"
  echo "$id"
}

# job_field JOBID KEY: a field of `scontrol show job` ('' if unknown)
job_field() {
  timeout 10 scontrol show job -o "$1" 2>/dev/null | head -1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# job_over JOBID: true once the job reached a final state
job_over() {
  case $(job_field "$1" JobState) in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED) return 0 ;;
  esac
  return 1
}

# wait_until SECONDS COMMAND...: poll every 0.5 s; false if COMMAND never succeeded in time
wait_until() {
  local to=$1 i
  shift
  for i in $(seq $((to * 2))); do
    "$@" && return 0
    sleep 0.5
  done
  return 1
}

# restarted JOBID: the job was requeued at least once
restarted() { [ "$(job_field "$1" Restarts)" -ge 1 ] 2>/dev/null; }

# show_job JOBID OUTFILE: state line and the job's output, indented (for failure reports)
show_job() {
  echo "    job $1: $(timeout 10 scontrol show job -o "$1" 2>/dev/null | grep -oE '(JobState|Reason|Restarts|ExitCode)=[^ ]*' | tr '\n' ' ')"
  [ -n "${2:-}" ] && sed 's/^/    | /' "$2" 2>/dev/null | tail -40
}
