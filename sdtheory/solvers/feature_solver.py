"""The exact solver in feature space (docs/theory.md section 2.5): features X (N x D), the fixed
point solved for the weights with G = X X^T never formed
(:class:`~sdtheory.solvers.problems.FactorProblem`). Units are the samples; each fit also
returns the weights W (K x D), for outputs on held-out features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdtheory._validate import check_lam
from sdtheory._x64 import require_x64
from sdtheory.models import Features
from sdtheory.solvers.base import NewtonInfo
from sdtheory.solvers.newton import DEFAULT_TOL, STATUS_NAMES
from sdtheory.solvers.newton_solver import NewtonSolver, sample_units
from sdtheory.solvers.spectrum import feature_spectrum

__all__ = ["FEATURE_DIRECT_MAX", "FEATURE_DIRECT_WORK", "FeatureNewtonInfo", "FeatureSolver"]

FEATURE_DIRECT_MAX = 1024
"""Largest D K for which feature-space Newton systems are formed and solved by Cholesky
(:class:`~sdtheory.solvers.problems.FactorProblem` ``direct``) instead of by CG, provided
forming J (about N (D K)^2 operations a Newton step) costs at most :data:`FEATURE_DIRECT_WORK`."""

FEATURE_DIRECT_WORK = 2 ** 31
"""Most multiply-adds of forming one feature-space Jacobian for the direct solve."""


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
      labels: a :class:`~sdtheory.noise.Corruption` (true and given label per row of X).
      lam: ridge parameter lambda > 0.
      tol: certificate to reach.
      max_iter: Newton steps of the first attempt.

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
                 max_iter: int = 60):
        import jax

        from sdtheory.solvers.problems import FactorProblem

        require_x64("FeatureSolver")
        lam = check_lam(lam)
        self.tol, self.max_iter = float(tol), int(max_iter)
        X = gram.X
        N, D = X.shape
        self.K, self.true, self.given = sample_units(labels, N, "features need",
                                                     f"X has {N} rows")
        self.weight, self.counts, self.lam_b = np.ones((1, N)), labels.counts, np.array([lam])
        s = 1.0 / (N * lam)
        put = jax.device_put
        X_device = put(X)
        self.spectrum = sp = feature_spectrum(X, s, self.K, X_device=X_device)
        DK = D * self.K
        direct = DK <= FEATURE_DIRECT_MAX and N * DK * DK <= FEATURE_DIRECT_WORK
        self._problem = FactorProblem(s=put(s), X=X_device, Vf=put(sp["V"]), nu=put(sp["nu"]),
                                      nu_rest=put(sp["nu_rest"]), direct=direct)
        self._sel = np.arange(N)
        self.X = X

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

    def _infos(self, x, iterations, status, krylov, seconds):
        return (FeatureNewtonInfo(
            iterations=int(iterations[0]), status=STATUS_NAMES[int(status[0])], seconds=seconds,
            logits=self.X @ x[0], krylov_iterations=int(krylov[0]), weights=x[0].T.copy()),)
