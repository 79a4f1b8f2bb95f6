"""The exact solver of block Gram models through the group reduction (docs/theory.md section 3).

Units are the (true class, given label) groups: all samples of a group share target and
output, so the cost does not depend on n. :class:`GroupSolver` holds B block problems with the
same K and solves any subset of them in vmapped batches (sweeps, verification grids), or one
problem of a :class:`~sdtheory.models.BlockModel` (:meth:`GroupSolver.of_model`).
"""

from __future__ import annotations

import numpy as np

from sdtheory._validate import check_counts, check_lam
from sdtheory._x64 import require_x64
from sdtheory.models import BlockModel
from sdtheory.noise import Corruption
from sdtheory.solvers.newton import DEFAULT_TOL, newton
from sdtheory.solvers.newton_solver import NewtonSolver

__all__ = ["GroupSolver", "SMALL_BATCH", "batch_size"]

SMALL_BATCH = 64
"""The smaller of the two padded batch sizes of group problems (the other: :func:`batch_size`)."""


def batch_size(K: int) -> int:
    """Problems per batched call for K classes: 512, fewer for large K (memory ~ K^3 each).

    A problem's last digits depend on the size of the batch it is solved in (XLA picks its
    kernels by shape), so callers that must give identical results however they split the
    work (sweeps on several executors) cut their tasks the same way every time, in multiples
    of this size (:func:`sdtheory.jobs.sweep.engine._task_cells`)."""
    return int(max(SMALL_BATCH, min(512, 2 ** int(np.log2(2 ** 24 / K ** 3)))))


class GroupSolver(NewtonSolver):
    """B group-reduced block problems with the same K
    (:class:`~sdtheory.solvers.problems.GroupProblem`), solved together.

    Args:
      diag, alpha: (B,) instance and class levels (:meth:`BlockModel.class_structure`).
      L, w: (B, K, r) and (B, r) coarser levels.
      counts: (B, K, K) integer counts, row = true class, column = given label (not
        re-validated: the caller built them; :meth:`of_model` validates).
      lam: (B,) ridge parameters.
      tol: certificate to reach.
      max_iter: Newton steps of the first attempt.
      keep_empty: units are the full K x K grid of groups in row-major order, an empty group
        with weight 0 acting on nothing (default); False: only the groups with samples in the
        first problem (for B = 1).

    The unknowns passed between rounds (``BatchFit.x``) are the logits (b, K, K, K).
    """

    kind = "group"

    def __init__(self, *, diag, alpha, L, w, counts, lam, tol: float = DEFAULT_TOL,
                 max_iter: int = 60, keep_empty: bool = True):
        from sdtheory.solvers.problems import GroupProblem

        require_x64("GroupSolver")
        self.tol, self.max_iter = float(tol), int(max_iter)
        counts = np.asarray(counts)
        B, K, _ = counts.shape
        self.K = K
        m = counts.astype(np.float64)
        self.lam_b = np.asarray(lam, float)
        # numpy leaves: batches are sliced on the host (one transfer per call, no device gathers)
        self._problem = GroupProblem(s=1.0 / (m.sum(axis=(1, 2)) * self.lam_b),
                                     diag=np.asarray(diag, float), alpha=np.asarray(alpha, float),
                                     L=np.asarray(L, float), w=np.asarray(w, float), m=m)
        flat = m.reshape(B, K * K)
        self._sel = np.arange(K * K) if keep_empty else np.flatnonzero(flat[0] > 0)
        grid_true, grid_given = np.divmod(np.arange(K * K), K)
        self.true, self.given = grid_true[self._sel], grid_given[self._sel]
        self.weight = flat[:, self._sel]
        self.counts = counts[0] if B == 1 else counts

    @classmethod
    def of_model(cls, *, gram: BlockModel, labels, lam, tol: float = DEFAULT_TOL,
                 max_iter: int = 60) -> GroupSolver:
        """One problem: a block model and its labels (a :class:`~sdtheory.noise.Corruption` or
        a K x K count matrix whose rows sum to the class sizes); units are the non-empty
        groups."""
        lam = check_lam(lam)
        counts = check_counts(labels.counts if isinstance(labels, Corruption) else labels,
                              gram.sizes)
        diag, alpha, L, w = gram.class_structure()
        return cls(diag=np.array([diag]), alpha=np.array([alpha]), L=L[None], w=w[None],
                   counts=counts[None], lam=np.array([lam]), tol=tol, max_iter=max_iter,
                   keep_empty=False)

    def _layout(self, T, fill=None):
        """Unit rows -> the K x K grid of groups, (b, K, K, K)."""
        K, b = self.K, T.shape[0]
        full = np.full((b, K * K, K), 1.0 / K if fill is None else fill)
        full[:, self._sel] = T
        return full.reshape(b, K, K, K)

    def expand(self, P_units: np.ndarray) -> np.ndarray:
        """Unit outputs -> per-sample outputs, samples ordered as ``noise.corrupt_exact``."""
        return np.repeat(P_units, self.weight[0].astype(np.int64), axis=0)

    def _solve(self, idx, T, x0, max_iter, retry=False):
        import jax

        if self.B == 1:
            r = newton(self._problem_of(retry), T, x0, tol=self.tol, max_iter=max_iter,
                       batched=True)
            return r.x, r.P, r.certificate, r.iterations, r.status, r.krylov
        # Batches are cut into chunks of two padded sizes (each size compiles once per K), so
        # that an active set that shrinks round after round does not recompile: full chunks of
        # the big size, the rest in chunks of SMALL_BATCH (benchmarks/README.md).
        big = batch_size(self.K)
        out = [np.empty((idx.size,) + T.shape[1:]), np.empty((idx.size,) + T.shape[1:]),
               np.empty(idx.size), np.empty(idx.size, dtype=np.int64),
               np.empty(idx.size, dtype=np.int64), np.empty(idx.size, dtype=np.int64)]
        at = 0
        while at < idx.size:
            size = big if idx.size - at >= big else SMALL_BATCH
            part = np.arange(at, min(idx.size, at + size))
            pad = np.concatenate([part, np.full(size - part.size, part[-1])])
            problem = jax.tree_util.tree_map(lambda a, i=idx[pad]: a[i], self._problem_of(retry))
            r = newton(problem, T[pad], x0[pad], tol=self.tol, max_iter=max_iter, batched=True)
            for o, v in zip(out, (r.x, r.P, r.certificate, r.iterations, r.status, r.krylov)):
                o[part] = v[:part.size]
            at += size
        return tuple(out)
