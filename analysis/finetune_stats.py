"""The fine-tuning study's statistics, shared by finetune_table.py and plot_finetune_box.py.

A study directory (jobs/finetune_study.sh) holds one run directory per cell,
NAME = spc<samples per class>-lr<lr>-<remedy>, each with metrics.h5 /finetune:
seeds int64 [S], acc float64 [S] (NaN when the run diverged), diverged int64 [S].

- A diverged run (non-finite loss) counts as chance accuracy 1/K: its network
  outputs NaN logits, and lethe's argmax then predicts class 0 for every image,
  which scores exactly 1/K on the balanced test split.
- Failed run (issue 8): accuracy more than 10 points below the cell's median, or
  below chance + 10 points.
- Paired difference against plain: seed s draws the same training subset (and
  the same fresh head) for every remedy, so d_s = acc(remedy, s) - acc(plain, s);
  reported as mean and a 95% Student-t interval over the seeds both cells ran.
"""
import math
import os
import re
import sys

import numpy as np

try:
    import h5py
except ImportError as e:  # pragma: no cover
    sys.exit(f"{os.path.basename(sys.argv[0])}: error: cannot import h5py ({e}); "
             "run with Debian's /usr/bin/python3")

REMEDIES = ["scratch", "plain", "freeze1", "freeze2", "llrd0.8", "llrd0.5", "reinit1"]
LABELS = {"scratch": "from scratch", "plain": "plain", "freeze1": "freeze_bottom 1",
          "freeze2": "freeze_bottom 2", "llrd0.8": "llrd 0.8", "llrd0.5": "llrd 0.5",
          "reinit1": "reinit_top 1"}
NAME = re.compile(r"^spc(\d+)-lr([0-9.e-]+)-(.+)$")

# two-sided 95% Student-t quantiles t_{0.975, df}; df > 30 uses the normal's 1.96 + 2.4/df
T975 = [math.nan, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201,
        2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069,
        2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t975(df):
    return T975[df] if df < len(T975) else 1.96 + 2.4 / df


def load_cell(path):
    """(seeds, accuracies with diverged runs at chance, number diverged, chance)."""
    f = os.path.join(path, "metrics.h5")
    with h5py.File(f, "r") as h:
        if "finetune" not in h:
            raise SystemExit(f"error: {f} has no /finetune group (not a [run] seeds run?)")
        g = h["finetune"]
        seeds = g["seeds"][:]
        acc = g["acc"][:].astype(float)
        div = g["diverged"][:].astype(bool) | ~np.isfinite(acc)
        chance = float(g.attrs["chance"])
    acc[div] = chance
    return seeds, acc, int(div.sum()), chance


def cells(root):
    """{(spc, lr): {remedy: (seeds, acc, diverged, chance)}} of a study directory."""
    out = {}
    for name in sorted(os.listdir(root)):
        m = NAME.match(name)
        if not m or not os.path.exists(os.path.join(root, name, "metrics.h5")):
            continue
        key = (int(m.group(1)), float(m.group(2)))
        out.setdefault(key, {})[m.group(3)] = load_cell(os.path.join(root, name))
    if not out:
        raise SystemExit(f"error: no study cells (spc*-lr*-*/metrics.h5) under {root}")
    return out


def summary(acc, chance):
    med = float(np.median(acc))
    failed = int(np.sum((acc < med - 0.10) | (acc < chance + 0.10)))
    sd = float(np.std(acc, ddof=1)) if len(acc) > 1 else math.nan
    return dict(n=len(acc), mean=float(np.mean(acc)), std=sd, min=float(np.min(acc)),
                max=float(np.max(acc)), median=med, failed=failed)


def paired(seeds_a, acc_a, seeds_b, acc_b):
    """Mean of acc_a - acc_b over the common seeds and its 95% t interval."""
    common = sorted(set(seeds_a.tolist()) & set(seeds_b.tolist()))
    ia = {s: i for i, s in enumerate(seeds_a.tolist())}
    ib = {s: i for i, s in enumerate(seeds_b.tolist())}
    d = np.array([acc_a[ia[s]] - acc_b[ib[s]] for s in common])
    if len(d) < 2:
        return math.nan, math.nan, math.nan, len(d)
    m = float(d.mean())
    h = t975(len(d) - 1) * float(d.std(ddof=1)) / math.sqrt(len(d))
    return m, m - h, m + h, len(d)
