#!/usr/bin/env python3
"""Box plots of the fine-tuning study (jobs/finetune_study.sh): one panel per
(samples per class, lr) cell, one box per remedy over the seeds' final test
accuracies (diverged runs at chance, see finetune_stats.py), each seed's point
drawn on top and the chance + 10 points line dashed.

    /usr/bin/python3 analysis/plot_finetune_box.py runs/finetune results/finetune/box.png
"""
import argparse
import os
import sys

import numpy as np

from finetune_stats import LABELS, REMEDIES, cells

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError as e:  # pragma: no cover
    sys.exit(f"plot_finetune_box.py: error: cannot import matplotlib ({e})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="the study's directory of run directories (runs/finetune)")
    ap.add_argument("out", help="PNG file to write")
    a = ap.parse_args()
    cs = cells(a.root)
    keys = sorted(cs)
    ncol = 2 if len(keys) > 1 else 1
    nrow = (len(keys) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(7 * ncol, 3.8 * nrow), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        c = cs[key]
        names = [r for r in REMEDIES if r in c]
        data = [100 * c[r][1] for r in names]
        ax.boxplot(data, labels=[LABELS.get(r, r).replace(" ", "\n", 1) for r in names],
                   whis=(0, 100))
        rng = np.random.default_rng(0)
        for i, d in enumerate(data):
            ax.plot(i + 1 + 0.08 * rng.standard_normal(len(d)), d, ".", alpha=0.5, color="C0")
        chance = c[names[0]][3]
        ax.axhline(100 * (chance + 0.1), ls="--", color="grey", lw=0.8)
        ax.set_title(f"{key[0]} samples per class, lr {key[1]:g} ({len(data[0])} seeds)")
        ax.set_ylabel("test accuracy (%)")
        ax.tick_params(axis="x", labelsize=8)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
