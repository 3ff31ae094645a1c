#!/usr/bin/env bash
# A throw-away one-node Slurm cluster for tests, every file under one folder.
#
#   tests/slurm/cluster.sh start  DIR   (re)start munged, slurmctld, slurmd; wait for the node to be idle
#   tests/slurm/cluster.sh stop   DIR   cancel its jobs, stop its daemons (by the pids they wrote)
#   tests/slurm/cluster.sh status DIR   daemons, node and queue
#   tests/slurm/cluster.sh env    DIR   prints `export SLURM_CONF=DIR/slurm.conf` (clients need it)
#
# Installs nothing: needs Debian's slurmctld slurmd slurm-client munge (and root, as slurmd does).
# The cluster is private: its own munged socket (DIR/munge), its own ports (LETHE_SLURM_PORT,
# default 16817, and +1 for slurmd), so a system Slurm or munge is neither used nor disturbed.
# `start` first stops whatever an earlier start with the same DIR left running. Every wait is
# bounded (LETHE_SLURM_WAIT seconds for the node, default 60) and fails with the daemons' logs.
set -uo pipefail

usage() { echo "usage: $0 start|stop|status|env DIR" >&2; exit 2; }
[ $# = 2 ] || usage
cmd=$1
case $2 in /*) DIR=$2 ;; *) DIR=$PWD/$2 ;; esac
DIR=${DIR%/}
CONF=$DIR/slurm.conf
MUNGE_DIR=$DIR/munge
SOCKET=$MUNGE_DIR/munge.socket
PORT=${LETHE_SLURM_PORT:-16817}
WAIT=${LETHE_SLURM_WAIT:-60}
export SLURM_CONF=$CONF

say() { echo "cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

# cmdline of a pid with NULs as spaces ('' if gone)
cmdline() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline"; }

# pids of processes whose command line contains the fixed string $1 (our conf or socket path)
pids_with() {
  local p c
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = $$ ] && continue
    c=$(cmdline "$p") || continue
    case $c in *"$1"*) echo "$p" ;; esac
  done
}

# descendants PID: the pids of PID's children, grandchildren, ... (/proc/P/stat: "pid (comm) state ppid ...")
descendants() {
  local f st ppid c
  for f in /proc/[0-9]*/stat; do
    st=$(cat "$f" 2>/dev/null) || continue
    read -r _ ppid _ <<<"${st##*) }"
    [ "$ppid" = "$1" ] || continue
    c=${f#/proc/}
    c=${c%/stat}
    echo "$c"
    descendants "$c"
  done
}

# alive PID: the process exists and is not a zombie
alive() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [ "${st%% *}" != Z ]
}

# stop_pid PID NAME [SECONDS]: TERM, up to SECONDS (10) later KILL; only if PID runs a program called NAME
stop_pid() {
  local pid=$1 name=$2 grace=${3:-10} i
  [ -n "$pid" ] && alive "$pid" || return 0
  case $(cmdline "$pid") in *"$name"*) ;; *) return 0 ;; esac
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq $((grace * 10))); do alive "$pid" || return 0; sleep 0.1; done
  say "$name (pid $pid) ignored SIGTERM for $grace s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null
  sleep 0.2
}

# the daemons of this DIR: pid files first, then any process started with our conf or socket
# (an earlier run whose pid files were deleted with the folder)
daemon_pids() {
  local f
  for f in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$MUNGE_DIR/munged.pid"; do
    [ -s "$f" ] && cat "$f"
  done
  pids_with "-f $CONF"
  pids_with "--socket=$SOCKET"
}

do_stop() {
  local pid name ids i kids
  # cancel jobs while the controller is up, so slurmstepd ends their processes
  if [ -f "$CONF" ] && [ -n "$(pids_with "slurmctld -c -f $CONF")" ]; then
    ids=$(timeout 10 squeue -h -o %i 2>/dev/null)
    if [ -n "$ids" ]; then
      # shellcheck disable=SC2086
      timeout 10 scancel $ids 2>/dev/null
      for i in $(seq 40); do
        [ -z "$(timeout 5 squeue -h -t R,CG -o %i 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
  fi
  # slurmd first (it owns the steps), then the controller, then munged
  for pid in $(daemon_pids | sort -u); do
    name=$(cmdline "$pid")
    case $name in *slurmd\ *) stop_pid "$pid" slurmd ;; esac
  done
  for pid in $(daemon_pids | sort -u); do
    name=$(cmdline "$pid")
    case $name in *slurmctld*) stop_pid "$pid" slurmctld ;; *munged*) stop_pid "$pid" munged ;; esac
  done
  # job steps orphaned by a killed slurmd carry our conf in their environment (SLURM_CONF)
  for pid in $(pids_with "slurmstepd"); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = slurmstepd ] || continue
    tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qxF "SLURM_CONF=$CONF" || continue
    say "stray slurmstepd $pid of this cluster; ending its job"
    kids=$(descendants "$pid")
    stop_pid "$pid" slurmstepd 2
    # shellcheck disable=SC2086
    [ -n "$kids" ] && kill -TERM $kids 2>/dev/null && sleep 1 && kill -KILL $kids 2>/dev/null
  done
  rm -f "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$MUNGE_DIR/munged.pid" "$SOCKET" "$SOCKET.lock"
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  # 90% of the memory, so slurmd never finds less than configured (that drains the node)
  mem=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
  mkdir -p "$DIR/state" "$DIR/spool"
  cat >"$CONF" <<EOF
# written by tests/slurm/cluster.sh: a private one-node cluster under $DIR
ClusterName=lethetest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$SOCKET,cred_expire=${LETHE_SLURM_CRED_EXPIRE:-10}
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
# look for runnable jobs every 2 s (default 60 s), so requeued jobs start promptly
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# requeue: batch jobs may be requeued (sbatch --requeue, scontrol requeue); keep finished
# jobs visible to scontrol for 10 min; SIGTERM -> SIGKILL grace at the time limit
JobRequeue=1
MinJobAge=600
KillWait=30
# preemption is simulated with scancel --signal; preempt/none keeps the scheduler simple
PreemptType=preempt/none
NodeName=$host NodeAddr=127.0.0.1 NodeHostname=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
}

start_munge() {
  local key=/etc/munge/munge.key i
  mkdir -p "$MUNGE_DIR"
  if ! runuser -u munge -- test -r "$key"; then
    key=$MUNGE_DIR/munge.key
    [ -s "$key" ] || mungekey -c -k "$key" || die "cannot create a munge key ($key)"
  fi
  chown -R munge:munge "$MUNGE_DIR" && chmod 0755 "$MUNGE_DIR" || die "cannot chown $MUNGE_DIR to munge"
  timeout 20 runuser -u munge -- munged --socket="$SOCKET" --key-file="$key" \
    --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
    --seed-file="$MUNGE_DIR/munged.seed" ||
    { tail -5 "$MUNGE_DIR/munged.log" >&2; die "munged did not start (log: $MUNGE_DIR/munged.log)"; }
  for i in $(seq 50); do
    timeout 5 munge -S "$SOCKET" -n 2>/dev/null | timeout 5 unmunge -S "$SOCKET" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "munge -S $SOCKET -n | unmunge fails after 10 s (log: $MUNGE_DIR/munged.log)"
}

node_state() { timeout 5 sinfo -h -N -o %T 2>/dev/null | head -1; }

do_start() {
  local t f state
  for t in slurmctld slurmd munged munge unmunge sinfo sbatch runuser; do
    command -v "$t" >/dev/null || die "$t not found; install: apt-get install slurmctld slurmd slurm-client munge"
  done
  [ "$(id -u)" = 0 ] || die "must run as root (slurmd runs jobs as their users)"
  do_stop
  # another cluster (or a system Slurm) on our ports would answer our clients instead of ours
  for t in "$PORT" "$((PORT + 1))"; do
    if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$t" 2>/dev/null; then
      for f in $(pids_with slurm); do echo "  pid $f: $(cmdline "$f")" >&2; done
      die "port $t is in use (another cluster? stop it with $0 stop ITS_DIR, or set LETHE_SLURM_PORT)"
    fi
  done
  mkdir -p "$DIR" || die "cannot create $DIR"
  rm -rf "$DIR/state" "$DIR/spool"
  write_conf
  start_munge
  timeout 20 slurmctld -c -f "$CONF" ||
    { tail -20 "$DIR/slurmctld.log" >&2; die "slurmctld did not start (log: $DIR/slurmctld.log)"; }
  timeout 20 slurmd -c -f "$CONF" ||
    { tail -20 "$DIR/slurmd.log" >&2; die "slurmd did not start (log: $DIR/slurmd.log)"; }
  for t in $(seq $((WAIT * 2))); do
    state=$(node_state)
    for f in slurmctld slurmd; do
      [ -d "/proc/$(cat "$DIR/$f.pid" 2>/dev/null || echo none)" ] || [ "$t" -lt 4 ] ||
        { tail -15 "$DIR/$f.log" >&2; do_stop; die "$f exited (log: $DIR/$f.log)"; }
    done
    case $state in idle*) say "node $(hostname -s) idle after $((t / 2)) s (SLURM_CONF=$CONF)"; return 0 ;; esac
    sleep 0.5
  done
  say "node state after $WAIT s: '${state:-no answer}'"
  timeout 5 sinfo -R >&2
  echo "--- slurmctld.log" >&2; tail -15 "$DIR/slurmctld.log" >&2
  echo "--- slurmd.log" >&2; tail -15 "$DIR/slurmd.log" >&2
  do_stop
  die "the node did not become idle within $WAIT s (LETHE_SLURM_WAIT)"
}

do_status() {
  local f pid rc=0
  for f in "$MUNGE_DIR/munged.pid" "$DIR/slurmctld.pid" "$DIR/slurmd.pid"; do
    pid=$(cat "$f" 2>/dev/null)
    if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
      echo "$(basename "$f" .pid): running (pid $pid)"
    else
      echo "$(basename "$f" .pid): not running"; rc=1
    fi
  done
  [ "$rc" = 0 ] || return 1
  echo "SLURM_CONF=$CONF"
  timeout 5 sinfo -N || rc=1
  timeout 5 squeue || rc=1
  return $rc
}

case $cmd in
  start) do_start ;;
  stop) do_stop; say "stopped ($DIR)" ;;
  status) do_status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) usage ;;
esac
