"""Explicit features: Gaussian mixtures, user features, and factors of Gram matrices
(docs/theory.md sections 5.5 and 11).

A :class:`Features` wraps an (N, D) feature matrix, so that solvers can tell features from a
Gram matrix: ``ExactSolver(gram=Features(X), ...)`` works in feature space, a plain (N, N)
array is a Gram matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sdtheory._blas import lapack_threads
from sdtheory._validate import (
    as_float,
    as_int,
    check_features,
    check_K,
    check_positive,
    check_sizes,
)
from sdtheory.models.dense import is_psd, psd_refusal, square_matrix

__all__ = ["Features", "binary_gmm", "gmm_means", "gmm_features", "preprocess_features",
           "gram_from_features", "feature_factor"]


@dataclass(frozen=True, eq=False)
class Features:
    """Explicit features X (N x D, rows = samples); the Gram matrix is X X^T.

    Raises:
      ValueError: X not 2-D, empty, or not finite.
    """

    X: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "X", check_features(self.X, "features X"))

    @property
    def N(self) -> int:
        return self.X.shape[0]

    @property
    def D(self) -> int:
        return self.X.shape[1]

    def gram(self) -> np.ndarray:
        """The N x N Gram matrix X X^T."""
        return self.X @ self.X.T


def _check_gmm(K, c, d, D) -> tuple[int, float, float, int]:
    K = check_K(K)
    D = as_int(D, "D (feature dimension)")
    c = as_float(c, "c")
    d = as_float(d, "d")
    if D < K + 1:
        raise ValueError(f"D (feature dimension) must be >= K + 1 = {K + 1}, got D = {D}")
    if d < 0:
        raise ValueError(f"Gaussian-mixture features need d >= 0 (mu_k has sqrt(d)), got d = {d}")
    if not c > d:
        raise ValueError(f"Gaussian-mixture features need c > d, got c = {c}, d = {d}")
    if c > 1:
        raise ValueError(f"Gaussian-mixture features need c <= 1 (sigma^2 = (1-c)/D), got c = {c}")
    return K, c, d, D


def gmm_means(K: int, c: float, d: float, D: int) -> np.ndarray:
    """Class means mu_k = sqrt(d) u_0 + sqrt(c - d) u_k of the Gaussian mixture (section 5.5).

    The orthonormal u_0, ..., u_K are the first K + 1 standard basis vectors of R^D, so
    <mu_k, mu_k> = c and <mu_k, mu_l> = d for k != l.

    Returns:
      (K, D) float64 array, row k = mu_k.
    """
    K, c, d, D = _check_gmm(K, c, d, D)
    M = np.zeros((K, D))
    M[:, 0] = math.sqrt(d)
    M[np.arange(K), np.arange(1, K + 1)] = math.sqrt(c - d)
    return M


def gmm_features(K: int, n, c: float, d: float, D: int, seed) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-mixture features whose Gram matrix concentrates on the two-level model.

    x_i = mu_{y_i} + sigma xi_i with mu_k from :func:`gmm_means` (u's = standard basis
    vectors), sigma^2 = (1 - c) / D and xi_i ~ N(0, I_D). Then E<x_i, x_j> = c (same class,
    i != j), d (different classes) and E||x_i||^2 = 1; each entry of G - E[G] has standard
    deviation O(1 / sqrt(D)) (off-diagonal exactly sqrt((1 - c^2) / D)).

    Args:
      K: number of classes (>= 2).
      n: samples per class (int) or a sequence of K class sizes.
      c, d: target correlations, 0 <= d < c <= 1.
      D: feature dimension, >= K + 1.
      seed: seed for ``numpy.random.default_rng``; same seed, same bytes.

    Returns:
      (X, y): X of shape (N, D) float64, rows ordered by class (class 0 first), and the labels
      y of shape (N,), as :meth:`~sdtheory.models.block.BlockModel.labels`.
    """
    M = gmm_means(K, c, d, D)
    sizes = check_sizes(n, K, "n")
    y = np.repeat(np.arange(len(sizes)), sizes)
    sigma = math.sqrt((1.0 - float(c)) / int(D))
    xi = np.random.default_rng(seed).standard_normal((y.size, int(D)))
    return M[y] + sigma * xi, y


def binary_gmm(N: int, D: int, delta: float, seed) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Takanami et al.'s binary Gaussian mixture: x_i = s_i v / sqrt(D) + sqrt(delta) z_i,
    s_i = +-1 equally likely, v and z_i standard normal in R^D (docs/theory.md section 16).

    Returns:
      (X (N, D), labels (N,) in {0, 1} with s = 2 label - 1, means (2, D) = -v/sqrt(D),
      +v/sqrt(D)); fresh points of class k are means[k] + sqrt(delta) xi.
    """
    N = as_int(N, "N (samples)", lo=2)
    D = as_int(D, "D (dimension)", lo=1)
    delta = check_positive(delta, "delta (noise variance)")
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(D)
    y = rng.integers(0, 2, N)
    X = ((2 * y - 1)[:, None] * v[None, :] / np.sqrt(D)
         + np.sqrt(delta) * rng.standard_normal((N, D)))
    return X, y, np.stack([-v, v]) / np.sqrt(D)


def preprocess_features(X, *, center: bool = False, normalize: bool = False) -> np.ndarray:
    """Checked features (:class:`Features`), first centred (``center``: the feature-wise mean
    over the samples subtracted), then L2-normalised row by row (``normalize``).

    Raises:
      ValueError: if X is not 2-D, has NaN/inf, or (normalize) a row of zero norm.
    """
    X = Features(X).X
    if center:
        X = X - X.mean(axis=0, keepdims=True)
    if normalize:
        norms = np.linalg.norm(X, axis=1)
        zero = np.flatnonzero(norms == 0)
        if zero.size:
            raise ValueError(f"X row {zero[0]} has zero norm"
                             f"{' after centring' if center else ''}; cannot normalize it")
        X = X / norms[:, None]
    return X


def gram_from_features(X, *, center: bool = False, normalize: bool = False) -> np.ndarray:
    """Gram matrix G = X X^T of user features (rows = samples), preprocessed in this order by
    :func:`preprocess_features`: first ``center``, then ``normalize`` (so G_ii = 1).

    Args:
      X: (N, D) finite array.
      center: subtract the mean feature vector.
      normalize: L2-normalise each row (after centring).

    Returns:
      (N, N) float64 array.

    Raises:
      ValueError: if X is not 2-D, has NaN/inf, or (normalize) a row of zero norm.
    """
    X = preprocess_features(X, center=center, normalize=normalize)
    return X @ X.T


def feature_factor(G: np.ndarray, *, method: str = "eigh") -> np.ndarray:
    """Explicit features X with X X^T = G, so a Gram model can be trained explicitly.

    ``method="eigh"``: G = V diag(mu) V^T, X = V diag(sqrt(mu)) (columns with mu = 0 dropped, so
    D = rank G). ``method="cholesky"``: X = the lower Cholesky factor (D = N) when G is
    numerically positive definite, otherwise the ``"eigh"`` factor. Eigenvalues in
    [-PSD_RTOL max(1, |mu|), 0) (:data:`~sdtheory.models.dense.PSD_RTOL`) are rounding noise
    and are dropped; anything more negative means G is not positive semi-definite (not a Gram
    matrix) and raises.

    Args:
      G: (N, N) symmetric positive semi-definite matrix.
      method: ``"eigh"`` or ``"cholesky"``.

    Returns:
      X: (N, D) float64 features, X @ X.T == G up to rounding (about N eps max|mu|).

    Raises:
      ValueError: G not square, not finite, not symmetric (to 1e-12 relative), or not PSD
        (the message names the most negative eigenvalue).

    Example:
      >>> from sdtheory.models import two_level
      >>> G = two_level(K=3, n=4).dense()
      >>> X = feature_factor(G)
      >>> bool(abs(X @ X.T - G).max() < 1e-12)
      True
    """
    G = square_matrix(G, symmetric=True)
    if method not in ("eigh", "cholesky"):
        raise ValueError(f"method must be 'eigh' or 'cholesky', got {method!r}")
    G = 0.5 * (G + G.T)
    if method == "cholesky":
        try:
            with lapack_threads(G.shape[0]):
                return np.linalg.cholesky(G)
        except np.linalg.LinAlgError:
            pass  # not numerically PD: fall back to the eigendecomposition
    with lapack_threads(G.shape[0]):
        mu, V = np.linalg.eigh(G)
    if not is_psd(mu[0], mu[-1]):
        raise ValueError(psd_refusal(mu[0], mu[-1]))
    keep = mu > 0.0
    return V[:, keep] * np.sqrt(mu[keep])
