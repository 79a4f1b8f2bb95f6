"""What every solver of one training shares: typed results, the error, the solver protocol.

Every solver answers the same question: given targets T (one row per training unit, each row a
distribution over K classes), what does the global minimiser of

    L(W) = (1/N) sum_i CE(t_i, softmax(W x_i)) + (lam/2) ||W||_F^2

output on the training inputs (docs/theory.md section 1.1)? A *unit* is a training sample, or a
group of samples sharing (true class, given label) and hence target and output (the group
reduction, docs/theory.md section 3); ``weight`` is how many samples a unit stands for.

Solvers are *batch-native*: a solver holds B independent problems with the same units (B = 1
for a single training; B cells of a sweep), and :meth:`Solver.fit_batch` trains any subset of
them at once. :mod:`sdtheory.distill` runs rounds over that one interface, and single-problem
callers use :meth:`SingleProblem.fit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = [
    "SolverError",
    "NewtonInfo",
    "TrainInfo",
    "Fit",
    "BatchFit",
    "Solver",
    "one_hot",
    "given_labels",
]


class SolverError(RuntimeError):
    """A solver did not reach its tolerance: nothing is returned rather than a wrong answer."""


@dataclass(frozen=True)
class NewtonInfo:
    """Diagnostics of one exact solve (the Newton core, docs/theory.md section 2.3).

    Attributes:
      iterations: Newton steps.
      status: "converged" (certificate <= tol) or "round-off" (stopped at the float64 floor,
        certificate <= 100 tol).
      seconds: wall time of the solve (the whole batch it was part of).
      logits: the solution's logits Z (units x K), to warm-start a related solve.
      krylov_iterations: Krylov iterations (CG or GMRES) of all its Newton directions, both
        attempts counted when the first failed and was retried (0: exact directions).
    """

    iterations: int
    status: str
    seconds: float
    logits: np.ndarray
    krylov_iterations: int = 0


@dataclass(frozen=True)
class TrainInfo:
    """Diagnostics of one gradient training (:mod:`sdtheory.solvers.trained`).

    Attributes:
      method: "lbfgs", "gd" or "sgd".
      iterations: optimiser steps (SGD: mini-batch steps).
      loss: final objective L(W).
      grad_norm: final full-batch gradient norm.
      grad_tol: the absolute gradient tolerance used.
      converged: grad_norm <= grad_tol.
      seconds: wall time.
      history: objective per iteration (SGD: per epoch).
      epochs: SGD epochs (0 otherwise).
      W: (K, D) trained weights (with ``keep_best``: those of the best monitored epoch).
      monitor: SGD only, with a monitor: its value after every epoch (else None).
      best_epoch: with ``keep_best``: the 0-based epoch whose weights are returned.
    """

    method: str
    iterations: int
    loss: float
    grad_norm: float
    grad_tol: float
    converged: bool
    seconds: float
    history: np.ndarray
    epochs: int
    W: np.ndarray
    monitor: np.ndarray | None = None
    best_epoch: int | None = None


@dataclass(frozen=True)
class Fit:
    """Outputs of one training.

    Attributes:
      P: (U, K) outputs on the training units, rows on the simplex (the linearised form's may
        leave it).
      residual: for exact and trained solvers the certificate of (E),
        max |P - softmax(G (T - P) / (N lam))|; for the linearised form the residual of (L).
      info: :class:`NewtonInfo` (exact), :class:`TrainInfo` (trained) or None (linear).
    """

    P: np.ndarray
    residual: float
    info: NewtonInfo | TrainInfo | None = None


@dataclass(frozen=True)
class BatchFit:
    """Outputs of a batch of trainings (leading axis b = the problems trained).

    Attributes:
      P: (b, U, K) outputs.
      residual: (b,) certificates (as :attr:`Fit.residual`).
      ok: (b,) whether each problem met its tolerance (always True for closed forms).
      x: (b, ...) the solver's unknowns at the solution (logits), to warm-start the next
        round; None where not applicable.
      infos: per-problem info objects (length b), or None.
    """

    P: np.ndarray
    residual: np.ndarray
    ok: np.ndarray
    x: np.ndarray | None = None
    infos: tuple | None = None

    def single(self, i: int = 0) -> Fit:
        """Problem i as a :class:`Fit`."""
        return Fit(P=self.P[i], residual=float(self.residual[i]),
                   info=None if self.infos is None else self.infos[i])


def given_labels(solver, idx) -> np.ndarray:
    """The given labels of problems ``idx`` of ``solver``: (U,) where every problem has the
    same, else (idx.size, U)."""
    given = np.asarray(solver.given)
    return given if given.ndim == 1 else given[idx]


class Solver(Protocol):
    """What :mod:`sdtheory.distill` needs from a solver.

    Attributes:
      name: short name for tables ("exact", "linear", "trained").
      K: number of classes.
      true: (U,) true class of each unit.
      given: (U,) given (possibly noisy) label of each unit, or (B, U), one label set per
        problem (several label sets of one feature matrix, :class:`~sdtheory.solvers.FeatureSolver`;
        :func:`given_labels` picks a subset's).
      weight: (B, U) samples each unit stands for, per problem.
    """

    name: str
    K: int
    true: np.ndarray
    given: np.ndarray
    weight: np.ndarray

    def fit_batch(self, T: np.ndarray, x0=None, idx=None) -> BatchFit:
        """Train problems ``idx`` (default all) on targets T (b, U, K), optionally warm-started
        from x0 (the ``x`` of an earlier :class:`BatchFit` of the same problems)."""
        ...


def one_hot(labels, K: int) -> np.ndarray:
    """(..., K) one-hot rows of integer labels."""
    return np.eye(K)[np.asarray(labels)]


class SingleProblem:
    """Mixin for solvers of one problem (B = 1): :meth:`fit` is the primitive, and
    :meth:`fit_batch` trains that one problem."""

    def fit(self, T, x0=None) -> Fit:  # pragma: no cover - overridden
        raise NotImplementedError

    def fit_batch(self, T, x0=None, idx=None) -> BatchFit:
        T = np.asarray(T)
        if T.shape[0] != 1 or (idx is not None and list(np.asarray(idx)) != [0]):
            raise ValueError(f"{type(self).__name__} holds one problem; got a batch of "
                             f"{T.shape[0]}")
        fit = self.fit(T[0], None if x0 is None else x0[0])
        x = getattr(fit.info, "logits", None)
        return BatchFit(P=fit.P[None], residual=np.array([fit.residual]), ok=np.array([True]),
                        x=None if x is None else x[None], infos=(fit.info,))
