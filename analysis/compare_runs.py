#!/usr/bin/env python3
"""Compare several runs: bars of mean +- sample std over the seeds of each group.

Runs are grouped like `lethe report` groups them: runs whose decks differ only
in [run] seed and [run] out form a group. One panel per quantity present in
some run (test_acc, test_loss, samples_per_s from the root attributes; ACC,
BWT, FWT, forgetting recomputed from /cl/acc); each run's own value is drawn
as a dot over its group's bar. Prints the groups and the deck lines that set
them apart. Writes compare_runs.png (default directory: the runs' common
parent directory).
"""
import math
import os

import numpy as np

import lethe_h5

QUANTITIES = ("test_acc", "test_loss", "samples_per_s") + lethe_h5.CL_NAMES


def tick_label(i, diff, width=24):
    """'group i: key = value' from the first deck line that sets the group apart."""
    if not diff:
        return f"group {i + 1}"
    first = diff[0].split("] ", 1)[-1]
    more = f" +{len(diff) - 1}" if len(diff) > 1 else ""
    text = first if len(first) + len(more) <= width else first[: width - len(more) - 1] + "~"
    return f"{i + 1}: {text}{more}"


def main():
    args = lethe_h5.parser(__doc__, runs_nargs="+").parse_args()
    plt = lethe_h5.pyplot()
    runs = [lethe_h5.Run(a) for a in args.runs]  # every file is checked before anything is drawn
    try:
        groups = lethe_h5.group_runs(runs)
        diffs = lethe_h5.group_differences(groups)
        values = [[r.summary() for r in g] for g in groups]
        seeds = [[r.seed for r in g] for g in groups]
        paths = [[r.path for r in g] for g in groups]
    finally:
        for r in runs:
            r.close()
    dirs = [r.dir for r in runs]
    try:
        default = os.path.commonpath(dirs)
    except ValueError:  # relative and absolute paths mixed
        default = os.path.commonpath([os.path.abspath(d) for d in dirs])
    out = lethe_h5.out_dir(args.out, default)

    for gi, g in enumerate(paths):
        seed_text = ", ".join("-" if math.isnan(s) else f"{s:.0f}" for s in seeds[gi])
        print(f"group {gi + 1}: {len(g)} run(s), seeds {seed_text}")
        print("  differs: " + (", ".join(diffs[gi]) if diffs[gi] else "(nothing of its own)"))
        for p in g:
            print(f"  {p}")

    present = [q for q in QUANTITIES if any(np.isfinite(v[q]) for g in values for v in g)]
    if not present:
        raise lethe_h5.MetricsError("none of the runs has test_acc, test_loss, samples_per_s or /cl/acc")
    ncol = min(3, len(present))
    nrow = math.ceil(len(present) / ncol)
    G = len(groups)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    x = np.arange(G)
    labels = [tick_label(i, d) for i, d in enumerate(diffs)]
    for k, q in enumerate(present):
        ax = axes[k // ncol][k % ncol]
        stats = [lethe_h5.mean_std([v[q] for v in g]) for g in values]
        for gi, (mean, std, n) in enumerate(stats):
            if n == 0:
                ax.annotate("n/a", (gi, 0), textcoords="offset points", xytext=(0, 3), ha="center",
                            fontsize=7, color="gray")
                continue
            err = 0.0 if math.isnan(std) else std
            ax.bar([gi], [mean], yerr=[err], capsize=4, color="tab:blue", alpha=0.6)
            ys = [v[q] for v in values[gi] if np.isfinite(v[q])]
            ax.plot(np.full(len(ys), gi) + 0.25, ys, "k.", ms=4)
            top = mean + err if mean >= 0 else mean - err
            ax.annotate(f"n={n}", (gi, top), textcoords="offset points",
                        xytext=(0, 3 if mean >= 0 else -10), ha="center", fontsize=7)
        ax.set_xticks(x)
        ax.set_xlim(-0.6, G - 0.4)
        ax.set_xticklabels(labels, fontsize=7, rotation=30 if G > 3 else 0, ha="right" if G > 3 else "center")
        ax.set_title(q, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for k in range(len(present), nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    fig.suptitle("mean +- sample std over the runs of each group", fontsize=10)
    fig.tight_layout()
    lethe_h5.save(fig, os.path.join(out, "compare_runs.png"))


if __name__ == "__main__":
    lethe_h5.run_main(main)
