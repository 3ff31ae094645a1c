#!/usr/bin/env python3
"""Forgetting against retaining for `lethe unlearn` runs: one point per SSD setting.

For each unlearn run directory (its metrics.h5 has the /unlearn group), the
SSD grid (/unlearn/grid: one (alpha, lambda) per point) is drawn as D_f
accuracy (y, the forgotten data) against D_r accuracy (x, the retained data),
with the original model, retrain from scratch (the reference: where unlearning
should land) and the other baselines beside it. Runs are grouped by forget
request (the /unlearn attributes forget and classes), one panel per group, all
seeds in the same panel. Writes unlearn_tradeoff.png.
"""
import os

import numpy as np

import lethe_h5

MARK = {"original": ("s", "black"), "retrain": ("*", "tab:red"), "finetune": ("^", "tab:green"),
        "neggrad": ("v", "tab:purple")}


def load(arg):
    with lethe_h5.Run(arg) as run:
        methods = run.attr("methods", "/unlearn")
        if methods is None:
            raise lethe_h5.MetricsError(f"'{run.path}' has no /unlearn group (written by lethe unlearn)")
        rows = {c: run.need(f"/unlearn/{c}", "the method table", ndim=1)
                for c in ("retain_acc", "forget_acc")}
        grid = {c: run.need(f"/unlearn/grid/{c}", "the SSD grid", ndim=1)
                for c in ("alpha", "lambda", "retain_acc", "forget_acc")}
        kind = run.attr('forget', '/unlearn')
        key = f"{kind} {run.attr('classes', '/unlearn') or ''}".strip() if kind != 'random' else kind
        return {"dir": run.dir, "key": key, "methods": methods.split(","), "rows": rows,
                "grid": grid}


def main():
    p = lethe_h5.parser(__doc__, runs_nargs="+")
    args = p.parse_args()
    plt = lethe_h5.pyplot()
    runs = [load(a) for a in args.runs]
    keys = sorted({r["key"] for r in runs})
    out = lethe_h5.out_dir(args.out, runs[0]["dir"])
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 4.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        group = [r for r in runs if r["key"] == key]
        seen = set()
        for i, r in enumerate(group):
            g = r["grid"]
            sc = ax.scatter(g["retain_acc"], g["forget_acc"], c=np.log10(g["alpha"]), cmap="viridis",
                            s=18 + 40 * g["lambda"] / max(g["lambda"].max(), 1e-12), alpha=0.8,
                            label="SSD grid" if i == 0 else None)
            ax.scatter(g["retain_acc"][:1], g["forget_acc"][:1], facecolors="none", edgecolors="tab:orange",
                       s=140, lw=1.8, label="SSD (first setting)" if i == 0 else None)
            if i == 0:
                for a, l, x, y in zip(g["alpha"], g["lambda"], g["retain_acc"], g["forget_acc"]):
                    ax.annotate(f"{a:g},{l:g}", (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
            for m, (marker, color) in MARK.items():
                if m not in r["methods"]:
                    continue
                k = r["methods"].index(m)
                ax.scatter(r["rows"]["retain_acc"][k], r["rows"]["forget_acc"][k], marker=marker, s=90,
                           color=color, label=m if m not in seen else None, zorder=3)
                seen.add(m)
        fig.colorbar(sc, ax=ax, label="log10 alpha (size: lambda)")
        ax.set_xlabel("D_r accuracy (retained)")
        ax.set_ylabel("D_f accuracy (forgotten)")
        ax.set_title(f"forget {key} ({len(group)} run(s))")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    lethe_h5.save(fig, os.path.join(out, "unlearn_tradeoff.png"))


if __name__ == "__main__":
    lethe_h5.run_main(main)
