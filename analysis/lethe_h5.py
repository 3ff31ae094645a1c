"""Reading lethe metrics files (RUN_DIR/metrics.h5) for the scripts in analysis/.

Shared by every script here: opening a run (a run directory or the file
itself), datasets a script needs (with a clear error when absent), the
continual-learning metrics recomputed from /cl/acc, and the grouping of runs
by deck that `lethe report` uses. Layout of the file (DESIGN.md, section 5):

  /train/loss, /train/lr, /train/step_time      float64 [steps]
  /ranks/step_time                              float64 [P, steps]
  /epoch/{train,test}_{loss,acc}, samples_per_s, time   float64 [epochs]
  /cl/acc, /cl/acc_task_il [T, T]; /cl/acc_init [T]; /cl attributes ACC, BWT, FWT, forgetting
  root attributes: deck, lethe_version, git_revision, ranks, seed, test_acc, ...

Run the scripts with Debian's interpreter (/usr/bin/python3 with python3-h5py,
python3-numpy and python3-matplotlib).
"""
import argparse
import math
import os
import sys

import numpy as np

try:
    import h5py
except ImportError as e:  # pragma: no cover - depends on the interpreter
    sys.exit(f"{os.path.basename(sys.argv[0])}: error: cannot import h5py ({e}); "
             "run with Debian's /usr/bin/python3 (apt-get install python3-h5py)")

CL_NAMES = ("ACC", "BWT", "FWT", "forgetting")


class MetricsError(Exception):
    """A missing or foreign file, or a dataset that a script needs."""


def metrics_path(arg):
    """RUN_DIR -> RUN_DIR/metrics.h5; a file stays itself. Both must exist."""
    if os.path.isdir(arg):
        path = os.path.join(arg, "metrics.h5")
        if not os.path.isfile(path):
            raise MetricsError(f"run directory '{arg}' has no metrics.h5 "
                               "(lethe train writes RUN_DIR/metrics.h5)")
        return path
    if not os.path.exists(arg):
        raise MetricsError(f"run directory or metrics file '{arg}' does not exist")
    if not os.path.isfile(arg):
        raise MetricsError(f"'{arg}' is not a regular file")
    return arg


def _text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _text(v[()])
    return v


class Run:
    """One run's metrics file, open read-only. Use as a context manager or close()."""

    def __init__(self, arg):
        self.path = metrics_path(arg)
        self.dir = os.path.dirname(self.path) or "."
        try:
            try:  # no file lock: the metrics of a running job can be read
                self.f = h5py.File(self.path, "r", locking=False)
            except TypeError:  # h5py < 3.5
                self.f = h5py.File(self.path, "r")
        except OSError as e:
            raise MetricsError(f"'{self.path}' is not a readable HDF5 file "
                               f"(expected a lethe metrics file, RUN_DIR/metrics.h5): {e}")
        if "lethe_version" not in self.f.attrs:
            hint = " (it looks like a lethe dataset file)" if "num_classes" in self.f.attrs else ""
            self.f.close()
            raise MetricsError(f"'{self.path}' is not a lethe metrics file: "
                               f"it has no root attribute lethe_version{hint}")

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def get(self, name):
        """Dataset `name` as a float64 array, or None when absent."""
        if name not in self.f:
            return None
        obj = self.f[name]
        if not isinstance(obj, h5py.Dataset):
            raise MetricsError(f"'{self.path}': {name} is not a dataset")
        return np.asarray(obj[...], dtype=np.float64)

    def need(self, name, purpose, ndim=None):
        """Dataset `name`; a MetricsError naming the file, the dataset and what needs it when absent."""
        v = self.get(name)
        if v is None:
            raise MetricsError(f"'{self.path}' has no dataset {name} (needed for {purpose})")
        if ndim is not None and v.ndim != ndim:
            raise MetricsError(f"'{self.path}': {name} has {v.ndim} dimension(s), expected {ndim}")
        return v

    def attr(self, name, obj="/"):
        """A scalar attribute (str or float), or None when absent."""
        if obj not in self.f or name not in self.f[obj].attrs:
            return None
        v = _text(self.f[obj].attrs[name])
        if isinstance(v, str):
            return v
        try:
            return float(v)
        except (TypeError, ValueError):
            return None

    def num(self, name):
        """A numeric root attribute as float, NaN when absent."""
        v = self.attr(name)
        return v if isinstance(v, float) else math.nan

    @property
    def deck(self):
        return self.attr("deck")

    @property
    def seed(self):
        s = self.num("seed")
        if math.isnan(s) and self.deck:
            s = deck_seed(self.deck)
        return s

    def cl(self, which="/cl/acc"):
        """(R, metrics) for a CL matrix; None when absent. FWT uses /cl/acc_init for class-IL only."""
        R = self.get(which)
        if R is None:
            return None
        if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
            raise MetricsError(f"'{self.path}': {which} has shape {R.shape}, expected a square T x T matrix")
        b = self.get("/cl/acc_init") if which == "/cl/acc" else None
        if b is not None and b.shape != (R.shape[0],):
            raise MetricsError(f"'{self.path}': /cl/acc_init has shape {b.shape}, expected ({R.shape[0]},)")
        return R, cl_metrics(R, b)

    def summary(self):
        """The values `lethe report` compares across runs (NaN when absent)."""
        s = {"test_acc": self.num("test_acc"), "test_loss": self.num("test_loss"),
             "samples_per_s": self.num("samples_per_s")}
        cl = self.cl()
        for k in CL_NAMES:
            s[k] = cl[1][k] if cl else math.nan
        return s


def rows_complete(R):
    """Leading rows of R that are all finite: the tasks trained so far."""
    for i in range(R.shape[0]):
        if not np.all(np.isfinite(R[i])):
            return i
    return R.shape[0]


def cl_metrics(R, b=None):
    """ACC, BWT, FWT, forgetting of the leading k x k block of R (k = tasks trained so far).

    0-based, T = k:  ACC = mean_j R[T-1][j];  BWT = mean_{j<T-1} (R[T-1][j] - R[j][j]);
    FWT = mean_{j>=1} (R[j-1][j] - b[j]);  forgetting = mean_{j<T-1} (max_{l<T-1} R[l][j] - R[T-1][j]).
    Means over empty sets (one task) and FWT without b are NaN. Also returns k.
    """
    R = np.asarray(R, dtype=np.float64)
    k = rows_complete(R)
    m = {name: math.nan for name in CL_NAMES}
    m["k"] = k
    if k < 1:
        return m
    last = R[k - 1, :k]
    m["ACC"] = float(np.mean(last))
    if k < 2:
        return m
    j = np.arange(k - 1)
    m["BWT"] = float(np.mean(last[:-1] - R[j, j]))
    m["forgetting"] = float(np.mean(np.max(R[: k - 1, : k - 1], axis=0) - last[:-1]))
    if b is not None:
        jj = np.arange(1, k)
        m["FWT"] = float(np.mean(R[jj - 1, jj] - np.asarray(b, dtype=np.float64)[jj]))
    return m


def _ini_entries(deck):
    """(section, key, value) of each key line of INI text, trimmed."""
    sec = ""
    for line in deck.split("\n"):
        t = line.strip()
        if not t or t[0] in ";#":
            continue
        if t[0] == "[":
            sec = t[1:].split("]", 1)[0].strip()
            continue
        if "=" not in t:
            continue
        key, val = t.split("=", 1)
        yield sec, key.strip(), val.strip()


def deck_lines(deck):
    """The deck as '[section] key = value' lines without [run] seed and [run] out."""
    return [f"[{s}] {k} = {v}" for s, k, v in _ini_entries(deck)
            if not (s == "run" and k in ("seed", "out"))]


def deck_seed(deck):
    for s, k, v in _ini_entries(deck):
        if s == "run" and k == "seed":
            try:
                return float(v)
            except ValueError:
                return math.nan
    return math.nan


def group_runs(runs):
    """Groups (lists of runs, in order of first appearance) of runs whose decks
    differ only in [run] seed and [run] out; a run without a deck is alone."""
    groups, keys = [], []
    for r in runs:
        key = "\n".join(deck_lines(r.deck)) if r.deck is not None else None
        for i, k in enumerate(keys):
            if key is not None and k == key:
                groups[i].append(r)
                break
        else:
            groups.append([r])
            keys.append(key)
    return groups


def group_differences(groups):
    """Per group: its deck lines that some other group (with a deck) lacks."""
    sets = [set(deck_lines(g[0].deck)) if g[0].deck is not None else None for g in groups]
    out = []
    for i, s in enumerate(sets):
        if s is None:
            out.append(["(no deck attribute)"])
            continue
        others = [o for j, o in enumerate(sets) if j != i]
        out.append([line for line in deck_lines(groups[i][0].deck)
                    if any(o is not None and line not in o for o in others)])
    return out


def mean_std(values):
    """(mean, sample std, n) over the finite values; std NaN for n < 2."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan, int(v.size)


def moving_average(x, window):
    """Trailing mean over `window` values (valid part only): length len(x) - window + 1."""
    x = np.asarray(x, dtype=np.float64)
    window = max(1, min(int(window), x.size))
    c = np.cumsum(np.insert(x, 0, 0.0))
    return (c[window:] - c[:-window]) / window


# ------------------------------------------------------------------ script plumbing

def parser(doc, runs_nargs=None):
    """argparse with the script's docstring, the run argument(s) and --out DIR."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if runs_nargs:
        p.add_argument("runs", nargs=runs_nargs, metavar="RUN",
                       help="run directories or metrics.h5 files")
    else:
        p.add_argument("run", metavar="RUN", help="a run directory (with metrics.h5) or a metrics file")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="directory for the PNG files (default: the run directory)")
    return p


def out_dir(out, default):
    d = out if out else default
    os.makedirs(d, exist_ok=True)
    return d


def pyplot():
    """matplotlib.pyplot with the Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path):
    fig.savefig(path, dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    print(f"wrote {path}")
    return path


def run_main(fn):
    """Run fn(); a MetricsError becomes 'script: error: message' and exit status 1."""
    try:
        fn()
    except MetricsError as e:
        print(f"{os.path.basename(sys.argv[0])}: error: {e}", file=sys.stderr)
        sys.exit(1)
