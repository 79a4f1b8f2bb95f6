"""The linearised closed form (L): the label-averaging operator (docs/theory.md section 4).

One training maps targets T to 1/K + A (T - 1/K), A = M (M + K N lam I)^{-1}; round r of SD on
one-hot labels Y gives P_r = 1/K + A^(r+1) (Y - 1/K). :class:`AveragingOperator` applies any
real power A^t through a spectral decomposition of M that is built once:

* a block model (group reduction): M is diag I on the within-class parts of unit rows and the
  K x K class-space matrix B on their class means (docs/theory.md section 3.3), so
  A^t r = a_inst^t (r - class mean) + [f_t(B) class means], f_t(mu) = (mu/(mu + K N lam))^t:
  O(U K + K^3), whatever the number of units;
* a dense Gram matrix: its eigendecomposition, A^t = V diag(a^t) V^T.
"""

from __future__ import annotations

import numpy as np

from sdtheory._blas import lapack_threads
from sdtheory._validate import (
    check_choice,
    check_counts,
    check_lam,
    check_round_indices,
    check_targets,
)
from sdtheory.models import BlockModel, is_psd, psd_refusal, square_matrix
from sdtheory.solvers.base import BatchFit, Fit, SingleProblem, one_hot

__all__ = ["AveragingOperator", "CLOSED_FORM_LOSSES", "LinearSolver"]

CLOSED_FORM_LOSSES = ("ce", "mse")
"""The losses of the closed-form students: ce, the linearised softmax student (L); mse, the
squared loss (kernel ridge, exact). (The trained solver's losses are
:data:`~sdtheory.solvers.trained.SOFTMAX_LOSSES`.)"""


class AveragingOperator:
    """A^t = (M (M + K N lam I)^{-1})^t for a block model's units or a dense Gram matrix.

    Args:
      gram: a :class:`~sdtheory.models.BlockModel` with ``counts`` (units: the (true, given)
        groups, or any units given by ``unit_class`` and ``weight``), or an (N, N) Gram matrix.
      lam: ridge parameter.
      K: number of classes (outputs), the factor of the ridge K N lam of (L); K = 1 gives the
        operator G (G + N lam I)^{-1} of the squared loss (:mod:`sdtheory.kernel_ridge`).
      unit_class: (U,) class of each unit (block model only).
      weight: (U,) samples per unit (block model only).

    Attributes:
      a: averaging eigenvalues a_j = mu_j / (mu_j + K N lam) of the distinct eigenspaces used
        (block model: the instance level and the K class-space eigenvalues; dense: all N).
      mu: the matching eigenvalues of M.
    """

    def __init__(self, gram, lam: float, K: int, *, unit_class=None, weight=None):
        self.K, self.lam = int(K), check_lam(lam)
        if isinstance(gram, BlockModel):
            diag, alpha, L, w = gram.class_structure()
            Wc = alpha * np.eye(gram.K) + (L * w) @ L.T
            self._cls = np.asarray(unit_class, dtype=np.int64)
            self._m = np.asarray(weight, dtype=np.float64)
            n = np.bincount(self._cls, weights=self._m, minlength=gram.K)
            self.N = float(n.sum())
            self._n = n
            root = np.sqrt(n)
            S = diag * np.eye(gram.K) + root[:, None] * Wc * root[None, :]   # n^1/2 B n^-1/2
            mu_c, self._Vc = np.linalg.eigh(0.5 * (S + S.T))
            self._root = root
            self._diag = diag
            self.mu = np.concatenate([[diag], mu_c])
            self._block = True
            self._Mop = (diag, Wc)
        else:
            G = square_matrix(gram, symmetric=True)
            self.N = float(G.shape[0])
            with lapack_threads(G.shape[0]):
                self.mu, self._V = np.linalg.eigh(G)
            self._block = False
            self._G = G
        if not is_psd(self.mu.min(), self.mu.max()):
            # a negative eigenvalue mu > -K N lam gives a_j < 0, and mu near -K N lam an
            # unbounded a_j: the closed form is as meaningless as (E) itself (section 2.2)
            raise ValueError(psd_refusal(self.mu.min(), self.mu.max()))
        self.a = self.mu / (self.mu + self.K * self.N * self.lam)

    def apply(self, Y, t=1.0) -> np.ndarray:
        """A^t Y (unit rows Y, (U, K)) without forming A^t; t >= 0, real powers allowed.

        ``t`` may be an array of powers: the result then has a leading axis over them,
        (len(t), U, K).
        """
        t = np.asarray(t, dtype=np.float64)
        out = self.apply_filter(Y, self.a[None, :] ** t.reshape(-1, 1))
        return out if t.ndim else out[0]

    def apply_filter(self, Y, coef, xp=np) -> np.ndarray:
        """f(A) Y for R spectral filters at once: ``coef`` (R, len(a)) holds f_r at each
        averaging eigenvalue of :attr:`a` (e.g. a ** t, or a t_r(a) of label-weighted rounds,
        :func:`sdtheory.kernel_ridge.target_filter`); returns (R, U, ...). ``xp``: numpy, or
        jax.numpy (dense Gram matrix) for coefficients traced by JAX."""
        if self._block and xp is not np:
            raise ValueError("apply_filter with jax.numpy needs a dense Gram matrix")
        Y = xp.asarray(Y, dtype=np.float64)
        coef = xp.asarray(coef, dtype=np.float64)
        if not self._block:
            V = xp.asarray(self._V)
            scaled = coef.reshape(coef.shape + (1,) * (Y.ndim - 1)) * (V.T @ Y)[None]
            return xp.einsum("ij,rj...->ri...", V, scaled)
        c_inst, c_cls = coef[:, 0, None, None], coef[:, 1:]
        sums = np.zeros((self._n.size, Y.shape[1]))
        np.add.at(sums, self._cls, self._m[:, None] * Y)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(self._n[:, None] > 0, sums / self._n[:, None], 0.0)
        # f(B) c = n^-1/2 Vc f(mu) Vc^T n^1/2 c on class means c (classes with n = 0: none)
        fc = np.einsum("ij,rjk->rik", self._Vc, c_cls[:, :, None]
                       * (self._Vc.T @ (self._root[:, None] * means))[None])
        with np.errstate(invalid="ignore", divide="ignore"):
            fc = np.where(self._root[:, None] > 0, fc / self._root[:, None], 0.0)
        return c_inst * (Y - means[self._cls])[None] + fc[:, self._cls]

    def power(self, t: float) -> np.ndarray:
        """A^t as a (U, U) matrix (for tests and small problems)."""
        return self.apply(np.eye(self._cls.size if self._block else int(self.N)), t)

    def matvec(self, R) -> np.ndarray:
        """M R on unit rows."""
        R = np.asarray(R, dtype=np.float64)
        if not self._block:
            return self._G @ R
        diag, Wc = self._Mop
        Y = np.zeros((self._n.size, R.shape[1]))
        np.add.at(Y, self._cls, self._m[:, None] * R)
        return diag * R + (Wc @ Y)[self._cls]


class LinearSolver(SingleProblem):
    """Linearised outputs (L): one training maps T to 1/K + A (T - 1/K).

    Round r of SD on one-hot labels gives 1/K + A^(r+1) (Y - 1/K); :meth:`round_outputs`
    evaluates any r without iterating.

    Args:
      gram: a :class:`~sdtheory.models.BlockModel` (units: the non-empty (true, given) groups)
        or an (N, N) Gram matrix (units: samples).
      labels: a :class:`~sdtheory.noise.Corruption`, or for a block model a K x K count matrix.
      lam: ridge parameter lambda > 0.
      loss: "ce" (default): the linearised softmax student (L); "mse": the squared loss, whose
        one training maps T to A T exactly, A = M (M + N lam I)^{-1} (kernel ridge regression,
        docs/theory.md section 14); its name is then "ridge".
    """

    name = "linear"
    certified = False       # the residual of (L) is not an uncertainty of the outputs

    def __init__(self, *, gram, labels, lam, loss: str = "ce"):
        from sdtheory.noise import Corruption

        self.lam = check_lam(lam)
        check_choice(loss, CLOSED_FORM_LOSSES, "loss")
        self.loss = loss
        self.name = "linear" if loss == "ce" else "ridge"
        if isinstance(gram, BlockModel):
            counts = labels.counts if isinstance(labels, Corruption) else labels
            counts = check_counts(counts, gram.sizes)
            self.true, self.given = np.nonzero(counts)
            w = counts[self.true, self.given].astype(np.float64)
            self.K = gram.K
            self.op = AveragingOperator(gram, lam, self._ridge_factor(), unit_class=self.true,
                                        weight=w)
        else:
            if not isinstance(labels, Corruption):
                raise ValueError("a dense Gram matrix needs labels=Corruption (true and given "
                                 "label per sample, sdtheory.noise)")
            G = square_matrix(gram, symmetric=True)
            if labels.N != G.shape[0]:
                raise ValueError(f"labels has {labels.N} samples but G is {G.shape[0]} x "
                                 f"{G.shape[0]}")
            self.true, self.given, self.K = labels.true, labels.given, labels.K
            w = np.ones(labels.N)
            self.op = AveragingOperator(G, lam, self._ridge_factor())
        self.weight = w[None]

    def _ridge_factor(self) -> int:
        """The factor c of the ridge c N lam: K for (L), 1 for the squared loss."""
        return self.K if self.loss == "ce" else 1

    @property
    def _offset(self) -> float:
        """The point the operator acts around: 1/K for (L) (uniform outputs), 0 for the
        squared loss."""
        return 1.0 / self.K if self.loss == "ce" else 0.0

    def targets0(self) -> np.ndarray:
        """One-hot given labels of the units."""
        return one_hot(self.given, self.K)

    def fit(self, T, x0=None) -> Fit:
        """One training on unit targets T: (L) maps rows summing to 1 (they may leave the
        simplex) to 1/K + A (T - 1/K); the squared loss maps any finite T to A T. ``x0`` is
        ignored (closed form)."""
        if self.loss == "ce":
            T = check_targets(T, (self.true.size, self.K), simplex=False)
        else:
            T = np.asarray(T, dtype=np.float64)
            if T.shape != (self.true.size, self.K) or not np.all(np.isfinite(T)):
                raise ValueError(f"T must be a finite ({self.true.size}, {self.K}) array, got "
                                 f"shape {T.shape}")
        c = self._offset
        P = c + self.op.apply(T - c, 1.0)
        return Fit(P=P, residual=self.residual(T, P))

    def round_outputs(self, r, Y=None, label_weight: float = 0.0) -> np.ndarray:
        """Round r's outputs directly (Y: one-hot given labels by default): with the label
        weight alpha (targets alpha Y + (1 - alpha) P_(r-1) from round 1 on, alpha = 0 plain
        SD), c + f_r(A) (Y - c), f_r(a) = a t_r(a)
        (:func:`sdtheory.kernel_ridge.target_filter`; a^(r+1) for alpha = 0), c = 1/K for (L) and 0
        for the squared loss.

        ``r`` may be an array of rounds: the result is then (len(r), U, K). Rounds are
        integers in [0, :data:`sdtheory._validate.ROUNDS_MAX`] (ValueError otherwise).
        """
        from sdtheory.kernel_ridge import output_filter

        r = check_round_indices(r).astype(np.float64)
        Y = self.targets0() if Y is None else Y
        c = self._offset
        a = self.op.a[None, :]
        out = c + self.op.apply_filter(Y - c, output_filter(a, float(label_weight),
                                                                r.reshape(-1, 1)))
        return out if r.ndim else out[0]

    def first_perfect_round(self, max_rounds: int, Y=None,
                            label_weight: float = 0.0) -> int | None:
        """First round 0..max_rounds whose outputs get every unit right (None: none), found by
        evaluating the rounds in blocks: every unit with samples strictly correct
        (:func:`sdtheory.metrics.correct`), i.e. strict accuracy 1."""
        from sdtheory.metrics import correct, first_true

        empty = self.weight[0] == 0
        for start in range(0, int(max_rounds) + 1, 256):
            rounds = np.arange(start, min(start + 256, int(max_rounds) + 1))
            right = correct(self.round_outputs(rounds, Y, label_weight), self.true) | empty
            r = int(first_true(right.all(axis=-1)))
            if r >= 0:
                return int(rounds[r])
        return None

    def residual(self, T, P) -> float:
        """Residual of the fixed point: (L) max |P - 1/K - M (T - P) / (K N lam)|, the squared
        loss max |P - M (T - P) / (N lam)| (P = A T rewritten)."""
        R = self.op.matvec(np.asarray(T) - np.asarray(P)) / (
            self._ridge_factor() * self.op.N * self.lam)
        return float(np.max(np.abs(P - self._offset - R)))

    def fit_batch(self, T, x0=None, idx=None) -> BatchFit:
        out = super().fit_batch(T, x0, idx)
        return BatchFit(P=out.P, residual=out.residual, ok=out.ok)
