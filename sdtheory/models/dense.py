"""Dense Gram matrices: checks, the symmetric jitter of the authors' numerics, PSD repair
(docs/theory.md section 5.4)."""

from __future__ import annotations

import warnings

import numpy as np

from sdtheory._blas import lapack_threads
from sdtheory._validate import as_float

__all__ = ["PSD_RTOL", "square_matrix", "psd_margin", "is_psd", "psd_refusal", "jitter",
           "min_eigenvalue", "nearest_psd"]

PSD_RTOL = 1e-10
"""An eigenvalue above -PSD_RTOL max(1, |mu|max) counts as zero in every PSD check: of a
block model's analytic spectrum (its model with mu1 = 0 exactly is PSD, float error aside)
and of a dense Gram matrix's computed one (rounding of a PSD matrix assembled in float64, and
of its eigendecomposition, stays far below this)."""


def square_matrix(G, name: str = "G", *, symmetric: bool = False) -> np.ndarray:
    """G as a finite square float64 array; ``symmetric`` also asks for G = G^T to 1e-12
    relative (a Gram matrix)."""
    G = np.asarray(G, dtype=np.float64)
    if G.ndim != 2 or G.shape[0] != G.shape[1] or G.shape[0] < 1:
        raise ValueError(f"{name} must be a square N x N matrix, got shape {G.shape}")
    if not np.all(np.isfinite(G)):
        raise ValueError(f"{name} must be finite (it contains NaN or inf)")
    if symmetric:
        tol = 1e-12 * max(1.0, float(np.abs(G).max(initial=0)))
        N, b = G.shape[0], 1024
        for i in range(0, N, b):             # tile by tile: G.T is read along rows, cache-wise
            for j in range(i, N, b):
                if np.abs(G[i:i + b, j:j + b] - G[j:j + b, i:i + b].T).max() > tol:
                    raise ValueError(f"{name} must be symmetric (a Gram matrix); the authors' "
                                     "non-symmetric jitter is not one")
    return G


def psd_refusal(min_eig: float, max_eig: float, name: str = "G") -> str:
    """The one message for a matrix that is not positive semi-definite."""
    return (f"{name} is not positive semi-definite: smallest eigenvalue {min_eig:.4g} (largest "
            f"{max_eig:.4g}); a Gram matrix has none below 0. A jittered block model at this size "
            "needs a smaller eps, or project it with sdtheory.models.nearest_psd(G).")


def psd_margin(values, multiplicity=None):
    """Smallest eigenvalue plus the rounding allowance PSD_RTOL max(1, |mu|max): >= 0 for a
    PSD spectrum. Vectorised over a leading axis of levels: ``values`` (L, ...) with
    ``multiplicity`` (L, ...) ignores levels of multiplicity 0.

    Returns:
      min(mu) + PSD_RTOL scale (negative iff not PSD), an array over the trailing axes.
    """
    v = np.asarray(values, dtype=np.float64)
    used = np.ones(v.shape, dtype=bool) if multiplicity is None else np.asarray(multiplicity) > 0
    with np.errstate(invalid="ignore"):
        scale = np.maximum(1.0, np.max(np.where(used, np.abs(v), 0.0), axis=0))
        return np.min(np.where(used, v, np.inf), axis=0) + PSD_RTOL * scale


def is_psd(mu_min: float, mu_max: float) -> bool:
    """PSD to rounding (:func:`psd_margin` of the extreme eigenvalues)."""
    return bool(psd_margin([float(mu_min), float(mu_max)]) >= 0)


def jitter(G, eps: float, seed, symmetric: bool = True) -> np.ndarray:
    """G plus Uniform[-eps, eps] noise on the off-diagonal (docs/theory.md section 5.4).

    ``symmetric=True`` draws the strict upper triangle i.i.d. Uniform[-eps, eps] and mirrors
    it, so each off-diagonal entry is Uniform[-eps, eps], the result is symmetric and the
    diagonal is unchanged. It is still not necessarily positive semidefinite: the noise is a
    Wigner matrix with entry variance eps^2 / 3, whose spectrum fills a semicircle of radius
    2 eps sqrt(N / 3). At the authors' N = 2000, eps = 0.05 that radius is 2.58 while the
    smallest eigenvalue of the two-level G is 1 - c = 0.6, so the jittered G is indefinite
    (minimum eigenvalue about -2); check with :func:`min_eigenvalue`.

    ``symmetric=False`` reproduces the authors' variant: i.i.d. noise on every off-diagonal
    entry, not symmetrised. That matrix is not a Gram matrix, and a ``UserWarning`` says so.

    Args:
      G: square matrix (N x N), e.g. :meth:`~sdtheory.models.block.BlockModel.dense`.
      eps: noise half-width, >= 0.
      seed: seed for ``numpy.random.default_rng``.
      symmetric: symmetrise the noise (default) or not.

    Returns:
      a new float64 array; same seed, same bytes.
    """
    G = square_matrix(G)
    eps = as_float(eps, "eps")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got eps = {eps}")
    N = G.shape[0]
    rng = np.random.default_rng(seed)
    if symmetric:
        # the strict upper triangle, row by row, from one draw (no N^2 index arrays)
        vals = rng.uniform(-eps, eps, size=N * (N - 1) // 2)
        out = G.copy()
        at = 0
        for i in range(N - 1):
            row = vals[at:at + N - 1 - i]
            out[i, i + 1:] += row
            out[i + 1:, i] += row
            at += N - 1 - i
        return out
    else:
        warnings.warn("jitter(symmetric=False) adds independent noise to G_ij and G_ji: the "
                      "result is not symmetric, so it is not a Gram matrix", UserWarning,
                      stacklevel=2)
        noise = rng.uniform(-eps, eps, size=(N, N))
        np.fill_diagonal(noise, 0.0)
    return G + noise


def min_eigenvalue(G) -> float:
    """Smallest eigenvalue of a symmetric matrix (``numpy.linalg.eigvalsh``).

    Raises:
      ValueError: if G is not square, not finite, or not symmetric (to 1e-12 relative).
    """
    G = square_matrix(G, symmetric=True)
    with lapack_threads(G.shape[0]):
        return float(np.linalg.eigvalsh(G)[0])


def nearest_psd(G) -> np.ndarray:
    """Nearest positive semi-definite matrix in Frobenius norm: eigenvalues clipped at 0.

    A remedy for a jittered block model that is no longer a Gram matrix (e.g. N = 2000,
    eps = 0.05, smallest eigenvalue about -1.97). The result is symmetric PSD but its diagonal
    is no longer exactly 1; report it with the results.
    """
    G = square_matrix(G, symmetric=True)
    with lapack_threads(G.shape[0]):
        mu, V = np.linalg.eigh(0.5 * (G + G.T))
    P = (V * np.maximum(mu, 0.0)) @ V.T
    return 0.5 * (P + P.T)


