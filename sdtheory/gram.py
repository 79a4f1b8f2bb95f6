"""Gram and feature models (theory.md section 4).

Block models are described without building the N x N matrix: a Gram matrix of the form

    G = diag * I + sum_l weight_l * [part_l(y_i) == part_l(y_j)]

where each level l partitions the classes (class itself, superclass, everything). The
two-level model is diag = 1 - c, levels (c - d, class), (d, all); the three-level model adds
(d - e, superclass). :meth:`BlockModel.levels` exposes exactly this, which is what the
group-reduced solver in :mod:`sdtheory.solve` consumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BlockModel", "two_level", "three_level"]


@dataclass(frozen=True)
class BlockModel:
    """Two- or three-level block Gram model (theory.md section 4).

    Attributes:
      sizes: number of training samples of each class, n_k (length K).
      c: correlation of two samples of the same class.
      d: correlation of two samples of different classes (two-level), or of different classes
        in the same superclass (three-level).
      e: correlation across superclasses (three-level only), else None.
      superclass_of: class -> superclass index (three-level only), else None.
    """

    sizes: tuple[int, ...]
    c: float
    d: float
    e: float | None = None
    superclass_of: tuple[int, ...] | None = None

    @property
    def K(self) -> int:
        return len(self.sizes)

    @property
    def N(self) -> int:
        return int(sum(self.sizes))

    @property
    def three_level(self) -> bool:
        return self.superclass_of is not None

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


def two_level(K: int, n, c: float = 0.4, d: float = 0.1) -> BlockModel:
    """Two-level model: n per class (int) or per-class sizes (sequence of K ints)."""
    sizes = (int(n),) * int(K) if np.isscalar(n) else tuple(int(v) for v in n)
    return BlockModel(sizes=sizes, c=float(c), d=float(d))


def three_level(S: int, m: int, n, c: float, d: float, e: float) -> BlockModel:
    """Three-level model: S superclasses of m classes each; class k is in superclass k // m."""
    K = int(S) * int(m)
    sizes = (int(n),) * K if np.isscalar(n) else tuple(int(v) for v in n)
    return BlockModel(sizes=sizes, c=float(c), d=float(d), e=float(e),
                      superclass_of=tuple(k // int(m) for k in range(K)))
