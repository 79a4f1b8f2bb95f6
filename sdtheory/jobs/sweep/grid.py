"""Grids of cells for sweeps: axes, vectorised validation, models and corruptions per cell.

Two parameters from :data:`PARAMS` are swept over ranges (:class:`Axis`); the others stay as in
a base :class:`~sdtheory.problem.ProblemConfig` (block models only: the two-level and the
three-level superclass model, docs/theory.md section 5). Every cell is one model and one
corruption. :func:`plan` validates all cells at once (the first bad cell is named in the
error) and groups them by K, so that cells with the same shapes are solved together.
"""

from __future__ import annotations

import decimal
import functools
import math
from dataclasses import dataclass

import numpy as np

from sdtheory import noise
from sdtheory._validate import as_int, check_eta, check_K, check_lam
from sdtheory.models import level_eigenvalues, psd_margin
from sdtheory.problem import ProblemConfig, model_of

__all__ = ["PARAMS", "INT_PARAMS", "Axis", "Cells", "Plan", "plan"]

PARAMS = ("eta", "lam", "c", "d", "e", "n", "K")
"""Parameters that can be swept (names of :class:`~sdtheory.problem.ProblemConfig` fields)."""

INT_PARAMS = ("n", "K")

MAX_CELLS = 4_000_000
"""Most cells one sweep may hold."""


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
        if self.name in INT_PARAMS and np.unique(v).size != v.size:
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
        """(count,) float64 values (integers for n and K): evenly spaced (in log10 for a log
        axis) in decimal arithmetic, each the float nearest its decimal value, so that every
        CPU gives the same bits and 1e-05 is 1e-05, not 9.999999999999999e-06."""
        v = np.array(decimal_grid(self.lo, self.hi, self.count, self.log))
        return np.round(v) if self.name in INT_PARAMS else v


@functools.lru_cache(maxsize=256)      # an axis asks for its values many times
def decimal_grid(lo: float, hi: float, count: int, log: bool = False) -> tuple[float, ...]:
    """``count`` points from ``lo`` to ``hi`` computed in 40-digit decimal arithmetic (software,
    hence identical on every CPU), evenly spaced in the value or, with ``log``, in log10."""
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        a, b = decimal.Decimal(repr(float(lo))), decimal.Decimal(repr(float(hi)))
        if count == 1:
            return (float(a),)
        if log:
            a, b = a.log10(), b.log10()
        step = (b - a) / (count - 1)
        points = [a + i * step for i in range(count - 1)] + [b]
        return tuple(float(decimal.Decimal(10) ** p if log else p) for p in points)




@dataclass(frozen=True, eq=False)
class Cells:
    """Cells sharing K (hence shapes): everything a solver needs, one row per cell.

    Attributes:
      K: number of classes.
      index: (C,) flat cell indices in the grid (iy * nx + ix).
      n, lam, c, d, e: (C,) per-cell parameters.
      counts: (G, K, K) the distinct corruptions; ``cfg`` (C,) each cell's index into them.
      superclass_of: (K,) class -> superclass (three-level model), else None.
      m: classes per superclass (three-level), else None.
    """

    K: int
    index: np.ndarray
    n: np.ndarray
    lam: np.ndarray
    c: np.ndarray
    d: np.ndarray
    e: np.ndarray
    counts: np.ndarray
    cfg: np.ndarray
    superclass_of: np.ndarray | None
    m: int | None

    @property
    def three_level(self) -> bool:
        return self.superclass_of is not None

    @property
    def size(self) -> int:
        return self.index.size

    def averaging(self) -> dict[str, np.ndarray]:
        """Per cell a_j = mu_j / (mu_j + K N lam) for every level (docs/theory.md section 4)."""
        from sdtheory.theory import averaging

        mus = level_eigenvalues(self.K, self.n, self.c, self.d,
                                self.e if self.three_level else None, self.m)
        return {name: averaging(mu, self.K, self.K * self.n, self.lam)
                for name, (mu, _) in mus.items()}

    def class_structure(self):
        """(diag, alpha, L, w) of every cell
        (:meth:`~sdtheory.models.block.BlockModel.class_structure`, batched)."""
        C = self.size
        diag, alpha = 1.0 - self.c, self.c - self.d
        if self.three_level:
            S = int(self.superclass_of.max()) + 1
            member = np.eye(S)[self.superclass_of]                      # (K, S)
            L = np.concatenate([member, np.ones((self.K, 1))], axis=1)
            w = np.concatenate([np.repeat((self.d - self.e)[:, None], S, axis=1),
                                self.e[:, None]], axis=1)
        else:
            L = np.ones((self.K, 1))
            w = self.d[:, None]
        return diag, alpha, np.broadcast_to(L, (C,) + L.shape), w


@dataclass(frozen=True, eq=False)
class Plan:
    """A validated grid: the axes and the cells, grouped by K."""

    base: ProblemConfig
    x: Axis
    y: Axis
    groups: tuple[Cells, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return self.y.count, self.x.count


def _check_base(base: ProblemConfig, x: Axis, y: Axis) -> None:
    if base.model == "gmm":
        raise ValueError("sweeps support block models only (--model block or superclass); "
                         "--model gmm (Gaussian-mixture features) is not supported")
    if base.jitter > 0:
        raise ValueError("sweeps support exact block models only; --jitter (a dense jittered "
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
    if x.count * y.count > MAX_CELLS:
        raise ValueError(f"the grid has {x.count} x {y.count} = {x.count * y.count} cells; at "
                         f"most {MAX_CELLS} are supported")


def plan(base: ProblemConfig, x: Axis, y: Axis) -> Plan:
    """Validate every cell (vectorised) and build the per-K groups of cells.

    Raises:
      ValueError: naming the parameter and the first bad cell.
    """
    _check_base(base, x, y)
    Xg, Yg = np.meshgrid(x.values, y.values)
    X, Y = Xg.ravel(), Yg.ravel()
    p = {}
    for name in PARAMS:
        p[name] = (X.copy() if name == x.name else Y.copy() if name == y.name
                   else np.full(X.size, float(getattr(base, name))))

    def fail(mask, msg):
        i = int(np.flatnonzero(mask)[0])
        raise ValueError(f"at {x.name} = {X[i]:g}, {y.name} = {Y[i]:g}: " + msg(i))

    def check_each(values, check):
        """The scalar check of :mod:`sdtheory._validate` on each distinct value, in cell
        order; the first failure names its cell."""
        vals, first = np.unique(values, return_index=True)
        for i in np.sort(first):
            try:
                check(float(values[i]))
            except ValueError as err:
                raise ValueError(f"at {x.name} = {X[i]:g}, {y.name} = {Y[i]:g}: {err}") from None

    lam = p["lam"]
    check_each(lam, check_lam)
    if base.counts is None:
        check_each(p["eta"], check_eta)
    K, n = p["K"], p["n"]
    check_each(K, check_K)
    check_each(n, lambda v: as_int(v, "n (samples per class)", lo=1))
    K, n = K.astype(np.int64), n.astype(np.int64)
    three = base.model == "superclass"
    m = base.classes_per_superclass if three else None
    if three:
        bad = K % m != 0
        if bad.any():
            fail(bad, lambda i: f"K = {K[i]} must be a multiple of classes-per-superclass "
                                f"m = {m}")
    c, d, e = p["c"], p["d"], p["e"]
    ok = np.isfinite(c) & np.isfinite(d) & (c <= 1)
    ok &= (c > d) & (d > e) & np.isfinite(e) if three else (c > d)
    with np.errstate(invalid="ignore", over="ignore"):
        mus = level_eigenvalues(K, n, c, d, e if three else None, m)
        ok &= psd_margin(np.stack([mu for mu, _ in mus.values()]),
                         np.stack([np.broadcast_to(mult, K.shape) for _, mult in mus.values()])
                         ) >= 0
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        try:
            model_of(_cell_config(base, int(K[i]), int(n[i]), c[i], d[i], e[i]))
        except ValueError as err:
            raise ValueError(f"at {x.name} = {X[i]:g}, {y.name} = {Y[i]:g}: {err}") from None
        raise ValueError(f"at {x.name} = {X[i]:g}, {y.name} = {Y[i]:g}: invalid Gram model")
    groups = []
    for k_val in np.unique(K):
        idx = np.flatnonzero(K == k_val)
        Kk = int(k_val)
        sup = np.arange(Kk) // m if three else None
        try:
            counts, cfg = _corruptions(base, Kk, n[idx], p["eta"][idx], sup)
        except ValueError as err:
            i = int(idx[0])
            raise ValueError(f"at {x.name} = {X[i]:g}, {y.name} = {Y[i]:g}: {err}") from None
        groups.append(Cells(K=Kk, index=idx, n=n[idx], lam=lam[idx], c=c[idx], d=d[idx],
                            e=e[idx], counts=counts, cfg=cfg, superclass_of=sup, m=m))
    return Plan(base=base, x=x, y=y, groups=tuple(groups))


def _cell_config(base: ProblemConfig, K: int, n: int, c: float, d: float, e: float):
    import dataclasses

    return dataclasses.replace(base, K=K, n=n, c=float(c), d=float(d), e=float(e),
                               counts=None)


def _corruptions(base: ProblemConfig, K: int, n: np.ndarray, eta: np.ndarray, sup):
    """Distinct count matrices of one K group and each cell's index into them.

    Exact counts are vectorised (:func:`sdtheory.noise.exact_counts` on a batch of transition
    matrices); sampled counts call :func:`sdtheory.noise.corrupt_sampled` once per distinct
    (n, eta).
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
    return noise.exact_counts(T[eta_idx], kn[:, None]), cfg
