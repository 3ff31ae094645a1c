#!/usr/bin/env bash
# MixtureGrowth in lethe train ([model] kind = template, [grow] schedule = grow) on tiny
# synthetic data at 2 ranks:
#  (a) the run writes a snapshot before growth (ckpt/pre-growth) and after it, records the
#      phase state and model shape (/grow/state, /model/layout kind "template"), and its
#      cumulative FLOPs (log, /epoch/flops, /grow/phase_flops) equal the formula of
#      lethe/grow.h evaluated here in Python from the layer shapes;
#  (b) resume across the growth step is bit for bit (final theta and state hashes equal
#      the uninterrupted run's): from a snapshot inside member 1's phase, from the
#      pre-growth snapshot, and from the post-growth one;
#  (c) bad template decks fail with a clear message on every rank.
source "$(dirname "$0")/common.sh"

tiny_dataset tiny.h5 1
cat > grow.ini <<'EOF'
[data]
path = tiny.h5
scale = false
[model]
kind = template
hidden = 16,16
[optim]
kind = sgd
lr = 0.05
momentum = 0.9
weight_decay = 0.001
batch_size = 32
schedule = cosine
[train]
epochs = 2
[grow]
member_epochs = 2
init = orthogonal
lr = 0.04
[checkpoint]
every_steps = 40
keep = 0
[run]
progress = none
EOF
hash() { grep -E '^(done|stop) ' "$2" | tail -1 | sed -n "s/.* $1 \([0-9a-f]\{16\}\).*/\1/p"; }

# ------------------------------------------------------------------ (a)
rc=$(run 2 120 a.out train grow.ini --set run.out=a)
T=$(hash theta a.out) S=$(hash state a.out)
if [ "$rc" != 0 ] || [ -z "$S" ]; then bad "(a) uninterrupted run failed (exit $rc)"; sed 's/^/    /' a.out; finish; exit; fi
# 512 rows / 32 = 16 steps per epoch: member 0 steps 1-32, member 1 33-64, growth at 64
if [ -f a/ckpt/pre-growth/step-00000064.h5 ] && grep -q 'step-00000064.h5 (after growth)' a.out &&
   grep -q '^phase 3 epoch   2 ' a.out; then
  ok "(a) three phases; snapshots before (ckpt/pre-growth) and after growth at step 64"
else
  bad "(a) growth snapshots or phases missing"; sed 's/^/    /' a.out
fi
flops=$(sed -n 's/^flops  \([0-9.e+]*\) training FLOPs.*/\1/p' a.out)
"$PY" - "$flops" <<'PY' && ok "(a) FLOPs: log, /epoch/flops and /grow match the formula ($flops)" || bad "(a) FLOPs accounting (see above)"
import sys, h5py, numpy as np
# lethe/grow.h: per step on R rows, per active layer [out, in]: 4 R in out + 2 R out,
# + 2 R in out for all but the first; per active template block [tr, tc]: 6 nt tr tc.
def step(R, layers, blocks, nt=2):
    f = 0.0
    for l, (o, i) in enumerate(layers):
        f += 4 * R * i * o + 2 * R * o + (2 * R * i * o if l else 0)
    return f + sum(6 * nt * tr * tc for tr, tc in blocks)
member = step(32, [(8, 20), (8, 8), (3, 8)], [(8, 20), (8, 8), (3, 8)])
full = step(32, [(16, 20), (16, 16), (3, 16)], [(8, 20)] * 2 + [(8, 8)] * 4 + [(3, 8)] * 2)
want = [16 * member * e for e in (1, 2, 3, 4)] + [64 * member + 16 * full * e for e in (1, 2)]
printed = float(sys.argv[1])
ok = abs(printed - want[-1]) <= 1e-5 * want[-1]
with h5py.File('a/metrics.h5', 'r') as f:
    ep = f['epoch/flops'][...]
    ok &= np.allclose(ep, want, rtol=1e-12)
    ok &= np.allclose(f['grow/phase_flops'][...], [want[1], want[3], want[5]], rtol=1e-12)
    ok &= np.allclose(f['grow/phase_epochs'][...], [2, 2, 2])
    acc = f['grow/phase_test_acc'][...]
    ok &= bool(np.all((acc > 0.5) & (acc <= 1)))
with h5py.File('a/ckpt/step-00000080.h5', 'r') as f:
    st = f['grow/state'][...]      # grown, member, templates, phases, phase
    ok &= list(st) == [1, -1, 2, 3, 2]
    lay = f['model/layout'][...]
    ok &= all(k.decode() == 'template' for k in lay['kind'])
    ok &= [(int(r), int(c)) for r, c in zip(lay['rows'], lay['cols'])] == [(16, 20), (16, 16), (3, 16)]
with h5py.File('a/ckpt/step-00000040.h5', 'r') as f:
    ok &= list(f['grow/state'][...]) == [0, 1, 2, 3, 1]
if not ok:
    print('printed', printed, 'want', want[-1]); print('epoch/flops', list(ep), 'want', want)
sys.exit(0 if ok else 1)
PY

# ------------------------------------------------------------------ (b)
# resume_from NAME SNAPSHOT: copy of run a, resumed from SNAPSHOT (relative to the copy)
resume_from() {
  local name=$1 snap=$2
  rm -rf "$name" && cp -r a "$name"
  local rc
  rc=$(run 2 120 "$name.out" train grow.ini --set run.out="$name" --resume "$name/$snap")
  if [ "$rc" = 0 ] && [ "$(hash theta "$name.out")" = "$T" ] && [ "$(hash state "$name.out")" = "$S" ]; then
    ok "(b) resume from $snap: final theta $T state $S, as uninterrupted"
  else
    bad "(b) resume from $snap: exit $rc, theta $(hash theta "$name.out") state $(hash state "$name.out"), want $T $S"
    sed 's/^/    /' "$name.out"
  fi
}
resume_from b1 ckpt/step-00000040.h5     # inside member 1's phase (epoch 3, step 8)
resume_from b2 ckpt/pre-growth           # before growth: the growth step runs again
resume_from b3 ckpt/step-00000064.h5     # after growth
grep -q '^grow   to full width' b2.out && ! grep -q '^grow   to full width' b3.out &&
  ok "(b) the growth step ran again after the pre-growth snapshot, not after the post-growth one" ||
  bad "(b) growth ran in the wrong resumed runs"

# ------------------------------------------------------------------ (c)
expect_fail odd 2 'hidden width 15 is odd' train grow.ini --set model.hidden=16,15 --set run.out=c1
expect_fail noh 2 'template needs at least one hidden layer' train grow.ini --set model.hidden= --set run.out=c2
expect_fail scen 2 'template trains without a \[scenario\]' train grow.ini --set scenario.kind=split --set run.out=c3
expect_fail freeze 2 'freeze and lr_mult name dense layers' train grow.ini --set optim.freeze=fc1 --set run.out=c4
finish
