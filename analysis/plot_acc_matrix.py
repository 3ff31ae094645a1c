#!/usr/bin/env python3
"""Heatmap of the continual-learning accuracy matrix of a run.

R[i][j] = /cl/acc: accuracy on task j (columns) after training task i (rows),
each cell annotated with its value; the title gives ACC, BWT, FWT and
forgetting recomputed from R. Writes acc_matrix.png, and acc_matrix_task_il.png
when /cl/acc_task_il is present.
"""
import math
import os

import numpy as np

import lethe_h5


def heatmap(R, metrics, title, path):
    plt = lethe_h5.pyplot()
    T = R.shape[0]
    size = max(4.0, 0.6 * T + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(np.ma.masked_invalid(R), vmin=0.0, vmax=1.0, cmap="viridis")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="accuracy")
    if T <= 30:  # annotations stay readable up to about 30 tasks
        for i in range(T):
            for j in range(T):
                v = R[i, j]
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if v < 0.5 else "black")
    ax.set_xlabel("evaluated on task j")
    ax.set_ylabel("after training task i")
    ticks = range(T) if T <= 30 else range(0, T, max(1, T // 10))
    ax.set_xticks(list(ticks))
    ax.set_yticks(list(ticks))
    parts = [f"{k} {metrics[k]:+.3f}" if k != "ACC" else f"ACC {metrics[k]:.3f}"
             for k in lethe_h5.CL_NAMES if not math.isnan(metrics[k])]
    ax.set_title(f"{title}\n" + ", ".join(parts), fontsize=10)
    return lethe_h5.save(fig, path)


def main():
    args = lethe_h5.parser(__doc__).parse_args()
    with lethe_h5.Run(args.run) as run:
        run.need("/cl/acc", "the accuracy-matrix heatmap; only continual-learning runs write /cl")
        R, m = run.cl("/cl/acc")
        out = lethe_h5.out_dir(args.out, run.dir)
        heatmap(R, m, "class-IL accuracy R[i][j] (/cl/acc)", os.path.join(out, "acc_matrix.png"))
        task_il = run.cl("/cl/acc_task_il")
        if task_il:
            heatmap(task_il[0], task_il[1], "task-IL accuracy (/cl/acc_task_il)",
                    os.path.join(out, "acc_matrix_task_il.png"))


if __name__ == "__main__":
    lethe_h5.run_main(main)
