"""Differentiable theory: JAX gradients of closed-form quantities of the linearised student,
and the best ridge, label weight and round for a noise level (docs/theory.md section 17).

For an equal-size block model with counts C, round r of label-weighted SD (targets
alpha Y + (1 - alpha) P_(r-1), section 14) in the linearised form (L) has, per (class k,
other class l) pair, the worst training-label margin

    m_kl(lam, alpha, r) = sum_level coef_kl,level a_level t_r(a_level; alpha),
    a_level = mu_level / (mu_level + K N lam),

with the pair coefficients of section 7.3 (:func:`sdtheory.theory.pair_coefficients`), the
averaging eigenvalues (:func:`sdtheory.theory.averaging`) and the target filter
(:func:`sdtheory.kernel_ridge.target_filter`); every sample is correct at round r iff
min_kl m_kl > 0. All three are evaluated here with jax.numpy, so the margin and the continuous
r* (:func:`sdtheory.theory.r_star_continuous`) have exact gradients in lam and alpha.

:func:`optimize` maximises the worst margin over (log lam, alpha) for each round r = 0..R
(L-BFGS-B with the JAX gradient, several starts) and reports the best: the largest margin by
which every training label is corrected, i.e. the most robust setting.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from sdtheory._memory import PROCESS_BYTES, check_memory
from sdtheory._validate import LAM_MAX, LAM_MIN, as_int, check_counts
from sdtheory.kernel_ridge import output_filter
from sdtheory.models import BlockModel, level_eigenvalues
from sdtheory.theory import averaging, level_names, pair_coefficients, r_star_continuous

__all__ = ["MarginModel", "OptimumRound", "TestAccuracyModel", "memory_estimate", "optimize",
           "recommend"]

log = logging.getLogger(__name__)

GTOL = 1e-9
"""L-BFGS-B stops when the projected gradient (in log lam and alpha) is below this, or when a
step changes the margin by less than 1e-15 relative."""


class MarginModel:
    """The worst linearised training-label margin of an equal-size block model and counts, as
    a JAX function of (log lam, alpha) for a given round (module docstring).

    Args:
      model: an equal-size :class:`~sdtheory.models.BlockModel` (two- or three-level).
      counts: K x K count matrix (rows summing to the class size).
    """

    def __init__(self, model: BlockModel, counts):
        if len(set(model.sizes)) != 1:
            raise ValueError("the closed-form margins need equal class sizes")
        self.model = model
        self.counts = check_counts(counts, model.sizes)
        self.coef = pair_coefficients(self.counts[None], model.superclass_of)[0]   # (P, L)
        m = None if model.superclass_of is None else model.K // (max(model.superclass_of) + 1)
        mus = level_eigenvalues(model.K, model.sizes[0], model.c, model.d, model.e, m)
        names = level_names(model.superclass_of is not None)
        self.mu = np.array([float(mus[nm][0]) for nm in names])
        self.KN = float(model.K * model.N)

    def _a(self, log_lam):
        return _averaging(self.mu, self.KN, log_lam)

    def margin(self, log_lam, alpha, r):
        """min over pairs of the round-r margin (a JAX scalar; differentiable in log_lam and
        alpha)."""
        return _margin(self.arrays, log_lam, alpha, r)

    @property
    def arrays(self) -> tuple:
        """(coef, mu, K N): what the margin depends on, as arguments of one compiled program
        for every model of the same shapes (:func:`optimize`)."""
        return self.coef, self.mu, self.KN

    def r_star_continuous(self, log_lam, delta):
        """log(1 + 1/Delta) / log(a_class/a_instance) (section 7.2) as a JAX scalar."""
        import jax.numpy as jnp

        a = self._a(log_lam)
        return r_star_continuous(delta, a[-2], a[-1], xp=jnp)


def _averaging(mu, KN, log_lam):
    """The averaging eigenvalues a_level at lam = exp(log_lam) (JAX)."""
    import jax.numpy as jnp

    return averaging(jnp.asarray(mu), KN, 1.0, jnp.exp(log_lam))


def _margin(arrays, log_lam, alpha, r):
    """min over pairs of the round-r margin of :class:`MarginModel` ``arrays``."""
    import jax.numpy as jnp

    coef, mu, KN = arrays
    a = _averaging(mu, KN, log_lam)
    return jnp.min(jnp.asarray(coef) @ output_filter(a, alpha, r, xp=jnp))


def _neg_margin(x, r, alpha, arrays):
    """-margin at x = (log lam, alpha) (alpha: x[1] where x has two entries, else ``alpha``)."""
    return -_margin(arrays, x[0], x[1] if x.shape[0] == 2 else alpha, r)


_COMPILED = {}


def _value_and_grad():
    """-margin and its gradient in x, compiled once per process (the model's arrays are
    arguments, so each model of the same shapes reuses the program)."""
    if "vg" not in _COMPILED:
        import jax

        _COMPILED["vg"] = jax.jit(jax.value_and_grad(_neg_margin))
    return _COMPILED["vg"]


class TestAccuracyModel:
    """Test accuracy of the linearised student of round r on a two-class Gaussian mixture, as a
    JAX function of (log lam, alpha) (docs/theory.md section 17).

    The training features X give G = X X^T (its eigendecomposition is computed once); round r
    has P_r = 1/K + V diag(a t_r(a)) V^T (Y - 1/K), targets T_r (Y, or alpha Y + (1 - alpha)
    P_(r-1)), weights W = (T_r - P_r)^T X / (N lam) and the exact accuracy on fresh points
    x = mu_k + sigma xi of :func:`sdtheory.population.binary_accuracy`.

    Args:
      X: (N, D) training features; given: (N,) training labels in {0, 1}.
      means: (2, D) class means; sigma: noise standard deviation of fresh points.
    """

    def __init__(self, X, given, means, sigma: float):
        from sdtheory.solvers.base import one_hot
        from sdtheory.solvers.linear import AveragingOperator

        self.X = np.asarray(X, dtype=np.float64)
        self.Y = one_hot(np.asarray(given), 2)
        self.means = np.asarray(means, dtype=np.float64)
        if self.means.shape != (2, self.X.shape[1]):
            raise ValueError(f"means must be (2, {self.X.shape[1]}), got {self.means.shape}")
        self.sigma = float(sigma)
        self.op = AveragingOperator(self.X @ self.X.T, 1.0, 2)   # mu and V do not depend on lam
        self.N = self.X.shape[0]

    def accuracy(self, log_lam, alpha, r: int):
        """Mean test accuracy over the two classes (a JAX scalar)."""
        import jax.numpy as jnp

        from sdtheory.population import binary_accuracy, weights_from_outputs

        lam = jnp.exp(log_lam)
        a = averaging(jnp.asarray(self.op.mu), 2, self.N, lam)
        rounds = jnp.asarray([max(r - 1, 0), r], dtype=jnp.float64)
        coef = output_filter(a[None, :], alpha, rounds[:, None], xp=jnp)
        P_prev, P = 0.5 + self.op.apply_filter(self.Y - 0.5, coef, xp=jnp)
        T = self.Y if r == 0 else alpha * self.Y + (1.0 - alpha) * P_prev
        W = weights_from_outputs(jnp.asarray(self.X), T, P, lam, xp=jnp)
        return jnp.mean(binary_accuracy(W, jnp.asarray(self.means), self.sigma, xp=jnp))


K3_COPIES = 6
"""Live (K, K, K) float64 arrays while the pair coefficients are built (the one-hot rows of the
K x K grid of groups and their level components; calibrated on the optimize job of
benchmarks/bench_memory.py)."""


def memory_estimate(K: int) -> tuple[float, str]:
    """(peak bytes, what sets them) of :func:`optimize` for K classes: one process and the
    (K, K, K) arrays of the pair coefficients."""
    return (PROCESS_BYTES + 8.0 * K3_COPIES * float(K) ** 3,
            f"the closed-form margins of K = {K} classes (--K; K^3 numbers)")


@dataclass(frozen=True)
class OptimumRound:
    """The best (lam, alpha) for one round r: the largest worst margin, and whether it is > 0
    (every training label corrected)."""

    round: int
    lam: float
    label_weight: float
    margin: float
    corrected: bool


def optimize(model: BlockModel, counts, rounds=range(21), *, fix_label_weight=None,
             starts: int = 6) -> list[OptimumRound]:
    """For each round r of ``rounds``, maximise the worst linearised margin over lam in
    [1e-8, 1e3] (in log lam) and alpha in [0, 1] (or alpha fixed).

    L-BFGS-B (scipy) with the JAX gradient, from ``starts`` log-spaced lam (times alpha 0 and
    0.5), to a projected gradient of :data:`GTOL`; the best local optimum is kept.

    Returns:
      one :class:`OptimumRound` per round.
    """
    import jax.numpy as jnp
    from scipy.optimize import minimize

    rounds = [as_int(r, "round", lo=0, hi=10_000) for r in rounds]
    check_memory(*memory_estimate(model.K))
    mm = MarginModel(model, counts)
    lo, hi = math.log(LAM_MIN), math.log(LAM_MAX)
    alpha_fixed = 0.0 if fix_label_weight is None else float(fix_label_weight)

    vg = _value_and_grad()
    arrays = tuple(jnp.asarray(a) for a in mm.arrays)
    out = []
    for r in rounds:
        # round 0 trains on the labels whatever alpha is: alpha is not a variable there
        free = fix_label_weight is None and r > 0
        bounds = [(lo, hi), (0.0, 1.0)] if free else [(lo, hi)]
        x0s = ([(l0, a0) for l0 in np.linspace(lo, hi, starts) for a0 in (0.0, 0.5)] if free
               else [(l0,) for l0 in np.linspace(lo, hi, starts)])

        def fun(x, r=r):
            v, g = vg(jnp.asarray(x), float(r), alpha_fixed, arrays)
            return float(v), np.asarray(g, dtype=np.float64)

        best = None
        for x0 in x0s:
            res = minimize(fun, np.asarray(x0, dtype=np.float64), jac=True, method="L-BFGS-B",
                           bounds=bounds, options={"gtol": GTOL, "ftol": 1e-15})
            if best is None or res.fun < best.fun:
                best = res
        m_opt = -float(best.fun)
        out.append(OptimumRound(round=r, lam=float(math.exp(best.x[0])),
                                label_weight=float(best.x[1]) if free else alpha_fixed,
                                margin=m_opt, corrected=m_opt > 0))
    return out


def recommend(rows: list[dict]) -> dict | None:
    """The smallest round whose best margin is within 1% of the best over all rounds (among
    rounds that correct every label), or None."""
    ok = [r for r in rows if r["corrected"]]
    if not ok:
        return None
    top = max(r["margin"] for r in ok)
    return next(r for r in ok if r["margin"] >= 0.99 * top)
