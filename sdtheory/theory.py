"""What the linearised theory predicts: a_j, the per-instance form, Delta, r*, PLL conditions.

Everything here is a closed-form statement of theory.md sections 3, 5 and 6 about the block
models of section 4 (equal class sizes n, and three-level equal superclass sizes m), evaluated
in plain numpy float64. Nothing here solves (E); :mod:`sdtheory.verify` compares these
statements with the solvers of :mod:`sdtheory.solve`.

* :func:`averaging_eigenvalues`: a_j = mu_j / (mu_j + K N lam), the factor by which one
  training shrinks the label signal along the j-th eigenspace of G (section 3).
* :func:`decompose`: the per-instance form of the linearised outputs at round r (section 5),
  one term per eigenspace, for every (true class, given label) group.
* :func:`delta`, :func:`r_star_closed`, :func:`r_star_linear`, :func:`r_star_theory`: the
  100%-correction condition and the minimum round r* (section 5).
* :func:`delta_from_eta`, :func:`eta_boundary`: Delta as a function of the noise rate of the
  section 7 transition matrices, and the largest rate at which 100% correction is possible.
* :func:`pll_conditions`: the one-round sufficient conditions of the PLL student (section 6).

Rounds follow the package convention: round 0 is the teacher, and round r is the (r+1)-th
training, so the linearised output carries the powers a_j^t with t = r + 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sdtheory.noise import KINDS, check_counts, delta, is_balanced

__all__ = [
    "averaging_eigenvalues",
    "Decomposition",
    "decompose",
    "group_margins",
    "delta",
    "delta_from_eta",
    "eta_boundary",
    "r_star_closed",
    "r_star_linear",
    "r_star_theory",
    "closed_form_factors",
    "pll_conditions",
]


def _counts(model, counts) -> np.ndarray:
    """Validated integer counts whose rows sum to the model's class sizes."""
    return check_counts(counts, model.sizes)


def averaging_eigenvalues(model, lam: float) -> dict[str, float]:
    """Eigenvalues of the averaging operator A = G (G + K N lam I)^{-1} (theory.md section 3).

    For each level eigenvalue mu_j of the block model (:meth:`BlockModel.mu`),

        a_j = mu_j / (mu_j + K N lam),

    the factor by which one training shrinks the label signal along that eigenspace. Two-level:
    "global" a1, "class" a2, "instance" a3 (section 5). Three-level: "global", "superclass",
    "class" (a_cls), "instance" (a_inst).

    Args:
      model: a :class:`sdtheory.gram.BlockModel` with equal class sizes (and, three-level,
        equal superclass sizes).
      lam: ridge parameter lambda > 0.

    Returns:
      dict name -> a_j in [0, 1), ordered like :meth:`BlockModel.mu`.

    Example:
      >>> from sdtheory import two_level
      >>> a = averaging_eigenvalues(two_level(4, 120, 0.4, 0.1), 1e-3)
      >>> round(a["instance"], 6)
      0.555556
    """
    lam = float(lam)
    if not (math.isfinite(lam) and lam > 0):
        raise ValueError(f"lam must be a finite number > 0, got {lam!r}")
    KNlam = model.K * model.N * lam
    return {name: mu / (mu + KNlam) for name, mu in model.mu().items()}


@dataclass(frozen=True)
class Decomposition:
    """Per-instance form of the linearised outputs at round r (theory.md section 5).

    For an instance i of true class k and given label j, with t = r + 1,

        p_i = 1/K + a1^t (ybar - 1/K) + a2^t (ybar_k - ybar) + a3^t (e_j - ybar_k)

    (two-level), and for the three-level model, with ybar_s the average given label of the
    superclass s of k,

        p_i = 1/K + a_glob^t (ybar - 1/K) + a_sup^t (ybar_s - ybar)
                  + a_cls^t (ybar_k - ybar_s) + a_inst^t (e_j - ybar_k).

    Each bracket is the projection of the centred one-hot labels onto one eigenspace of G
    (global mean, superclass means, class means, within-class deviations).

    Attributes:
      r: round (0 = teacher).
      true, given, count: (U,) the non-empty (true, given) groups, in row-major order (the unit
        order of :meth:`LinearSolver.groups`).
      terms: name -> (U, K) array; names "uniform" (1/K), "global", "superclass" (three-level
        only), "class", "instance".
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


def _projections(model, counts):
    """Per-group label components (before the a_j^t factors) and the groups themselves."""
    K = model.K
    C = _counts(model, counts)
    n = np.asarray(model.sizes, dtype=np.float64)
    if model._uniform() is None:
        raise ValueError("the per-instance decomposition needs equal class sizes (and, "
                         f"three-level, equal superclass sizes); got sizes {model.sizes}")
    true, given = np.nonzero(C)
    ybar_k = C / n[:, None]                                   # (K, K): row k = ybar_k
    ybar = C.sum(axis=0) / n.sum()                            # (K,)
    comps = {"global": np.broadcast_to(ybar - 1.0 / K, (true.size, K))}
    if model.three_level:
        s = np.asarray(model.superclass_of)
        ybar_s = np.zeros((model.S, K))
        np.add.at(ybar_s, s, C.astype(np.float64))
        ybar_s /= np.bincount(s, weights=n)[:, None]          # superclass means
        comps["superclass"] = (ybar_s[s] - ybar)[true]
        comps["class"] = (ybar_k - ybar_s[s])[true]
    else:
        comps["class"] = (ybar_k - ybar)[true]
    comps["instance"] = np.eye(K)[given] - ybar_k[true]
    return C, true, given, comps


def decompose(model, counts, lam: float, r: int) -> Decomposition:
    """Per-instance decomposition of the linearised outputs at round r (theory.md section 5).

    The sum of the terms equals ``LinearSolver.groups(model, counts, lam).round_outputs(r)``
    (to rounding), for any counts, balanced or not.

    Args:
      model: block model with equal class sizes (three-level: equal superclass sizes).
      counts: (K, K) integer counts, row k summing to n.
      lam: ridge parameter lambda > 0.
      r: round >= 0 (t = r + 1 trainings).

    Returns:
      :class:`Decomposition`.
    """
    r = int(r)
    if r < 0:
        raise ValueError(f"round r must be >= 0, got r = {r}")
    a = averaging_eigenvalues(model, lam)
    C, true, given, comps = _projections(model, counts)
    t = r + 1
    terms = {"uniform": np.full((true.size, model.K), 1.0 / model.K)}
    for name, X in comps.items():
        terms[name] = a[name] ** t * X
    return Decomposition(r=r, true=true, given=given, count=C[true, given], terms=terms, a=a)


def group_margins(model, counts, lam: float, rounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linearised margins p(true) - max_{l != true} p(l) of every group at the given rounds.

    Evaluates the section-5 formula (global term included) for all rounds at once.

    Args:
      model, counts, lam: as in :func:`decompose`.
      rounds: iterable of rounds r >= 0.

    Returns:
      (margins, true, given): margins has shape (len(rounds), U); a group is correct at round r
      iff its margin is > 0.
    """
    a = averaging_eigenvalues(model, lam)
    _, true, given, comps = _projections(model, counts)
    t = np.asarray(list(rounds), dtype=np.float64) + 1.0
    if np.any(t < 1):
        raise ValueError("rounds must be >= 0")
    K = model.K
    P = np.full((t.size, true.size, K), 1.0 / K)
    for name, X in comps.items():
        P = P + (a[name] ** t)[:, None, None] * X[None]
    idx = np.arange(true.size)
    p_true = P[:, idx, true]
    others = P.copy()
    others[:, idx, true] = -np.inf
    return p_true - others.max(axis=2), true, given


def delta_from_eta(kind: str, K: int, eta: float, m: int | None = None) -> float:
    """Delta of the transition matrix of one noise kind (theory.md sections 5 and 7).

    With C = T (the target rates, not exact-count floors):

    * sym: Delta = 1 - eta - eta/(K-1) = (K - 1 - K eta)/(K - 1);
    * asym (authors'): C_kk = 1 - eta, C_{k,k+1} = 2 eta/K (K >= 3; eta for K = 2), others
      eta/K, so Delta = 1 - eta - 2 eta/K = 1 - (K + 2) eta / K;
    * pairflip: Delta = 1 - 2 eta;
    * superclass (m classes per superclass): Delta = 1 - eta - eta/(m-1).

    At eta = 0 every formula gives 1, as :func:`delta` does for C = I.
    """
    K = _check_K(K)
    eta = float(eta)
    if not 0.0 <= eta < 1.0:
        raise ValueError(f"eta must be in [0, 1), got eta = {eta}")
    if kind == "sym":
        return 1.0 - eta - eta / (K - 1)
    if kind == "asym":
        return 1.0 - eta - 2.0 * eta / K
    if kind == "pairflip":
        return 1.0 - 2.0 * eta
    if kind == "superclass":
        m = _check_m(m, K)
        return 1.0 - eta - eta / (m - 1)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def eta_boundary(kind: str, K: int, m: int | None = None) -> float:
    """Largest noise rate at which 100% label correction is possible (theory.md section 5).

    The supremum of the eta with Delta(eta) > 0 for the transition matrix of ``kind``
    (:func:`delta_from_eta`); at the boundary itself Delta = 0 and no round is 100% correct:

    * sym: (K - 1)/K;
    * asym (authors'): K/(K + 2);
    * pairflip: 1/2;
    * superclass: (m - 1)/m, m = classes per superclass (>= 2).

    Exact counts floor n T_kj, so at finite n the realised Delta can be slightly larger than
    the rate's: Delta can stay > 0 a little beyond the boundary (by less than one count per
    entry of C, an eta shift of order K/n).

    Args:
      kind: one of "sym", "asym", "pairflip", "superclass".
      K: number of classes (>= 2).
      m: classes per superclass (superclass noise only).

    Example:
      >>> eta_boundary("sym", 4), eta_boundary("asym", 4), eta_boundary("pairflip", 10)
      (0.75, 0.6666666666666666, 0.5)
    """
    K = _check_K(K)
    if kind == "sym":
        return (K - 1) / K
    if kind == "asym":
        return K / (K + 2)
    if kind == "pairflip":
        return 0.5
    if kind == "superclass":
        m = _check_m(m, K)
        return (m - 1) / m
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _check_K(K) -> int:
    if isinstance(K, bool) or int(K) != K or int(K) < 2:
        raise ValueError(f"K (number of classes) must be an integer >= 2, got K = {K!r}")
    return int(K)


def _check_m(m, K: int) -> int:
    if m is None:
        raise ValueError("superclass noise needs m (classes per superclass)")
    if isinstance(m, bool) or int(m) != m or int(m) < 2:
        raise ValueError(f"m (classes per superclass) must be an integer >= 2, got m = {m!r}")
    if K % int(m):
        raise ValueError(f"m = {m} must divide K = {K}")
    return int(m)


def r_star_closed(delta_: float | None, a2: float, a3: float) -> int | None:
    """Closed-form minimum round of 100% correction (theory.md section 5, balanced C).

    r* is the smallest r >= 0 with the strict inequality

        (a2/a3)^(r+1) > 1 + 1/Delta,

    i.e. r* = floor(log(1 + 1/Delta) / log(a2/a3)) except at an exact integer, where the
    strict inequality decides: the logarithm only gives a starting point, and the answer is
    found by evaluating the inequality itself.

    Args:
      delta_: Delta (:func:`delta`); None or Delta <= 0 gives None.
      a2, a3: class and instance factors (three-level superclass noise: a_cls, a_inst).

    Returns:
      r* (int >= 0), or None if no round is 100% correct (Delta <= 0, or a2 <= a3).

    Example:
      >>> r_star_closed(0.5, 0.9, 0.3)  # (a2/a3)^t = 3^t > 3 first at t = 2
      1
    """
    if delta_ is None or not delta_ > 0:
        return None
    a2, a3 = float(a2), float(a3)
    if not (a3 > 0 and a2 > a3):
        return None
    ratio = a2 / a3
    target = 1.0 + 1.0 / float(delta_)
    if not math.isfinite(target):
        return None
    est = math.log(target) / math.log1p((a2 - a3) / a3)
    r = max(0, int(math.floor(est)))
    while r > 0 and ratio ** r > target:          # (r-1) + 1 = r already satisfies it
        r -= 1
    while not ratio ** (r + 1) > target:
        r += 1
    return r


def closed_form_factors(model, counts, lam: float) -> tuple[float, float]:
    """(a2, a3) of the closed form for these counts, or ValueError where it does not apply.

    Two-level, balanced counts: (a_class, a_instance). Three-level: the closed form holds for
    balanced counts whose labels stay inside the true superclass (superclass noise): then
    (a_cls, a_inst) (section 5). Other counts need :func:`r_star_linear`.
    """
    C = _counts(model, counts)
    if not is_balanced(C):
        raise ValueError("the closed-form r* needs balanced counts (every given label as "
                         "frequent as every class); use r_star_linear for these counts")
    if model.three_level:
        s = np.asarray(model.superclass_of)
        if np.any(C[s[:, None] != s[None, :]] > 0):
            raise ValueError("the three-level closed form needs labels flipped only inside the "
                             "true superclass (superclass noise); use r_star_linear")
    a = averaging_eigenvalues(model, lam)
    return a["class"], a["instance"]


def r_star_linear(model, counts, lam: float, max_rounds: int = 1000) -> int | None:
    """Linear-theory r* for any counts: the first round whose margins are all > 0.

    Evaluates the section-5 formula (global a1 term included) for every group, round by round
    (:func:`group_margins`). For unbalanced counts 100% correction, once reached, can be lost
    again: the global term a1^t (ybar - 1/K) decays slowest and eventually dominates.

    Args:
      model, counts, lam: as in :func:`decompose`.
      max_rounds: last round examined.

    Returns:
      The first r in 0..max_rounds at which every group's true class is strictly largest, or
      None.
    """
    max_rounds = int(max_rounds)
    if max_rounds < 0:
        raise ValueError(f"max_rounds must be >= 0, got {max_rounds}")
    step = 256
    for start in range(0, max_rounds + 1, step):
        rounds = np.arange(start, min(start + step, max_rounds + 1))
        margins, _, _ = group_margins(model, counts, lam, rounds)
        ok = np.all(margins > 0, axis=1)
        if ok.any():
            return int(rounds[np.argmax(ok)])
    return None


def r_star_theory(model, counts, lam: float, max_rounds: int = 1000) -> int | None:
    """The theory's r* for a block model and counts (theory.md section 5).

    0 if no sample is mislabelled; the closed form :func:`r_star_closed` where it applies
    (:func:`closed_form_factors`); otherwise :func:`r_star_linear` up to ``max_rounds``.
    """
    C = _counts(model, counts)
    if not np.any(C[~np.eye(model.K, dtype=bool)]):
        return 0
    try:
        a2, a3 = closed_form_factors(model, C, lam)
    except ValueError:
        return r_star_linear(model, C, lam, max_rounds)
    return r_star_closed(delta(C), a2, a3)


def pll_conditions(model, counts, lam: float) -> tuple[bool, dict[str, float]]:
    """One-round sufficient conditions of the PLL student (theory.md section 6).

    Balanced counts on the two-level model, C = counts / n, a2, a3 = class and instance
    factors (:func:`averaging_eigenvalues`). Three margins, each > 0 when its condition holds:

    * "plurality": min_k min_{l != k} (C_kk - C_kl): the true class is the plurality label of
      its class, so it is in the teacher's top two for every sample of the class;
    * "pair_mass": min_k (1 - C_kk - max_{l != k} C_kl): the student's tie between the two
      candidates (e_j + e_k)/2 is broken towards k by the class average,
      p(k) - p(j) = (a2 - a3)(tbar_k(k) - tbar_k(j)) with
      tbar_k(k) - tbar_k(j) >= (1 - C_kk - max_{l != k} C_kl)/2;
    * "teacher_ranking": min over mislabelled groups (k, j), C_kj > 0, of
      a3 - (a2 - a3)(C_kk - C_kj): the linearised teacher (t = 1) ranks the given label j
      first (+inf when no sample is mislabelled).

    Args:
      model: two-level block model with equal class sizes.
      counts: (K, K) balanced integer counts.
      lam: ridge parameter lambda > 0.

    Returns:
      (ok, margins): ok is True iff every margin is > 0.

    Raises:
      ValueError: for a three-level model or unbalanced counts (the conditions are stated for
        balanced corruption only).
    """
    if model.three_level:
        raise ValueError("the PLL conditions of section 6 are stated for the two-level model")
    Cn = _counts(model, counts)
    if not is_balanced(Cn):
        raise ValueError("the PLL conditions of section 6 are stated for balanced counts "
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
