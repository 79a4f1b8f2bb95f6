"""Relation-guided distillation: the fixed-feature analogue of RMDNet's idea (docs/theory.md
section 15).

RMDNet (Che et al., arXiv 2405.19606) learns label-free relations between samples and distils
that relation graph into a classifier trained on noisy labels. Its exact losses were not
available to this package; what is implemented here is the analogue on fixed features: a
relation matrix R from a label-free view Phi of the training samples, and rounds whose targets
mix the given labels with the relation-smoothed outputs of the previous round,

    T_0 = Y,    T_r = alpha Y + (1 - alpha) R P_{r-1}   (r >= 1),

each round trained by any solver (exact, linearised, trained) on the classifier's own features.
R is row-stochastic, so T_r stays on the simplex for alpha in [0, 1]; R = I is label-weighted
SD (:func:`sdtheory.distill.run_rounds` with ``label_weight``).

R: cosine similarities s_ij of the view's rows, each row's k nearest neighbours j != i (largest
s_ij), weights exp(s_ij / tau), normalised to sum 1 per row.
"""

from __future__ import annotations

import numpy as np

from sdtheory._validate import as_float, as_int, check_features, check_positive

__all__ = ["METHODS", "relation_matrix", "gmm_view", "relation_purity", "class_relation",
           "unit_relation", "relation_linear_map", "relation_limit", "relation_rate"]

METHODS = ("sd", "relation")
"""How the students of rounds >= 1 get their targets: sd (the previous round's outputs,
mixed with the labels by the label weight) or relation (the relation-smoothed outputs)."""


def relation_matrix(Phi, *, k: int = 10, tau: float = 0.1):
    """Row-normalised k-nearest-neighbour cosine relation matrix of the rows of ``Phi``.

    Args:
      Phi: (N, D') label-free view of the N training samples (finite, no zero row).
      k: neighbours per sample (1 <= k <= N - 1), the sample itself excluded.
      tau: temperature of the weights exp(cos / tau), tau > 0.

    Returns:
      (N, N) scipy.sparse CSR matrix, k nonzeros per row, rows summing to 1.
    """
    from scipy import sparse

    Phi = check_features(Phi, "the relation view", min_rows=2)
    N = Phi.shape[0]
    k = as_int(k, "relation neighbours k", lo=1, hi=N - 1)
    tau = check_positive(tau, "relation temperature tau")
    norms = np.linalg.norm(Phi, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"the relation view has a zero row (sample {int(np.argmin(norms))}): "
                         "its cosine similarity is undefined")
    Z = Phi / norms[:, None]
    rows, cols, vals = [], [], []
    for start in range(0, N, 2048):                      # memory: 2048 x N similarities at once
        S = Z[start:start + 2048] @ Z.T
        idx = np.arange(S.shape[0])
        S[idx, start + idx] = -np.inf                    # no self-relation
        nb = np.argpartition(-S, k - 1, axis=1)[:, :k]
        s = np.take_along_axis(S, nb, axis=1)
        w = np.exp((s - s.max(axis=1, keepdims=True)) / tau)
        w /= w.sum(axis=1, keepdims=True)
        rows.append(np.repeat(start + idx, k))
        cols.append(nb.ravel())
        vals.append(w.ravel())
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows),
                                                     np.concatenate(cols))), shape=(N, N))


def gmm_view(labels, *, snr: float, dim: int = 32, seed: int = 0) -> np.ndarray:
    """A second, label-free Gaussian-mixture view of samples of the given (true) classes:
    phi_i = m_{y_i} + sigma z_i, class means m_k independent uniform unit vectors in R^dim,
    z_i standard normal, and sigma^2 = 1 / (snr dim): ``snr`` = ||m||^2 / E||sigma z||^2.

    Args:
      labels: (N,) true classes 0..K-1 (the view's signal; it never sees the noisy labels).
      snr: signal-to-noise ratio > 0.
      dim: dimension of the view.
      seed: seed of the means and the noise.
    """
    y = np.asarray(labels)
    snr = check_positive(snr, "relation view snr")
    dim = as_int(dim, "relation view dim", lo=1)
    rng = np.random.default_rng(seed)
    K = int(y.max()) + 1
    M = rng.standard_normal((K, dim))
    M /= np.linalg.norm(M, axis=1, keepdims=True)
    return M[y] + rng.standard_normal((y.size, dim)) / np.sqrt(snr * dim)


def relation_purity(R, labels) -> float:
    """Mean relation mass on samples of the same (true) class: sum_i sum_{j: y_j = y_i} R_ij
    / N (1: every relation stays within the class)."""
    y = np.asarray(labels)
    R = R.tocoo()
    return float(np.sum(R.data[y[R.row] == y[R.col]]) / R.shape[0])


def check_purity(purity) -> float:
    """A relation purity: a number in [0, 1] (one-line error naming the parameter)."""
    q = as_float(purity, "relation purity")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"relation purity must be a number in [0, 1], got {q:g}")
    return q


def class_relation(K: int, purity: float) -> np.ndarray:
    """A block-constant relation at the class level: the K x K row-stochastic matrix with
    ``purity`` on the diagonal and (1 - purity)/(K - 1) elsewhere (the share of a sample's
    relation mass on its own class and on each other class)."""
    K = as_int(K, "K", lo=2)
    q = check_purity(purity)
    return q * np.eye(K) + (1.0 - q) / (K - 1) * (1.0 - np.eye(K))


def unit_relation(Rbar, unit_class, weight) -> np.ndarray:
    """The relation R_ij = Rbar[y_i, y_j] / n_{y_j} (class-level mass spread evenly over the
    samples of a class) on units that group samples: unit u of class t_u holding m_u samples
    gets R_uv = Rbar[t_u, t_v] m_v / n_{t_v}, so that R applied to unit rows equals the
    per-sample R applied to the samples (units = samples when every m_u = 1). This is what a
    group-reduced solver of a block model needs (docs/theory.md section 15)."""
    Rbar = np.asarray(Rbar, dtype=np.float64)
    t = np.asarray(unit_class, dtype=np.int64)
    m = np.asarray(weight, dtype=np.float64)
    n = np.bincount(t, weights=m, minlength=Rbar.shape[0])
    if np.any(n[np.unique(t)] <= 0):
        raise ValueError("every unit's class must hold samples")
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(n[t] > 0, m / n[t], 0.0)
    return Rbar[t[:, None], t[None, :]] * share[None, :]


def relation_linear_map(op, R, alpha: float) -> np.ndarray:
    """M = (1 - alpha) A R, the map of linearised relation-guided rounds:
    P_r - 1/K = alpha A (Y - 1/K) + M (P_{r-1} - 1/K) (docs/theory.md section 15).

    Args:
      op: the :class:`~sdtheory.solvers.AveragingOperator` of the training (dense or group
        units), whose A = op.power(1).
      R: (U, U) relation on the same units (dense or scipy.sparse).
      alpha: label weight.

    Returns:
      (U, U) M; its spectral radius bounds the rate at which the rounds converge, and is that
      rate where the error P_0 - P_inf has a component on its leading eigenvector
      (:func:`relation_rate`).
    """
    R = R.toarray() if hasattr(R, "toarray") else np.asarray(R, dtype=np.float64)
    return (1.0 - float(alpha)) * op.power(1.0) @ R


def relation_limit(op, R, alpha: float, Y, K: int) -> np.ndarray:
    """The limit of linearised relation-guided rounds when the spectral radius of
    M = (1 - alpha) A R is below 1: P_inf = 1/K + (I - M)^{-1} alpha A (Y - 1/K)."""
    M = relation_linear_map(op, R, alpha)
    rho = float(np.max(np.abs(np.linalg.eigvals(M))))
    if not rho < 1.0:
        raise ValueError(f"the rounds do not converge: spectral radius of (1 - alpha) A R is "
                         f"{rho:.6g} >= 1")
    Yc = np.asarray(Y, dtype=np.float64) - 1.0 / K
    return 1.0 / K + np.linalg.solve(np.eye(M.shape[0]) - M, float(alpha) * op.apply(Yc, 1.0))


def relation_rate(op, R, alpha: float, Y, K: int, rel: float = 1e-9) -> tuple[float, float]:
    """The rate of linearised relation-guided rounds and the spectral radius rho of
    M = (1 - alpha) A R (docs/theory.md section 15).

    The error after round r is M^r (P_0 - P_inf). Expanded in M's eigenvectors, it decays at
    the largest |eigenvalue| among those on which P_0 - P_inf has a component: the spectral
    radius of M on the directions that carry error. A component counts where it exceeds
    ``rel`` times the largest one (smaller ones are the round-off of the expansion). It is
    rho unless P_0 - P_inf has no component on rho's eigenvectors: with balanced counts and a
    relation that keeps the class totals (the mean label 1/K), the global direction, whose
    eigenvalue is rho at alpha = 0, carries no error.

    Returns:
      (rate, rho).
    """
    M = relation_linear_map(op, R, alpha)
    lam, V = np.linalg.eig(M)
    rho = float(np.max(np.abs(lam)))
    if not rho < 1.0:
        raise ValueError(f"the rounds do not converge: spectral radius of (1 - alpha) A R is "
                         f"{rho:.6g} >= 1")
    P0 = 1.0 / K + op.apply(np.asarray(Y, dtype=np.float64) - 1.0 / K, 1.0)
    err = P0 - relation_limit(op, R, alpha, Y, K)
    coef = np.linalg.solve(V, err.astype(complex))
    size = np.linalg.norm(coef, axis=1) * np.linalg.norm(V, axis=0)
    carried = size > rel * size.max()
    return float(np.max(np.abs(lam[carried]))), rho
