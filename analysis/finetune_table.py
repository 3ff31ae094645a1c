#!/usr/bin/env python3
"""Markdown table of the fine-tuning study (jobs/finetune_study.sh).

    /usr/bin/python3 analysis/finetune_table.py runs/finetune > results/finetune/summary.md

One row per cell and remedy: seeds, mean, std, min, max of the final test accuracy
(percent), failed runs and diverged runs, and the paired difference against plain
(mean and 95% interval, percentage points). Definitions in finetune_stats.py.
"""
import argparse
import math

from finetune_stats import LABELS, REMEDIES, cells, paired, summary


def pct(v):
    return "n/a" if math.isnan(v) else f"{100 * v:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="the study's directory of run directories (runs/finetune)")
    a = ap.parse_args()
    cs = cells(a.root)
    print("| samples/class | lr | remedy | seeds | mean | std | min | max | failed | diverged | "
          "vs plain: mean diff [95% CI] |")
    print("|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|---|")
    for (spc, lr) in sorted(cs):
        c = cs[(spc, lr)]
        for r in REMEDIES:
            if r not in c:
                continue
            seeds, acc, ndiv, chance = c[r]
            s = summary(acc, chance)
            diff = ""
            if r != "plain" and "plain" in c:
                m, lo, hi, n = paired(seeds, acc, c["plain"][0], c["plain"][1])
                diff = f"{100 * m:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
            print(f"| {spc} | {lr:g} | {LABELS.get(r, r)} | {s['n']} | {pct(s['mean'])} | "
                  f"{pct(s['std'])} | {pct(s['min'])} | {pct(s['max'])} | {s['failed']} | {ndiv} | "
                  f"{diff} |")


if __name__ == "__main__":
    main()
