#!/usr/bin/env bash
# lethe on a workstation with mpirun, with the Slurm scripts' resume and checkpoint-on-signal.
#
#   jobs/local.sh [-n RANKS] [-t THREADS] [--until-done] RUN_DIR DECK.ini [--set k=v ...]
#
#   -n RANKS       MPI ranks (default: the physical cores, LETHE_RANKS if set)
#   -t THREADS     BLIS threads per rank (default: BLIS_NUM_THREADS, else 1)
#   --until-done   when lethe stops with a snapshot (exit 75) for any reason but a Ctrl-C or
#                  SIGTERM to this script, resume it at once, until it exits otherwise
#
# The run directory is the first argument (the script passes --set run.out=RUN_DIR); if
# RUN_DIR/ckpt/LATEST exists the run resumes from it (--resume RUN_DIR). Ctrl-C or SIGTERM
# make lethe write a snapshot at the next step and exit 75 (run the same command to go on);
# a second Ctrl-C aborts without snapshot. Exit code: lethe's (0 done, 75 snapshot written).
set -uo pipefail
# shellcheck source=jobs/lethe-job.sh
source "$(dirname "$0")/lethe-job.sh"
usage="usage: jobs/local.sh [-n RANKS] [-t THREADS] [--until-done] RUN_DIR DECK.ini [--set section.key=value ...]"

physical_cores() {
  local n
  n=$(lscpu -p=CORE,SOCKET 2>/dev/null | grep -v '^#' | sort -u | wc -l)
  [ "${n:-0}" -gt 0 ] 2>/dev/null && echo "$n" || nproc
}

np=${LETHE_RANKS:-$(physical_cores)}
threads=${BLIS_NUM_THREADS:-1}
until_done=0
while [ $# -gt 0 ]; do
  case $1 in
    -n) np=${2:?$usage}; shift 2 ;;
    -t) threads=${2:?$usage}; shift 2 ;;
    --until-done) until_done=1; shift ;;
    -h | --help) echo "$usage"; exit 0 ;;
    -*) echo "local.sh: unknown option '$1'; $usage" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
case $np$threads in *[!0-9]*) echo "local.sh: -n and -t take positive integers" >&2; exit 2 ;; esac
run_dir=$1
shift
case $run_dir in
  *.ini) echo "local.sh: the first argument is the run directory, got the deck '$run_dir'; $usage" >&2; exit 2 ;;
esac
lethe_job_reject_keys run.out "$@" || exit 2

# more ranks than cores needs Open MPI's permission
[ "$np" -gt "$(physical_cores)" ] && LETHE_MPIRUN_ARGS="${LETHE_MPIRUN_ARGS:-} --oversubscribe"
export LETHE_JOB_INTERACTIVE=1
while :; do
  lethe_job_run "$run_dir" "$np" "$threads" "$@"
  rc=$LETHE_JOB_RC
  [ "$rc" = 75 ] && [ "$until_done" = 1 ] && [ "$LETHE_JOB_SIGNALLED" = 0 ] || exit "$rc"
  lethe_job_log "--until-done: resuming"
done
