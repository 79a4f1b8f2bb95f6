"""Exact student outputs: the fixed point (E) of one training, through the one Newton core.

:class:`ExactSolver` picks the solver that fits its Gram input (each a
:class:`~sdtheory.solvers.newton_solver.NewtonSolver`):

* a :class:`~sdtheory.models.BlockModel`: :class:`~sdtheory.solvers.group_solver.GroupSolver`,
  the group reduction (docs/theory.md section 3); the units are the non-empty (true class,
  given label) groups and the cost does not depend on n;
* an (N, N) array: :class:`~sdtheory.solvers.dense_solver.DenseSolver`, the full Gram matrix
  (docs/theory.md section 2.4), units = samples;
* a :class:`~sdtheory.models.Features` (N x D features X):
  :class:`~sdtheory.solvers.feature_solver.FeatureSolver`, the fixed point in weight space with
  G = X X^T never formed (docs/theory.md section 2.5), units = samples; each fit also returns
  the weights W (K x D), for outputs on held-out features.

:meth:`ExactSolver.group_batch` builds many block problems with the same K at once (sweeps,
verification grids): units are the full K x K grid of groups, empty ones with weight 0.
"""

from __future__ import annotations

from sdtheory.models import BlockModel, Features
from sdtheory.solvers.dense_solver import DenseSolver
from sdtheory.solvers.feature_solver import FeatureSolver
from sdtheory.solvers.group_solver import GroupSolver
from sdtheory.solvers.newton import DEFAULT_TOL

__all__ = ["ExactSolver"]


class ExactSolver:
    """Exact outputs of one training (docs/theory.md section 2): the solver for ``gram``'s
    structure, whose attributes and methods this object answers with.

    Args:
      gram: a :class:`~sdtheory.models.BlockModel` (group reduction), an (N, N) symmetric
        positive semi-definite Gram matrix, or :class:`~sdtheory.models.Features` X (N x D):
        the Gram matrix X X^T, solved in weight space without forming it (section 2.5).
      labels: a :class:`~sdtheory.noise.Corruption` (true and given label per sample, in the
        order of the Gram matrix or the rows of X); for a block model also a K x K count
        matrix (row = true class, column = given label, rows summing to the class sizes).
      lam: ridge parameter lambda > 0.
      tol: certificate to reach (a certificate up to 100 tol is accepted at float64 round-off).
      max_iter: Newton steps of the first attempt.

    Attributes:
      solver: the :class:`~sdtheory.solvers.group_solver.GroupSolver`,
        :class:`~sdtheory.solvers.dense_solver.DenseSolver` or
        :class:`~sdtheory.solvers.feature_solver.FeatureSolver` picked; its attributes
        (``name``, ``K``, ``true``, ``given``, ``weight``: the
        :class:`~sdtheory.solvers.base.Solver` protocol; ``kind``, ``spectrum``, ...) and
        methods (``fit``, ``fit_batch``, ``targets0``, ``expand``) are this object's.

    Example:
      >>> import sdtheory as sd; sd.enable_x64()
      >>> m = sd.two_level(K=4, n=120, c=0.4, d=0.1)
      >>> C = [[60, 30, 20, 10], [10, 60, 30, 20], [20, 10, 60, 30], [30, 20, 10, 60]]
      >>> s = ExactSolver(gram=m, labels=C, lam=1e-3)
      >>> fit = s.fit(s.targets0()); fit.residual < 1e-12
      True
    """

    def __init__(self, *, gram, labels, lam, tol: float = DEFAULT_TOL, max_iter: int = 60):
        kw = dict(gram=gram, labels=labels, lam=lam, tol=tol, max_iter=max_iter)
        if isinstance(gram, BlockModel):
            self.solver = GroupSolver.of_model(**kw)
        elif isinstance(gram, Features):
            self.solver = FeatureSolver(**kw)
        else:
            self.solver = DenseSolver(**kw)

    def __getattr__(self, attr):
        # reached only for what ExactSolver itself lacks: the picked solver's attributes
        if attr == "solver":                  # not yet set (e.g. a copy under construction)
            raise AttributeError(attr)
        return getattr(self.solver, attr)

    @staticmethod
    def group_batch(*, diag, alpha, L, w, counts, lam, tol: float = DEFAULT_TOL,
                    max_iter: int = 60) -> GroupSolver:
        """B block problems with the same K, solved together (sweeps, verification grids): a
        :class:`~sdtheory.solvers.group_solver.GroupSolver` whose units are the full K x K
        grid of (true class, given label) groups in row-major order; an empty group has weight
        0 and acts on nothing.

        Args:
          diag, alpha: (B,) instance and class levels (:meth:`BlockModel.class_structure`).
          L, w: (B, K, r) and (B, r) coarser levels.
          counts: (B, K, K) integer counts (not re-validated: the caller built them).
          lam: (B,) ridge parameters.
        """
        return GroupSolver(diag=diag, alpha=alpha, L=L, w=w, counts=counts, lam=lam, tol=tol,
                           max_iter=max_iter)
