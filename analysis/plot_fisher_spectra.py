#!/usr/bin/env python3
"""Eigenvalue spectra of the K-FAC factors written by `lethe fisher`.

For every dense layer of FILE.h5 (/fisher/<layer>): the eigenvalues of A (inputs,
with the bias 1) and of G (pre-activation gradients), in descending order on a
log scale, and the sorted diagonal Fisher of the layer's weights; the title of
each panel gives the relative Frobenius errors of the diagonal and Kronecker
approximations on the layer's random weight block (attributes err_diag,
err_kfac). Writes fisher_spectra.png next to the file (or into --out).

usage: plot_fisher_spectra.py FILE.h5 [--out DIR]
"""
import argparse
import os
import sys

import numpy as np

import lethe_h5


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="HDF5 file of `lethe fisher`")
    p.add_argument("--out", default=None, help="directory for the PNG (default: the file's)")
    args = p.parse_args()
    import h5py
    if not os.path.exists(args.file):
        raise lethe_h5.MetricsError(f"{args.file}: no such file")
    layers = []
    with h5py.File(args.file, "r") as f:
        if "fisher" not in f:
            raise lethe_h5.MetricsError(f"{args.file}: no /fisher group (not written by `lethe fisher`?)")
        for name in f["fisher"]:
            g = f["fisher"][name]
            for ds in ("eig_A", "eig_G", "diag_W"):
                if ds not in g:
                    raise lethe_h5.MetricsError(f"{args.file}: /fisher/{name}/{ds} missing")
            layers.append((name, g["eig_A"][:], g["eig_G"][:], g["diag_W"][:],
                           float(g.attrs.get("err_diag", np.nan)), float(g.attrs.get("err_kfac", np.nan))))
    if not layers:
        raise lethe_h5.MetricsError(f"{args.file}: /fisher has no layers")
    plt = lethe_h5.pyplot()
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.8), squeeze=False)
    for ax, (name, ea, eg, dw, e_d, e_k) in zip(axes[0], layers):
        for v, lab, col in ((ea, f"A ({ea.size})", "tab:blue"), (eg, f"G ({eg.size})", "tab:orange"),
                            (dw, f"diag F of W ({dw.size})", "tab:green")):
            v = np.sort(np.asarray(v, dtype=float))[::-1]
            v = v[v > 0]
            if v.size:
                ax.plot(np.arange(1, v.size + 1) / v.size, v, lw=1.4, color=col, label=lab)
        ax.set_yscale("log")
        ax.set_xlabel("rank / size")
        ax.set_title(f"{name}: block error diag {e_d:.2f}, K-FAC {e_k:.2f}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("eigenvalue / diagonal entry")
    out = lethe_h5.out_dir(args.out, os.path.dirname(os.path.abspath(args.file)))
    lethe_h5.save(fig, os.path.join(out, "fisher_spectra.png"))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    lethe_h5.run_main(main)
