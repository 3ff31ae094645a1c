#!/usr/bin/env python3
"""Load balance of a data-parallel run from /ranks/step_time [P, steps].

Top: each rank's own compute + communication time per step. Bottom: each
rank's total, with the mean and the imbalance max/mean of the totals in the
title (the figure `lethe report` prints). Writes rank_times.png.
"""
import os

import numpy as np
from matplotlib.ticker import MaxNLocator

import lethe_h5


def main():
    args = lethe_h5.parser(__doc__).parse_args()
    plt = lethe_h5.pyplot()
    with lethe_h5.Run(args.run) as run:
        t = run.need("/ranks/step_time", "the per-rank step times", ndim=2)
        out = lethe_h5.out_dir(args.out, run.dir)
        path = run.path
    P, S = t.shape
    if P == 0 or S == 0:
        raise lethe_h5.MetricsError(f"'{path}': /ranks/step_time is empty ({P} x {S})")
    ms = 1e3 * t
    totals = np.nansum(t, axis=1)
    imbalance = totals.max() / totals.mean() if totals.mean() > 0 else float("nan")

    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 7))
    steps = np.arange(1, S + 1)
    for r in range(P):
        ax.plot(steps, ms[r], lw=0.8, label=f"rank {r}" if P <= 8 else None)
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("step time [ms]")
    ax.set_title(f"{os.path.relpath(path)}: {P} ranks x {S} steps", fontsize=9)
    ax.grid(alpha=0.3)
    if P <= 8:
        ax.legend(fontsize=8, ncol=2)
    ax2.bar(np.arange(P), totals, color="tab:blue")
    ax2.axhline(totals.mean(), color="tab:red", ls="--", label=f"mean {totals.mean():.3g} s")
    ax2.set_xlabel("rank")
    ax2.set_ylabel("total step time [s]")
    ax2.set_title(f"imbalance (max/mean of totals) {imbalance:.4f}", fontsize=10)
    if P <= 32:
        ax2.set_xticks(np.arange(P))
    ax2.legend(fontsize=8)
    fig.tight_layout()
    lethe_h5.save(fig, os.path.join(out, "rank_times.png"))


if __name__ == "__main__":
    lethe_h5.run_main(main)
