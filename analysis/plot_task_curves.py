#!/usr/bin/env python3
"""Accuracy on each task across the training sequence of a continual-learning run.

One line per task j: R[:, j] of /cl/acc, the accuracy on task j after training
task i = 0..T-1 (the point where task j itself was trained is marked); with
/cl/acc_init the untrained model's accuracy is the first point. Writes
task_curves.png, and task_curves_task_il.png when /cl/acc_task_il is present.
"""
import os

import numpy as np

import lethe_h5


def curves(R, b, title, path):
    plt = lethe_h5.pyplot()
    T = R.shape[0]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * T + 4), 4.5))
    x = np.arange(T)
    cmap = plt.get_cmap("tab10" if T <= 10 else "viridis")
    for j in range(T):
        color = cmap(j % 10) if T <= 10 else cmap(j / max(1, T - 1))
        xs, ys = x, R[:, j]
        if b is not None:
            xs, ys = np.concatenate(([-1], x)), np.concatenate(([b[j]], R[:, j]))
        ax.plot(xs, ys, marker=".", color=color, label=f"task {j}" if T <= 20 else None)
        ax.plot([j], [R[j, j]], marker="o", markersize=8, markerfacecolor="none", color=color)
    ax.set_xticks(([-1] if b is not None else []) + list(x) if T <= 30 else x[:: max(1, T // 10)])
    if b is not None and T <= 30:
        ax.set_xticklabels(["init"] + [str(i) for i in x])
    ax.set_xlabel("after training task i (circle: task j's own training)")
    ax.set_ylabel("accuracy on task j")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    if T <= 20:
        ax.legend(fontsize=8, ncol=2 if T > 10 else 1, loc="best")
    return lethe_h5.save(fig, path)


def main():
    args = lethe_h5.parser(__doc__).parse_args()
    with lethe_h5.Run(args.run) as run:
        R = run.need("/cl/acc", "the per-task accuracy curves; only continual-learning runs write /cl",
                     ndim=2)
        b = run.get("/cl/acc_init")
        out = lethe_h5.out_dir(args.out, run.dir)
        curves(R, b, "class-IL accuracy per task (/cl/acc)", os.path.join(out, "task_curves.png"))
        Rt = run.get("/cl/acc_task_il")
        if Rt is not None:
            curves(Rt, None, "task-IL accuracy per task (/cl/acc_task_il)",
                   os.path.join(out, "task_curves_task_il.png"))


if __name__ == "__main__":
    lethe_h5.run_main(main)
