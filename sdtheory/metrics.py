"""Metrics of a training's outputs: margins, accuracy (the tie rule, stated once), the first
100% round, group means (docs/theory.md section 9).

Every function is vectorised over leading batch axes: outputs P of shape (..., U, K) for U units
with true classes ``true`` (U,), given labels ``given`` (U,) and weights (..., U).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "TIE_TOL",
    "margins",
    "correct",
    "accuracy",
    "first_true",
    "group_means",
]

TIE_TOL = 1e-12
"""A unit counts as correct only if p(true) exceeds every other output by more than this: an
exact tie (e.g. pure pair-flip noise for the PLL student) is not a correct prediction."""


def margins(P, true) -> np.ndarray:
    """p(true) - max_{l != true} p(l) per unit: (..., U)."""
    P = np.asarray(P)
    true = np.asarray(true)
    U = true.size
    idx = np.arange(U)
    p_true = P[..., idx, true]
    others = P.copy()
    others[..., idx, true] = -np.inf
    return p_true - others.max(axis=-1)


def correct(P, true, tie_tol: float = TIE_TOL) -> np.ndarray:
    """Strict correctness per unit: margin > ``tie_tol`` ((..., U) bool)."""
    return margins(P, true) > tie_tol


def accuracy(P, true, given, weight):
    """Training accuracy against the true labels: (all, clean, noisy), weighted by ``weight``.

    Clean units have given == true, noisy ones given != true; a part with no samples is None
    (NaN in a batch).

    Args:
      P: (..., U, K) outputs.
      true, given: (U,) labels of the units.
      weight: (..., U) samples per unit.

    Returns:
      three floats for a single problem (P of shape (U, K)), else three (...,) arrays.
    """
    P = np.asarray(P)
    true, given = np.asarray(true), np.asarray(given)
    w = np.broadcast_to(np.asarray(weight, dtype=np.float64), P.shape[:-1])
    ok = correct(P, true)

    def frac(mask):
        tot = (w * mask).sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(tot > 0, (w * (mask & ok)).sum(axis=-1) / tot, np.nan)

    out = (frac(np.ones_like(ok)), frac(given == true), frac(given != true))
    if P.ndim == 2:
        return tuple(None if np.isnan(v) else float(v) for v in out)
    return out


def first_true(flags, axis: int = 0) -> np.ndarray:
    """Index of the first True along ``axis`` (e.g. the first 100% round), -1 where none."""
    flags = np.asarray(flags, dtype=bool)
    return np.where(flags.any(axis=axis), np.argmax(flags, axis=axis), -1)


def group_means(P, true, given, weight, K: int) -> list[dict]:
    """Mean output of the samples of each non-empty (true, given) group, in row-major order."""
    P, true, given = np.asarray(P), np.asarray(true), np.asarray(given)
    w = np.asarray(weight, dtype=np.float64)
    out = []
    for k in range(K):
        for j in range(K):
            mask = (true == k) & (given == j)
            m = w[mask].sum()
            if m > 0:
                p = (w[mask, None] * P[mask]).sum(axis=0) / m
                out.append({"true": k, "given": j, "count": int(round(m)), "p": p.tolist()})
    return out
