#!/usr/bin/env python3
"""Training loss of a run with a moving average, and its per-epoch accuracy.

Top: /train/loss per step (thin) and its trailing moving average (--window,
default steps/50), with the learning rate /train/lr on a second axis when
present. Bottom: /epoch/test_acc (and /epoch/train_acc) per epoch, epochs
without an evaluation (NaN) left out. Writes loss.png.
"""
import os

import numpy as np
from matplotlib.ticker import MaxNLocator

import lethe_h5


def main():
    p = lethe_h5.parser(__doc__)
    p.add_argument("--window", type=int, default=0,
                   help="moving-average window in steps (default: steps/50, at least 1)")
    args = p.parse_args()
    if args.window < 0:
        p.error("--window must be >= 0")
    plt = lethe_h5.pyplot()
    with lethe_h5.Run(args.run) as run:
        loss = run.need("/train/loss", "the loss curve", ndim=1)
        lr = run.get("/train/lr")
        test_acc, train_acc = run.get("/epoch/test_acc"), run.get("/epoch/train_acc")
        out = lethe_h5.out_dir(args.out, run.dir)
        path = run.path

    n = loss.size
    w = args.window or max(1, n // 50)
    steps = np.arange(1, n + 1)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 7), gridspec_kw={"height_ratios": [3, 2]})
    ax.plot(steps, loss, lw=0.6, alpha=0.45, color="tab:blue", label="loss per step")
    if n:
        ma = lethe_h5.moving_average(loss, w)
        ax.plot(steps[min(w, n) - 1:], ma, lw=1.8, color="tab:blue", label=f"moving average ({min(w, n)} steps)")
    finite = loss[np.isfinite(loss)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 20:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("training loss (/train/loss)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if lr is not None and lr.size:
        axr = ax.twinx()
        h = axr.plot(np.arange(1, lr.size + 1), lr, color="tab:gray", ls="--", lw=1.0, label="lr (/train/lr)")
        axr.set_ylabel("learning rate")
        handles += h
        labels += [h[0].get_label()]
    ax.legend(handles, labels, fontsize=8, loc="upper right")
    ax.set_title(os.path.relpath(path), fontsize=9)

    shown = False
    for name, v, style in (("test_acc", test_acc, "o-"), ("train_acc", train_acc, "s--")):
        if v is None:
            continue
        e = np.arange(1, v.size + 1)
        ok = np.isfinite(v)
        if ok.any():
            ax2.plot(e[ok], v[ok], style, label=f"/epoch/{name}")
            shown = True
    if not shown:
        ax2.text(0.5, 0.5, "no /epoch/test_acc or /epoch/train_acc values", ha="center", va="center",
                 transform=ax2.transAxes)
        print(f"note: '{path}' has no per-epoch accuracy to plot")
    else:
        ax2.legend(fontsize=8)
    ax2.set_xlabel("epoch")
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_ylabel("accuracy")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    lethe_h5.save(fig, os.path.join(out, "loss.png"))


if __name__ == "__main__":
    lethe_h5.run_main(main)
