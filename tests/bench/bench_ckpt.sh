#!/usr/bin/env bash
# Snapshot write and read speed (CTest bench.ckpt, label bench) next to the disk's
# sequential speed measured in the same run on the same file system.
#
#   bench_ckpt.sh LETHE SOURCE_DIR BUILD_DIR [MPIEXEC]
#
# Model 784-4096-1536-10 (9.5e6 parameters) with Adam: a snapshot holds theta and
# two moments, float32, about 114 MB. For 1 and 2 ranks (BLIS 1 thread):
#   write: `lethe train` for one step with [checkpoint] at_task_end; lethe logs the
#          snapshot's bytes and the time from creating the file to the replaced
#          LATEST, which includes MPI_File_sync, rank 0's fsync of the file and of
#          the directory (the FNV-1a hash is timed apart);
#   read:  the file is dropped from the page cache (dd iflag=nocache count=0), then
#          `lethe train --resume` logs the bytes and the time from the first check
#          of the file to the last byte read (the allgather of theta included).
# Disk: dd if=/dev/zero bs=1M conv=fdatasync of a file of the snapshot's size in the
# same directory, and dd of that file to /dev/null after dropping it from the cache.
# LETHE_BENCH_REPEAT rounds (default 5), each dd then lethe at 1 and 2 ranks, so that
# both see the same load on a shared machine; rates are shown as best (median), the
# fraction of dd as the median over rounds of lethe's rate / that round's dd rate.
# The target (>= 50% of dd) is printed as PASS/MISS but never fails the test; the test
# fails only when a run fails or prints no figure. Table: stdout and
# BUILD_DIR/bench_ckpt.txt; logs in BUILD_DIR/bench/ckpt.
set -uo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 LETHE SOURCE_DIR BUILD_DIR [MPIEXEC]" >&2
  exit 2
fi
lethe=$1 src=$2 build=$3 mpiexec=${4:-mpirun}
work=$build/bench/ckpt
results=$build/bench_ckpt.txt
repeat=${LETHE_BENCH_REPEAT:-5}
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 BLIS_NUM_THREADS=1
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { fails=$((fails + 1)); echo "bench_ckpt: FAILED: $*" >&2; }

"$PY" - <<'PY' || { echo "bench_ckpt: cannot write the dataset (python3-h5py?)" >&2; exit 1; }
import h5py, numpy as np
rng = np.random.default_rng(0)
with h5py.File('data.h5', 'w') as f:
    for s, n in (('train', 256), ('test', 64)):
        f[f'{s}/x'] = rng.integers(0, 256, (n, 784), dtype=np.uint8)
        f[f'{s}/y'] = rng.integers(0, 10, n, dtype=np.uint8)
    f.attrs['num_classes'] = 10
    f.attrs['name'] = 'bench'
PY
cat > bench.ini <<'EOF'
[data]
path = data.h5
[model]
hidden = 4096,1536
[optim]
kind = adam
lr = 0.001
batch_size = 32
[train]
epochs = 1
max_steps = 1
eval_every = 0
[checkpoint]
every_epochs = 0
at_task_end = true
keep = 1
[run]
progress = none
EOF

# best VALUES...: the largest positive number; median VALUES...: the median of the positive ones
best() { printf '%s\n' "$@" | awk 'NF && $1 + 0 > 0 { if (m == "" || $1 + 0 > m) m = $1 + 0 } END { if (m != "") print m }'; }
median() { printf '%s\n' "$@" | awk 'NF && $1 + 0 > 0' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
# drop FILE: evict FILE's (clean) pages from the page cache
drop() { dd if="$1" iflag=nocache count=0 status=none 2>/dev/null; }
# dd_rate LOG: MB/s from dd's summary line ("N bytes (...) copied, T s, ..."), in 1e6 bytes
dd_rate() { sed -n 's/^\([0-9]*\) bytes.* copied, \([0-9.e+-]*\) s,.*/\1 \2/p' "$1" | awk '{ if ($2 > 0) printf "%.1f", $1 / $2 / 1e6 }'; }

# lethe_write NP K: one write run; appends "MB/s hash_s" to w$NP.txt, sets snap_mb
lethe_write() {
  local out=w$1-$2.log line rate h
  rm -rf run
  if ! "$mpiexec" --oversubscribe --bind-to none -n "$1" "$lethe" train bench.ini --set run.out=run > "$out" 2>&1; then
    fail "write run at $1 rank(s) (see $work/$out)"; return 1
  fi
  line=$(grep -m1 '^ckpt ' "$out")
  snap_mb=$(sed -n 's/.*: \([0-9.e+]*\) MB written in .*/\1/p' <<<"$line")
  rate=$(sed -n 's/.* MB written in [0-9.]* s (\([0-9]*\) MB\/s).*/\1/p' <<<"$line")
  h=$(sed -n 's/.*, hash \([0-9.]*\) s.*/\1/p' <<<"$line")
  [ -n "$rate" ] || { fail "no snapshot line at $1 rank(s) (see $work/$out)"; return 1; }
  echo "$rate $h" >> w$1.txt
}
# lethe_read NP K: drop the snapshot from the cache, resume; appends MB/s to r$NP.txt
lethe_read() {
  local out=r$1-$2.log rate
  drop "run/ckpt/$(cat run/ckpt/LATEST)"
  if ! "$mpiexec" --oversubscribe --bind-to none -n "$1" "$lethe" train bench.ini --set run.out=run --resume run > "$out" 2>&1; then
    fail "resume run at $1 rank(s) (see $work/$out)"; return 1
  fi
  rate=$(sed -n 's/^resume .* MB read in [0-9.]* s (\([0-9]*\) MB\/s).*/\1/p' "$out")
  [ -n "$rate" ] || { fail "no resume line at $1 rank(s) (see $work/$out)"; return 1; }
  echo "$rate" >> r$1.txt
}

# Rounds interleave dd and lethe so that both see the same load; the fraction of
# dd is taken per round (lethe's rate / the same round's dd rate), then the median.
snap_mb=114
rm -f w1.txt w2.txt r1.txt r2.txt ddw.txt ddr.txt ratio_*.txt
for ((k = 1; k <= repeat; k++)); do
  count=$(awk -v m="$snap_mb" 'BEGIN { printf "%d", m * 1e6 / 1048576 + 1 }')
  rm -f dd.bin
  dd if=/dev/zero of=dd.bin bs=1M count="$count" conv=fdatasync 2> ddw.log && dd_rate ddw.log >> ddw.txt && echo >> ddw.txt
  drop dd.bin
  dd if=dd.bin of=/dev/null bs=1M 2> ddr.log && dd_rate ddr.log >> ddr.txt && echo >> ddr.txt
  rm -f dd.bin
  dw=$(tail -1 ddw.txt) dr=$(tail -1 ddr.txt)
  for np_ in 1 2; do
    if lethe_write "$np_" "$k"; then
      awk -v a="$(tail -1 w$np_.txt | cut -d' ' -f1)" -v b="$dw" 'BEGIN { if (b > 0) print a / b }' >> ratio_w$np_.txt
      if lethe_read "$np_" "$k"; then
        awk -v a="$(tail -1 r$np_.txt)" -v b="$dr" 'BEGIN { if (b > 0) print a / b }' >> ratio_r$np_.txt
      fi
    fi
  done
done
col() { [ -f "$1" ] && cut -d' ' -f"${2:-1}" "$1"; }
# stats FILE [COL]: "best (median)"
stats() { local v; v=$(col "$@"); echo "$(best $v) ($(median $v))"; }
pct() { local m; m=$(median $(col "$1")); awk -v m="$m" 'BEGIN { if (m > 0) printf "%.0f%%", 100 * m; else print "?" }'; }
verdict() { awk -v m="$(median $(col "$1"))" 'BEGIN { if (!(m > 0)) print "?"; else print (m >= 0.5 ? "PASS" : "MISS") }'; }
[ -s ddw.txt ] && [ -s ddr.txt ] || fail "dd measured nothing"

{
  echo "checkpoint benchmark ($(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "model 784-4096-1536-10, Adam: theta + 2 moments = $snap_mb MB per snapshot; $repeat rounds," \
       "each dd then lethe; MB/s: best (median); fraction of dd: median over rounds of lethe / dd"
  echo "file system of $work: $(df -hT "$work" | awk 'NR == 2 { print $1, $2 }')"
  echo "disk (dd bs=1M, the snapshot's size): write $(stats ddw.txt) MB/s (conv=fdatasync)," \
       "read $(stats ddr.txt) MB/s (page cache dropped)"
  printf '%-6s %18s %7s %18s %7s %9s   %s\n' ranks "write MB/s" "of dd" "read MB/s" "of dd" "hash [s]" "target >= 50% of dd"
  for np_ in 1 2; do
    printf '%-6s %18s %7s %18s %7s %9s   %s\n' "$np_" "$(stats w$np_.txt)" "$(pct ratio_w$np_.txt)" \
      "$(stats r$np_.txt)" "$(pct ratio_r$np_.txt)" "$(median $(col w$np_.txt 2))" \
      "write $(verdict ratio_w$np_.txt), read $(verdict ratio_r$np_.txt)"
  done
} | tee "$results"
[ "$fails" = 0 ]
