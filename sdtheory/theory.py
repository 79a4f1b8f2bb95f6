"""What the linearised theory predicts: a_j, the per-instance form, Delta, r*, PLL conditions.

Every statement of docs/theory.md sections 4, 7 and 8 about the equal-size block models of
section 5 lives here once, vectorised over a batch of *cells* (parameter sets sharing K) so
that sweeps evaluate whole grids, with scalar entry points for one model. Nothing here solves
(E); ``sdtheory verify`` compares these statements with the solvers.

* :func:`averaging`, :func:`averaging_eigenvalues`: a_j = mu_j / (mu_j + K N lam), the factor
  by which one training shrinks the label signal along the j-th eigenspace (section 4).
* :func:`level_components`, :func:`decompose`: the per-instance form of the linearised outputs
  (section 7.1), one term per eigenspace, for the (true class, given label) groups.
* :func:`pair_coefficients`, :func:`first_perfect_linear`, :func:`r_star_linear`: the first
  round whose linearised margins are all > 0, for any counts (section 7.3).
* :func:`r_star_closed`, :func:`closed_form_applies`, :func:`r_star_theory`: the closed form
  of section 7.2 and where it applies.
* :func:`delta_from_eta`, :func:`eta_boundary`: Delta of the section 6 transition matrices and
  the largest noise rate at which 100% correction is possible.
* :func:`pll_conditions`: the one-round conditions of the PLL student (section 8.1).
* :func:`pll_student`, :func:`pll_safe`: the linearised PLL student group by group, for any
  counts and class sizes, its margins split into instance, class and global terms, and when
  one PLL round is safe (section 8.3).

Rounds follow the package convention: round 0 is the teacher, and round r is the (r+1)-th
training, so the linearised output carries the powers a_j^t with t = r + 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sdtheory._validate import as_int, check_choice, check_counts, check_eta, check_K, check_lam
from sdtheory.metrics import tie_tolerance
from sdtheory.noise import KINDS, delta, is_balanced

__all__ = [
    "averaging",
    "averaging_eigenvalues",
    "level_names",
    "level_components",
    "grid_components",
    "Decomposition",
    "decompose",
    "group_margins",
    "pair_coefficients",
    "first_perfect_linear",
    "delta",
    "delta_from_eta",
    "eta_boundary",
    "r_star_closed",
    "r_star_continuous",
    "closed_form_applies",
    "closed_form_factors",
    "r_star_linear",
    "r_star_theory",
    "pll_conditions",
    "without_global",
    "PLLStudent",
    "pll_student",
    "pll_constant_cycle",
    "pll_safe",
]


# --------------------------------------------------------------------------------------------
# Averaging eigenvalues (section 4)
# --------------------------------------------------------------------------------------------

def averaging(mu, K, N, lam):
    """a_j = mu_j / (mu_j + K N lam), vectorised (section 4); numpy or jax.numpy arrays."""
    return mu / (mu + K * N * lam)


def level_names(three_level: bool) -> tuple[str, ...]:
    """The eigenspaces of the equal-size block model, coarsest first."""
    return (("global", "superclass", "class", "instance") if three_level
            else ("global", "class", "instance"))


def averaging_eigenvalues(model, lam: float) -> dict[str, float]:
    """Eigenvalues of the averaging operator A = G (G + K N lam I)^{-1} (section 4).

    For each level eigenvalue mu_j of the block model
    (:meth:`~sdtheory.models.block.BlockModel.mu`), a_j = mu_j / (mu_j + K N lam), the factor by
    which one training shrinks the label signal along that eigenspace. Two-level: "global" a1,
    "class" a2, "instance" a3. Three-level: "global", "superclass", "class" (a_cls), "instance"
    (a_inst).

    Args:
      model: a block model with equal class sizes (and, three-level, equal superclass sizes).
      lam: ridge parameter lambda > 0.

    Returns:
      dict name -> a_j in [0, 1), ordered like :meth:`~sdtheory.models.block.BlockModel.mu`.

    Example:
      >>> from sdtheory import two_level
      >>> a = averaging_eigenvalues(two_level(4, 120, 0.4, 0.1), 1e-3)
      >>> round(a["instance"], 6)
      0.555556
    """
    lam = check_lam(lam)
    return {name: float(averaging(mu, model.K, model.N, lam)) for name, mu in model.mu().items()}


# --------------------------------------------------------------------------------------------
# Per-instance form (section 7.1)
# --------------------------------------------------------------------------------------------

def level_components(V, weight, unit_class, superclass_of=None) -> dict[str, np.ndarray]:
    """Projections of unit rows onto the eigenspaces of an equal-size block model (7.1).

    With A^t V = sum_level a_level^t comp_level: comp_global is the weighted global mean row,
    each finer level the difference of the means at two consecutive levels (superclass,
    class), and the instance level the unit's own row minus its class mean. Units may be
    samples (weight 1) or groups of samples (weight = their count).

    Args:
      V: (..., U, K) unit rows, broadcastable against ``weight``.
      weight: (..., U) samples per unit; every class must hold the same number of samples.
      unit_class: (U,) class of each unit.
      superclass_of: (K,) class -> superclass (three-level), or None.

    Returns:
      dict level -> (..., U, K) components, coarsest first; they sum to V.
    """
    w = np.asarray(weight, dtype=np.float64)
    V = np.asarray(V, dtype=np.float64)
    V = np.broadcast_to(V, w.shape + V.shape[-1:])
    unit_class = np.asarray(unit_class)
    K = V.shape[-1] if superclass_of is None else len(superclass_of)
    K = max(K, int(unit_class.max()) + 1)
    E = np.eye(K)[unit_class]                                    # (U, K) unit -> class
    n = w @ E                                                    # (..., K) class sizes
    cls = np.einsum("...u,uk,...ul->...kl", w, E, V) / n[..., None]
    glob = cls.mean(axis=-2, keepdims=True)                      # equal sizes: mean of classes
    means = {"global": np.broadcast_to(glob, cls.shape)}
    if superclass_of is not None:
        member = np.eye(int(np.max(superclass_of)) + 1)[np.asarray(superclass_of)]   # (K, S)
        sup = np.einsum("...kl,ks->...sl", cls, member) / member.sum(axis=0)[:, None]
        means["superclass"] = np.einsum("ks,...sl->...kl", member, sup)
    means["class"] = cls
    comps, coarser = {}, None
    for name, mk in means.items():
        mk = mk[..., unit_class, :]                              # each unit's mean
        comps[name] = mk if coarser is None else mk - coarser
        coarser = mk
    comps["instance"] = V - coarser
    return comps


def _grid(K: int):
    """(true, given) of the K x K grid of groups, row-major."""
    return np.divmod(np.arange(K * K), K)


def grid_components(V, counts, superclass_of=None) -> dict[str, np.ndarray]:
    """:func:`level_components` on the K x K grid of (true, given) groups weighted by counts.

    Args:
      V: (..., K * K, K) unit rows; counts: (..., K, K).

    Returns:
      dict level -> (..., K * K, K).
    """
    C = np.asarray(counts, dtype=np.float64)
    K = C.shape[-1]
    return level_components(V, C.reshape(C.shape[:-2] + (K * K,)), _grid(K)[0], superclass_of)


@dataclass(frozen=True)
class Decomposition:
    """Per-instance form of the linearised outputs at round r (section 7.1).

    For an instance i of true class k and given label j, with t = r + 1,

        p_i = 1/K + a1^t (ybar - 1/K) + a2^t (ybar_k - ybar) + a3^t (e_j - ybar_k)

    (two-level); the three-level model adds a_sup^t (ybar_s - ybar) and uses ybar_s in place
    of ybar in the class term. Each bracket is the projection of the centred one-hot labels
    onto one eigenspace of G.

    Attributes:
      r: round (0 = teacher).
      true, given, count: (U,) the non-empty (true, given) groups, row-major (the unit order of
        :class:`~sdtheory.solvers.LinearSolver` on a block model).
      terms: name -> (U, K) array; "uniform" (1/K), "global", "superclass" (three-level only),
        "class", "instance".
      a: the averaging eigenvalues used (:func:`averaging_eigenvalues`).
    """

    r: int
    true: np.ndarray
    given: np.ndarray
    count: np.ndarray
    terms: dict
    a: dict

    @property
    def P(self) -> np.ndarray:
        """(U, K) the sum of the terms: the linearised outputs of every group."""
        return sum(self.terms.values())


def _check_uniform(model, what: str) -> None:
    if model.equal_sizes() is None:
        raise ValueError(f"{what} needs equal class sizes (and, three-level, equal superclass "
                         f"sizes); got sizes {model.sizes}")


def decompose(model, counts, lam: float, r: int) -> Decomposition:
    """Per-instance decomposition of the linearised outputs at round r (section 7.1).

    The sum of the terms equals the linearised solver's outputs of round r (to rounding), for
    any counts, balanced or not.
    """
    r = as_int(r, "round r", lo=0)
    _check_uniform(model, "the per-instance decomposition")
    C = check_counts(counts, model.sizes)
    a = averaging_eigenvalues(model, lam)
    K = model.K
    true, given = np.nonzero(C)
    comps = level_components(np.eye(K)[given] - 1.0 / K, C[true, given], true,
                             model.superclass_of)
    terms = {"uniform": np.full((true.size, K), 1.0 / K)}
    for name, X in comps.items():
        terms[name] = a[name] ** (r + 1) * X
    return Decomposition(r=r, true=true, given=given, count=C[true, given], terms=terms, a=a)


def group_margins(model, counts, lam: float, rounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linearised margins p(true) - max_{l != true} p(l) of every group at the given rounds.

    Returns:
      (margins, true, given): margins has shape (len(rounds), U); a group is correct at round r
      iff its margin is > 0.
    """
    from sdtheory.metrics import margins

    _check_uniform(model, "group margins")
    C = check_counts(counts, model.sizes)
    a = averaging_eigenvalues(model, lam)
    t = np.asarray(list(rounds), dtype=np.float64) + 1.0
    if np.any(t < 1):
        raise ValueError("rounds must be >= 0")
    K = model.K
    true, given = np.nonzero(C)
    comps = level_components(np.eye(K)[given] - 1.0 / K, C[true, given], true,
                             model.superclass_of)
    P = np.full((t.size, true.size, K), 1.0 / K)
    for name, X in comps.items():
        P = P + (a[name] ** t)[:, None, None] * X[None]
    return margins(P, true), true, given


# --------------------------------------------------------------------------------------------
# First 100% round of the linearised form, vectorised (section 7.3)
# --------------------------------------------------------------------------------------------

def pair_coefficients(counts, superclass_of=None) -> np.ndarray:
    """Level coefficients of the worst margin of each (class k, other class l) pair.

    The linearised margin of unit (k, j) against class l is sum_level a_level^t [comp(k) -
    comp(l)] (section 7.1); only the instance level depends on j, through [j == k] - [j == l],
    whose smallest value over the non-empty units of class k is -1 (C_kl > 0), else 0 (some
    j outside {k, l}), else +1. So every unit of every class is correct at round r iff
    sum_level coef[p, level] a_level^(r+1) > 0 for every pair p.

    Args:
      counts: (G, K, K) counts of G configurations (equal class sizes within each).
      superclass_of: (K,) or None.

    Returns:
      (G, P, L) coefficients for P = K (K - 1) pairs (k, l) and the L levels of
      :func:`level_names`; pairs repeated within a configuration are merged (padded by
      repeating a row), which keeps the result exact.
    """
    C = np.asarray(counts)
    Gn, K, _ = C.shape
    comps = grid_components(np.eye(K)[_grid(K)[1]], C, superclass_of)
    names = level_names(superclass_of is not None)
    kk, ll = np.nonzero(~np.eye(K, dtype=bool))
    coef = np.empty((Gn, kk.size, len(names)))
    for i, name in enumerate(names):
        if name == "instance":
            cls_mean = C / C.sum(axis=-1, keepdims=True)        # ybar_k of the one-hot rows
            base = -(cls_mean[:, kk, kk] - cls_mean[:, kk, ll])
            others = (C > 0).sum(axis=2)[:, kk] - (C[:, kk, kk] > 0) - (C[:, kk, ll] > 0)
            o = np.where(C[:, kk, ll] > 0, -1.0, np.where(others > 0, 0.0, 1.0))
            coef[:, :, i] = base + o
        else:
            comp = comps[name].reshape(Gn, K, K, K)[:, :, 0, :]  # class-level: any unit j
            coef[:, :, i] = comp[:, kk, kk] - comp[:, kk, ll]
    # Merge duplicate pairs inside each configuration (symmetric noise: all pairs alike).
    P = kk.size
    rows = np.concatenate([np.repeat(np.arange(Gn), P)[:, None].astype(np.float64),
                           coef.reshape(Gn * P, -1)], axis=1)
    uniq = np.unique(rows, axis=0)
    gid = uniq[:, 0].astype(np.int64)
    per = np.bincount(gid, minlength=Gn)
    start = np.concatenate([[0], np.cumsum(per)[:-1]])
    pos = np.arange(gid.size) - start[gid]
    out = np.broadcast_to(uniq[start][:, None, 1:], (Gn, per.max(), len(names))).copy()
    out[gid, pos] = uniq[:, 1:]
    return out


def first_perfect_linear(coef, a, max_rounds: int, tie_tol=None) -> np.ndarray:
    """First round 0..max_rounds whose linearised margins all exceed ``tie_tol``, per cell.

    Args:
      coef: (C, P, L) pair coefficients of each cell (:func:`pair_coefficients`, indexed by
        the cell's configuration).
      a: (C, L) averaging eigenvalues of each cell, levels in :func:`level_names` order.
      max_rounds: last round examined.
      tie_tol: margins must exceed this (default: the closed-form tie tolerance of
        :func:`sdtheory.metrics.tie_tolerance`); or a sequence of T tolerances, answered from
        one evaluation of the margins.

    Returns:
      (C,) float: the round, NaN where none within max_rounds; (T, C) for a sequence of
      tolerances. Rounds are evaluated in blocks (powers a^(r+1) for a block of r at once),
      over the cells not yet decided for every tolerance.
    """
    coef, a = np.asarray(coef), np.asarray(a, dtype=np.float64)
    one = tie_tol is None or np.ndim(tie_tol) == 0
    tols = np.atleast_1d(float(tie_tolerance()) if tie_tol is None
                         else np.asarray(tie_tol, dtype=np.float64))
    out = np.full((tols.size, a.shape[0]), np.nan)
    active = np.arange(a.shape[0])           # the undecided cells, and their arrays, compacted
    cf, aa, at = coef.transpose(0, 2, 1), a, np.ones_like(a)    # at = a^start
    R = int(max_rounds)
    start = 0
    while start <= R and active.size:
        size = int(np.clip(2 ** 22 // max(1, active.size * coef.shape[1] * coef.shape[2]), 1,
                           R + 1 - start))
        # a^t for t = start + 1 .. start + size by repeated products, (A, rounds, L)
        pw = at[:, None, :] * np.cumprod(np.broadcast_to(aa[:, None, :], (active.size, size,
                                                                         a.shape[1])), axis=1)
        worst = np.min(pw @ cf, axis=2)                   # (A, rounds): the smallest margin
        ok = worst[None] > tols[:, None, None]            # (T, A, rounds)
        hit = ok.any(axis=2)
        now = out[:, active]
        now = np.where(np.isnan(now) & hit, start + np.argmax(ok, axis=2), now)
        out[:, active] = now
        keep = np.isnan(now).any(axis=0)
        active, cf, aa, at = active[keep], cf[keep], aa[keep], pw[keep, -1, :]
        start += size
    return out[0] if one else out


def r_star_linear(model, counts, lam: float, max_rounds: int = 1000) -> int | None:
    """Linear-theory r* for any counts: the first round whose margins are all > 0 (7.3).

    The section-7 margins (global a1 term included) of every group, round by round. For
    unbalanced counts 100% correction, once reached, can be lost again: the global term
    a1^t (ybar - 1/K) decays slowest and eventually dominates.

    Returns:
      The first r in 0..max_rounds at which every group's true class is strictly largest, or
      None.
    """
    max_rounds = as_int(max_rounds, "max_rounds", lo=0)
    _check_uniform(model, "r_star_linear")
    C = check_counts(counts, model.sizes)
    coef = pair_coefficients(C[None], model.superclass_of)
    a = averaging_eigenvalues(model, lam)
    names = level_names(model.three_level)
    r = first_perfect_linear(coef, np.array([[a[nm] for nm in names]]), max_rounds, 0.0)[0]
    return None if np.isnan(r) else int(r)


# --------------------------------------------------------------------------------------------
# Delta, boundaries, closed-form r* (sections 6.3, 7.2)
# --------------------------------------------------------------------------------------------

def delta_from_eta(kind: str, K: int, eta: float, m: int | None = None) -> float:
    """Delta of the transition matrix of one noise kind (sections 6.3 and 7.2).

    With C = T (the target rates, not exact-count floors):

    * sym: Delta = 1 - eta - eta/(K-1) = (K - 1 - K eta)/(K - 1);
    * asym (authors'): C_kk = 1 - eta, C_{k,k+1} = 2 eta/K (K >= 3; eta for K = 2), others
      eta/K, so Delta = 1 - eta - 2 eta/K = 1 - (K + 2) eta / K;
    * pairflip: Delta = 1 - 2 eta;
    * superclass (m classes per superclass): Delta = 1 - eta - eta/(m-1).
    """
    check_choice(kind, KINDS, "kind")
    K = check_K(K)
    eta = check_eta(eta)
    if kind == "sym":
        return 1.0 - eta - eta / (K - 1)
    if kind == "asym":
        return 1.0 - eta - 2.0 * eta / K
    if kind == "pairflip":
        return 1.0 - 2.0 * eta
    m = _check_m(m, K)                                     # superclass
    return 1.0 - eta - eta / (m - 1)


def eta_boundary(kind: str, K: int, m: int | None = None) -> float:
    """Largest noise rate at which 100% label correction is possible (section 6.3).

    The supremum of the eta with Delta(eta) > 0 (:func:`delta_from_eta`): sym (K - 1)/K, asym
    (authors') K/(K + 2), pairflip 1/2, superclass (m - 1)/m. Exact counts floor n T_kj, so at
    finite n the realised Delta can stay > 0 a little beyond it (an eta shift of order K/n).

    Example:
      >>> eta_boundary("sym", 4), eta_boundary("asym", 4), eta_boundary("pairflip", 10)
      (0.75, 0.6666666666666666, 0.5)
    """
    check_choice(kind, KINDS, "kind")
    K = check_K(K)
    if kind == "sym":
        return (K - 1) / K
    if kind == "asym":
        return K / (K + 2)
    if kind == "pairflip":
        return 0.5
    m = _check_m(m, K)                                     # superclass
    return (m - 1) / m


def _check_m(m, K: int) -> int:
    if m is None:
        raise ValueError("superclass noise needs m (classes per superclass)")
    m = as_int(m, "m (classes per superclass)", lo=2)
    if K % m:
        raise ValueError(f"m = {m} must divide K = {K}")
    return m


def r_star_continuous(delta_, a2, a3, xp=np):
    """log(1 + 1/Delta) / log(a2/a3): the real number whose floor is the closed-form r*
    (section 7.2); smooth in lam through a2 and a3 (``xp`` = jax.numpy for gradients)."""
    return xp.log1p(1.0 / delta_) / xp.log1p((a2 - a3) / a3)


def r_star_closed(delta_, a2, a3):
    """Closed-form minimum round of 100% correction (section 7.2, balanced C).

    r* is the smallest r >= 0 with the strict inequality

        (a2/a3)^(r+1) > 1 + 1/Delta,

    found from floor(log(1 + 1/Delta) / log(a2/a3)) and then decided by evaluating the
    inequality itself (an exact integer is decided by the strict inequality). Delta = +inf (no
    mislabelled sample) gives 0.

    Args:
      delta_, a2, a3: Delta and the class and instance factors (three-level superclass noise:
        a_cls, a_inst); scalars or broadcastable arrays.

    Returns:
      scalars: r* as an int, or None if no round is 100% correct (Delta <= 0 or None, or
      a2 <= a3); arrays: float r* with NaN there.

    Example:
      >>> r_star_closed(0.5, 0.9, 0.3)  # (a2/a3)^t = 3^t > 3 first at t = 2
      1
      >>> r_star_closed(np.array([0.5, 0.0, np.inf]), 0.9, 0.3)
      array([ 1., nan,  0.])
    """
    scalar = all(np.ndim(v) == 0 for v in (delta_, a2, a3))
    if delta_ is None:
        return None
    dl, a2, a3 = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64)
                                       for v in (delta_, a2, a3)))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ok = (dl > 0) & (a3 > 0) & (a2 > a3)
        target = 1.0 + 1.0 / dl                          # 1 for Delta = inf
        ratio = a2 / a3
        est = r_star_continuous(dl, a2, a3)
        r = np.where(ok, np.maximum(0.0, np.floor(np.where(ok & np.isfinite(est), est, 0.0))),
                     0.0)
        # The strict inequality decides: move down while round r-1 already satisfies it, up
        # while round r does not (the estimate is off by at most a few from rounding).
        for _ in range(64):
            down = ok & (r > 0) & (ratio ** r > target)
            up = ok & ~(ratio ** (r + 1) > target)
            if not (down.any() or up.any()):
                break
            r = np.where(down, r - 1, np.where(up, r + 1, r))
        else:  # pragma: no cover
            raise ArithmeticError("closed-form r*: the floor estimate did not settle")
    out = np.where(ok, r, np.nan)
    if scalar:
        return None if np.isnan(out) else int(out)
    return out


def closed_form_applies(counts, superclass_of=None):
    """Where the closed form of section 7.2 holds: balanced counts; three-level, labels only
    flipped inside the true superclass (superclass noise). Vectorised over (..., K, K)."""
    C = np.asarray(counts)
    ok = is_balanced(C)
    if superclass_of is not None:
        s = np.asarray(superclass_of)
        across = s[:, None] != s[None, :]
        ok = ok & ~np.any((C > 0) & across, axis=(-2, -1))
    return ok


def closed_form_factors(model, counts, lam: float) -> tuple[float, float]:
    """(a2, a3) of the closed form for these counts, or ValueError where it does not apply.

    Two-level, balanced counts: (a_class, a_instance); three-level superclass noise: (a_cls,
    a_inst). Other counts need :func:`r_star_linear`.
    """
    C = check_counts(counts, model.sizes)
    if not closed_form_applies(C, model.superclass_of):
        raise ValueError("the closed-form r* needs balanced counts (every given label as "
                         "frequent as every class) and, three-level, labels flipped only inside "
                         "the true superclass; use r_star_linear for these counts")
    a = averaging_eigenvalues(model, lam)
    return a["class"], a["instance"]


def r_star_theory(model, counts, lam: float, max_rounds: int = 1000) -> int | None:
    """The theory's r* for a block model and counts (section 7).

    0 if no sample is mislabelled; the closed form :func:`r_star_closed` where it applies;
    otherwise :func:`r_star_linear` up to ``max_rounds``.
    """
    C = check_counts(counts, model.sizes)
    if not np.any(C[~np.eye(model.K, dtype=bool)]):
        return 0
    if not closed_form_applies(C, model.superclass_of):
        return r_star_linear(model, C, lam, max_rounds)
    a2, a3 = closed_form_factors(model, C, lam)
    return r_star_closed(delta(C), a2, a3)


# --------------------------------------------------------------------------------------------
# PLL student (section 8)
# --------------------------------------------------------------------------------------------

def pll_conditions(model, counts, lam: float) -> tuple[bool, dict[str, float]]:
    """One-round sufficient conditions of the PLL student (section 8.1, reconstructed).

    Balanced counts on the two-level model, C = counts / n, a2, a3 = class and instance
    factors. Three margins, each > 0 when its condition holds:

    * "plurality": min_k min_{l != k} (C_kk - C_kl): the true class is the plurality label of
      its class, so it is in the teacher's top two for every sample of the class;
    * "pair_mass": min_k (1 - C_kk - max_{l != k} C_kl): the student's tie between the two
      candidates (e_j + e_k)/2 is broken towards k by the class average;
    * "teacher_ranking": min over mislabelled groups (k, j), C_kj > 0, of
      a3 - (a2 - a3)(C_kk - C_kj): the linearised teacher (t = 1) ranks the given label j
      first (+inf when no sample is mislabelled).

    Section 8.2 records where these conditions fail to be sufficient (general balanced counts)
    and where the teacher-ranking one is not necessary.

    Returns:
      (ok, margins): ok is True iff every margin is > 0.

    Raises:
      ValueError: for a three-level model or unbalanced counts (the conditions are stated for
        balanced corruption only).
    """
    if model.three_level:
        raise ValueError("the PLL conditions of section 8 are stated for the two-level model")
    Cn = check_counts(counts, model.sizes)
    if not is_balanced(Cn):
        raise ValueError("the PLL conditions of section 8 are stated for balanced counts "
                         "(every given label as frequent as every class)")
    K = model.K
    n = np.asarray(model.sizes, dtype=np.float64)
    # Differences of counts are exact integers: a tie (pure pair-flip) gives exactly 0.
    diag = np.diag(Cn)
    max_off = np.where(np.eye(K, dtype=bool), -1, Cn).max(axis=1)
    a = averaging_eigenvalues(model, lam)
    a2, a3 = a["class"], a["instance"]
    k, j = np.nonzero((Cn > 0) & ~np.eye(K, dtype=bool))
    gap = (diag[k] - Cn[k, j]) / n[k]                       # C_kk - C_kj
    teacher = float(np.min(a3 - (a2 - a3) * gap)) if k.size else math.inf
    margins = {
        "plurality": float(np.min((diag - max_off) / n)),
        "pair_mass": float(np.min((n - diag - max_off) / n)),
        "teacher_ranking": teacher,
    }
    return all(v > 0 for v in margins.values()), margins


# --------------------------------------------------------------------------------------------
# The PLL student in the linearised form, any counts (section 8.3)
# --------------------------------------------------------------------------------------------

def without_global(model, lam: float):
    """The block model without its all-samples level, and the ridge that keeps A's scale
    (section 8.3).

    Two-level G = (1 - c) I + (c - d) blockdiag(11^T) + d 11^T. Dropping d 11^T leaves
    G0 = (1 - d) G', G' the two-level model with c' = (c - d)/(1 - d), d' = 0, so
    G0 (G0 + K N lam I)^{-1} = G' (G' + K N lam' I)^{-1} with lam' = lam/(1 - d). Three-level:
    drop e 11^T, c' = (c - e)/(1 - e), d' = (d - e)/(1 - e), e' = 0, lam' = lam/(1 - e).

    Returns:
      (model', lam') with the class sizes (and superclasses) of ``model``.
    """
    from sdtheory.models import BlockModel

    lam = check_lam(lam)
    g = model.e if model.three_level else model.d            # weight of the all-samples level
    s = 1.0 - g                                              # > 0: g < c <= 1
    if model.three_level:
        m0 = BlockModel(model.sizes, (model.c - g) / s, (model.d - g) / s, 0.0,
                        model.superclass_of)
    else:
        m0 = BlockModel(model.sizes, (model.c - g) / s, 0.0)
    return m0, check_lam(lam / s)


@dataclass(frozen=True)
class PLLStudent:
    """The linearised PLL student of one block model and counts, group by group (section 8.3).

    Teacher: one linearised training on the one-hot given labels
    (:class:`~sdtheory.solvers.LinearSolver`). Targets: its top-2 classes at 1/2 each
    (:func:`sdtheory.distill.pll_targets`, closed-form tie tolerance). Student: one linearised
    training on those targets.

    Attributes:
      true, given, count: (U,) the non-empty (true class, given label) groups, row-major.
      teacher, targets, P: (U, K) teacher outputs, PLL targets, student outputs.
      tied: (U,) the group's top-2 selection needed the tie rule (a target not in {0, 1/2}).
      margin: (U,) p(true) - max_{l != true} p(l) of the student; > 0 iff the group is correct.
      rival: (U,) argmax_{l != true} p(l) of the student.
      terms: "instance", "class", "global" -> (U,) the three parts of p(true) - p(rival):
        instance a3 (t_u(true) - t_u(rival)); global = the part due to the all-samples level
        of G (outputs of A minus those of A0 of :func:`without_global`); class = the rest. With
        equal class sizes, class = (a2 - a3)(tbar_k(true) - tbar_k(rival)) and global =
        (a1 - a2)(tbar(true) - tbar(rival)) (a_glob - a_sup for the three-level model).
      margin_without_global: (U,) the student's margin with A0 in place of A (same targets).
      tbar: (K,) the mean PLL target over all samples.
    """

    true: np.ndarray
    given: np.ndarray
    count: np.ndarray
    teacher: np.ndarray
    targets: np.ndarray
    tied: np.ndarray
    P: np.ndarray
    margin: np.ndarray
    rival: np.ndarray
    terms: dict
    margin_without_global: np.ndarray
    tbar: np.ndarray

    @property
    def accuracy(self) -> float:
        """Strict training accuracy of the student (fraction of samples with margin > 0)."""
        return float(self.count[self.margin > tie_tolerance()].sum() / self.count.sum())


def pll_student(model, counts, lam: float, ties: str = "split") -> PLLStudent:
    """Linearised teacher -> top-2 targets -> linearised student, per group (section 8.3).

    Any class sizes and any counts (balanced or not); two- or three-level model.

    Args:
      model: a block model.
      counts: (K, K) counts, row = true class, column = given label.
      lam: ridge parameter.
      ties: tie rule of the top-2 targets (:func:`sdtheory.distill.pll_targets`).

    Returns:
      :class:`PLLStudent`.
    """
    from sdtheory.distill import pll_targets
    from sdtheory.metrics import margins
    from sdtheory.solvers.linear import AveragingOperator, LinearSolver

    lin = LinearSolver(gram=model, labels=counts, lam=lam)
    true, given, w, K = lin.true, lin.given, lin.weight[0], lin.K
    P0 = lin.round_outputs(0)
    T = pll_targets(P0, ties=ties)
    P = lin.fit(T).P
    m0, lam0 = without_global(model, lam)
    op0 = AveragingOperator(m0, lam0, K, unit_class=true, weight=w)
    P_ng = 1.0 / K + op0.apply(T - 1.0 / K)
    mg = margins(P, true)
    others = P.copy()
    others[np.arange(true.size), true] = -np.inf
    rival = np.argmax(others, axis=1)
    u = np.arange(true.size)

    def diff(X):
        return X[u, true] - X[u, rival]

    a3 = float(lin.op.a[0])                                  # instance factor, any sizes
    inst = a3 * diff(T)
    glob = diff(P) - diff(P_ng)
    terms = {"instance": inst, "class": diff(P_ng) - inst, "global": glob}
    tied = np.any((np.abs(T) > 1e-15) & (np.abs(T - 0.5) > 1e-15), axis=1)
    return PLLStudent(true=true, given=given, count=w, teacher=P0, targets=T, tied=tied, P=P,
                      margin=mg, rival=rival, terms=terms,
                      margin_without_global=margins(P_ng, true),
                      tbar=(w[:, None] * T).sum(axis=0) / w.sum())


def pll_constant_cycle(targets, true, weight=None) -> list[int] | None:
    """A cycle of classes whose partial labels are constant within the class (section 8.3).

    Class k is *constant* when every unit of class k with samples has the same target row
    (e_k + e_s)/2 for one class s = s(k) != k. A cycle is k_1 -> k_2 -> ... -> k_m -> k_1 with
    s(k_i) = k_{i+1}, every k_i constant. On a two-level block model (any class sizes) the PLL
    student trained on such targets, exact (E) or linearised (L), cannot have every class of
    the cycle strictly correct (docs/theory.md section 8.3).

    Args:
      targets: (U, K) PLL targets of the units (:func:`sdtheory.distill.pll_targets`).
      true: (U,) true class of each unit.
      weight: (U,) samples per unit (units with weight 0 are ignored); default all 1.

    Returns:
      the classes of one cycle in order, or None.
    """
    T = np.asarray(targets, dtype=np.float64)
    true = np.asarray(true)
    used = np.ones(true.size, bool) if weight is None else np.asarray(weight) > 0
    K = T.shape[1]
    s = {}
    for k in range(K):
        rows = T[used & (true == k)]
        if rows.shape[0] == 0 or np.any(rows != rows[0]):
            continue
        pair = np.flatnonzero(rows[0] == 0.5)
        if rows[0][k] == 0.5 and pair.size == 2 and np.count_nonzero(rows[0]) == 2:
            s[k] = int(pair[pair != k][0])
    for start in s:
        path, k = [], start
        while k in s and k not in path:
            path.append(k)
            k = s[k]
        if k in path:
            return path[path.index(k):]
    return None


def pll_safe(model, counts, lam: float, ties: str = "split") -> tuple[bool, dict]:
    """Is one PLL round safe in the linearised form? (section 8.3)

    Safe means every group with samples has a positive student margin (:func:`pll_student`),
    i.e. the linearised PLL student is 100% correct on the training labels.

    Returns:
      (safe, info) with

      * "margin": the smallest student margin over the groups, and "worst_group" (k, j),
        "rival" (the class that beats or comes closest to k there);
      * "instance", "class", "global": the three terms of that margin (they sum to it);
      * "margin_without_global": the smallest margin with the all-samples level removed
        from the student (same targets);
      * "cause": "safe"; "tie" when every failing group is an exact tie; "global" when at
        every failing group the instance and class terms are >= 0 and the global term is < 0
        (the global term alone makes it fail, or turns a tie into an error); "class"
        otherwise;
      * "accuracy": the linearised student's strict accuracy;
      * "dominant": argmax of tbar, "tbar_dominant": its mean target (1/2: the class is a
        candidate of every sample), "teacher_ties": groups whose top-2 needed the tie rule;
      * "constant_cycle": a cycle of classes with class-constant partial labels
        (:func:`pll_constant_cycle`), or None; with one, PLL is never safe (two-level).
    """
    s = pll_student(model, counts, lam, ties)
    w = int(np.argmin(s.margin))
    tol = tie_tolerance()
    fail = s.margin <= tol
    safe = not fail.any()
    local = s.terms["instance"] + s.terms["class"]           # margin less the global term
    if safe:
        cause = "safe"
    elif np.all(np.abs(s.margin[fail]) <= tol):
        cause = "tie"
    elif np.all((local[fail] >= -tol) & (s.terms["global"][fail] < -tol)):
        cause = "global"
    else:
        cause = "class"
    dom = int(np.argmax(s.tbar))
    info = {
        "margin": float(s.margin[w]),
        "worst_group": (int(s.true[w]), int(s.given[w])),
        "rival": int(s.rival[w]),
        **{name: float(v[w]) for name, v in s.terms.items()},
        "margin_without_global": float(np.min(s.margin_without_global)),
        "cause": cause,
        "accuracy": s.accuracy,
        "dominant": dom,
        "tbar_dominant": float(s.tbar[dom]),
        "teacher_ties": int(s.tied.sum()),
        "constant_cycle": pll_constant_cycle(s.targets, s.true, s.count),
    }
    return safe, info
