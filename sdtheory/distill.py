"""Rounds of distillation on one solver (theory.md sections 1, 3, 6).

Round 0 is the teacher, trained on the one-hot given labels; round r >= 1 trains from scratch on
the outputs of round r - 1 on the training inputs. The PLL student trains once on the teacher's
top-2 classes at 1/2 each. Any :class:`sdtheory.solve.Solver` runs the rounds: exact (full or
group-reduced), linearised, or gradient-trained, so swapping one for another is one argument.

Example:
  >>> import sdtheory as sd; sd.enable_x64()
  >>> from sdtheory.solve import GroupSolver
  >>> m = sd.two_level(4, 120, 0.4, 0.1)
  >>> C = [[60, 30, 20, 10], [10, 60, 30, 20], [20, 10, 60, 30], [30, 20, 10, 60]]
  >>> res = self_distill(GroupSolver(m, C, 1e-3), rounds=4, pll=True)
  >>> round(res.rounds[0].train_acc, 4), res.pll.train_acc
  (0.5833, 1.0)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from sdtheory.solve import Fit, Solver, one_hot

__all__ = [
    "TIE_TOL",
    "RoundResult",
    "SDResult",
    "accuracy",
    "group_means",
    "PLL_TIE_TOL",
    "PLL_TIES",
    "pll_targets",
    "self_distill",
]

TIE_TOL = 1e-12
"""A unit counts as correct only if p(true) exceeds every other output by more than this: an
exact tie (e.g. pure pair-flip noise for the PLL student) is not a correct prediction."""


def accuracy(P, true, given, weight) -> tuple[float, float | None, float | None]:
    """Training accuracy against the true labels: (all, clean, noisy), weighted by ``weight``.

    Clean units have given == true, noisy ones given != true; a part with no samples is None.
    """
    P = np.asarray(P)
    true, given, w = np.asarray(true), np.asarray(given), np.asarray(weight, dtype=np.float64)
    p_true = P[np.arange(P.shape[0]), true]
    others = P.copy()
    others[np.arange(P.shape[0]), true] = -np.inf
    correct = (p_true - others.max(axis=1)) > TIE_TOL

    def frac(mask):
        tot = w[mask].sum()
        return float(w[mask & correct].sum() / tot) if tot > 0 else None

    return frac(np.ones_like(correct)), frac(given == true), frac(given != true)


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


PLL_TIE_TOL = 1e-9
"""Outputs within this of each other count as tied when the PLL student picks the teacher's
top two classes. Symmetric noise makes exact ties common (a clean sample's wrong classes are
equally likely), and solvers that agree to 1e-10 would otherwise break them differently."""


PLL_TIES = ("lower", "split")


def pll_targets(P, tie_tol: float = PLL_TIE_TOL, ties: str = "lower") -> np.ndarray:
    """Top-2 partial labels: 1/2 on the two largest outputs of each row (theory.md section 1).

    Args:
      P: (U, K) teacher outputs.
      tie_tol: outputs within this of each other are tied.
      ties: ``"lower"`` (default): ties go to the lower class index, a deterministic rule.
        ``"split"``: the 1/2 of each of the two rank positions is shared equally by the classes
        tied at that position (the expectation over uniformly random tie-breaks).

    With exactly symmetric noise a clean sample's wrong classes are tied; under ``"lower"``
    class 0 then becomes the second candidate of every other class, which biases the PLL
    student towards class 0 (measured: PLL accuracy near 1/K at small eta and large lam).
    """
    if ties not in PLL_TIES:
        raise ValueError(f"ties must be one of {PLL_TIES}, got {ties!r}")
    P = np.asarray(P, dtype=np.float64)
    rows = np.arange(P.shape[0])
    T = np.zeros_like(P)
    if ties == "split":
        order = -np.sort(-P, axis=1)
        for pos in range(2):
            tied = np.abs(P - order[:, pos : pos + 1]) <= tie_tol
            T += 0.5 * tied / tied.sum(axis=1, keepdims=True)
        return T
    rest = P.copy()
    for _ in range(2):
        top = rest.max(axis=1, keepdims=True)
        pick = np.argmax(rest >= top - tie_tol, axis=1)      # first (lowest) index among ties
        T[rows, pick] = 0.5
        rest[rows, pick] = -np.inf
    return T


@dataclass(frozen=True)
class RoundResult:
    """One training's outputs and metrics.

    Attributes:
      round: 0 for the teacher, r for the r-th student, -1 for the PLL student.
      P: (U, K) outputs on the training units.
      residual: the solver's certificate (see :class:`sdtheory.solve.Fit`).
      train_acc, clean_acc, noisy_acc: accuracy against the true labels (all / given == true /
        given != true), None where a part is empty.
      info: solver diagnostics.
    """

    round: int
    P: np.ndarray
    residual: float
    train_acc: float
    clean_acc: float | None
    noisy_acc: float | None
    info: dict


@dataclass(frozen=True)
class SDResult:
    """Rounds 0..R of self-distillation (and the PLL student) with one solver."""

    solver: str
    K: int
    true: np.ndarray
    given: np.ndarray
    weight: np.ndarray
    rounds: tuple[RoundResult, ...]
    pll: RoundResult | None

    @property
    def r_star(self) -> int | None:
        """First round with 100% training accuracy against the true labels (None: none)."""
        for rr in self.rounds:
            if rr.train_acc == 1.0:
                return rr.round
        return None

    def groups(self, rr: RoundResult) -> list[dict]:
        return group_means(rr.P, self.true, self.given, self.weight, self.K)

    def to_dict(self) -> dict:
        """The JSON form of DESIGN.md ("solvers" entry of ``sdtheory simulate --json``)."""

        def one(rr: RoundResult, with_round: bool) -> dict:
            d = {"round": rr.round} if with_round else {}
            d.update(train_acc=rr.train_acc, clean_acc=rr.clean_acc, noisy_acc=rr.noisy_acc,
                     residual=rr.residual, groups=self.groups(rr))
            return d

        return {"rounds": [one(rr, True) for rr in self.rounds],
                "pll": one(self.pll, False) if self.pll is not None else None,
                "r_star": self.r_star}


def _result(solver: Solver, r: int, fit: Fit) -> RoundResult:
    acc, clean, noisy = accuracy(fit.P, solver.true, solver.given, solver.weight)
    return RoundResult(round=r, P=fit.P, residual=fit.residual, train_acc=acc, clean_acc=clean,
                       noisy_acc=noisy, info=dict(fit.info))


def self_distill(solver: Solver, rounds: int, *, pll: bool = False, progress: bool = False,
                 targets0=None, pll_ties: str = "lower") -> SDResult:
    """Run the teacher and ``rounds`` students (rounds 0..R), and optionally the PLL student.

    Args:
      solver: any :class:`sdtheory.solve.Solver` (exact, group-reduced, linear, trained).
      rounds: R >= 0; rounds 0..R are trained.
      pll: also train the PLL student on the teacher's top-2 labels (CE loss, theory.md 6).
      progress: print one line per round on stderr.
      targets0: teacher targets (default: one-hot given labels).
      pll_ties: tie rule of the top-2 partial labels (:func:`pll_targets`).

    Returns:
      :class:`SDResult` with one :class:`RoundResult` per round.
    """
    rounds = int(rounds)
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    T = one_hot(solver.given, solver.K) if targets0 is None else np.asarray(targets0)
    out = []
    for r in range(rounds + 1):
        fit = solver.fit(T)
        out.append(_result(solver, r, fit))
        if progress:
            rr = out[-1]
            print(f"[{solver.name}] round {r:3d}  train_acc {rr.train_acc:.4f}  "
                  f"residual {rr.residual:.1e}", file=sys.stderr)
        T = fit.P
    pll_res = None
    if pll:
        pll_res = _result(solver, -1, solver.fit(pll_targets(out[0].P, ties=pll_ties)))
        if progress:
            print(f"[{solver.name}] PLL        train_acc {pll_res.train_acc:.4f}", file=sys.stderr)
    return SDResult(solver=solver.name, K=solver.K, true=np.asarray(solver.true),
                    given=np.asarray(solver.given), weight=np.asarray(solver.weight),
                    rounds=tuple(out), pll=pll_res)
