"""One training on fixed features: exact and linearised student outputs.

Every solver answers the same question: given targets T (one row per training unit, each row a
distribution over K classes), what does the global minimiser of

    L(W) = (1/N) sum_i CE(t_i, softmax(W x_i)) + (lam/2) ||W||_F^2

output on the training inputs?  The exact answer solves the fixed point (theory.md eq. E)

    P = softmax_rows( G (T - P) / (N lam) ).

A *unit* is a training sample (full solvers) or a group of samples sharing
(true class, given label, target) (group-reduced solvers); ``weight`` is how many samples a unit
stands for. All solvers share the :class:`Solver` protocol, so :mod:`sdtheory.distill` runs rounds
with any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = ["Fit", "Solver", "SolverError"]


class SolverError(RuntimeError):
    """A solver did not reach its tolerance: nothing is returned rather than a wrong answer."""


@dataclass(frozen=True)
class Fit:
    """Outputs of one training.

    Attributes:
      P: (U, K) outputs on the training units, rows on the simplex.
      residual: certificate, max |P - softmax(G (T - P) / (N lam))| for exact solvers; for the
        linearised form, the residual of (L).
      info: solver-specific diagnostics (iterations, time, ...).
    """

    P: np.ndarray
    residual: float
    info: dict = field(default_factory=dict)


class Solver(Protocol):
    """What :mod:`sdtheory.distill` needs from a solver of one training.

    Attributes:
      K: number of classes.
      true: (U,) true class of each unit.
      given: (U,) given (possibly noisy) label of each unit.
      weight: (U,) number of training samples each unit stands for (1 for full solvers).
      name: short name for tables ("exact", "linear", "trained", ...).
    """

    K: int
    true: np.ndarray
    given: np.ndarray
    weight: np.ndarray
    name: str

    def fit(self, T: np.ndarray) -> Fit:
        """Train once on targets T (U x K, rows are distributions); return the outputs."""
        ...
