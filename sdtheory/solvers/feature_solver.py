"""The exact solver in feature space (docs/theory.md section 2.5): features X (N x D), the fixed
point solved for the weights with G = X X^T never formed
(:class:`~sdtheory.solvers.problems.FactorProblem`). Units are the samples; each fit also
returns the weights W (K x D), for outputs on held-out features."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sdtheory._validate import check_lam
from sdtheory._x64 import require_x64
from sdtheory.models import Features
from sdtheory.noise import Corruption
from sdtheory.solvers.base import NewtonInfo
from sdtheory.solvers.newton import DEFAULT_TOL, STATUS_NAMES, newton
from sdtheory.solvers.newton_solver import NewtonSolver, sample_units
from sdtheory.solvers.spectrum import feature_spectrum

__all__ = ["FEATURE_DIRECT_MAX", "FEATURE_DIRECT_WORK", "FEATURE_SINGLE_SCALE",
           "FeatureNewtonInfo", "FeatureSolver"]

FEATURE_DIRECT_MAX = 1024
"""Largest D K for which feature-space Newton systems are formed and solved by Cholesky
(:class:`~sdtheory.solvers.problems.FactorProblem` ``direct``) instead of by CG, provided
forming J (about N (D K)^2 operations a Newton step) costs at most :data:`FEATURE_DIRECT_WORK`."""

FEATURE_DIRECT_WORK = 2 ** 31
"""Most multiply-adds of forming one feature-space Jacobian for the direct solve."""

FEATURE_SINGLE_SCALE = 1e8
"""Largest s nu_max (nu_max the largest eigenvalue of X^T X, s = 1/(N lam)) at which the first
attempt runs CG in float32 (:class:`~sdtheory.solvers.problems.FactorProblem` ``X32``; a
failed problem is retried in float64). The Jacobian's eigenvalues reach 1 + s nu_max / 2;
beyond this scale float32 CG took markedly more iterations than float64, then stalled
(benchmarks/README.md)."""


@dataclass(frozen=True, kw_only=True)
class FeatureNewtonInfo(NewtonInfo):
    """Diagnostics of one exact solve in feature space (:class:`FeatureSolver`).

    Besides the attributes of :class:`~sdtheory.solvers.base.NewtonInfo` (``logits`` are X W^T):

    Attributes:
      weights: (K, D) the weights W of the solution, P = softmax(X W^T); outputs on held-out
        features X' are softmax(X' W^T).
    """

    weights: np.ndarray


class FeatureSolver(NewtonSolver):
    """Exact outputs of one training on features X, Gram matrix X X^T.

    Args:
      gram: :class:`~sdtheory.models.Features` X (N x D).
      labels: a :class:`~sdtheory.noise.Corruption` (true and given label per row of X), or a
        sequence of B of them with the same true labels: B problems on the same features,
        solved as one batch whose products with X act on all of them at once (``given`` is
        then (B, N)).
      lam: ridge parameter lambda > 0.
      tol: certificate to reach.
      max_iter: Newton steps of the first attempt.
      spectrum: the preconditioner's spectral data of X for this lam (:meth:`spectrum_of`),
        where the caller holds it (solvers of several batches on one X); default computed
        here.

    Attributes:
      X: the features.
      spectrum: the preconditioner's spectral data
        (:func:`~sdtheory.solvers.spectrum.feature_spectrum`).

    The unknowns passed between rounds (``BatchFit.x``) are the transposed weights W^T
    (1, D, K); :meth:`fit` also takes the weights W (K, D) or the logits (N, K) of an earlier
    fit as its warm start.
    """

    kind = "features"

    def __init__(self, *, gram: Features, labels, lam, tol: float = DEFAULT_TOL,
                 max_iter: int = 60, spectrum: dict | None = None):
        import jax

        from sdtheory.solvers.problems import FactorProblem

        require_x64("FeatureSolver")
        lam = check_lam(lam)
        self.tol, self.max_iter = float(tol), int(max_iter)
        X = gram.X
        N, D = X.shape
        sets = [labels] if isinstance(labels, Corruption) else list(labels)
        if not sets:
            raise ValueError("labels must be a Corruption or a non-empty sequence of them")
        units = [sample_units(c, N, "features need", f"X has {N} rows") for c in sets]
        self.K, self.true = units[0][0], units[0][1]
        if any(u[0] != self.K or not np.array_equal(u[1], self.true) for u in units):
            raise ValueError("the label sets of one FeatureSolver must share K and the true "
                             "labels (the same samples)")
        B = len(sets)
        self.given = units[0][2] if B == 1 else np.stack([u[2] for u in units])
        self.counts = sets[0].counts if B == 1 else np.stack([c.counts for c in sets])
        self.weight, self.lam_b = np.ones((B, N)), np.full(B, lam)
        s = 1.0 / (N * lam)
        put = jax.device_put
        X_device = put(X)
        if spectrum is None:
            spectrum = self.spectrum_of(X, lam, self.K, X_device=X_device)
        elif spectrum["V"].shape[0] != D:
            raise ValueError(f"spectrum is of {spectrum['V'].shape[0]} features, X has {D}")
        self.spectrum = sp = spectrum
        DK = D * self.K
        direct = DK <= FEATURE_DIRECT_MAX and N * DK * DK <= FEATURE_DIRECT_WORK
        self._problem64 = FactorProblem(s=put(s), X=X_device, Vf=put(sp["V"]),
                                        nu=put(sp["nu"]), nu_rest=put(sp["nu_rest"]),
                                        direct=direct)
        single = not direct and s * float(sp["nu"][0]) <= FEATURE_SINGLE_SCALE
        self._problem = (dataclasses.replace(self._problem64, X32=put(X.astype(np.float32)))
                         if single else self._problem64)
        self._sel = np.arange(N)
        self.X = X

    @staticmethod
    def spectrum_of(X, lam: float, K: int, *, X_device=None) -> dict:
        """The preconditioner's spectral data of features X at ridge lam
        (:func:`~sdtheory.solvers.spectrum.feature_spectrum` at s = 1 / (N lam))."""
        return feature_spectrum(X, 1.0 / (X.shape[0] * lam), K, X_device=X_device)

    def _layout(self, T, fill=None):
        """Unit rows are the problem's rows already."""
        return T

    def _unknown_shape(self, b, T_layout):
        """The transposed weights W^T, (b, D, K)."""
        return (b, self.X.shape[1], self.K)

    def _start(self, x0):
        """The unknown W^T (1, D, K) from weights W (K, D), or from logits Z (N, K) through the
        minimum-norm least-squares solution of X W^T = Z (weights win where the shapes
        coincide)."""
        N, D = self.X.shape
        if x0.shape == (self.K, D):
            return x0.T.copy()[None]
        if x0.shape == (N, self.K):
            return np.linalg.lstsq(self.X, x0, rcond=None)[0][None]
        raise ValueError(f"x0 must be weights ({self.K}, {D}) or logits ({N}, {self.K}), got "
                         f"{x0.shape}")

    def _problem_of(self, retry):
        """The retry runs CG in float64."""
        return self._problem64 if retry else self._problem

    def _solve(self, idx, T, x0, max_iter, retry=False):
        """Several label sets: one batch on the shared problem (newton ``shared``)."""
        if self.B == 1:
            return super()._solve(idx, T, x0, max_iter, retry)
        r = newton(self._problem_of(retry), T, x0, tol=self.tol, max_iter=max_iter,
                   batched=True, shared=True)
        return r.x, r.P, r.certificate, r.iterations, r.status, r.krylov

    def _infos(self, x, iterations, status, krylov, seconds):
        """One info per problem solved (``seconds``: the whole batch's)."""
        return tuple(FeatureNewtonInfo(
            iterations=int(iterations[b]), status=STATUS_NAMES[int(status[b])], seconds=seconds,
            logits=self.X @ x[b], krylov_iterations=int(krylov[b]), weights=x[b].T.copy())
            for b in range(len(x)))
