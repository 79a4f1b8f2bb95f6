"""Metrics of a training's outputs: margins, accuracy with its tie convention (stated once,
here), the first 100% round, group means (docs/theory.md section 9).

Tie convention. Two outputs of a unit are *tied* when they differ by at most the tie tolerance
tau = TIE_FACTOR * max(u, TIE_FLOOR), where u is the uncertainty of the computed outputs: the
certificate of (E) for the exact and trained solvers, 0 for the closed form (rounding only).
Differences below tau cannot be told from zero by the solver that produced them. Then:

* a unit is **correct** (strictly) when p(true) exceeds every other output by more than tau;
* its **credit** is the expected correctness when ties are broken uniformly at random: 1/t if
  p(true) is among the t classes within tau of the largest output, else 0 (exact, not sampled);
* **accuracy** is the weighted mean credit (the number reported everywhere as ``train_acc``),
  and the **strict accuracy** the weighted fraction of strictly correct units. They differ only
  where a true class is tied for the top; outputs within round-off of uniform (every class
  tied) score 1/K, a guess.
* a round is **100% correct** when every unit is strictly correct (equivalently: accuracy 1).

Decision margins (how far a reported accuracy is from its tie tolerance). The credit of a unit
changes with the tolerance only where the tolerance crosses one of its *decision gaps*: the gap
between the largest output and another class's output that is at least the true class's own
gap to the largest (for a strictly leading true class: its margin over the best other class).
The **decision margin** of an accuracy is the decision gap, over all units, nearest the
tolerance on a log scale, in units of the tolerance: x > 1 means every verdict holds with x
times the tolerance to spare, x <= 1 that the nearest tie is x tolerances wide. The accuracy is
**fragile** when 1/10 < x <= 10 (:data:`FRAGILE_FACTOR`): it would change were the tolerance
ten times larger or smaller. The **smallest margin** min_u (p(true) - max_other p) / tau decides
"every unit strictly correct" (r*): that verdict is fragile when it lies in (1/10, 10].

Every function is vectorised over leading batch axes: outputs P of shape (..., U, K) for U units
with true classes ``true`` (U,), given labels ``given`` (U,) and weights (..., U).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "TIE_FACTOR",
    "TIE_FLOOR",
    "tie_tolerance",
    "margins",
    "credit",
    "correct",
    "Accuracy",
    "accuracy",
    "strict_accuracy",
    "first_true",
    "group_means",
    "FRAGILE_FACTOR",
    "decision_margins",
    "nearest_ratio",
    "fragile",
]

TIE_FACTOR = 100.0
"""Tie tolerance in units of the outputs' uncertainty (the certificate)."""

TIE_FLOOR = 1e-15
"""Smallest uncertainty assumed: float64 rounding of outputs of order 1/K (about 4 ulp)."""


def tie_tolerance(uncertainty=0.0):
    """tau = TIE_FACTOR * max(uncertainty, TIE_FLOOR) (vectorised): 1e-13 for a closed form,
    100 x the uncertainty of a certified solve (its certificate, plus the uncertainty its
    targets carry from earlier rounds: :func:`sdtheory.distill.run_rounds`)."""
    return TIE_FACTOR * np.maximum(np.asarray(uncertainty, dtype=np.float64), TIE_FLOOR)


def margins(P, true) -> np.ndarray:
    """p(true) - max_{l != true} p(l) per unit: (..., U)."""
    P = np.asarray(P)
    true = np.asarray(true)
    idx = np.arange(true.size)
    others = P.copy()
    others[..., idx, true] = -np.inf
    return P[..., idx, true] - others.max(axis=-1)


def _tol(tol, P) -> np.ndarray:
    """A tolerance per problem (leading axes of P), broadcast over units."""
    tol = tie_tolerance() if tol is None else np.asarray(tol, dtype=np.float64)
    return tol[..., None] if tol.ndim and tol.ndim == P.ndim - 2 else tol


def credit(P, true, tol=None) -> np.ndarray:
    """Expected correctness per unit under uniform random tie-breaking: 1/t if p(true) is
    within ``tol`` of the largest output and t classes are, else 0 ((..., U) floats).

    Args:
      P: (..., U, K) outputs; true: (U,) true classes.
      tol: tie tolerance (:func:`tie_tolerance`), a scalar or one per problem (P.shape[:-2]);
        default: the closed-form tolerance.
    """
    P = np.asarray(P)
    t = _tol(tol, P)
    top = P.max(axis=-1)
    tied = P >= (top - t)[..., None]
    idx = np.arange(np.asarray(true).size)
    in_top = tied[..., idx, true]
    return np.where(in_top, 1.0 / tied.sum(axis=-1), 0.0)


def correct(P, true, tol=None) -> np.ndarray:
    """Strict correctness per unit: margin > tol ((..., U) bool)."""
    P = np.asarray(P)
    return margins(P, true) > _tol(tol, P)


class Accuracy(NamedTuple):
    """Training accuracy against the true labels (see the module docstring).

    Attributes:
      all, clean, noisy: weighted mean credit over all units / units with given == true /
        units with given != true (None, or NaN in a batch, where a part has no sample).
      strict: weighted fraction of strictly correct units (all units).
    """

    all: float
    clean: float | None
    noisy: float | None
    strict: float


def accuracy(P, true, given, weight, tol=None) -> Accuracy:
    """Training accuracy against the true labels, weighted by ``weight``.

    Args:
      P: (..., U, K) outputs.
      true, given: (U,) labels of the units.
      weight: (..., U) samples per unit.
      tol: tie tolerance (:func:`tie_tolerance`), scalar or one per problem.

    Returns:
      :class:`Accuracy` of floats for a single problem (P of shape (U, K)), else of (...,)
      arrays.
    """
    P = np.asarray(P)
    true, given = np.asarray(true), np.asarray(given)
    w = np.broadcast_to(np.asarray(weight, dtype=np.float64), P.shape[:-1])
    cr = credit(P, true, tol)
    every = np.ones(w.shape, dtype=bool)
    out = (_frac(w, every, cr), _frac(w, given == true, cr), _frac(w, given != true, cr),
           strict_accuracy(P, true, w, tol))
    if P.ndim == 2:
        return Accuracy(*(None if np.isnan(v) else float(v) for v in out))
    return Accuracy(*out)


def strict_accuracy(P, true, weight, tol=None) -> np.ndarray:
    """The strict accuracy of :func:`accuracy` alone: the weighted fraction of strictly
    correct units, (...,) for outputs P (..., U, K) (NaN where the weights sum to 0)."""
    P = np.asarray(P)
    w = np.broadcast_to(np.asarray(weight, dtype=np.float64), P.shape[:-1])
    return _frac(w, np.ones(w.shape, dtype=bool), correct(P, np.asarray(true), tol))


def _frac(w, mask, score):
    """The weighted mean of ``score`` over the units in ``mask`` (NaN where none weighs)."""
    tot = (w * mask).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, (w * mask * score).sum(axis=-1) / tot, np.nan)


FRAGILE_FACTOR = 10.0
"""A verdict is fragile when a tie tolerance this many times larger or smaller changes it."""


def nearest_ratio(gaps, tol, mask) -> np.ndarray:
    """Over the last two axes of ``gaps`` (where ``mask``), the gap / tol nearest 1 on a log
    scale (inf where no positive gap is masked in: no tolerance can change the verdict).
    ``tol`` broadcasts against the leading axes of ``gaps`` ((...,) or a scalar)."""
    gaps = np.asarray(gaps, dtype=np.float64)
    t = np.asarray(tol, dtype=np.float64)
    with np.errstate(over="ignore"):            # outputs of any size (squared loss)
        x = gaps / t.reshape(t.shape + (1, 1)) if t.ndim else gaps / t
    ok = np.asarray(mask, dtype=bool) & (gaps > 0)
    with np.errstate(divide="ignore"):
        score = np.where(ok, np.abs(np.log(np.where(ok, x, 1.0))), np.inf)
    flat = score.reshape(score.shape[:-2] + (-1,))
    i = np.argmin(flat, axis=-1)
    best = np.take_along_axis(x.reshape(flat.shape), i[..., None], axis=-1)[..., 0]
    return np.where(np.isfinite(np.min(flat, axis=-1)), best, np.inf)


def decision_margins(P, true, weight, tol=None) -> tuple[np.ndarray, np.ndarray]:
    """The decision margin and the smallest margin of an accuracy, in units of the tie
    tolerance (module docstring), over the units with weight > 0.

    Args:
      P: (..., U, K) outputs; true: (U,) true classes; weight: (..., U) samples per unit.
      tol: tie tolerance, scalar or one per problem (default: the closed form's).

    Returns:
      (decision, smallest): (...,) arrays (floats for a single problem). decision is inf where
      no gap can be crossed (every output exactly tied); smallest is min_u margin_u / tau.
    """
    P = np.asarray(P, dtype=np.float64)
    true = np.asarray(true)
    t = np.broadcast_to(tie_tolerance() if tol is None else np.asarray(tol, np.float64),
                        P.shape[:-2])
    w = np.broadcast_to(np.asarray(weight, dtype=np.float64), P.shape[:-1]) > 0
    gaps = P.max(axis=-1)[..., None] - P
    idx = np.arange(true.size)
    own = gaps[..., idx, true]
    # a gap changes the credit only if it is at least the true class's own gap to the top
    crit = (gaps >= own[..., None]) & w[..., None]
    decision = nearest_ratio(gaps, t, crit)
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.where(w, margins(P, true) / t[..., None], np.inf)
    smallest = m.min(axis=-1)
    if P.ndim == 2:
        return float(decision), float(smallest)
    return decision, smallest


def fragile(ratio) -> np.ndarray:
    """A verdict with this decision (or smallest) margin changes when the tolerance is scaled
    by FRAGILE_FACTOR or its inverse: 1/FRAGILE_FACTOR < ratio <= FRAGILE_FACTOR."""
    r = np.asarray(ratio, dtype=np.float64)
    return (r > 1.0 / FRAGILE_FACTOR) & (r <= FRAGILE_FACTOR)


def first_true(flags, axis: int = 0) -> np.ndarray:
    """Index of the first True along ``axis`` (e.g. the first 100% round), -1 where none."""
    flags = np.asarray(flags, dtype=bool)
    return np.where(flags.any(axis=axis), np.argmax(flags, axis=axis), -1)


def group_means(P, true, given, weight, K: int) -> list[dict]:
    """Mean output of the samples of each non-empty (true, given) group, in row-major order."""
    P, true, given = np.asarray(P), np.asarray(true), np.asarray(given)
    w = np.asarray(weight, dtype=np.float64)
    key = true * K + given
    keys, first, size = np.unique(key, return_index=True, return_counts=True)
    # groups of one row (the units of the group solver): their means at once, in the same
    # arithmetic as the sum over a larger group's rows below
    one = first[size == 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        alone = dict(zip(keys[size == 1].tolist(), zip(w[one], (w[one, None] * P[one])
                                                        / w[one, None])))
    out = []
    for k in keys.tolist():
        if k in alone:
            m, p = alone[k]
        else:
            mask = key == k
            m = w[mask].sum()
            p = (w[mask, None] * P[mask]).sum(axis=0) / m if m > 0 else None
        if m > 0:
            out.append({"true": k // K, "given": k % K, "count": int(round(m)), "p": p.tolist()})
    return out
