#!/usr/bin/env bash
# A stand-in for `lethe train` that follows lethe's checkpoint contract, for testing the job
# scripts without depending on the trainer:
#   fake_lethe.sh train DECK --set run.out=DIR [--set k=v ...] [--resume DIR]
# Every rank (started by mpirun) runs steps 1..FAKE_STEPS (default 40) of FAKE_STEP_S seconds
# (default 0.25; FAKE_RESUMED_STEP_S when resumed). On SIGUSR1 or SIGTERM, at the next step
# boundary rank 0 writes DIR/ckpt/step-N and DIR/ckpt/LATEST (temporary file + rename) and every
# rank exits 75. As in lethe (all ranks pass a barrier after rank 0 replaced LATEST) the other
# ranks exit only once LATEST has changed: mpirun kills the remaining ranks as soon as one exits
# non-zero, so exiting first could lose rank 0's LATEST. At the end rank 0 writes DIR/done and
# all exit 0. --resume DIR starts after the step named by DIR/ckpt/LATEST. DIR/pid-R holds rank
# R's pid; each rank appends what it saw to DIR/rank-R.log:
#   start step=S np=P threads=T restart=R args=...  |  signal USR1 step=N  |  exit 75 step=N  |  exit 0 step=N
set -u
rank=${OMPI_COMM_WORLD_RANK:-0}
np=${OMPI_COMM_WORLD_SIZE:-1}
[ "${1:-}" = train ] || { echo "fake_lethe: only 'train'" >&2; exit 2; }
out='' resume='' args="$*"
shift 2
while [ $# -gt 0 ]; do
  case $1 in
    --set) case ${2:-} in run.out=*) out=${2#run.out=} ;; esac; shift 2 ;;
    --resume) resume=${2:-}; shift 2 ;;
    *) shift ;;
  esac
done
[ -n "$out" ] || { echo "fake_lethe: no --set run.out=DIR" >&2; exit 2; }
mkdir -p "$out/ckpt"
log=$out/rank-$rank.log
start=0 step_s=${FAKE_STEP_S:-0.25}
if [ -n "$resume" ]; then
  latest=$(cat "$resume/ckpt/LATEST") || { echo "fake_lethe: no $resume/ckpt/LATEST" >&2; exit 1; }
  start=$((10#${latest#step-}))
  step_s=${FAKE_RESUMED_STEP_S:-$step_s}
fi
echo $$ >"$out/pid-$rank"
echo "start step=$start np=$np threads=${BLIS_NUM_THREADS:-unset} restart=${SLURM_RESTART_COUNT:-none} args=$args" >>"$log"
stop=''
prev=$(cat "$out/ckpt/LATEST" 2>/dev/null)
trap 'stop=1; echo "signal USR1 step=$step" >>"$log"' USR1
trap 'stop=1; echo "signal TERM step=$step" >>"$log"' TERM
step=$start
while [ "$step" -lt "${FAKE_STEPS:-40}" ]; do
  sleep "$step_s"
  step=$((step + 1))
  [ "$rank" = 0 ] && echo "$step" >"$out/progress"
  if [ -n "$stop" ]; then
    if [ "$rank" = 0 ]; then
      name=$(printf 'step-%08d' "$step")
      echo "$step" >"$out/ckpt/$name"
      echo "$name" >"$out/ckpt/LATEST.tmp" && mv "$out/ckpt/LATEST.tmp" "$out/ckpt/LATEST"
    else
      for _ in $(seq 100); do
        [ "$(cat "$out/ckpt/LATEST" 2>/dev/null)" != "$prev" ] && break
        sleep 0.1
      done
    fi
    echo "exit 75 step=$step" >>"$log"
    exit 75
  fi
done
[ "$rank" = 0 ] && echo "$step" >"$out/done"
echo "exit 0 step=$step" >>"$log"
exit 0
