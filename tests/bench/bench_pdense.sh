#!/usr/bin/env bash
# K-FAC factor inversion: ScaLAPACK (pdpotrf + pdpotri) at 1, 2 and 4 ranks vs one
# process's LAPACK dpotrf + dpotri and BLIS dgemm in the same run (bench_pdense.c).
#   bench_pdense.sh BENCH_BINARY BUILD_DIR MPIEXEC [N ...]
# One BLIS thread per rank. Table also in BUILD_DIR/bench_pdense.txt.
set -uo pipefail
bin=$1 build=$2 mpiexec=$3
shift 3
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1024 2048 4096)
export BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1
out=$build/bench_pdense.txt
{
  echo "K-FAC factor inversion (damped SPD matrix, pdpotrf + pdpotri) on $(getconf _NPROCESSORS_ONLN) core(s),"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); 1 BLIS thread per rank; best of 2"
  echo
} >"$out"
rc=0
for np in 1 2 4; do
  "$mpiexec" --oversubscribe -n "$np" "$bin" 64 "${sizes[@]}" >"$out.np$np" 2>&1 || rc=1
  if [ "$np" = 1 ]; then cat "$out.np$np" >>"$out"; else grep '^| [0-9]' "$out.np$np" >>"$out"; fi
  grep -i "failed" "$out.np$np" >>"$out"
done
cat "$out"
exit $rc
