"""Gram and feature models (theory.md section 4).

Block models are described without building the N x N matrix: a Gram matrix of the form

    G = diag * I + sum_l weight_l * [part_l(y_i) == part_l(y_j)]

where each level l partitions the classes (class itself, superclass, everything). The
two-level model is diag = 1 - c, levels (c - d, class), (d, all); the three-level model adds
(d - e, superclass). :meth:`BlockModel.levels` exposes exactly this, which is what the
group-reduced solver in :mod:`sdtheory.solve` consumes.

Besides the block models the module offers

* the analytic spectrum of a block model (:meth:`BlockModel.spectrum`, :meth:`BlockModel.mu`),
* the symmetric off-diagonal jitter of the authors' numerics (:func:`jitter`),
* Gaussian-mixture features whose Gram matrix concentrates on the two-level model
  (:func:`gmm_features`, :func:`gmm_means`),
* the Gram matrix of user features (:func:`gram_from_features`).

Everything here is plain numpy (float64); nothing needs JAX.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "BlockModel",
    "Eigen",
    "two_level",
    "three_level",
    "jitter",
    "min_eigenvalue",
    "nearest_psd",
    "gmm_means",
    "gmm_features",
    "gram_from_features",
]

# Relative tolerance below which a computed eigenvalue counts as zero in the PSD check: the
# model with mu1 = 0 exactly (e.g. d = -(1 - c + n (c - d)) / (K n)) is PSD, float error aside.
_PSD_RTOL = 1e-12


class Eigen(NamedTuple):
    """One eigenvalue of a block Gram model with its multiplicity.

    Attributes:
      value: the eigenvalue.
      multiplicity: how many times it occurs among the N eigenvalues (>= 1).
      name: the eigenspace: "global", "superclass", "class", "instance" (equal sizes) or
        "class-space" (unequal sizes, see :meth:`BlockModel.spectrum`).
    """

    value: float
    multiplicity: int
    name: str


def _as_int(value, name: str) -> int:
    """``value`` as a Python int, or ValueError naming ``name`` if it is not integral."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if not math.isfinite(float(value)) or float(value) != int(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _as_finite(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return v


def _sizes(K, n) -> tuple[int, ...]:
    """Per-class sizes from K and n (an int, or a sequence of K ints)."""
    K = _as_int(K, "K")
    if np.isscalar(n):
        return (_as_int(n, "n"),) * K
    sizes = tuple(_as_int(v, "n") for v in n)
    if len(sizes) != K:
        raise ValueError(f"n must be an int or a sequence of K = {K} class sizes, "
                         f"got {len(sizes)} sizes")
    return sizes


@dataclass(frozen=True)
class BlockModel:
    """Two- or three-level block Gram model (theory.md section 4).

    G_ii = 1; G_ij = c for two samples of the same class; d for different classes (two-level)
    or different classes of the same superclass (three-level); e across superclasses. So

        G = (1 - c) I + (c - d) blockdiag_class(11^T) + (d - e) blockdiag_super(11^T) + e 11^T

    (two-level: the superclass term is absent and e is replaced by d).

    Attributes:
      sizes: number of training samples of each class, n_k (length K).
      c: correlation of two samples of the same class.
      d: correlation of two samples of different classes (two-level), or of different classes
        in the same superclass (three-level).
      e: correlation across superclasses (three-level only), else None.
      superclass_of: class -> superclass index (three-level only), else None. Superclasses are
        numbered 0..S-1 and each has at least one class.

    Raises:
      ValueError: on construction, for K < 2, a class size n_k < 1 or not an integer, c, d or e
        not finite, c > 1, c <= d (two-level), not c > d > e (three-level), a bad
        ``superclass_of``, or a model that is not positive semidefinite (the message names the
        negative eigenvalue).
    """

    sizes: tuple[int, ...]
    c: float
    d: float
    e: float | None = None
    superclass_of: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        sizes = tuple(_as_int(v, "sizes (n_k)") for v in self.sizes)
        if len(sizes) < 2:
            raise ValueError(f"K (number of classes) must be >= 2, got K = {len(sizes)}")
        for k, n_k in enumerate(sizes):
            if n_k < 1:
                raise ValueError(f"class sizes n_k must be >= 1, got n_{k} = {n_k}")
        c = _as_finite(self.c, "c")
        d = _as_finite(self.d, "d")
        if c > 1.0:
            raise ValueError(f"c must be <= 1 (G_ii = 1 and |G_ij| <= 1), got c = {c}")
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "c", c)
        object.__setattr__(self, "d", d)
        if (self.e is None) != (self.superclass_of is None):
            raise ValueError("e and superclass_of must be given together (three-level model) "
                             "or both left as None (two-level model)")
        if self.superclass_of is None:
            if not c > d:
                raise ValueError(f"two-level model needs c > d, got c = {c}, d = {d}")
        else:
            e = _as_finite(self.e, "e")
            if not c > d > e:
                raise ValueError(f"three-level model needs c > d > e, got c = {c}, d = {d}, "
                                 f"e = {e}")
            sup = tuple(_as_int(s, "superclass_of") for s in self.superclass_of)
            if len(sup) != len(sizes):
                raise ValueError(f"superclass_of must have K = {len(sizes)} entries, "
                                 f"got {len(sup)}")
            if min(sup) < 0:
                raise ValueError(f"superclass_of entries must be >= 0, got {min(sup)}")
            S = max(sup) + 1
            empty = sorted(set(range(S)) - set(sup))
            if empty:
                raise ValueError(f"superclass_of must number superclasses 0..S-1 with >= 1 class "
                                 f"each; superclass {empty[0]} has no class")
            object.__setattr__(self, "e", e)
            object.__setattr__(self, "superclass_of", sup)
        spec = self.spectrum()
        scale = max(1.0, max(abs(ev.value) for ev in spec))
        for ev in spec:
            if ev.value < -_PSD_RTOL * scale:
                raise ValueError(
                    f"the Gram model is not positive semidefinite: the {ev.name!r} eigenvalue "
                    f"is {ev.value:.6g} < 0 (multiplicity {ev.multiplicity}); all eigenvalues "
                    f"must be >= 0 (raise d{' or e' if self.three_level else ''})")

    @property
    def K(self) -> int:
        """Number of classes."""
        return len(self.sizes)

    @property
    def N(self) -> int:
        """Number of training samples, sum of n_k."""
        return int(sum(self.sizes))

    @property
    def three_level(self) -> bool:
        """True for the superclass (three-level) model."""
        return self.superclass_of is not None

    @property
    def S(self) -> int:
        """Number of superclasses (1 for the two-level model)."""
        return max(self.superclass_of) + 1 if self.three_level else 1

    def labels(self) -> np.ndarray:
        """True labels of the N samples, class 0 first, then class 1, ..."""
        return np.repeat(np.arange(self.K), self.sizes)

    def levels(self) -> tuple[float, list[tuple[float, np.ndarray]]]:
        """(diag, [(weight, class -> part), ...]) with G = diag I + sum weight [same part]."""
        K = self.K
        if self.three_level:
            return 1.0 - self.c, [
                (self.c - self.d, np.arange(K)),
                (self.d - self.e, np.asarray(self.superclass_of)),
                (self.e, np.zeros(K, dtype=int)),
            ]
        return 1.0 - self.c, [(self.c - self.d, np.arange(K)), (self.d, np.zeros(K, dtype=int))]

    def dense(self) -> np.ndarray:
        """The N x N Gram matrix."""
        y = self.labels()
        diag, levels = self.levels()
        G = diag * np.eye(self.N)
        for w, part in levels:
            p = part[y]
            G += w * (p[:, None] == p[None, :])
        return G

    # ----------------------------------------------------------------------------- spectrum

    def _uniform(self) -> tuple[int, int] | None:
        """(n, m) when every class has n samples and every superclass m classes, else None.

        For the two-level model m = K.
        """
        if len(set(self.sizes)) != 1:
            return None
        if not self.three_level:
            return self.sizes[0], self.K
        per_super = np.bincount(np.asarray(self.superclass_of))
        if len(set(per_super.tolist())) != 1:
            return None
        return self.sizes[0], int(per_super[0])

    def mu(self) -> dict[str, float]:
        """Level eigenvalues of an equal-size model (theory.md section 4).

        Two-level: "global" mu1 = 1 + (n-1)c + (K-1) n d, "class" mu2 = 1 + (n-1)c - n d,
        "instance" mu3 = 1 - c. Three-level: "instance" 1 - c, "class"
        mu_cls = 1 - c + n (c - d), "superclass" mu_sup = mu_cls + m n (d - e), "global"
        mu_glob = mu_sup + K n e. Every name is present even where its multiplicity is 0
        (n = 1, one superclass, one class per superclass): the value is still the factor that
        theory.md's formulas use.

        Returns:
          dict name -> eigenvalue.

        Raises:
          ValueError: if the class sizes differ (or, three-level, the superclass sizes differ);
            use :meth:`spectrum` then.
        """
        u = self._uniform()
        if u is None:
            raise ValueError("mu() needs equal class sizes n_k (and, three-level, equal "
                             f"superclass sizes); got sizes {self.sizes}. Use spectrum().")
        n, m = u
        c, d, K = self.c, self.d, self.K
        mu_inst = 1.0 - c
        mu_cls = 1.0 - c + n * (c - d)
        if not self.three_level:
            return {"global": mu_cls + K * n * d, "class": mu_cls, "instance": mu_inst}
        mu_sup = mu_cls + m * n * (d - self.e)
        return {"global": mu_sup + K * n * self.e, "superclass": mu_sup, "class": mu_cls,
                "instance": mu_inst}

    def class_space(self) -> np.ndarray:
        """The K x K matrix B of G restricted to class-constant vectors.

        In the orthonormal basis u_k = 1_k / sqrt(n_k) (1_k the indicator of class k),

            B_kl = (1 - c + (c - d) n_k) delta_kl + (d - e) sqrt(n_k n_l) [s_k == s_l]
                   + e sqrt(n_k n_l)

        (two-level: the superclass term is absent and e = d). Its K eigenvalues together with
        1 - c on the within-class contrasts (multiplicity sum(n_k - 1)) are the spectrum of G.
        """
        n = np.asarray(self.sizes, dtype=np.float64)
        root = np.sqrt(np.outer(n, n))
        B = np.diag(1.0 - self.c + (self.c - self.d) * n)
        if self.three_level:
            s = np.asarray(self.superclass_of)
            B += (self.d - self.e) * root * (s[:, None] == s[None, :]) + self.e * root
        else:
            B += self.d * root
        return B

    def spectrum(self) -> tuple[Eigen, ...]:
        """Analytic spectrum of G, without building the N x N matrix.

        Equal sizes (n per class, and three-level m classes per superclass): the level
        eigenvalues of :meth:`mu` with multiplicities

        * two-level: "global" 1, "class" K - 1, "instance" K (n - 1);
        * three-level: "global" 1, "superclass" S - 1, "class" K - S, "instance" K (n - 1),

        listed from the coarsest level to the finest, entries of multiplicity 0 dropped.

        Unequal sizes: the K eigenvalues of :meth:`class_space`, each named "class-space" with
        multiplicity 1, in descending order (equal values are not merged, so a value may appear
        more than once), then "instance" 1 - c with multiplicity sum(n_k - 1) (if > 0).

        Returns:
          tuple of :class:`Eigen` whose multiplicities sum to N.
        """
        u = self._uniform()
        K = self.K
        if u is not None:
            n, _ = u
            mu = self.mu()
            mult = {"global": 1, "superclass": self.S - 1, "class": K - self.S,
                    "instance": K * (n - 1)}
            order = ("global", "superclass", "class", "instance")
            return tuple(Eigen(float(mu[k]), mult[k], k) for k in order
                         if k in mu and mult[k] > 0)
        vals = np.linalg.eigvalsh(self.class_space())[::-1]
        out = [Eigen(float(v), 1, "class-space") for v in vals]
        n_inst = self.N - K
        if n_inst > 0:
            out.append(Eigen(1.0 - self.c, n_inst, "instance"))
        return tuple(out)

    def eigvals(self) -> np.ndarray:
        """All N eigenvalues of G in ascending order (multiplicities expanded)."""
        spec = self.spectrum()
        return np.sort(np.repeat([ev.value for ev in spec], [ev.multiplicity for ev in spec]))


def two_level(K: int, n, c: float = 0.4, d: float = 0.1) -> BlockModel:
    """Two-level model: n per class (int) or per-class sizes (sequence of K ints).

    Args:
      K: number of classes (>= 2).
      n: samples per class (int >= 1) or a sequence of K class sizes.
      c: same-class correlation (c <= 1).
      d: different-class correlation (d < c).

    Example:
      >>> two_level(4, 500).mu()["instance"]
      0.6
    """
    return BlockModel(sizes=_sizes(K, n), c=float(c), d=float(d))


def three_level(S: int, m: int, n, c: float, d: float, e: float) -> BlockModel:
    """Three-level model: S superclasses of m classes each; class k is in superclass k // m.

    Args:
      S: number of superclasses (>= 1).
      m: classes per superclass (>= 1), with K = S m >= 2.
      n: samples per class (int >= 1) or a sequence of K class sizes.
      c: same-class correlation.
      d: same-superclass correlation.
      e: cross-superclass correlation (c > d > e).
    """
    S = _as_int(S, "S")
    m = _as_int(m, "m")
    if S < 1:
        raise ValueError(f"S (number of superclasses) must be >= 1, got S = {S}")
    if m < 1:
        raise ValueError(f"m (classes per superclass) must be >= 1, got m = {m}")
    if S * m < 2:
        raise ValueError(f"K = S * m must be >= 2, got S = {S}, m = {m}")
    K = S * m
    return BlockModel(sizes=_sizes(K, n), c=float(c), d=float(d), e=float(e),
                      superclass_of=tuple(k // m for k in range(K)))


# ------------------------------------------------------------------------------------ jitter

def _square_matrix(G, name: str = "G") -> np.ndarray:
    G = np.asarray(G, dtype=np.float64)
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise ValueError(f"{name} must be a square 2-D array, got shape {G.shape}")
    if not np.all(np.isfinite(G)):
        raise ValueError(f"{name} must be finite (it contains NaN or inf)")
    return G


def jitter(G, eps: float, seed, symmetric: bool = True) -> np.ndarray:
    """G plus Uniform[-eps, eps] noise on the off-diagonal (theory.md section 4).

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
      G: square matrix (N x N), e.g. :meth:`BlockModel.dense`.
      eps: noise half-width, >= 0.
      seed: seed for ``numpy.random.default_rng``.
      symmetric: symmetrise the noise (default) or not.

    Returns:
      a new float64 array; same seed, same bytes.
    """
    G = _square_matrix(G)
    eps = _as_finite(eps, "eps")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got eps = {eps}")
    N = G.shape[0]
    rng = np.random.default_rng(seed)
    if symmetric:
        iu = np.triu_indices(N, k=1)
        noise = np.zeros((N, N))
        noise[iu] = rng.uniform(-eps, eps, size=iu[0].size)
        noise = noise + noise.T
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
    G = _square_matrix(G)
    if not np.allclose(G, G.T, rtol=0.0, atol=1e-12 * max(1.0, float(np.abs(G).max(initial=0)))):
        raise ValueError("G must be symmetric for min_eigenvalue (eigvalsh reads one triangle)")
    return float(np.linalg.eigvalsh(G)[0])


def nearest_psd(G) -> np.ndarray:
    """Nearest positive semi-definite matrix in Frobenius norm: eigenvalues clipped at 0.

    A remedy for a jittered block model that is no longer a Gram matrix (e.g. N = 2000,
    eps = 0.05, smallest eigenvalue about -1.97). The result is symmetric PSD but its diagonal
    is no longer exactly 1; report it with the results.
    """
    G = _square_matrix(G)
    if not np.allclose(G, G.T, rtol=0.0, atol=1e-12 * max(1.0, float(np.abs(G).max(initial=0)))):
        raise ValueError("G must be symmetric for nearest_psd")
    mu, V = np.linalg.eigh(0.5 * (G + G.T))
    P = (V * np.maximum(mu, 0.0)) @ V.T
    return 0.5 * (P + P.T)


# -------------------------------------------------------------------------------- features

def _check_gmm(K, c, d, D) -> tuple[int, float, float, int]:
    K = _as_int(K, "K")
    D = _as_int(D, "D")
    c = _as_finite(c, "c")
    d = _as_finite(d, "d")
    if K < 2:
        raise ValueError(f"K (number of classes) must be >= 2, got K = {K}")
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
    """Class means mu_k = sqrt(d) u_0 + sqrt(c - d) u_k of the Gaussian mixture (theory.md 4).

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
      y of shape (N,), as :meth:`BlockModel.labels`.
    """
    M = gmm_means(K, c, d, D)
    sizes = _sizes(K, n)
    for k, n_k in enumerate(sizes):
        if n_k < 1:
            raise ValueError(f"class sizes n must be >= 1, got n_{k} = {n_k}")
    y = np.repeat(np.arange(len(sizes)), sizes)
    sigma = math.sqrt((1.0 - float(c)) / int(D))
    xi = np.random.default_rng(seed).standard_normal((y.size, int(D)))
    return M[y] + sigma * xi, y


def gram_from_features(X, *, center: bool = False, normalize: bool = False) -> np.ndarray:
    """Gram matrix G = X X^T of user features (rows = samples).

    Preprocessing happens in this order: first ``center`` (subtract the feature-wise mean over
    the samples), then ``normalize`` (divide each row by its L2 norm, so G_ii = 1).

    Args:
      X: (N, D) finite array.
      center: subtract the mean feature vector.
      normalize: L2-normalise each row (after centring).

    Returns:
      (N, N) float64 array.

    Raises:
      ValueError: if X is not 2-D, has NaN/inf, or (normalize) a row of zero norm.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (samples x features), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must be finite (features contain NaN or inf)")
    if center:
        X = X - X.mean(axis=0, keepdims=True)
    if normalize:
        norms = np.linalg.norm(X, axis=1)
        zero = np.flatnonzero(norms == 0)
        if zero.size:
            raise ValueError(f"X row {zero[0]} has zero norm"
                             f"{' after centring' if center else ''}; cannot normalize it")
        X = X / norms[:, None]
    return X @ X.T
