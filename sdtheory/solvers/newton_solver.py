"""What the exact solvers of every structure share: one training's fixed point (E) through the
Newton core, a failed problem retried, and the certificate that decides.

:class:`NewtonSolver` is the base of :class:`~sdtheory.solvers.group_solver.GroupSolver`,
:class:`~sdtheory.solvers.dense_solver.DenseSolver` and
:class:`~sdtheory.solvers.feature_solver.FeatureSolver`: each builds its problem pytree
(:mod:`sdtheory.solvers.problems`) and says how unit targets map to the problem's layout;
:meth:`NewtonSolver.fit_batch` does the rest. Every returned solution carries its certificate
max |P - softmax(G(T-P)/(N lam))|; a problem that does not reach it is retried once from zero
logits with more steps, and then reported as failed (:class:`~sdtheory.solvers.SolverError`
for :meth:`NewtonSolver.fit`).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from sdtheory._validate import check_labels, check_targets
from sdtheory._x64 import require_x64
from sdtheory.noise import Corruption
from sdtheory.solvers.base import BatchFit, Fit, NewtonInfo, SolverError, one_hot
from sdtheory.solvers.newton import ACCEPT_FACTOR, FAILED, STATUS_NAMES, newton

__all__ = ["NewtonSolver", "RETRY_MAX_ITER", "sample_units"]

log = logging.getLogger(__name__)

RETRY_MAX_ITER = 400
"""Newton steps of the second attempt, from zero logits, for a problem whose first (usually
warm-started) attempt failed."""


def sample_units(labels, N: int, needs: str, size: str):
    """Units = the N samples of a :class:`~sdtheory.noise.Corruption`: (K, true, given).

    Args:
      labels: the Corruption (anything else is refused).
      N: samples of the Gram matrix or rows of X.
      needs: what needs the Corruption, for the message ("a dense Gram matrix needs").
      size: the size the samples must match, for the message ("G is 5 x 5").
    """
    if not isinstance(labels, Corruption):
        raise ValueError(f"{needs} labels=Corruption (true and given label per sample, "
                         "sdtheory.noise)")
    if labels.N != N:
        raise ValueError(f"labels has {labels.N} samples but {size}")
    K = labels.K
    return K, check_labels(labels.true, N, K, "true labels"), check_labels(labels.given, N, K,
                                                                          "given labels")


class NewtonSolver:
    """Exact outputs through the Newton core, whatever the structure (the subclasses').

    A subclass sets, in its constructor: ``K``, ``true``, ``given``, ``weight`` (B, U) and
    ``counts`` (the :class:`~sdtheory.solvers.base.Solver` protocol), ``lam_b`` (B,) ridge
    parameters, ``tol`` and ``max_iter``, ``_problem`` (the problem pytree) and ``_sel`` (the
    problem's rows that are units); and it maps unit rows to the problem's layout
    (:meth:`_layout`).

    Attributes:
      name: "exact".
      kind: "group", "dense" or "features".
      tol: certificate to reach (a certificate up to 100 tol is accepted at float64 round-off).
      max_iter: Newton steps of the first attempt.
    """

    name = "exact"
    kind: str

    # ------------------------------------------------------------------ what subclasses say

    def _layout(self, T: np.ndarray, fill: float | None = None) -> np.ndarray:
        """Unit rows (b, U, K) -> the problem's layout; added rows are ``fill`` (default 1/K:
        targets; logits use 0)."""
        raise NotImplementedError

    def _unknown_shape(self, b: int, T_layout: np.ndarray) -> tuple:
        """Shape of the unknowns of b problems (the logits, shaped like the targets)."""
        return T_layout.shape

    def _start(self, x0: np.ndarray) -> np.ndarray:
        """A warm start of :meth:`fit` (the logits of an earlier solve) -> unknowns (1, ...)."""
        return self._layout(x0[None], fill=0.0)

    def _infos(self, x, iterations, status, krylov, seconds):
        """Per-problem diagnostics of single trainings (sweeps need none: None)."""
        if self.B != 1:
            return None
        return (NewtonInfo(iterations=int(iterations[0]), status=STATUS_NAMES[int(status[0])],
                           seconds=seconds, logits=x[0].reshape(-1, self.K)[self._sel],
                           krylov_iterations=int(krylov[0])),)

    def _problem_of(self, retry: bool):
        """The problem pytree of the first attempt, or of the retry (the same here)."""
        return self._problem

    def _solve(self, idx, T, x0, max_iter, retry=False):
        """The Newton core on problems idx: (x, P, certificate, iterations, status, Krylov
        iterations); ``retry``: the second attempt (where a subclass solves it differently).
        Here: one problem, held and solved unbatched."""
        r = newton(self._problem_of(retry), T[0], x0[0], tol=self.tol, max_iter=max_iter)
        return tuple(np.asarray(v)[None] for v in (r.x, r.P, r.certificate, r.iterations,
                                                   r.status, r.krylov))

    # ------------------------------------------------------------------ shared

    @property
    def B(self) -> int:
        """Number of problems held."""
        return self.weight.shape[0]

    @property
    def U(self) -> int:
        """Number of units."""
        return self.true.size

    @property
    def lam(self) -> float:
        """The ridge parameter of a single problem (``lam_b`` holds one per problem)."""
        if self.B != 1:
            raise AttributeError(f"this solver holds {self.B} problems: see lam_b")
        return float(self.lam_b[0])

    def targets0(self) -> np.ndarray:
        """Teacher targets: one-hot given labels, (U, K) for one problem, (B, U, K) for more."""
        Y = one_hot(self.given, self.K)
        return Y if self.B == 1 or Y.ndim == 3 else np.broadcast_to(Y, (self.B,) + Y.shape).copy()

    def expand(self, P_units: np.ndarray) -> np.ndarray:
        """Unit outputs -> per-sample outputs (the identity where units are samples)."""
        return np.asarray(P_units)

    def fit_batch(self, T, x0=None, idx=None) -> BatchFit:
        """Exact outputs of problems ``idx`` (default all) for targets T (b, U, K), optionally
        warm-started from the unknowns x0 (the ``x`` of an earlier :class:`BatchFit`)."""
        require_x64("ExactSolver.fit")
        idx = np.arange(self.B) if idx is None else np.asarray(idx, dtype=np.int64)
        T = check_targets(T, (idx.size, self.U, self.K))
        Tl = self._layout(T)
        x_shape = self._unknown_shape(idx.size, Tl)
        if x0 is None:
            x0 = np.zeros(x_shape)
        else:
            x0 = np.asarray(x0, dtype=np.float64)
            if x0.shape != x_shape:
                raise ValueError(f"x0 must have shape {x_shape}, got {x0.shape}")
        t0 = time.perf_counter()
        x, P, cert, its, status, kry = self._solve(idx, Tl, x0, self.max_iter)
        bad = np.flatnonzero(status == FAILED)
        if bad.size:     # second attempt from zero logits, more steps
            log.info("retrying %d of %d problems from zero logits", bad.size, idx.size)
            r2 = self._solve(idx[bad], Tl[bad], np.zeros_like(x0[bad]), RETRY_MAX_ITER,
                             retry=True)
            x[bad], P[bad], cert[bad], its[bad], status[bad] = r2[:5]
            kry[bad] += r2[5]            # both attempts' Krylov iterations
        seconds = time.perf_counter() - t0
        Pu = P.reshape(idx.size, -1, self.K)[:, self._sel]
        return BatchFit(P=Pu, residual=cert, ok=status != FAILED, x=x,
                        infos=self._infos(x, its, status, kry, seconds))

    def fit(self, T, x0=None) -> Fit:
        """Exact outputs for unit targets T (U, K); ``x0`` optionally warm-starts (the logits
        of an earlier solve, ``fit.info.logits``; for features also its weights).

        Raises:
          SolverError: the certificate did not reach the tolerance (nor, at the round-off
            floor, 100 x the tolerance or the float64 bound eps s ||G||_inf) after the retry.
        """
        if self.B != 1:
            raise ValueError(f"this solver holds {self.B} problems; use fit_batch")
        T = np.asarray(T, dtype=np.float64)
        if x0 is not None:
            x0 = self._start(np.asarray(x0, dtype=np.float64))
        out = self.fit_batch(T[None], x0)
        if not out.ok[0]:
            raise SolverError(
                f"exact solver did not reach certificate {self.tol:g} (nor "
                f"{ACCEPT_FACTOR * self.tol:g} or the float64 floor at round-off): "
                f"certificate {out.residual[0]:.3e} "
                f"after {out.infos[0].iterations} Newton steps (lam = {self.lam_b[0]:g})")
        return out.single()
