"""Block Gram models: two- and three-level, any class sizes (docs/theory.md section 5).

Block models are described without building the N x N matrix: a Gram matrix of the form

    G = diag * I + sum_l weight_l * [part_l(y_i) == part_l(y_j)]

where each level l partitions the classes (class itself, superclass, everything). The
two-level model is diag = 1 - c, levels (c - d, class), (d, all); the three-level model adds
(d - e, superclass). :meth:`BlockModel.levels` exposes exactly this, which is what the
group-reduced solver consumes (:meth:`BlockModel.class_structure`). The analytic spectrum
(:meth:`BlockModel.spectrum`, :meth:`BlockModel.mu`) comes from one vectorised formula,
:func:`level_eigenvalues`, which sweeps evaluate on whole grids of parameters.

Everything here is plain numpy (float64); nothing needs JAX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sdtheory._validate import as_float, as_int, check_sizes
from sdtheory.models.dense import psd_margin

__all__ = [
    "BlockModel",
    "Eigen",
    "level_eigenvalues",
    "two_level",
    "three_level",
]


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


def level_eigenvalues(K, n, c, d, e=None, m=None) -> dict[str, tuple]:
    """Level eigenvalues and multiplicities of the equal-size block model (docs/theory.md 5).

    Two-level (``e`` and ``m`` None): "global" mu1 = 1 + (n-1)c + (K-1) n d (multiplicity 1),
    "class" mu2 = 1 + (n-1)c - n d (K - 1), "instance" mu3 = 1 - c (K (n - 1)).
    Three-level (S = K/m superclasses of m classes): "global" mu_sup + K n e (1), "superclass"
    mu_sup = mu_cls + m n (d - e) (S - 1), "class" mu_cls = 1 - c + n (c - d) (K - S),
    "instance" 1 - c (K (n - 1)).

    Every argument may be a numpy array (broadcast together): sweeps evaluate whole grids.

    Returns:
      dict name -> (eigenvalue, multiplicity), from the coarsest level to the finest.
    """
    K, n, c, d = (np.asarray(v) for v in (K, n, c, d))
    inst = 1.0 - c
    cls = 1.0 - c + n * (c - d)
    if e is None:
        return {"global": (cls + K * n * d, np.ones_like(K)), "class": (cls, K - 1),
                "instance": (inst, K * (n - 1))}
    e, m = np.asarray(e), np.asarray(m)
    S = K // m
    sup = cls + m * n * (d - e)
    return {"global": (sup + K * n * e, np.ones_like(K)), "superclass": (sup, S - 1),
            "class": (cls, K - S), "instance": (inst, K * (n - 1))}


@dataclass(frozen=True)
class BlockModel:
    """Two- or three-level block Gram model (docs/theory.md section 5).

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
        sizes = tuple(int(v) for v in check_sizes(self.sizes, name="sizes"))
        if len(sizes) < 2:
            raise ValueError(f"K (number of classes) must be >= 2, got K = {len(sizes)}")
        c = as_float(self.c, "c")
        d = as_float(self.d, "d")
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
            e = as_float(self.e, "e")
            if not c > d > e:
                raise ValueError(f"three-level model needs c > d > e, got c = {c}, d = {d}, "
                                 f"e = {e}")
            sup = tuple(as_int(s, "superclass_of") for s in self.superclass_of)
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
        margin = psd_margin(np.array([ev.value for ev in spec]))
        if margin < 0:
            ev = min(spec, key=lambda e: e.value)
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

    def class_structure(self) -> tuple[float, float, np.ndarray, np.ndarray]:
        """(diag, alpha, L, w): G = diag I + (Wc between the classes of i and j), with the
        class-level matrix Wc = alpha I + L diag(w) L^T (docs/theory.md section 3.2).

        alpha is the weight of "same class" (c - d); the columns of L (K x r) indicate the
        coarser levels (each superclass, then all classes) with weights w (r,). This is what
        the group-reduced Newton step exploits.
        """
        diag, levels = self.levels()
        (alpha, _), coarse = levels[0], levels[1:]
        cols, w = [], []
        for weight, part in coarse:
            for p in range(int(part.max()) + 1):
                cols.append((part == p).astype(np.float64))
                w.append(weight)
        return diag, alpha, np.stack(cols, axis=1), np.asarray(w, dtype=np.float64)

    def dense(self) -> np.ndarray:
        """The N x N Gram matrix (assembled block by block: one pass over memory)."""
        diag, levels = self.levels()
        start = np.concatenate([[0], np.cumsum(self.sizes)])
        G = np.empty((self.N, self.N))
        for k in range(self.K):
            rows = slice(start[k], start[k + 1])
            for j in range(self.K):
                G[rows, start[j]:start[j + 1]] = sum(w for w, part in levels
                                                     if part[k] == part[j])
        G[np.diag_indices(self.N)] += diag
        return G

    # ----------------------------------------------------------------------------- spectrum

    def equal_sizes(self) -> tuple[int, int] | None:
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
        """Level eigenvalues of an equal-size model (docs/theory.md section 5).

        Two-level: "global" mu1 = 1 + (n-1)c + (K-1) n d, "class" mu2 = 1 + (n-1)c - n d,
        "instance" mu3 = 1 - c. Three-level: "instance" 1 - c, "class"
        mu_cls = 1 - c + n (c - d), "superclass" mu_sup = mu_cls + m n (d - e), "global"
        mu_glob = mu_sup + K n e. Every name is present even where its multiplicity is 0
        (n = 1, one superclass, one class per superclass): the value is still the factor that
        the formulas of docs/theory.md section 7 use.

        Returns:
          dict name -> eigenvalue.

        Raises:
          ValueError: if the class sizes differ (or, three-level, the superclass sizes differ);
            use :meth:`spectrum` then.
        """
        u = self.equal_sizes()
        if u is None:
            raise ValueError("mu() needs equal class sizes n_k (and, three-level, equal "
                             f"superclass sizes); got sizes {self.sizes}. Use spectrum().")
        n, m = u
        levels = level_eigenvalues(self.K, n, self.c, self.d, self.e if self.three_level else None,
                                   m if self.three_level else None)
        return {name: float(mu) for name, (mu, _) in levels.items()}

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
        u = self.equal_sizes()
        K = self.K
        if u is not None:
            n, m = u
            levels = level_eigenvalues(K, n, self.c, self.d,
                                       self.e if self.three_level else None,
                                       m if self.three_level else None)
            return tuple(Eigen(float(mu), int(mult), name) for name, (mu, mult) in levels.items()
                         if mult > 0)
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
    K = as_int(K, "K (number of classes)", lo=2)
    return BlockModel(sizes=tuple(check_sizes(n, K, "n").tolist()), c=float(c), d=float(d))


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
    S = as_int(S, "S")
    m = as_int(m, "m")
    if S < 1:
        raise ValueError(f"S (number of superclasses) must be >= 1, got S = {S}")
    if m < 1:
        raise ValueError(f"m (classes per superclass) must be >= 1, got m = {m}")
    if S * m < 2:
        raise ValueError(f"K = S * m must be >= 2, got S = {S}, m = {m}")
    K = S * m
    return BlockModel(sizes=tuple(check_sizes(n, K, "n").tolist()), c=float(c), d=float(d),
                      e=float(e),
                      superclass_of=tuple(k // m for k in range(K)))


