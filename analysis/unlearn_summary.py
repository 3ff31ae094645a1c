#!/usr/bin/env python3
"""Summary of a `lethe unlearn` study (jobs/unlearn_study.sh) as a markdown table.

RUNS is the study's run root (runs/unlearn): every RUNS/sSEED/JOB/metrics.h5
with an /unlearn group is read; jobs of the same name are averaged over the
seeds (mean +- sample std). For each job and method: test, D_r and D_f
accuracy, the membership-inference score and the attack's AUC, wall time;
for SSD also the time to compute I_D and the speed-ups over retraining with a
stored I_D and including I_D; then the issue's acceptance checks.
"""
import argparse
import glob
import math
import os
import sys

import h5py

import lethe_h5

COLS = ("test_acc", "retain_acc", "forget_acc", "mia", "mia_auc", "wall_time")


def ms(v, scale=1.0, prec=1):
    m, s, n = lethe_h5.mean_std(v)
    if n == 0:
        return "-"
    return f"{m * scale:.{prec}f}" + (f" ± {s * scale:.{prec}f}" if n > 1 else "")


def params_of(ckpt):
    """The parameter count of the snapshot the run started from (NaN when unreadable)."""
    try:
        with h5py.File(ckpt, "r") as f:
            return float(f.attrs["params"])
    except (OSError, KeyError, TypeError):
        return math.nan


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", metavar="RUNS", help="the study's run root, e.g. runs/unlearn")
    p.add_argument("--out", metavar="FILE", default=None, help="write the markdown here (default: stdout)")
    args = p.parse_args()
    jobs = {}
    for path in sorted(glob.glob(os.path.join(args.runs, "s*", "*", "metrics.h5"))):
        with lethe_h5.Run(path) as run:
            if run.attr("methods", "/unlearn") is None:
                continue
            methods = run.attr("methods", "/unlearn").split(",")
            rec = {m: {c: run.need(f"/unlearn/{c}", "the table", ndim=1)[i] for c in COLS}
                   for i, m in enumerate(methods)}
            rec["_"] = {k: run.attr(k, "/unlearn") for k in ("id_seconds", "n_forget", "n_train",
                                                               "alpha", "lambda", "forget", "classes")}
            rec["_"]["seed"] = run.seed
            rec["_"]["params"] = run.attr("params", "/unlearn") or params_of(run.attr("checkpoint", "/unlearn"))
            rec["grid"] = {c: run.need(f"/unlearn/grid/{c}", "the SSD grid", ndim=1)
                           for c in ("alpha", "lambda", "retain_acc", "forget_acc", "mia", "selected")}
            jobs.setdefault(os.path.basename(os.path.dirname(path)), []).append(rec)
    if not jobs:
        raise lethe_h5.MetricsError(f"no unlearn runs under '{args.runs}' (RUNS/sSEED/JOB/metrics.h5)")
    out = []
    w = out.append
    w("# Machine unlearning on Fashion-MNIST (MLP 784-400-400-10)\n")
    w("Mean ± sample std over seeds; accuracies and MIA in %, AUC as a fraction, wall time in s. "
      "D_r / D_f: test samples of the retained / forgotten classes (random forgetting: the whole "
      "test split / the forget samples). MIA: fraction of the forget set the entropy attack calls "
      "member; AUC: the attack's own ROC AUC (members vs test samples), near 0.5 = the attack tells "
      "little.\n")
    checks = []
    for job in sorted(jobs):
        recs = jobs[job]
        info = recs[0]["_"]
        what = info["forget"] if info["forget"] == "random" else f"{info['forget']} {info['classes'] or ''}"
        w(f"## {job}: forget {what} "
          f"({int(info['n_forget'])} of {int(info['n_train'])} samples), seeds "
          f"{', '.join(str(int(r['_']['seed'])) for r in recs)}; SSD alpha {info['alpha']:g}, "
          f"lambda {info['lambda']:g}\n")
        w("| method | test | D_r | D_f | MIA | MIA AUC | wall s | retrain / method |")
        w("|---|--:|--:|--:|--:|--:|--:|--:|")
        for m in ("original", "ssd", "retrain", "finetune", "neggrad"):
            if m not in recs[0]:
                continue
            v = {c: [r[m][c] for r in recs if m in r] for c in COLS}
            ratio = "-"
            if m not in ("original", "retrain") and "retrain" in recs[0]:
                ratio = ms([r["retrain"]["wall_time"] / r[m]["wall_time"] for r in recs], 1, 1)
            wall = "-" if m == "original" else ms(v["wall_time"], 1, 2)
            w(f"| {m} | {ms(v['test_acc'], 100)} | {ms(v['retain_acc'], 100)} | {ms(v['forget_acc'], 100)} "
              f"| {ms(v['mia'], 100)} | {ms(v['mia_auc'], 1, 3)} | {wall} | {ratio} |")
        if "retrain" in recs[0]:
            inc = [r["retrain"]["wall_time"] / (r["ssd"]["wall_time"] + r["_"]["id_seconds"]) for r in recs]
            w(f"\nI_D took {ms([r['_']['id_seconds'] for r in recs], 1, 2)} s (computed once per model, "
              f"stored, reused); SSD with the stored I_D is {ms([r['retrain']['wall_time'] / r['ssd']['wall_time'] for r in recs], 1, 1)}x "
              f"faster than retraining, {ms(inc, 1, 1)}x including I_D.\n")
        g0 = recs[0]["grid"]
        if g0["alpha"].size > 1:
            w("\nSSD grid (mean over the seeds; D_r change against the original, selected in % of the parameters):\n")
            w("| alpha | lambda | D_r change | D_f | MIA | selected |")
            w("|--:|--:|--:|--:|--:|--:|")
            for i in range(g0["alpha"].size):
                dr = [r["grid"]["retain_acc"][i] - r["original"]["retain_acc"] for r in recs]
                w(f"| {g0['alpha'][i]:g} | {g0['lambda'][i]:g} | {ms(dr, 100)} | "
                  f"{ms([r['grid']['forget_acc'][i] for r in recs], 100)} | "
                  f"{ms([r['grid']['mia'][i] for r in recs], 100)} | "
                  f"{ms([r['grid']['selected'][i] / r['_']['params'] for r in recs], 100, 2)} |")
            w("")
        if info["forget"] == "class":
            for r in recs:
                s, o, rt = r["ssd"], r["original"], r.get("retrain")
                tag = f"{job} seed {int(r['_']['seed'])}"
                checks.append((f"{tag}: SSD D_f acc {100 * s['forget_acc']:.2f}% <= 5%", s["forget_acc"] <= 0.05))
                checks.append((f"{tag}: D_r {100 * s['retain_acc']:.2f}% within 3 points of the original's "
                               f"{100 * o['retain_acc']:.2f}%", abs(s["retain_acc"] - o["retain_acc"]) <= 0.03))
                if rt:
                    checks.append((f"{tag}: MIA {s['mia']:.3f} <= retrain's {rt['mia']:.3f} + 0.1",
                                   s["mia"] <= rt["mia"] + 0.1))
                    a = rt["wall_time"] / s["wall_time"]
                    b = rt["wall_time"] / (s["wall_time"] + r["_"]["id_seconds"])
                    checks.append((f"{tag}: retrain/SSD {a:.1f}x >= 20 (stored I_D)", a >= 20))
                    checks.append((f"{tag}: retrain/(SSD + I_D) {b:.1f}x >= 5", b >= 5))
    w("## Acceptance checks (full-class forgetting)\n")
    for text, good in checks:
        w(f"- {'holds' if good else 'MISSED'}: {text}")
    w(f"\n{sum(g for _, g in checks)} of {len(checks)} hold.")
    text = "\n".join(out) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    lethe_h5.run_main(main)
