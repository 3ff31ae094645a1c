#!/usr/bin/env python3
"""PyTorch peer of lethe's benchmark (tests/bench/run_bench.sh).

train:  the MLP 784-1024-1024-10 of input/bench_mlp.ini (nn.Linear layers, ReLU,
        PyTorch's default init), SGD with momentum, global batch 128, one epoch of
        the dataset file lethe reads (h5py), drop-last like lethe's batcher. The
        data are loaded and converted to float32 / 255 before the clock starts;
        the timed loop is shuffle + batch gather + forward + backward + step, as
        in lethe's measured loop. Prints samples/s, then test accuracy (untimed).
fisher: the diagonal empirical Fisher as PyTorch users write it: for each of N
        samples, forward, backward of that sample's cross-entropy, F += grad**2.
        Prints samples/s at the median sample time (and on average).

Threads: torch.set_num_threads(T). Debian's torch does its GEMMs in the system
libblas.so.3 (BLIS on this image), whose thread count comes from
BLIS_NUM_THREADS / OMP_NUM_THREADS only, not from torch.set_num_threads: without
them BLIS runs on ONE thread. So this script sets BLIS_NUM_THREADS=T before
torch loads, unless the caller set it or passed --as-installed. BLIS_ARCH_TYPE is left to the caller
(unset: BLIS picks its kernels itself).

Results are printed as lines starting with "RESULT ".
"""
import argparse
import ctypes
import os
import re
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["train", "fisher"])
    p.add_argument("data", help="dataset HDF5 file (/train/x, /train/y, /test/x, /test/y)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--hidden", default="1024,1024")
    p.add_argument("--samples", type=int, default=500, help="fisher: samples to time")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--as-installed", action="store_true",
                   help="leave BLIS_NUM_THREADS alone (unset: BLIS runs torch's GEMMs on one thread)")
    return p.parse_args()


args = parse_args()
if not args.as_installed:
    os.environ.setdefault("BLIS_NUM_THREADS", str(args.threads))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402


def loaded_library(fragment):
    """Path of the first mapped shared object whose name contains fragment."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if fragment in os.path.basename(path):
                    return os.path.realpath(path)
    except OSError:
        pass
    return "?"


def blis_arch(blas_path):
    """Kernel set BLIS picks in this environment: asked of libblis.so.4 next to the
    libblas.so.3 torch loaded (same build and detection; libblas.so.3 exports no
    bli_* symbols). '?' when that is not BLIS."""
    lib = os.path.join(os.path.dirname(blas_path), "libblis.so.4")
    if not os.path.exists(lib):
        return "?"
    try:
        b = ctypes.CDLL(lib)
        b.bli_init()
        b.bli_arch_string.restype = ctypes.c_char_p
        b.bli_info_get_version_str.restype = ctypes.c_char_p
        return "BLIS %s kernels %s" % (b.bli_info_get_version_str().decode(),
                                       b.bli_arch_string(b.bli_arch_query_id()).decode())
    except (OSError, AttributeError):
        return "?"


def describe_torch():
    torch.zeros(2, 2) @ torch.zeros(2, 2)  # make sure the BLAS is loaded
    cfg = torch.__config__.show()
    info = re.findall(r"\b(?:BLAS_INFO|LAPACK_INFO|USE_MKLDNN|USE_OPENMP)=[^,\s]*", cfg)
    cap = [s.strip(" -") for s in cfg.splitlines() if "CPU capability" in s]
    blas = loaded_library("libblas.so")
    print("torch %s: %s; %s" % (torch.__version__, ", ".join(info), "; ".join(cap)))
    print("torch BLAS library %s (%s); torch threads %d, BLIS_NUM_THREADS=%s, "
          "BLIS_ARCH_TYPE=%s" % (blas, blis_arch(blas), torch.get_num_threads(),
                                 os.environ.get("BLIS_NUM_THREADS", "unset"),
                                 os.environ.get("BLIS_ARCH_TYPE", "unset")))


def load_split(f, split):
    x = np.asarray(f[split + "/x"])
    y = np.asarray(f[split + "/y"]).astype(np.int64)
    x = x.reshape(x.shape[0], -1)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)


def make_model(d, classes):
    widths = [d] + [int(w) for w in args.hidden.split(",") if w] + [classes]
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train(xtr, ytr, xte, yte, classes):
    model = make_model(xtr.shape[1], classes)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    lossf = nn.CrossEntropyLoss()
    n, B = xtr.shape[0], args.batch
    steps = n // B  # drop-last, like lethe's batcher
    gen = torch.Generator().manual_seed(args.seed)
    rows, t_train, step_times = 0, 0.0, []
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        for s in range(steps):
            ts = time.perf_counter()
            idx = perm[s * B:(s + 1) * B]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(xb), yb)
            loss.backward()
            opt.step()
            rows += B
            step_times.append(time.perf_counter() - ts)
        t_train += time.perf_counter() - t0
        print("epoch %d  last batch loss %.4f  %.0f samples/s" %
              (epoch + 1, loss.item(), steps * B / (time.perf_counter() - t0)))
    rate = rows / t_train
    # per-step times as lethe's metrics.h5 /train/step_time: the median resists
    # bursts of load from other processes on a shared machine
    median_rate = B / float(np.median(step_times))
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).double().mean().item()
    print("torch train: %d steps of batch %d, %.0f samples/s (%.0f at the median step), "
          "test accuracy %.4f" % (rows // B, B, rate, median_rate, acc))
    print("RESULT torch_train_samples_per_s=%.1f torch_median_samples_per_s=%.1f test_acc=%.4f"
          % (rate, median_rate, acc))


def fisher(xtr, ytr, classes):
    model = make_model(xtr.shape[1], classes)
    params = list(model.parameters())
    F = [torch.zeros_like(p) for p in params]
    lossf = nn.CrossEntropyLoss(reduction="sum")
    N = min(args.samples, xtr.shape[0])
    warm = min(20, N)

    def one(i):
        model.zero_grad(set_to_none=True)
        lossf(model(xtr[i:i + 1]), ytr[i:i + 1]).backward()
        with torch.no_grad():
            for f, p in zip(F, params):
                f.addcmul_(p.grad, p.grad)

    for i in range(warm):
        one(i)
    for f in F:
        f.zero_()
    times = []
    for i in range(N):
        ts = time.perf_counter()
        one(i)
        times.append(time.perf_counter() - ts)
    dt = sum(times)
    total = sum(f.sum().item() for f in F)
    print("torch fisher (single-sample loop): %d samples in %.2f s (%.0f samples/s on average), "
          "sum(F) = %.4g" % (N, dt, N / dt, total))
    # the median sample, like bench_gemm's median Fisher pass: robust to other load
    print("RESULT torch_fisher_samples_per_s=%.1f torch_fisher_mean_samples_per_s=%.1f" %
          (1.0 / float(np.median(times)), N / dt))

def main():
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    describe_torch()
    with h5py.File(args.data, "r") as f:
        classes = int(f.attrs["num_classes"]) if "num_classes" in f.attrs else None
        xtr, ytr = load_split(f, "train")
        xte, yte = load_split(f, "test") if args.mode == "train" else (None, None)
    if classes is None:
        classes = int(ytr.max().item()) + 1
    if args.mode == "train":
        train(xtr, ytr, xte, yte, classes)
    else:
        fisher(xtr, ytr, classes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
