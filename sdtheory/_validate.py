"""Parameter checks, once: every public entry point validates through these functions.

Each check returns the value in its canonical type or raises ``ValueError`` with one line that
names the parameter, its valid range and the value received. The command line turns that
error into exit code 2 (``sdtheory.cli``).
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

__all__ = [
    "as_int",
    "as_float",
    "check_positive",
    "check_choice",
    "set_checked",
    "check_sizes",
    "check_features",
    "check_lam",
    "check_eta",
    "check_K",
    "check_rounds",
    "check_round_indices",
    "check_seed",
    "check_labels",
    "check_classes",
    "check_targets",
    "count_matrix",
    "check_counts",
    "check_out_dir",
]

LAM_MIN, LAM_MAX = 1e-8, 1e3
"""Range of the ridge lam that every solver and formula accepts (docs/theory.md section 2.3),
the range in which they are validated. Below 1e-8 the fixed-point logits s M (T - P),
s = 1/(N lam), carry float64 round-off errors of eps s ||M||_inf, which reach 1e-9 to 1e-8
on the reference models: the exact certificate can no longer be pushed to its tolerance, and
the closed form's powers of 1/lam overflow (lam = 1e-300 gave residuals of 1e282). Above 1e3
every output lies within about 1e-4 of 1/K, students after a few rounds within round-off of
it, and accuracy is the uniform 1/K (docs/theory.md section 9)."""

ROUNDS_MAX = 100_000
"""Most rounds a run may ask for (each round is one training)."""


def as_int(value, name: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as a Python int in [lo, hi] (either bound optional), else ValueError."""
    bad = isinstance(value, bool) or not isinstance(value, (numbers.Real, np.integer))
    if not bad and not isinstance(value, (numbers.Integral, np.integer)):
        bad = not math.isfinite(float(value)) or float(value) != int(value)
    if bad:
        raise ValueError(f"{name} must be an integer{_range(lo, hi)}, got {value!r}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name} must be an integer{_range(lo, hi)}, got {v}")
    return v


def _range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def as_float(value, name: str) -> float:
    """``value`` as a finite Python float (bool and strings refused), else ValueError."""
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (numbers.Real, np.floating,
                                                                       np.integer)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return v


def check_positive(value, name: str) -> float:
    """``value`` as a finite float > 0, else ValueError."""
    v = as_float(value, name)
    if not v > 0:
        raise ValueError(f"{name} must be > 0, got {v:g}")
    return v


def check_choice(value, choices, name: str):
    """``value`` if it is one of ``choices``, else ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def set_checked(config, field: str, check, *args, **kwargs):
    """Set a field of a frozen dataclass (in its ``__post_init__``) to its checked, canonical
    value ``check(value, *args, **kwargs)``, and return that value."""
    value = check(getattr(config, field), *args, **kwargs)
    object.__setattr__(config, field, value)
    return value


def check_sizes(sizes, K: int | None = None, name: str = "sizes") -> np.ndarray:
    """Class sizes n_k >= 1 as an int64 array: one int for all K classes (K given), or a
    sequence of K ints (of any length when K is None)."""
    if np.ndim(sizes) == 0 and K is not None:
        out = np.full(K, as_int(sizes, name), dtype=np.int64)
    else:
        seq = np.ndim(sizes) == 1
        out = np.array([as_int(v, name) for v in sizes] if seq else [], dtype=np.int64)
        if not seq or (K is not None and out.size != K):
            want = "a sequence of class sizes" if K is None else \
                f"an int or a sequence of K = {K} class sizes"
            raise ValueError(f"{name} must be {want}, got {out.size if seq else sizes!r}")
    if np.any(out < 1):
        k = int(np.flatnonzero(out < 1)[0])
        raise ValueError(f"class sizes n_k must be >= 1, got {name}[{k}] = {out[k]}")
    return out


def check_features(X, name: str = "X", *, min_rows: int = 1) -> np.ndarray:
    """Features as a finite (N, D) float64 array, N >= ``min_rows`` samples, D >= 1."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {X.dtype}")
    if X.ndim != 2 or X.shape[0] < max(1, min_rows) or X.shape[1] < 1:
        rows = f" with N >= {min_rows}" if min_rows > 1 else ""
        raise ValueError(f"{name} must be an (N, D) matrix (samples x features){rows}, got "
                         f"shape {X.shape}")
    X = X.astype(np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"{name} must be finite: it contains NaN or inf (first at row {i}, "
                         f"column {j})")
    return X


def check_lam(lam, *, lo: float = LAM_MIN, hi: float = LAM_MAX) -> float:
    """lam: a finite number in [:data:`LAM_MIN`, :data:`LAM_MAX`] (> 0: the ridge makes the
    problem strictly convex; the bounds: the validated range)."""
    try:
        v = as_float(lam, "lam")
    except ValueError:
        v = None
    if v is None or not v > 0 or v < lo or v > hi:
        raise ValueError(f"lam must be a number in [{lo:g}, {hi:g}] (the validated range), "
                         f"got {lam!r}")
    return v


def check_eta(eta) -> float:
    """eta: a noise rate in [0, 1)."""
    try:
        v = as_float(eta, "eta")
    except ValueError:
        v = None
    if v is None or not 0.0 <= v < 1.0:
        raise ValueError(f"eta must be a number in [0, 1), got {eta!r}")
    return v


K_MAX = 100_000
"""Most classes a problem may have: the group-reduced problems hold (K, K) and (K, K, K)
arrays, which the memory check refuses long before this bound; the bound keeps the Python
structures built before that check (class sizes, labels) small."""


def check_K(K) -> int:
    """K: number of classes, an integer in [2, :data:`K_MAX`]."""
    return as_int(K, "K (number of classes)", lo=2, hi=K_MAX)


def check_rounds(rounds) -> int:
    """rounds: R >= 0 (rounds 0..R are trained), at most :data:`ROUNDS_MAX`."""
    return as_int(rounds, "rounds", lo=0, hi=ROUNDS_MAX)


def check_round_indices(r, name: str = "r (round)") -> np.ndarray:
    """A round index or an array of them: integers in [0, :data:`ROUNDS_MAX`], as int64 of
    the same shape (a negative or fractional round has no outputs on the simplex)."""
    try:
        a = np.asarray(r)
    except ValueError:
        a = np.asarray(None)
    if a.dtype.kind in "iu" and (not a.size or (a.min() >= 0 and a.max() <= ROUNDS_MAX)):
        return a.astype(np.int64)
    if a.dtype.kind in "iuf":
        f = a.astype(np.float64)
        bad = ~(np.isfinite(f) & (f == np.round(f)) & (f >= 0) & (f <= ROUNDS_MAX))
        if not bad.any():
            return f.astype(np.int64)
        got = a.reshape(-1)[int(np.flatnonzero(bad.reshape(-1))[0])]
        got = got.item()
    else:
        got = r
    raise ValueError(f"{name} must be an integer in [0, {ROUNDS_MAX}] (or an array of them), "
                     f"got {got!r}")


def check_seed(seed) -> int:
    """seed: a non-negative integer (numpy's generators refuse negative seeds)."""
    return as_int(seed, "seed", lo=0)


def check_labels(labels, N: int | None = None, K: int | None = None,
                 name: str = "labels") -> np.ndarray:
    """Integer class labels as int64: a 1-D array (of N entries, if N is given), in 0..K-1
    (K given) or >= 0. Whole floats are accepted (feature files may store labels so)."""
    y = np.asarray(labels)
    ok = y.ndim == 1 and (N is None or y.shape == (N,))
    if ok and y.size and y.dtype.kind not in "iu":
        ok = y.dtype.kind == "f" and bool(np.all(np.isfinite(y)) and np.all(y == np.round(y)))
    if not ok:
        count = "a 1-D array" if N is None else f"a 1-D array of {N}"
        raise ValueError(f"{name} must hold integer class labels ({count}), got shape "
                         f"{y.shape}, dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and K is not None and (y.min() < 0 or y.max() >= K):
        bad = y.min() if y.min() < 0 else y.max()
        raise ValueError(f"{name} must lie in 0..K-1 = 0..{K - 1}, got label {int(bad)}")
    if y.size and y.min() < 0:
        raise ValueError(f"{name} must hold labels >= 0, got {int(y.min())}")
    return y


def check_classes(y, name: str = "labels") -> np.ndarray:
    """Class sizes of labels y (as :func:`check_labels` returns them) in which every class
    0..K-1, K = 1 + the largest label, has a sample and K >= 2: the (K,) int64 counts."""
    K = int(y.max()) + 1 if y.size else 0
    if K > y.size:                       # refused before K counters are allocated
        raise ValueError(f"{name} has label {K - 1}, but its {y.size} samples cannot cover the "
                         f"K = {K} classes 0..{K - 1} (every class needs a sample)")
    if K < 2:
        raise ValueError(f"{name} must hold at least 2 classes (K >= 2), got K = {K}")
    sizes = np.bincount(y, minlength=K)
    if np.any(sizes == 0):
        raise ValueError(f"every class 0..K-1 = 0..{K - 1} must have a sample: class "
                         f"{int(np.flatnonzero(sizes == 0)[0])} is absent from {name}")
    return sizes


def check_targets(T, shape: tuple, name: str = "T", *, simplex: bool = True) -> np.ndarray:
    """Targets of the given shape whose rows (last axis) are probability distributions.

    ``simplex=False`` (the linearised form, whose outputs may leave the simplex) only asks for
    rows summing to 1.
    """
    T = np.asarray(T, dtype=np.float64)
    if T.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (units x classes), got {T.shape}")
    if not np.all(np.isfinite(T)):
        raise ValueError(f"{name} must be finite")
    if (simplex and np.any(T < -1e-12)) or np.any(np.abs(T.sum(axis=-1) - 1.0) > 1e-9):
        raise ValueError(f"every row of {name} must be a distribution (entries >= 0, sum 1)")
    return T


def count_matrix(counts, *, integer: bool = True, name: str = "counts") -> np.ndarray:
    """A K x K count (or weight) matrix: square, K >= 2, non-negative, every row sum > 0.

    ``integer=True`` asks for integer entries and returns int64; otherwise float64.
    """
    try:
        C = np.asarray(counts)
    except ValueError:
        raise ValueError(f"{name} must be a K x K matrix (a list of K rows of K numbers); "
                         "got rows of different lengths") from None
    if C.dtype == object or C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"{name} must be a square K x K matrix (K rows of K numbers), "
                         f"got shape {C.shape if C.dtype != object else 'ragged'}")
    if C.shape[0] < 2:
        raise ValueError(f"{name} needs K >= 2 classes, got K = {C.shape[0]}")
    if not (np.issubdtype(C.dtype, np.integer) or np.issubdtype(C.dtype, np.floating)):
        raise ValueError(f"{name} must be numeric, got dtype {C.dtype}")
    if C.dtype.kind in "iu" and C.min() >= 0:
        # integer entries are finite and whole: only the row sums are left to check (a fast
        # path: solvers and checks validate the same counts many times)
        rows = C.sum(axis=1)
        if rows.min() >= 1:
            return C.astype(np.int64 if integer else np.float64)
    Cf = C.astype(np.float64)
    if not np.all(np.isfinite(Cf)):
        raise ValueError(f"{name} must be finite (it contains NaN or inf)")
    if np.any(Cf < 0):
        i, j = np.argwhere(Cf < 0)[0]
        raise ValueError(f"{name} must be non-negative, got {name}[{i}, {j}] = {C[i, j]}")
    rows = Cf.sum(axis=1)
    if integer:
        if np.any(Cf != np.round(Cf)):
            i, j = np.argwhere(Cf != np.round(Cf))[0]
            raise ValueError(f"{name} must be integers, got {name}[{i}, {j}] = {C[i, j]}")
        if np.any(rows < 1):
            k = int(np.flatnonzero(rows < 1)[0])
            raise ValueError(f"every class needs >= 1 sample: {name} row {k} sums to 0")
        return np.round(Cf).astype(np.int64)
    if np.any(rows <= 0):
        k = int(np.flatnonzero(rows <= 0)[0])
        raise ValueError(f"every {name} row must have a positive sum: row {k} sums to 0")
    return Cf


def check_counts(counts, sizes) -> np.ndarray:
    """Validated (K, K) integer counts whose row k sums to sizes[k], K = len(sizes).

    Raises:
      ValueError: wrong shape, negative or non-integer entries, or a row whose sum differs
        from its class size (naming the row).
    """
    n = np.asarray(sizes, dtype=np.int64).reshape(-1)
    K = n.size
    C = count_matrix(counts)
    if C.shape != (K, K):
        raise ValueError(f"counts must be a {K} x {K} matrix (row = true class, column = given "
                         f"label) for K = {K}, got a {C.shape[0]} x {C.shape[1]} matrix")
    rows = C.sum(axis=1)
    bad = np.flatnonzero(rows != n)
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"counts row {k} sums to {rows[k]}, but class {k} has "
                         f"n_{k} = {n[k]} samples")
    return C


def check_out_dir(path, name: str = "--out") -> str:
    """An output directory that exists or can be created, and is writable.

    Checked before any computation, so that a bad path fails at once and leaves nothing: a
    directory that does not exist yet is created and removed again to prove that it can be.
    """
    path = os.fspath(path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ValueError(f"{name} {path!r} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{name} {path!r} is not writable")
        return path
    parent = existing_parent(path)
    if not os.path.isdir(parent):
        raise ValueError(f"{name} {path!r} cannot be created: {parent!r} is not a directory")
    try:
        os.makedirs(path)
    except OSError as err:
        raise ValueError(f"{name} {path!r} cannot be created: {err.strerror}") from None
    # remove what was created, deepest first, up to the existing parent
    p = os.path.abspath(path)
    while p != parent:
        os.rmdir(p)
        p = os.path.dirname(p)
    return path


def existing_parent(path: str) -> str:
    """The deepest folder of ``path`` (or ``path`` itself) that exists."""
    p = os.path.abspath(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def check_label_weight(alpha, *, softmax: bool = False) -> float:
    """The label weight alpha of label-weighted SD targets: any finite number for the squared
    loss (docs/theory.md section 14; alpha < 0: teacher weight xi = 1 - alpha above 1,
    alpha > 1: xi < 0), and a number in [0, 1] for the softmax loss (``softmax``), whose
    targets alpha Y + (1 - alpha) P must stay on the simplex."""
    a = as_float(alpha, "label weight alpha")
    if softmax and not 0.0 <= a <= 1.0:
        raise ValueError(f"--label-weight must be in [0, 1] for the softmax loss (its targets "
                         f"stay on the simplex; any other value only with the squared loss), "
                         f"got {a:g}")
    return a
