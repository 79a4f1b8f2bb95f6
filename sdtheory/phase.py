"""Phase diagrams: one quantity over a grid of two swept parameters (``sdtheory phase``).

Two parameters from {eta, lam, c, d, e, n, K} are swept over ranges (:class:`Axis`), the others
stay as in a base :class:`sdtheory.simulate.SimConfig` (block models only: the two-level and
the three-level superclass model, theory.md section 4). Every cell of the grid is one model and
one corruption; rounds 0..R of self-distillation (SD) run in it, and one of three quantities
colours the cell:

* ``r_star``: the first round r in 0..R whose training accuracy against the true labels is
  100% (undefined, NaN, if no round up to R reaches it);
* ``acc_round_R``: the training accuracy at round R;
* ``pll_gain``: the accuracy of the PLL student (one training on the teacher's top-2 labels,
  theory.md section 6) minus the best SD accuracy over rounds 0..R,

    pll_gain = acc(PLL) - max_{r = 0..R} acc(round r),

  so pll_gain > 0 where one PLL round beats every SD round up to R.

Accuracy is the strict training accuracy of :func:`sdtheory.distill.accuracy`: a sample counts
as correct only if p(true) exceeds every other output by more than ``TIE_TOL`` = 1e-12.

Two solvers:

* ``exact``: the group-reduced fixed point (E) of theory.md section 2, batched over cells. A cell
  of a K-class model has K^2 units (true class k, given label j), empty groups included with
  weight 0 (they do not act on the others, so the non-empty units are exactly those of
  :class:`sdtheory.solve.GroupSolver`). Cells with the same K share shapes and are solved
  together by :func:`jax.vmap` of a damped Newton iteration with a per-cell backtracking line
  search inside :func:`jax.lax.while_loop`. The Newton direction uses the block structure:
  J = I + s M D with M = (1 - c) I + B diag(m) and B a class-level matrix, so by the Woodbury
  identity one solve costs K^2 Sherman-Morrison inversions of K x K blocks and one
  K^2 x K^2 system (instead of a K^3 x K^3 one). Every solve is certified:
  max |P - softmax(s M (T - P))| <= 1e-10 (:data:`CERT_TOL`); a cell that fails is retried
  from zero logits and, if it fails again, is marked failed (NaN, ``certificate`` column above
  the tolerance) rather than returned.
* ``linear``: the closed form (L) through the per-instance decomposition of theory.md
  section 5, fully vectorised over cells in numpy (no per-cell Python loop).

The results (:class:`PhaseResult`) also carry the closed-form r* of theory.md section 5
(column ``r_star_closed_form``, :func:`closed_form_r_star`) where it applies, for the level
lines of :func:`plot_phase`.

Example:
  >>> import sdtheory as sd; sd.enable_x64()
  >>> from sdtheory.simulate import SimConfig
  >>> res = sweep(SimConfig(K=4, n=500), Axis.parse("eta:0:0.7:8"),
  ...             Axis.parse("lam:1e-5:1e-3:5:log"), solver="linear")   # doctest: +SKIP
  >>> res.data.shape                                                     # doctest: +SKIP
  (5, 8)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from sdtheory import gram, noise
from sdtheory._io import atomic_write
from sdtheory.distill import TIE_TOL, pll_targets
from sdtheory.simulate import SimConfig, load_counts
from sdtheory.solve import SolverError

__all__ = [
    "PARAMS",
    "QUANTITIES",
    "SOLVERS",
    "CERT_TOL",
    "Axis",
    "PhaseResult",
    "sweep",
    "closed_form_r_star",
    "write_csv",
    "read_csv",
    "plot_phase",
    "config_from_args",
    "run_cli",
]

PARAMS = ("eta", "lam", "c", "d", "e", "n", "K")
"""Parameters that can be swept (names of :class:`SimConfig` fields)."""

QUANTITIES = ("r_star", "acc_round_R", "pll_gain")
SOLVERS = ("exact", "linear")

CERT_TOL = 1e-10
"""Largest certificate max |P - softmax(s M (T - P))| accepted for a cell of the exact solver."""

_NEWTON_TOL = 1e-12        # Newton stops below this certificate (as GroupSolver)
_NEWTON_MAX_ITER = 60      # first attempt, warm-started from the previous round
_RETRY_MAX_ITER = 400      # second attempt, from zero logits
_SMALL_CHUNK = 64          # batch size for the last few cells (the other size is `chunk`)
_INT_PARAMS = ("n", "K")

_SYMBOLS = {"eta": r"$\eta$", "lam": r"$\lambda$", "c": "$c$", "d": "$d$", "e": "$e$",
            "n": "$n$", "K": "$K$"}
_LABELS = {"eta": r"noise rate $\eta$", "lam": r"ridge $\lambda$",
           "c": "same-class correlation $c$", "d": "cross-class correlation $d$",
           "e": "cross-superclass correlation $e$", "n": "samples per class $n$",
           "K": "number of classes $K$"}


# --------------------------------------------------------------------------------------------
# Axes
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Axis:
    """One swept parameter: COUNT values from LO to HI, evenly or log-spaced.

    Attributes:
      name: one of :data:`PARAMS`.
      lo, hi: first and last value (lo < hi when count > 1).
      count: number of values (>= 1).
      log: geometric spacing (needs lo > 0).

    n and K take integer values: the spaced values are rounded, and must stay distinct.

    Example:
      >>> Axis.parse("lam:1e-6:1e-2:5:log").values
      array([1.e-06, 1.e-05, 1.e-04, 1.e-03, 1.e-02])
    """

    name: str
    lo: float
    hi: float
    count: int
    log: bool = False

    def __post_init__(self) -> None:
        if self.name not in PARAMS:
            raise ValueError(f"unknown parameter {self.name!r}; sweepable parameters are "
                             f"{', '.join(PARAMS)}")
        if isinstance(self.count, bool) or int(self.count) != self.count:
            raise ValueError(f"{self.name} axis: COUNT must be an integer, got {self.count!r}")
        object.__setattr__(self, "count", int(self.count))
        lo, hi = float(self.lo), float(self.hi)
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)
        if self.count < 1:
            raise ValueError(f"{self.name} axis: COUNT must be >= 1, got {self.count}")
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{self.name} axis: LO and HI must be finite, got {lo}, {hi}")
        if self.count > 1 and not lo < hi:
            raise ValueError(f"{self.name} axis: LO must be < HI when COUNT > 1, got "
                             f"LO = {lo:g}, HI = {hi:g}")
        if self.log and not lo > 0:
            raise ValueError(f"{self.name} axis: a log range needs LO > 0, got LO = {lo:g}")
        v = self.values
        if self.name in _INT_PARAMS and np.unique(v).size != v.size:
            raise ValueError(f"{self.name} axis: {self.count} values from {lo:g} to {hi:g} "
                             f"round to repeated integers; use COUNT <= {np.unique(v).size}")

    @classmethod
    def parse(cls, spec: str) -> Axis:
        """Parse ``NAME:LO:HI:COUNT[:log]`` (e.g. ``eta:0:0.74:75``, ``lam:1e-6:1e-2:41:log``)."""
        parts = str(spec).split(":")
        if len(parts) not in (4, 5) or (len(parts) == 5 and parts[4] != "log"):
            raise ValueError(f"bad range {spec!r}: expected NAME:LO:HI:COUNT or "
                             "NAME:LO:HI:COUNT:log")
        name = parts[0]
        if name not in PARAMS:
            raise ValueError(f"bad range {spec!r}: unknown parameter {name!r}; sweepable "
                             f"parameters are {', '.join(PARAMS)}")
        try:
            lo, hi = float(parts[1]), float(parts[2])
        except ValueError:
            raise ValueError(f"bad range {spec!r}: LO and HI must be numbers") from None
        try:
            count = int(parts[3])
        except ValueError:
            raise ValueError(f"bad range {spec!r}: COUNT must be an integer") from None
        return cls(name, lo, hi, count, len(parts) == 5)

    @property
    def spec(self) -> str:
        """The ``NAME:LO:HI:COUNT[:log]`` string (parses back to an equal axis)."""
        return f"{self.name}:{self.lo!r}:{self.hi!r}:{self.count}" + (":log" if self.log else "")

    @property
    def values(self) -> np.ndarray:
        """(count,) float64 values (integers for n and K)."""
        if self.count == 1:
            v = np.array([self.lo])
        elif self.log:
            v = np.geomspace(self.lo, self.hi, self.count)
        else:
            v = np.linspace(self.lo, self.hi, self.count)
        return np.round(v) if self.name in _INT_PARAMS else v

    @property
    def symbol(self) -> str:
        """The parameter's symbol for axis labels (matplotlib mathtext)."""
        return _SYMBOLS[self.name]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class PhaseResult:
    """A phase diagram: values on the grid y x x.

    Attributes:
      x, y: the swept axes.
      quantity: one of :data:`QUANTITIES`; ``values[quantity]`` is the diagram.
      solver: "exact" or "linear".
      max_rounds: R (rounds 0..R).
      values: column name -> (len(y), len(x)) float64 array, NaN where undefined. Always the
        quantity and ``r_star_closed_form``; ``pll_gain`` adds ``pll_acc`` and ``sd_best_acc``;
        the exact solver adds ``certificate`` (largest certificate of the cell's solves).
      config: the full configuration: base model/noise parameters (swept ones removed), the
        axes as ``NAME:LO:HI:COUNT[:log]``, quantity, solver, max_rounds.
      version: package version that computed it.
    """

    x: Axis
    y: Axis
    quantity: str
    solver: str
    max_rounds: int
    values: dict
    config: dict
    version: str
    info: dict = field(default_factory=dict)

    @property
    def x_values(self) -> np.ndarray:
        return self.x.values

    @property
    def y_values(self) -> np.ndarray:
        return self.y.values

    @property
    def data(self) -> np.ndarray:
        """The diagram of ``quantity``: (len(y), len(x)), NaN where undefined."""
        return self.values[self.quantity]

    @property
    def failed(self) -> np.ndarray:
        """(len(y), len(x)) bool: cells whose exact solve did not certify (never for linear)."""
        cert = self.values.get("certificate")
        if cert is None:
            return np.zeros((self.y.count, self.x.count), dtype=bool)
        return ~(cert <= CERT_TOL)


# --------------------------------------------------------------------------------------------
# The grid: per-cell parameters, validation, models and corruptions (vectorised)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Group:
    """Cells sharing K (hence shapes): everything a solver needs, one row per cell."""

    K: int
    cells: np.ndarray        # (C,) flat cell indices (iy * nx + ix)
    n: np.ndarray            # (C,) samples per class
    lam: np.ndarray          # (C,)
    c: np.ndarray
    d: np.ndarray
    e: np.ndarray
    counts: np.ndarray       # (G, K, K) int64 distinct corruptions
    cfg: np.ndarray          # (C,) index into counts
    superclass_of: np.ndarray | None   # (K,) three-level only

    @property
    def three_level(self) -> bool:
        return self.superclass_of is not None


@dataclass(frozen=True, eq=False)
class _Plan:
    base: SimConfig
    x: Axis
    y: Axis
    quantity: str
    solver: str
    max_rounds: int
    groups: tuple


def _check_base(base: SimConfig, x: Axis, y: Axis) -> None:
    if base.model == "gmm":
        raise ValueError("phase supports block models only (--model block or superclass); "
                         "--model gmm (Gaussian-mixture features) is not supported")
    if base.jitter > 0:
        raise ValueError("phase supports exact block models only; --jitter (a dense jittered "
                         "Gram matrix) is not supported")
    if x.name == y.name:
        raise ValueError(f"the same parameter {x.name!r} is on both axes; sweep two different "
                         "parameters")
    swept = {x.name, y.name}
    if "e" in swept and base.model != "superclass":
        raise ValueError("e only enters the superclass model (--model superclass); the "
                         "two-level block model has no e to sweep")
    if base.counts is not None:
        bad = sorted(swept & {"eta", "n", "K"})
        if bad:
            raise ValueError(f"--counts fixes the corruption (and K, n); it cannot be combined "
                             f"with sweeping {bad[0]}")


def _cell_prefix(x: Axis, y: Axis, X: np.ndarray, Y: np.ndarray, i: int) -> str:
    return f"at {x.name} = {X[i]:g}, {y.name} = {Y[i]:g}: "


def _mu_levels(three: bool, K, n, c, d, e, m):
    """Level eigenvalues and multiplicities, vectorised (as BlockModel.mu / spectrum)."""
    inst = 1.0 - c
    cls = 1.0 - c + n * (c - d)
    if not three:
        return {"global": (cls + K * n * d, np.ones_like(K)), "class": (cls, K - 1),
                "instance": (inst, K * (n - 1))}
    S = K // m
    sup = cls + m * n * (d - e)
    return {"global": (sup + K * n * e, np.ones_like(K)), "superclass": (sup, S - 1),
            "class": (cls, K - S), "instance": (inst, K * (n - 1))}


def _model_of(base: SimConfig, K: int, n: int, c: float, d: float, e: float):
    if base.model == "superclass":
        m = base.classes_per_superclass
        return gram.three_level(K // m, m, n, c, d, e)
    return gram.two_level(K, n, c, d)


def _prepare(base: SimConfig, x: Axis, y: Axis, quantity: str, solver: str,
             max_rounds: int) -> _Plan:
    """Validate every cell (vectorised) and build the per-K groups of cells."""
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if isinstance(max_rounds, bool) or int(max_rounds) != max_rounds or max_rounds < 0:
        raise ValueError(f"max-rounds must be an integer >= 0, got {max_rounds!r}")
    max_rounds = int(max_rounds)
    _check_base(base, x, y)
    Xg, Yg = np.meshgrid(x.values, y.values)
    X, Y = Xg.ravel(), Yg.ravel()
    p = {}
    for name in PARAMS:
        if name == x.name:
            p[name] = X.copy()
        elif name == y.name:
            p[name] = Y.copy()
        else:
            p[name] = np.full(X.size, float(getattr(base, name)))

    def fail(mask, msg):
        i = int(np.flatnonzero(mask)[0])
        raise ValueError(_cell_prefix(x, y, X, Y, i) + msg(i))

    lam = p["lam"]
    bad = ~(np.isfinite(lam) & (lam > 0))
    if bad.any():
        fail(bad, lambda i: f"lam must be a finite number > 0, got lam = {lam[i]:g}")
    if base.counts is None:
        eta = p["eta"]
        bad = ~((eta >= 0) & (eta < 1))
        if bad.any():
            fail(bad, lambda i: f"eta must be in [0, 1), got eta = {eta[i]:g}")
    K, n = p["K"], p["n"]
    bad = (K != np.round(K)) | (K < 2)
    if bad.any():
        fail(bad, lambda i: f"K (number of classes) must be an integer >= 2, got K = {K[i]:g}")
    bad = (n != np.round(n)) | (n < 1)
    if bad.any():
        fail(bad, lambda i: f"n (samples per class) must be an integer >= 1, got n = {n[i]:g}")
    K, n = K.astype(np.int64), n.astype(np.int64)
    three = base.model == "superclass"
    m = base.classes_per_superclass
    if three:
        bad = K % m != 0
        if bad.any():
            fail(bad, lambda i: f"K = {K[i]} must be a multiple of classes-per-superclass "
                                f"m = {m}")
    c, d, e = p["c"], p["d"], p["e"]
    ok = np.isfinite(c) & np.isfinite(d) & (c <= 1)
    ok &= (c > d) & (d > e) & np.isfinite(e) if three else (c > d)
    with np.errstate(invalid="ignore", over="ignore"):
        mus = _mu_levels(three, K, n, c, d, e, m)
        scale = np.ones_like(c)
        for mu, mult in mus.values():
            scale = np.maximum(scale, np.where(mult > 0, np.abs(mu), 0.0))
        for mu, mult in mus.values():
            ok &= ~((mult > 0) & (mu < -gram._PSD_RTOL * scale))
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        try:
            _model_of(base, int(K[i]), int(n[i]), c[i], d[i], e[i])
        except ValueError as err:
            raise ValueError(_cell_prefix(x, y, X, Y, i) + str(err)) from None
        raise ValueError(_cell_prefix(x, y, X, Y, i) + "invalid Gram model")  # pragma: no cover

    groups = []
    for k_val in np.unique(K):
        idx = np.flatnonzero(K == k_val)
        Kk = int(k_val)
        model0 = _model_of(base, Kk, int(n[idx[0]]), c[idx[0]], d[idx[0]], e[idx[0]])
        sup = np.asarray(model0.superclass_of) if three else None
        try:
            counts, cfg = _corruptions(base, Kk, n[idx], p["eta"][idx], sup)
        except ValueError as err:
            raise ValueError(_cell_prefix(x, y, X, Y, int(idx[0])) + str(err)) from None
        groups.append(_Group(K=Kk, cells=idx, n=n[idx], lam=lam[idx], c=c[idx], d=d[idx],
                             e=e[idx], counts=counts, cfg=cfg, superclass_of=sup))
    return _Plan(base=base, x=x, y=y, quantity=quantity, solver=solver,
                 max_rounds=max_rounds, groups=tuple(groups))


def _corruptions(base: SimConfig, K: int, n: np.ndarray, eta: np.ndarray, sup):
    """Distinct count matrices of one K group and each cell's index into them.

    Exact counts are vectorised (floor(n T_kj) off the diagonal, as noise.exact_counts);
    sampled counts call noise.corrupt_sampled once per distinct (n, eta).
    """
    if base.counts is not None:
        C = noise.corruption_from_counts(np.asarray(base.counts), sizes=int(n[0])).counts
        if C.shape != (K, K):
            raise ValueError(f"--counts is {C.shape[0]} x {C.shape[0]}, but K = {K}")
        return C[None], np.zeros(n.size, dtype=np.int64)
    un, ni = np.unique(n, return_inverse=True)
    ue, ei = np.unique(eta, return_inverse=True)
    codes, cfg = np.unique(ni.reshape(-1) * ue.size + ei.reshape(-1), return_inverse=True)
    cfg = np.asarray(cfg).reshape(-1)
    kn, keta = un[codes // ue.size].astype(np.int64), ue[codes % ue.size]
    etas, eta_idx = np.unique(keta, return_inverse=True)
    T = np.stack([noise.transition_matrix(base.noise, K, float(v), superclass_of=sup)
                  for v in etas])
    if base.sampled:
        out = np.empty((codes.size, K, K), dtype=np.int64)
        for g in range(codes.size):
            true = np.repeat(np.arange(K), kn[g])
            out[g] = noise.corrupt_sampled(T[eta_idx[g]], true, base.seed).counts
        return out, cfg
    counts = np.floor(kn[:, None, None] * T[eta_idx] + noise._FLOOR_TOL).astype(np.int64)
    eye = np.eye(K, dtype=bool)
    counts[:, eye] = 0
    diag = kn[:, None] - counts.sum(axis=2)
    if np.any(diag < 0):  # pragma: no cover - only for T_kk ~ 0
        raise ValueError("exact counts exceed n")
    counts[:, eye] = diag
    return counts, cfg


def _levels(g: _Group):
    """Per cell: (diag, Wc) of the unit matrix M = diag I + B diag(m), B_uv = Wc[k_u, k_v]."""
    K = g.K
    eye = np.eye(K)
    Wc = (g.c - g.d)[:, None, None] * eye
    if g.three_level:
        same = (g.superclass_of[:, None] == g.superclass_of[None, :]).astype(np.float64)
        Wc = Wc + (g.d - g.e)[:, None, None] * same + g.e[:, None, None]
    else:
        Wc = Wc + g.d[:, None, None]
    return 1.0 - g.c, Wc


def _averaging(g: _Group, m: int) -> dict[str, np.ndarray]:
    """Per cell a_j = mu_j / (mu_j + K N lam) for every level (theory.md section 3)."""
    K = np.full(g.n.size, g.K)
    mus = _mu_levels(g.three_level, K, g.n, g.c, g.d, g.e, m)
    KNlam = g.K * (g.K * g.n) * g.lam
    return {name: mu / (mu + KNlam) for name, (mu, _) in mus.items()}


# --------------------------------------------------------------------------------------------
# Closed form r* (theory.md section 5)
# --------------------------------------------------------------------------------------------

def closed_form_r_star(delta, a2, a3) -> np.ndarray:
    """Vectorised closed-form r* of theory.md section 5.

    The smallest r >= 0 with the strict inequality (a2/a3)^(r+1) > 1 + 1/Delta, found from
    floor(log(1 + 1/Delta) / log(a2/a3)) and then checked by evaluating the inequality (an
    exact integer is decided by the strict inequality). Delta = +inf (no mislabelled sample)
    gives 0. NaN where undefined: Delta <= 0 or NaN, a3 <= 0, or a2 <= a3.

    Args:
      delta, a2, a3: broadcastable arrays (a2, a3: class and instance factors).

    Returns:
      float64 array of r* (integer values) or NaN.

    Example:
      >>> closed_form_r_star([0.5, 0.0, np.inf], 0.9, 0.3)
      array([ 1., nan,  0.])
    """
    delta, a2, a3 = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64)
                                          for v in (delta, a2, a3)))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ok = (delta > 0) & (a3 > 0) & (a2 > a3)
        target = 1.0 + 1.0 / delta                       # 1 for Delta = inf
        ratio = a2 / a3
        est = np.log(target) / np.log1p((a2 - a3) / a3)
        r = np.where(ok, np.maximum(0.0, np.floor(np.where(ok, est, 0.0))), 0.0)
        # Strict inequality decides: move down while round r-1 already satisfies it, up while
        # round r does not (the estimate is off by at most one or two from rounding).
        for _ in range(4):
            down = ok & (r > 0) & (ratio ** r > target)
            r = np.where(down, r - 1, r)
        for _ in range(4):
            up = ok & ~(ratio ** (r + 1) > target)
            r = np.where(up, r + 1, r)
        if np.any(ok & ~(ratio ** (r + 1) > target)) or np.any(
                ok & (r > 0) & (ratio ** r > target)):  # pragma: no cover
            raise ArithmeticError("closed-form r*: the floor estimate did not settle")
    return np.where(ok, r, np.nan)


def _closed_form_column(g: _Group, a: dict) -> np.ndarray:
    """r* by the closed form where it applies (balanced counts; three-level: flips only inside
    the true superclass), 0 without mislabelled samples, NaN elsewhere."""
    C = g.counts
    K = g.K
    off = ~np.eye(K, dtype=bool)
    n = C.sum(axis=2)[:, 0].astype(np.float64)
    diag = np.einsum("gkk->gk", C).astype(np.float64)
    gap = np.where(off[None] & (C > 0), (diag[:, :, None] - C) / n[:, None, None], np.inf)
    delta = gap.min(axis=(1, 2))                               # +inf: no mislabelled sample
    balanced = np.all(C.sum(axis=1) == C.sum(axis=2)[:, :1], axis=1)
    applies = balanced
    if g.three_level:
        s = g.superclass_of
        applies = applies & ~np.any((C > 0) & (s[:, None] != s[None, :])[None], axis=(1, 2))
    r = closed_form_r_star(delta[g.cfg], a["class"], a["instance"])
    return np.where(applies[g.cfg], r, np.nan)


# --------------------------------------------------------------------------------------------
# Linear solver: closed form (L) through the per-instance decomposition, vectorised
# --------------------------------------------------------------------------------------------

def _level_names(three: bool) -> tuple[str, ...]:
    return ("global", "superclass", "class", "instance") if three else ("global", "class",
                                                                          "instance")


def _class_means(g: _Group, V: np.ndarray) -> dict[str, np.ndarray]:
    """Means of per-unit rows V (G, K, K, K): unit (k, j) weighted by counts C_kj.

    Returns name -> (G, K, K) arrays indexed [config, true class k, output class]: the global,
    superclass (three-level) and class means seen by a unit of class k.
    """
    C = g.counts.astype(np.float64)
    n = C.sum(axis=2)                                          # (G, K)
    cls = np.einsum("gkj,gkjl->gkl", C, V) / n[:, :, None]    # class means
    out = {"class": cls}
    glob = cls.mean(axis=1)                                    # equal sizes: mean of classes
    out["global"] = np.broadcast_to(glob[:, None, :], cls.shape)
    if g.three_level:
        s = g.superclass_of
        S = int(s.max()) + 1
        sup = np.zeros((C.shape[0], S, g.K))
        np.add.at(sup, (slice(None), s), cls)
        sup /= np.bincount(s)[None, :, None]
        out["superclass"] = sup[:, s, :]
    return out


def _components(g: _Group, V: np.ndarray) -> dict[str, np.ndarray]:
    """Projections of unit rows V (G, K, K, K) on the eigenspaces of G, per unit (k, j).

    A^t V = sum_level a_level^t comp_level (theory.md section 5); comp_global is the global
    mean, each finer level the difference of the means of two consecutive levels, and the
    instance level the unit's own row minus its class mean.
    """
    mean = _class_means(g, V)
    names = _level_names(g.three_level)
    comps = {}
    coarser = None
    for name in names[:-1]:
        mk = mean[name][:, :, None, :]                          # broadcast over j
        comps[name] = mk if coarser is None else mk - coarser
        coarser = mk
    comps["instance"] = V - coarser
    return comps


def _linear_outputs(comps: dict, at: dict, K: int, sel_cfg: np.ndarray) -> np.ndarray:
    """Outputs (C, K, K, K) = 1/K (1 - a_glob^t) + sum_level a_level^t comp_level[cfg]."""
    P = (1.0 - at["global"])[:, None, None, None] / K
    for name, comp in comps.items():
        P = P + at[name][:, None, None, None] * comp[sel_cfg]
    return P


def _unit_correct(P: np.ndarray, K: int) -> np.ndarray:
    """(C, K, K) strict correctness of units (k, j): p(k) - max_{l != k} p(l) > TIE_TOL."""
    k = np.arange(K)
    p_true = P[:, k, :, k].transpose(1, 0, 2)                   # (C, K(k), K(j))
    others = np.where(np.eye(K, dtype=bool)[None, :, None, :], -np.inf, P)
    return (p_true - others.max(axis=3)) > TIE_TOL


def _accuracy(correct: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted accuracy and 'every sample correct' per cell; w: counts (C, K, K)."""
    acc = (w * correct).sum(axis=(1, 2)) / w.sum(axis=(1, 2))
    perfect = np.all(correct | (w == 0), axis=(1, 2))
    return acc, perfect


def _pair_coefficients(g: _Group) -> np.ndarray:
    """Margins p(k) - p(l) of the worst unit of class k against l, per level (theory.md 5).

    For a unit (k, j) the margin is sum_level a_level^t [comp(k) - comp(l)]; only the instance
    level depends on j, through [j == k] - [j == l], whose smallest value over the non-empty
    units of class k is -1 (C_kl > 0), else 0 (some j not in {k, l}), else +1.

    Returns:
      (G, K (K - 1), L) coefficients of the L levels, duplicates within a configuration removed
      (padded by repeating a row).
    """
    K, Gn = g.K, g.counts.shape[0]
    V = np.broadcast_to(np.eye(K)[None, None, :, :], (Gn, K, K, K))   # one-hot given labels
    comps = _components(g, V)
    names = _level_names(g.three_level)
    kk, ll = np.nonzero(~np.eye(K, dtype=bool))
    C = g.counts
    coef = np.empty((Gn, kk.size, len(names)))
    for i, name in enumerate(names):
        comp = comps[name][:, :, 0, :] if name != "instance" else None
        if name == "instance":
            cls_mean = _class_means(g, V)["class"]                     # (G, K, K)
            base = -(cls_mean[:, kk, kk] - cls_mean[:, kk, ll])
            others = (C > 0).sum(axis=2)[:, kk] - (C[:, kk, kk] > 0) - (C[:, kk, ll] > 0)
            o = np.where(C[:, kk, ll] > 0, -1.0, np.where(others > 0, 0.0, 1.0))
            coef[:, :, i] = base + o
        else:
            coef[:, :, i] = comp[:, kk, kk] - comp[:, kk, ll]
    # Remove duplicate pairs inside each configuration (symmetric noise: all pairs alike).
    P = kk.size
    rows = np.concatenate([np.repeat(np.arange(Gn), P)[:, None].astype(np.float64),
                           coef.reshape(Gn * P, -1)], axis=1)
    uniq = np.unique(rows, axis=0)
    gid = uniq[:, 0].astype(np.int64)
    per = np.bincount(gid, minlength=Gn)
    start = np.concatenate([[0], np.cumsum(per)[:-1]])
    pos = np.arange(gid.size) - start[gid]
    out = np.broadcast_to(uniq[start][:, None, 1:], (Gn, per.max(), len(names))).copy()
    out[gid, pos] = uniq[:, 1:]
    return out


def _linear_r_star(g: _Group, at1: dict, R: int) -> np.ndarray:
    """First round 0..R with every sample strictly correct (NaN if none), vectorised.

    Scans t = r + 1 = 1..R+1 over the cells not yet decided; each round costs one multiply-add
    per level and distinct (k, l) pair.
    """
    names = _level_names(g.three_level)
    coef = _pair_coefficients(g)                               # (G, P, L)
    a = np.stack([at1[nm] for nm in names], axis=1)            # (C, L)
    out = np.full(g.cells.size, np.nan)
    active = np.arange(g.cells.size)
    at = a.copy()
    for r in range(R + 1):
        cf = coef[g.cfg[active]]                               # (A, P, L)
        margin = np.einsum("apl,al->ap", cf, at)
        ok = np.all(margin > TIE_TOL, axis=1)
        out[active[ok]] = r
        keep = ~ok
        active, at = active[keep], at[keep] * a[active[keep]]
        if active.size == 0:
            break
    return out


def _linear_group(g: _Group, quantity: str, R: int, m: int, progress, ties: str = "lower") -> dict:
    a = _averaging(g, m)
    res = {"r_star_closed_form": _closed_form_column(g, a)}
    if quantity == "r_star":
        res["r_star"] = _linear_r_star(g, a, R)
        if progress:
            progress(f"linear K = {g.K}: r* of {g.cells.size} cells")
        return res
    K = g.K
    V = np.broadcast_to(np.eye(K)[None, None, :, :], (g.counts.shape[0], K, K, K))
    comps = _components(g, V)
    w_all = g.counts.astype(np.float64)
    nc = g.cells.size
    chunk = max(1, 2 ** 21 // (K ** 3))      # cells per block of (cells, K, K, K) arrays
    out = {name: np.full(nc, np.nan) for name in
           (("acc_round_R",) if quantity == "acc_round_R" else ("pll_gain", "pll_acc",
                                                                 "sd_best_acc"))}
    for s0 in range(0, nc, chunk):
        sl = slice(s0, min(nc, s0 + chunk))
        cfg = g.cfg[sl]
        w = w_all[cfg]
        if quantity == "acc_round_R":
            at = {nm: v[sl] ** (R + 1) for nm, v in a.items()}
            acc, _ = _accuracy(_unit_correct(_linear_outputs(comps, at, K, cfg), K), w)
            out["acc_round_R"][sl] = acc
        else:
            best = np.full(cfg.size, -np.inf)
            done = np.zeros(cfg.size, dtype=bool)
            P0 = None
            for r in range(R + 1):
                at = {nm: v[sl] ** (r + 1) for nm, v in a.items()}
                P = _linear_outputs(comps, at, K, cfg)
                if r == 0:
                    P0 = P
                acc, perfect = _accuracy(_unit_correct(P, K), w)
                best = np.where(done, best, np.maximum(best, acc))
                done |= perfect
                if done.all():
                    break
            T = pll_targets(P0.reshape(-1, K), ties=ties).reshape(P0.shape)
            pll_acc = _linear_pll_acc(g, T, {nm: v[sl] for nm, v in a.items()}, cfg)
            out["pll_acc"][sl] = pll_acc
            out["sd_best_acc"][sl] = best
            out["pll_gain"][sl] = pll_acc - best
        if progress:
            progress(f"linear: {min(nc, s0 + chunk)}/{nc} cells of K = {K}")
    res.update(out)
    return res


def _linear_pll_acc(g: _Group, T: np.ndarray, a: dict, cfg: np.ndarray) -> np.ndarray:
    """Accuracy of one linearised training on per-cell unit targets T (C, K, K, K)."""
    K = g.K
    sub = dataclasses.replace(g, counts=g.counts[cfg], cfg=np.arange(cfg.size))
    comps = _components(sub, T)
    P = (1.0 - a["global"])[:, None, None, None] / K
    for name, comp in comps.items():
        P = P + a[name][:, None, None, None] * comp
    acc, _ = _accuracy(_unit_correct(P, K), g.counts[cfg].astype(np.float64))
    return acc


# --------------------------------------------------------------------------------------------
# Exact solver: batched group-reduced Newton (JAX)
# --------------------------------------------------------------------------------------------

def _fixed_point(Z, T, Wc, diag, m, s):
    """P, F(Z) = Z - s M (T - P), ||F|| and the certificate for one cell (U = K^2 units).

    (M R)_u = diag R_u + sum_l Wc[k_u, l] sum_{v in class l} m_v R_v, units u = (k, j) in
    row-major order.
    """
    import jax
    import jax.numpy as jnp

    K = Z.shape[1]
    P = jax.nn.softmax(Z, axis=1)
    R = T - P
    cls = (m[:, None] * R).reshape(K, K, K).sum(axis=1)       # (class l, output class)
    Zfix = s * (diag * R + jnp.repeat(Wc @ cls, K, axis=0))
    F = Z - Zfix
    cert = jnp.max(jnp.abs(P - jax.nn.softmax(Zfix, axis=1)))
    return P, F, jnp.sqrt(jnp.sum(F * F)), cert


def _newton_direction(P, F, Wc, diag, m, s):
    """Solve J V = -F, J = I + s M D, by Woodbury on the class-level structure of M.

    With A_u = I + s diag D_u (D_u = diag(p_u) - p_u p_u^T, inverted by Sherman-Morrison) and
    Y_l = sum_{v in class l} m_v D_v V_v, the system is
        V_u = A_u^{-1} (R_u - s (Wc Y)_{k_u}),  Y_l + s Q_l (Wc Y)_l = b_l,
    Q_l = sum_{v in l} m_v D_v A_v^{-1}, b_l = sum_{v in l} m_v D_v A_v^{-1} R_v, R = -F:
    one K^2 x K^2 solve per cell.
    """
    import jax.numpy as jnp

    U, K = P.shape
    sig = s * diag
    li = 1.0 / (1.0 + sig * P)                                 # Lambda^{-1}, (U, K)
    q = li * P
    gamma = sig / jnp.sum(q, axis=1)                           # sig / (1 - sig p.q)
    Ainv = li[:, :, None] * jnp.eye(K) + gamma[:, None, None] * q[:, :, None] * q[:, None, :]
    D = P[:, :, None] * jnp.eye(K) - P[:, :, None] * P[:, None, :]
    DA = jnp.einsum("uab,ubc->uac", D, Ainv)                   # (U, K, K)
    R = -F
    x = jnp.einsum("uab,ub->ua", Ainv, R)
    Dx = jnp.einsum("uab,ub->ua", D, x)
    Q = (m[:, None, None] * DA).reshape(K, K, K, K).sum(axis=1)        # (l, a, b)
    b = (m[:, None] * Dx).reshape(K, K, K).sum(axis=1)                  # (l, a)
    big = jnp.eye(K * K).reshape(K, K, K, K) + s * jnp.einsum("lj,lab->lajb", Wc, Q)
    Y = jnp.linalg.solve(big.reshape(K * K, K * K), b.reshape(K * K)).reshape(K, K)
    WY = jnp.repeat(Wc @ Y, K, axis=0)                          # (U, K): row k_u
    return x - s * jnp.einsum("uab,ub->ua", Ainv, WY)


def _cell_newton(Z0, T, Wc, diag, m, s, tol, max_iter):
    """Damped Newton with backtracking on ||F|| for one cell; returns (Z, P, cert, iters).

    Stops when the certificate is <= ``tol``; or at the round-off floor: the certificate is
    already <= :data:`CERT_TOL` and a full Newton step no longer halves ||F|| (then the
    better of the two iterates is kept, without a line search); or when the line search
    finds no decrease (step < 1e-10); or after ``max_iter`` steps.
    """
    import jax
    import jax.numpy as jnp

    P0, F0, n0, c0 = _fixed_point(Z0, T, Wc, diag, m, s)

    def cond(st):
        it, _, _, _, _, cert, stop = st
        return (cert > tol) & (it < max_iter) & ~stop

    def body(st):
        it, Z, P, F, nF, cert, _ = st
        dZ = _newton_direction(P, F, Wc, diag, m, s)
        Z1 = Z + dZ
        full = (jnp.asarray(1.0, Z.dtype), Z1) + _fixed_point(Z1, T, Wc, diag, m, s)
        floor = (cert <= CERT_TOL) & ~(full[4] <= 0.5 * nF)

        def ls_cond(ls):
            alpha, _, _, _, nFn, _ = ls
            return ~floor & ~(nFn <= (1.0 - 1e-4 * alpha) * nF) & (alpha >= 1e-10)

        alpha, Zn, Pn, Fn, nFn, cn = jax.lax.while_loop(
            ls_cond, lambda ls: _ls_step(ls, Z, dZ, T, Wc, diag, m, s), full)
        ok = jnp.where(floor, cn < cert, nFn <= (1.0 - 1e-4 * alpha) * nF)
        pick = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
        return (it + 1, pick(Zn, Z), pick(Pn, P), pick(Fn, F), pick(nFn, nF), pick(cn, cert),
                floor | ~ok)

    st = jax.lax.while_loop(cond, body, (jnp.asarray(0), Z0, P0, F0, n0, c0,
                                         jnp.asarray(False)))
    it, Z, P, _, _, cert, _ = st
    return Z, P, cert, it


def _ls_step(ls, Z, dZ, T, Wc, diag, m, s):
    alpha = ls[0] * 0.5
    Zn = Z + alpha * dZ
    return (alpha, Zn) + _fixed_point(Zn, T, Wc, diag, m, s)


_BATCHED = {}


def _batched_newton():
    """jit(vmap(_cell_newton)) over cells; compiled once per chunk size and K."""
    if "newton" not in _BATCHED:
        import jax

        _BATCHED["newton"] = jax.jit(jax.vmap(_cell_newton,
                                              in_axes=(0, 0, 0, 0, 0, 0, None, None)))
    return _BATCHED["newton"]


def _solve_cells(Z0, T, Wc, diag, m, s, *, chunk: int, max_iter: int):
    """Batched exact solves of many cells (numpy in, numpy out), in padded chunks."""
    import jax.numpy as jnp

    fn = _batched_newton()
    C = Z0.shape[0]
    Z = np.empty_like(Z0)
    P = np.empty_like(Z0)
    cert = np.empty(C)
    iters = np.empty(C, dtype=np.int64)
    small = min(_SMALL_CHUNK, chunk)
    s0 = 0
    while s0 < C:
        # Two padded batch sizes only (each size compiles once): `small` and `chunk`.
        size = small if C - s0 <= small else chunk
        idx = np.arange(s0, min(C, s0 + size))
        s0 += size
        pad = np.concatenate([idx, np.full(size - idx.size, idx[-1])])
        out = fn(jnp.asarray(Z0[pad]), jnp.asarray(T[pad]), jnp.asarray(Wc[pad]),
                 jnp.asarray(diag[pad]), jnp.asarray(m[pad]), jnp.asarray(s[pad]),
                 _NEWTON_TOL, max_iter)
        z, p, c, it = (np.asarray(v)[: idx.size] for v in out)
        Z[idx], P[idx], cert[idx], iters[idx] = z, p, c, it
    return Z, P, cert, iters


def _exact_group(g: _Group, quantity: str, R: int, m_sup: int, chunk: int, progress,
                 ties: str = "lower") -> dict:
    from sdtheory._x64 import require_x64

    require_x64("phase.sweep (exact solver)")
    K, U, nc = g.K, g.K * g.K, g.cells.size
    a = _averaging(g, m_sup)
    res = {"r_star_closed_form": _closed_form_column(g, a)}
    diag, Wc = _levels(g)
    w = g.counts.reshape(-1, U).astype(np.float64)[g.cfg]      # (C, U) unit weights m_u
    s = 1.0 / (K * g.n * g.lam)
    true = np.repeat(np.arange(K), K)
    T = np.broadcast_to(np.tile(np.eye(K), (K, 1))[None], (nc, U, K)).copy()  # one-hot given
    Z = np.zeros((nc, U, K))
    cert_max = np.zeros(nc)
    failed = np.zeros(nc, dtype=bool)
    r_star = np.full(nc, np.nan)
    acc_R = np.full(nc, np.nan)
    best = np.full(nc, -np.inf)
    pll_acc = np.full(nc, np.nan)
    done = np.zeros(nc, dtype=bool)
    t0 = time.perf_counter()

    def solve(idx, Z0, Tt):
        Zn, Pn, cert, its = _solve_cells(Z0, Tt, Wc[idx], diag[idx], w[idx], s[idx],
                                         chunk=chunk, max_iter=_NEWTON_MAX_ITER)
        bad = ~(cert <= CERT_TOL)
        if bad.any():   # retry from zero logits with more iterations
            b = np.flatnonzero(bad)
            Zb, Pb, cb, _ = _solve_cells(np.zeros_like(Z0[b]), Tt[b], Wc[idx[b]],
                                         diag[idx[b]], w[idx[b]], s[idx[b]], chunk=chunk,
                                         max_iter=_RETRY_MAX_ITER)
            Zn[b], Pn[b], cert[b] = Zb, Pb, cb
        return Zn, Pn, cert

    def correct_of(P):
        p_true = P[:, np.arange(U), true]
        others = P.copy()
        others[:, np.arange(U), true] = -np.inf
        return (p_true - others.max(axis=2)) > TIE_TOL

    for r in range(R + 1):
        idx = np.flatnonzero(~done)
        if idx.size == 0:
            break
        Zn, Pn, cert = solve(idx, Z[idx], T[idx])
        cert_max[idx] = np.maximum(cert_max[idx], np.where(np.isfinite(cert), cert, np.inf))
        bad = ~(cert <= CERT_TOL)
        failed[idx[bad]] = True
        correct = correct_of(Pn)
        wi = w[idx]
        acc = (wi * correct).sum(axis=1) / wi.sum(axis=1)
        perfect = np.all(correct | (wi == 0), axis=1) & ~bad
        if quantity == "pll_gain" and r == 0:
            Tp = pll_targets(Pn.reshape(-1, K), ties=ties).reshape(Pn.shape)
            Zp, Pp, cp = solve(idx, Zn, Tp)
            cert_max[idx] = np.maximum(cert_max[idx], np.where(np.isfinite(cp), cp, np.inf))
            badp = ~(cp <= CERT_TOL)
            failed[idx[badp]] = True
            pll_acc[idx] = (wi * correct_of(Pp)).sum(axis=1) / wi.sum(axis=1)
        newly = perfect & np.isnan(r_star[idx])
        r_star[idx[newly]] = r
        best[idx] = np.maximum(best[idx], acc)
        if r == R:
            acc_R[idx] = acc
        Z[idx], T[idx] = Zn, Pn
        if quantity in ("r_star", "pll_gain"):
            done[idx[perfect]] = True
        done |= failed
        if progress:
            progress(f"exact K = {K}: round {r}/{R} solved {idx.size} cells; "
                     f"{int(done.sum())}/{nc} cells decided ({100.0 * done.sum() / nc:.0f}%), "
                     f"{time.perf_counter() - t0:.1f} s")
    res["certificate"] = cert_max
    if quantity == "r_star":
        res["r_star"] = np.where(failed, np.nan, r_star)
    elif quantity == "acc_round_R":
        res["acc_round_R"] = np.where(failed, np.nan, acc_R)
    else:
        best = np.where(failed, np.nan, best)
        pll = np.where(failed, np.nan, pll_acc)
        res.update(pll_gain=pll - best, pll_acc=pll, sd_best_acc=best)
    return res


# --------------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------------

def _config_dict(plan: _Plan) -> dict:
    d = plan.base.to_dict()
    for k in ("rounds", "solvers", "pll", "dim", "jitter", plan.x.name, plan.y.name):
        d.pop(k, None)
    if plan.base.counts is not None:
        d.pop("eta", None)
        d.pop("noise", None)
    if plan.base.model != "superclass":
        d.pop("e", None)
        d.pop("classes_per_superclass", None)
    d.update(x=plan.x.spec, y=plan.y.spec, quantity=plan.quantity, solver=plan.solver,
             max_rounds=plan.max_rounds)
    return d


def _as_axis(a) -> Axis:
    return a if isinstance(a, Axis) else Axis.parse(a)


def sweep(base: SimConfig, x, y, *, quantity: str = "r_star", solver: str = "exact",
          max_rounds: int = 60, progress: bool = False, chunk: int = 512) -> PhaseResult:
    """Compute a phase diagram (see the module docstring for the quantities).

    Args:
      base: model and noise parameters of every cell (block or superclass model, no jitter);
        the swept parameters replace its fields.
      x, y: :class:`Axis` (or ``NAME:LO:HI:COUNT[:log]`` strings), different parameters.
      quantity: "r_star", "acc_round_R" or "pll_gain".
      solver: "exact" (group-reduced fixed point, batched Newton) or "linear" (closed form).
      max_rounds: R, rounds 0..R.
      progress: print a line per round (exact) or per chunk of cells (linear) on stderr.
      chunk: cells per batched call of the exact solver.

    Returns:
      :class:`PhaseResult` with arrays of shape (len(y), len(x)).

    Raises:
      ValueError: bad parameters, naming the parameter and the first bad cell.
    """
    plan = _prepare(base, _as_axis(x), _as_axis(y), quantity, solver, max_rounds)
    return _run(plan, progress=progress, chunk=chunk)


def _run(plan: _Plan, *, progress: bool = False, chunk: int = 512) -> PhaseResult:
    from sdtheory import __version__

    say = (lambda msg: print(f"sdtheory phase: {msg}", file=sys.stderr, flush=True)) \
        if progress else None
    t0 = time.perf_counter()
    ny, nx = plan.y.count, plan.x.count
    cols: dict[str, np.ndarray] = {}
    m_sup = plan.base.classes_per_superclass
    for g in plan.groups:
        if plan.solver == "exact":
            res = _exact_group(g, plan.quantity, plan.max_rounds, m_sup, int(chunk), say,
                               ties=plan.base.pll_ties)
        else:
            res = _linear_group(g, plan.quantity, plan.max_rounds, m_sup, say,
                                ties=plan.base.pll_ties)
        for name, v in res.items():
            cols.setdefault(name, np.full(nx * ny, np.nan))[g.cells] = v
    values = {name: v.reshape(ny, nx) for name, v in cols.items()}
    order = [plan.quantity] + sorted(k for k in values if k != plan.quantity)
    values = {k: values[k] for k in order}
    seconds = time.perf_counter() - t0
    if say:
        say(f"{nx * ny} cells in {seconds:.1f} s")
    return PhaseResult(x=plan.x, y=plan.y, quantity=plan.quantity, solver=plan.solver,
                       max_rounds=plan.max_rounds, values=values, config=_config_dict(plan),
                       version=__version__, info={"seconds": seconds})


# --------------------------------------------------------------------------------------------
# Files: CSV with a JSON header line; PNG
# --------------------------------------------------------------------------------------------

_HEADER = "# sdtheory phase "
_INT_COLUMNS = ("r_star", "r_star_closed_form")


def _fmt(name: str, v: float) -> str:
    if not np.isfinite(v):
        return "" if np.isnan(v) else repr(float(v))
    if name in _INT_COLUMNS or name in _INT_PARAMS:
        return str(int(v))
    return repr(float(v))


def write_csv(result: PhaseResult, path) -> None:
    """Write a phase diagram as CSV (atomically: temporary file, then rename).

    The first line is ``# sdtheory phase {"version": ..., "config": {...}}`` (JSON); then a
    header row: the x parameter, the y parameter (named as the parameters, e.g. ``eta``,
    ``lam``), the quantity, then the other columns of ``result.values``. One row per cell,
    x varying fastest; undefined values (NaN) are empty fields.
    """
    meta = {"version": result.version, "config": result.config}
    names = list(result.values)
    X, Y = np.meshgrid(result.x_values, result.y_values)
    lines = [_HEADER + json.dumps(meta, sort_keys=True),
             ",".join([result.x.name, result.y.name] + names)]
    flat = {k: v.ravel() for k, v in result.values.items()}
    xs, ys = X.ravel(), Y.ravel()
    for i in range(xs.size):
        lines.append(",".join([_fmt(result.x.name, xs[i]), _fmt(result.y.name, ys[i])]
                              + [_fmt(k, flat[k][i]) for k in names]))

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write("\n".join(lines) + "\n")

    atomic_write(path, write)


def read_csv(path) -> PhaseResult:
    """Read a CSV written by :func:`write_csv` back into a :class:`PhaseResult`."""
    with open(path) as fh:
        first = fh.readline()
        if not first.startswith(_HEADER):
            raise ValueError(f"{path}: not an sdtheory phase CSV (first line must start with "
                             f"{_HEADER.strip()!r})")
        meta = json.loads(first[len(_HEADER):])
        header = fh.readline().strip().split(",")
        rows = [ln.rstrip("\n").split(",") for ln in fh if ln.strip()]
    cfg = meta["config"]
    x, y = Axis.parse(cfg["x"]), Axis.parse(cfg["y"])
    if header[:2] != [x.name, y.name]:
        raise ValueError(f"{path}: columns {header[:2]} do not match the axes {x.name}, {y.name}")
    if len(rows) != x.count * y.count:
        raise ValueError(f"{path}: {len(rows)} rows, expected {x.count} x {y.count}")
    data = np.array([[float(v) if v != "" else np.nan for v in row] for row in rows])
    X, Y = np.meshgrid(x.values, y.values)
    if not (np.allclose(data[:, 0], X.ravel(), rtol=1e-12, atol=0)
            and np.allclose(data[:, 1], Y.ravel(), rtol=1e-12, atol=0)):
        raise ValueError(f"{path}: parameter columns do not match the axes in the header")
    values = {name: data[:, 2 + i].reshape(y.count, x.count)
              for i, name in enumerate(header[2:])}
    return PhaseResult(x=x, y=y, quantity=cfg["quantity"], solver=cfg["solver"],
                       max_rounds=int(cfg["max_rounds"]), values=values, config=cfg,
                       version=meta["version"])


def _edges(axis: Axis) -> np.ndarray:
    v = axis.values.astype(np.float64)
    t = np.log10(v) if axis.log else v
    if t.size == 1:
        half = 0.5 if axis.log else (0.5 * abs(t[0]) if t[0] != 0 else 0.5)
        e = np.array([t[0] - half, t[0] + half])
    else:
        mid = 0.5 * (t[1:] + t[:-1])
        e = np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])
    return 10.0 ** e if axis.log else e


def _describe(cfg: dict) -> str:
    """The fixed parameters, for the title."""
    model = cfg.get("model", "block")
    parts = ["three-level superclass model" + (f" (m = {cfg['classes_per_superclass']})"
                                               if "classes_per_superclass" in cfg else "")
             if model == "superclass" else "two-level block model"]
    for k in ("K", "n", "c", "d", "e", "lam"):
        if k in cfg:
            parts.append(f"{k}={cfg[k]:g}" if k != "lam" else f"λ={cfg[k]:g}")
    if cfg.get("counts") is not None:
        parts.append("counts from file")
    else:
        kind = cfg.get("noise", "sym")
        mode = f"sampled, seed {cfg.get('seed', 0)}" if cfg.get("sampled") else "exact counts"
        parts.append(f"{kind} noise" + (f" η={cfg['eta']:g}" if "eta" in cfg else "")
                     + f" ({mode})")
    return ", ".join(parts)


_QLABEL = {
    "r_star": "r* (first round with 100% training accuracy)",
    "acc_round_R": "training accuracy at round R",
    "pll_gain": "PLL gain: acc(PLL) − max over rounds 0..R of acc(SD)",
}


def plot_phase(result, path, overlay_closed_form_levels: bool = False):
    """Draw a phase diagram into a PNG (atomically) and return the matplotlib Figure.

    Args:
      result: :class:`PhaseResult` or the path of a CSV written by :func:`write_csv` (figures
        are drawn from results files).
      path: output PNG.
      overlay_closed_form_levels: draw contour lines of the closed-form r*
        (``r_star_closed_form`` column, theory.md section 5) on top of the colours.

    Undefined cells (NaN: r* not reached within R rounds) are white; cells whose exact solve
    failed its certificate are grey.
    """
    import matplotlib
    from matplotlib import colors
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(result, PhaseResult):
        result = read_csv(result)
    q, R = result.quantity, result.max_rounds
    Z = np.ma.masked_invalid(result.data)
    fig = Figure(figsize=(7.0, 5.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xe, ye = _edges(result.x), _edges(result.y)
    if q == "r_star":
        cmap = colors.ListedColormap(
            matplotlib.colormaps["viridis"](np.linspace(0, 1, min(R + 1, 256))))
        norm = colors.BoundaryNorm(np.linspace(-0.5, R + 0.5, min(R + 1, 256) + 1), cmap.N) \
            if R + 1 <= 256 else colors.Normalize(0, R)
    elif q == "acc_round_R":
        cmap = matplotlib.colormaps["viridis"].copy()
        norm = colors.Normalize(0.0, 1.0)
    else:
        cmap = matplotlib.colormaps["RdBu"].copy()
        lim = float(np.nanmax(np.abs(result.data))) if np.isfinite(result.data).any() else 1.0
        lim = max(lim, 1e-6)
        norm = colors.TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)
    cmap = cmap.with_extremes(bad="white")
    mesh = ax.pcolormesh(xe, ye, Z, cmap=cmap, norm=norm, shading="flat")
    cbar = fig.colorbar(mesh, ax=ax)
    if q == "r_star":
        from matplotlib.ticker import MaxNLocator

        ticks = MaxNLocator(nbins=8, integer=True).tick_values(0, R)
        cbar.set_ticks(ticks[(ticks >= 0) & (ticks <= R)])
    label = _QLABEL[q].replace("round R", f"round R = {R}").replace("0..R", f"0..{R}")
    cbar.set_label(label)
    failed = result.failed
    if failed.any():
        grey = np.ma.masked_where(~failed, np.ones(failed.shape))
        ax.pcolormesh(xe, ye, grey, cmap=colors.ListedColormap(["0.6"]), shading="flat")
    if overlay_closed_form_levels:
        cf = result.values.get("r_star_closed_form")
        if cf is None:
            raise ValueError("this result has no r_star_closed_form column to overlay")
        finite = cf[np.isfinite(cf)]
        if finite.size and finite.max() > finite.min():
            hi = min(float(finite.max()), float(R) if R > 0 else float(finite.max()))
            step = max(1, int(math.ceil((hi - finite.min()) / 8)))
            levels = np.arange(math.floor(finite.min()), hi + 1, step) + 0.5
            Xc, Yc = np.meshgrid(result.x_values, result.y_values)
            cs = ax.contour(Xc, Yc, np.ma.masked_invalid(cf), levels=levels, colors="k",
                            linewidths=0.8)
            ax.clabel(cs, fmt=lambda v: f"{v + 0.5:g}", fontsize=7)
    if result.x.log:
        ax.set_xscale("log")
    if result.y.log:
        ax.set_yscale("log")
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    ax.set_xlabel(_LABELS[result.x.name])
    ax.set_ylabel(_LABELS[result.y.name])
    solver = "exact fixed point (E)" if result.solver == "exact" else "linearised (L)"
    title = f"{_QLABEL[q].split(' (')[0].split(':')[0]}, {solver} solver, rounds 0..{R}"
    notes = []
    if q == "r_star":
        notes.append(f"white: 100% not reached by round {R}")
    if overlay_closed_form_levels:
        notes.append("lines: closed-form r* (labelled with the r* that starts below them)")
    if failed.any():
        notes.append(f"grey: {int(failed.sum())} cells failed the certificate")
    fig.suptitle(title + "\n" + _describe(result.config)
                 + ("\n" + "; ".join(notes) if notes else ""), fontsize=9)
    fig.tight_layout()

    def write(tmp):
        fig.savefig(tmp, format="png")

    atomic_write(path, write)
    return fig


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def config_from_args(args) -> tuple[SimConfig, Axis, Axis]:
    """Base config and axes from the ``sdtheory phase`` argparse namespace (ValueError if bad)."""
    if args.model == "gmm":
        raise ValueError("phase supports block models only (--model block or superclass); "
                         "--model gmm (Gaussian-mixture features) is not supported")
    if args.jitter and args.jitter != 0:
        raise ValueError("phase supports exact block models only; --jitter (a dense jittered "
                         "Gram matrix) is not supported")
    x, y = Axis.parse(args.x), Axis.parse(args.y)
    if args.max_rounds < 0:
        raise ValueError(f"--max-rounds must be >= 0, got {args.max_rounds}")
    base = SimConfig(model=args.model, K=args.K, n=args.n, c=args.c, d=args.d, e=args.e,
                     classes_per_superclass=args.classes_per_superclass, dim=args.dim,
                     jitter=0.0, lam=args.lam, noise=args.noise, eta=args.eta,
                     counts=load_counts(args.counts) if args.counts else None,
                     sampled=args.sampled, seed=args.seed, rounds=args.max_rounds,
                     solvers=(args.solver,), pll=False, pll_ties=args.pll_ties)
    return base, x, y


def output_paths(result_or_plan, out_dir) -> tuple[str, str]:
    """CSV and PNG paths in ``out_dir``: phase_<quantity>_<x>_<y>.{csv,png}."""
    r = result_or_plan
    stem = f"phase_{r.quantity}_{r.x.name}_{r.y.name}"
    return os.path.join(out_dir, stem + ".csv"), os.path.join(out_dir, stem + ".png")


def run_cli(args) -> int:
    """``sdtheory phase``: compute, write CSV and PNG into ``--out``; return the exit code.

    0: success; 1: some cells failed the certificate (written, marked) or a solver error;
    2: bad input (one-line error on stderr, nothing written).
    """
    from sdtheory._x64 import enable_x64

    enable_x64()
    try:
        base, x, y = config_from_args(args)
        plan = _prepare(base, x, y, args.quantity, args.solver, args.max_rounds)
    except ValueError as err:
        print(f"sdtheory phase: error: {err}", file=sys.stderr)
        return 2
    try:
        result = _run(plan, progress=True)
    except SolverError as err:
        print(f"sdtheory phase: solver failed: {err}", file=sys.stderr)
        return 1
    csv_path, png_path = output_paths(result, args.out)
    write_csv(result, csv_path)
    plot_phase(result, png_path, overlay_closed_form_levels=(
        result.quantity == "r_star" and np.isfinite(result.values["r_star_closed_form"]).any()))
    print(csv_path)
    print(png_path)
    nfail = int(result.failed.sum())
    if nfail:
        print(f"sdtheory phase: {nfail} cells failed the certificate {CERT_TOL:g} (empty in "
              "the CSV, grey in the PNG)", file=sys.stderr)
        return 1
    return 0
