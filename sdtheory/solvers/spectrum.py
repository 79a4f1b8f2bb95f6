"""The preconditioners' spectral data: leading eigenpairs of G (dense) or X^T X (features).

Both preconditioners keep the k leading eigenpairs of a symmetric PSD matrix and the mean of
its other eigenvalues (docs/theory.md sections 2.4 and 2.5). One rule picks k
(:func:`choose_k`), and one randomized subspace iteration (:func:`randomized_spectrum`) finds
the eigenpairs of a matrix given only by its products with blocks of vectors, when a full
eigendecomposition is too large:

* :func:`leading_spectrum`: a dense N x N Gram matrix G, with its PSD check;
* :func:`feature_spectrum`: X^T X (D x D) for features X, through products with X and X^T.
"""

from __future__ import annotations

import numpy as np

from sdtheory._blas import lapack_threads, one_blas_thread
from sdtheory.models import PSD_RTOL, is_psd, psd_refusal

__all__ = ["EIGH_MAX", "FEATURE_EIGH_MAX", "choose_k", "feature_spectrum", "leading_spectrum",
           "randomized_spectrum"]

EIGH_MAX = 1000
"""Largest N for which the preconditioner comes from a full eigendecomposition of G; above it,
a Cholesky factorisation certifies G >= 0 and a randomized subspace iteration finds the leading
eigenpairs (docs/theory.md section 2.4; timings in benchmarks/README.md)."""

FEATURE_EIGH_MAX = 2048
"""Largest feature dimension D for which the feature-space preconditioner comes from a full
eigendecomposition of the D x D matrix X^T X; above it, a randomized subspace iteration on
X^T X through products with X and X^T finds the leading eigenpairs (docs/theory.md
section 2.5)."""

_PREC_RATIO = 4.0     # grow k until (1 + s mu_(k+1)/2) / (1 + s mean_rest/2) <= this
_PREC_KK_MAX = 1024   # ... but keep the dense preconditioner's (k K) x (k K) system this small


def _on_gpu() -> bool:
    """Whether JAX's default backend is a GPU (then the eigendecompositions run there)."""
    import jax

    return jax.default_backend() == "gpu"


def _eigh(A: np.ndarray, *, one_thread: bool = False):
    """Full symmetric eigendecomposition (ascending): on a GPU by jax.numpy on the device, on
    the CPU by numpy's LAPACK (``one_thread``: on one BLAS thread).

    Not jnp.linalg.eigh on the CPU: two BLAS thread pools (numpy's and the one jaxlib calls)
    spinning against each other on a 2-core machine slow it down many times over
    (benchmarks/README.md).
    """
    if _on_gpu():
        import jax.numpy as jnp

        mu, V = jnp.linalg.eigh(jnp.asarray(A))
        return np.asarray(mu), np.asarray(V)
    if one_thread:
        with one_blas_thread():
            return np.linalg.eigh(A)
    return np.linalg.eigh(A)


def choose_k(mu_desc: np.ndarray, mean_rest: np.ndarray, s: float) -> int:
    """Smallest k with (1 + s mu_(k+1)/2) / (1 + s mean_rest(k)/2) <= 4 (docs/theory.md
    section 2.4): the eigenvalues left out are then well represented by their mean. ``mu_desc``
    are eigenvalues in descending order and ``mean_rest[k]`` the mean of those from the
    (k+1)-th on; returns ``mu_desc.size`` when no k qualifies."""
    ratio = (1.0 + 0.5 * s * np.maximum(mu_desc, 0)) / (1.0 + 0.5 * s * np.maximum(mean_rest, 0))
    ok = np.flatnonzero(ratio <= _PREC_RATIO)
    return int(ok[0]) if ok.size else mu_desc.size


def _kept_eigenpairs(mu: np.ndarray, V: np.ndarray, s: float, k_max: int):
    """From a full eigendecomposition (ascending mu): the k leading eigenpairs by
    :func:`choose_k` (1 <= k <= k_max), and the mean of the other eigenvalues (0 if none)."""
    n = mu.size
    mean_rest = np.cumsum(mu)[::-1] / np.arange(n, 0, -1)      # mean of mu_desc[k:]
    k = min(max(1, choose_k(mu[::-1], mean_rest, s)), n, k_max)
    rest = float(mean_rest[k]) if k < n else 0.0
    return mu[::-1][:k].copy(), V[:, ::-1][:, :k].copy(), rest, k


def randomized_spectrum(apply, n: int, trace: float, s: float, k_max: int, seed: int):
    """Leading eigenpairs of a symmetric PSD n x n matrix A known through ``apply(Q) = A Q``
    (Q: n x p), by randomized subspace iteration: k + 16 random directions, three power steps
    and a Rayleigh-Ritz projection, k doubling from 16 (up to ``k_max``) until :func:`choose_k`
    accepts k with the mean of the other eigenvalues, (trace - sum of the k kept) / (n - k).

    Returns:
      (mu (k,) descending, V (n, k) orthonormal, mean of the rest, k).
    """
    rng = np.random.default_rng(seed)
    k = min(16, k_max)
    while True:
        p = min(k + 16, n)                                    # oversampling
        Q, _ = np.linalg.qr(apply(rng.standard_normal((n, p))))
        for _ in range(3):                                    # subspace (power) iterations
            Q, _ = np.linalg.qr(apply(Q))
        H = Q.T @ apply(Q)
        mu, W = _eigh(0.5 * (H + H.T), one_thread=True)
        mu, W = np.maximum(mu[::-1], 0.0), W[:, ::-1]
        rest = max(trace - mu[:k].sum(), 0.0) / (n - k)
        if choose_k(mu[k:k + 1], np.array([rest]), s) == 0 or k >= k_max:
            break
        k = min(2 * k, k_max)
    return mu[:k].copy(), (Q @ W[:, :k]).copy(), float(rest), k


def leading_spectrum(G: np.ndarray, s: float, K: int, *, seed: int = 0) -> dict:
    """PSD check and the preconditioner's spectral data of a dense Gram matrix.

    N <= :data:`EIGH_MAX`: a full eigendecomposition; above, a Cholesky factorisation of
    G + delta I certifies that no eigenvalue lies below -delta (delta = PSD_RTOL * scale) and
    :func:`randomized_spectrum` finds the leading eigenpairs. In both cases k, the number of
    eigenpairs kept, follows :func:`choose_k` (docs/theory.md section 2.4); k K is capped at
    1024 (the preconditioner factorises a (k K) x (k K) matrix).

    Args:
      G: (N, N) symmetric matrix.
      s: 1 / (N lam).
      K: number of classes.
      seed: seed of the random start of the subspace iteration.

    Returns:
      dict with "mu" (k,), "V" (N, k), "mu_rest", "k", "min_eig" (None when only certified by
      Cholesky), "method".

    Raises:
      ValueError: G is not positive semi-definite (the message names the eigenvalue).
    """
    N = G.shape[0]
    k_max = max(1, _PREC_KK_MAX // K)
    if N <= EIGH_MAX:
        mu, V = _eigh(G)
        if not is_psd(mu[0], mu[-1]):
            raise ValueError(psd_refusal(mu[0], mu[-1]))
        top, Vk, rest, k = _kept_eigenpairs(mu, V, s, k_max)
        return {"mu": top, "V": Vk, "mu_rest": rest, "k": k, "min_eig": float(mu[0]),
                "method": "eigh"}
    top, Vk, rest, k = randomized_spectrum(lambda Q: G @ Q, N, float(np.trace(G)), s, k_max,
                                           seed)
    _certify_psd(G, top[0])
    return {"mu": top, "V": Vk, "mu_rest": rest, "k": k, "min_eig": None,
            "method": "randomized+cholesky"}


def _certify_psd(G: np.ndarray, mu_max: float) -> None:
    """Raise unless G + delta I has a Cholesky factorisation, delta = PSD_RTOL max(1, mu_max):
    then no eigenvalue of G lies below -delta."""
    N = G.shape[0]
    # a contiguous N x N copy: in a zero-padded array of power-of-two leading dimension the
    # same factorisation is markedly slower (benchmarks/README.md)
    A = np.array(G, order="C")
    A[np.diag_indices(N)] += PSD_RTOL * max(1.0, float(mu_max))
    # numpy's factorisation, not scipy's: a cold full-N solve then never imports scipy.linalg
    try:
        with lapack_threads(N):
            np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        from scipy.sparse.linalg import eigsh

        low = float(eigsh(G, k=1, which="SA", tol=1e-4, return_eigenvectors=False)[0])
        raise ValueError(psd_refusal(low, float(mu_max))) from None


def feature_spectrum(X: np.ndarray, s: float, K: int, *, seed: int = 0, X_device=None) -> dict:
    """The feature-space preconditioner's spectral data: leading eigenpairs of X^T X (D x D).

    D <= :data:`FEATURE_EIGH_MAX`: a full eigendecomposition of X^T X; above,
    :func:`randomized_spectrum` through products X^T (X Q) (never X^T X nor X X^T), with
    k <= D/2. k, the number of eigenpairs kept, follows the rule of the dense path
    (:func:`choose_k`) on the D eigenvalues of X^T X (the nonzero eigenvalues of G = X X^T).
    There is no cap from a factorisation here: the preconditioner is diagonal in the kept
    eigenbasis, O(D k K) an application. No PSD check is needed (X X^T is a Gram matrix).

    Args:
      X: (N, D) features.
      s: 1 / (N lam).
      K: number of classes (unused by the rule; kept for symmetry with leading_spectrum).
      seed: seed of the random start of the subspace iteration.
      X_device: X already on the JAX device (used for the products of the randomized path).

    Returns:
      dict with "nu" (k,), "V" (D, k), "nu_rest", "k", "method" ("eigh" or "randomized").
    """
    N, D = X.shape
    if D <= FEATURE_EIGH_MAX:
        nu, V = _eigh(X.T @ X, one_thread=True)
        top, Vk, rest, k = _kept_eigenpairs(np.maximum(nu, 0.0), V, s, D)
        return {"nu": top, "V": Vk, "nu_rest": rest, "k": k, "method": "eigh"}
    import jax
    import jax.numpy as jnp

    Xd = jnp.asarray(X) if X_device is None else X_device
    gram_apply = jax.jit(lambda A, Q: A.T @ (A @ Q))
    top, Vk, rest, k = randomized_spectrum(lambda Q: np.asarray(gram_apply(Xd, Q)), D,
                                           float(np.sum(X * X)), s, max(1, D // 2), seed)
    return {"nu": top, "V": Vk, "nu_rest": rest, "k": k, "method": "randomized"}
