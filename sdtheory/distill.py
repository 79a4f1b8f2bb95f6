"""Rounds of distillation over any solver (docs/theory.md sections 1.2 and 1.3).

Round 0 is the teacher, trained on the one-hot given labels; round r >= 1 trains from scratch
on the outputs of round r - 1 on the training inputs. The PLL student trains once on the
teacher's top-2 classes at 1/2 each. Any solver (:mod:`sdtheory.solvers`: exact, linearised,
gradient-trained) runs the rounds, so swapping one for another is one argument.

:func:`run_rounds` is the one round loop. It is batch-native: a solver may hold B independent
problems (the cells of a sweep, the cases of a verification grid), all advanced together, each
stopping at its first 100% round if asked. :func:`self_distill` is the single-problem view with
the outputs of every round.

Example:
  >>> import sdtheory as sd; sd.enable_x64()
  >>> m = sd.two_level(4, 120, 0.4, 0.1)
  >>> C = [[60, 30, 20, 10], [10, 60, 30, 20], [20, 10, 60, 30], [30, 20, 10, 60]]
  >>> res = self_distill(sd.ExactSolver(gram=m, labels=C, lam=1e-3), rounds=4, pll=True)
  >>> round(res.rounds[0].train_acc, 4), res.pll.train_acc
  (0.5833, 1.0)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sdtheory._memory import check_memory
from sdtheory._progress import Progress
from sdtheory._validate import check_choice, check_label_weight, check_rounds
from sdtheory.metrics import (
    accuracy,
    decision_margins,
    first_true,
    fragile,
    group_means,
    nearest_ratio,
    strict_accuracy,
    tie_tolerance,
)
from sdtheory.solvers.base import Fit, NewtonInfo, SolverError, TrainInfo, given_labels

__all__ = [
    "PLL_TIES",
    "pll_targets",
    "pll_target_margin",
    "Rounds",
    "run_rounds",
    "RoundResult",
    "SDResult",
    "self_distill",
]

log = logging.getLogger(__name__)

PLL_TIES = ("split", "lower")
"""Tie rules of the PLL student's top-2 labels; the first is the default."""


def pll_targets(P, tie_tol=None, ties: str = "split") -> np.ndarray:
    """Top-2 partial labels: 1/2 on the two largest outputs of each row (section 1.3).

    Args:
      P: (..., K) teacher outputs (any leading axes).
      tie_tol: outputs within this of each other are tied (docs/theory.md section 9): a scalar,
        or one per leading index of P; default :func:`sdtheory.metrics.tie_tolerance` of the
        closed form. Pass the teacher's (100 x its certificate for an exact teacher).
      ties: ``"split"`` (default): the 1/2 of each of the two rank positions is shared equally
        by the classes tied at that position, which is the expectation over uniformly random
        tie-breaks. ``"lower"``: ties go to the lower class index, a deterministic rule.

    With exactly symmetric noise a clean sample's wrong classes are tied; under ``"lower"``
    class 0 then becomes the second candidate of every other class, which biases the PLL
    student towards class 0 (docs/theory.md section 9): a property of that convention, not of
    the PLL student.
    """
    check_choice(ties, PLL_TIES, "ties")
    P = np.asarray(P, dtype=np.float64)
    if not np.all(np.isfinite(P)):
        raise ValueError("P (teacher outputs) must be finite: it contains NaN or inf")
    shape = P.shape
    tol = np.broadcast_to(tie_tolerance() if tie_tol is None else np.asarray(tie_tol, float),
                          shape[:-1]).reshape(-1, 1)
    P = P.reshape(-1, shape[-1])
    rows = np.arange(P.shape[0])
    T = np.zeros_like(P)
    if ties == "split":
        order = -np.sort(-P, axis=1)
        for pos in range(2):
            tied = np.abs(P - order[:, pos: pos + 1]) <= tol
            T += 0.5 * tied / tied.sum(axis=1, keepdims=True)
        return T.reshape(shape)
    rest = P.copy()
    for _ in range(2):
        top = rest.max(axis=1, keepdims=True)
        pick = np.argmax(rest >= top - tol, axis=1)          # first (lowest) index among ties
        T[rows, pick] = 0.5
        rest[rows, pick] = -np.inf
    return T.reshape(shape)


def pll_target_margin(P, tie_tol=None, weight=None) -> np.ndarray:
    """Decision margin of the top-2 partial labels (:func:`pll_targets`), in units of the tie
    tolerance: of the gaps |p_l - p_(1)| and |p_l - p_(2)| to the largest and the second
    largest output, which decide the classes tied at each rank position, the one nearest the
    tolerance on a log scale (inf where none can be crossed). P: (..., U, K); tie_tol: scalar
    or one per problem; weight: (..., U), units with weight 0 left out."""
    P = np.asarray(P, dtype=np.float64)
    order = -np.sort(-P, axis=-1)
    gaps = np.concatenate([np.abs(P - order[..., :1]), np.abs(P - order[..., 1:2])], axis=-1)
    tol = np.broadcast_to(tie_tolerance() if tie_tol is None else np.asarray(tie_tol, float),
                          P.shape[:-2])
    w = np.ones(P.shape[:-1], bool) if weight is None else np.broadcast_to(
        np.asarray(weight, float), P.shape[:-1]) > 0
    return nearest_ratio(gaps, tol, np.broadcast_to(w[..., None], gaps.shape))


# --------------------------------------------------------------------------------------------
# The round loop (batched)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rounds:
    """Rounds 0..R of B problems (arrays over rounds x problems).

    Attributes:
      train_acc, clean_acc, noisy_acc: (R + 1, B) accuracy against the true labels (ties
        broken uniformly at random, in expectation: :mod:`sdtheory.metrics`); NaN for a round
        not trained (after the problem's first 100% round when stopping there, after a
        failure) or an empty part.
      strict_acc: (R + 1, B) strict accuracy (a tied true class counts as wrong).
      residual: (R + 1, B) certificates.
      uncertainty: (R + 1, B) uncertainty of each round's outputs as an SD chain, from which
        the tie tolerance is taken: the round's certificate plus the uncertainty its targets
        carry from the rounds before (docs/theory.md section 9); 0 for the closed form.
      ok: (B,) no training of the problem failed its tolerance.
      r_star: (B,) first round with every unit correct, -1 if none within R.
      pll_acc, pll_clean_acc, pll_noisy_acc, pll_strict_acc, pll_residual: (B,) the PLL
        student (NaN if not trained).
      tie_tol, decision_margin, min_margin: (R + 1, B) each round's tie tolerance, the
        decision margin of its accuracy and its smallest margin, in units of that tolerance
        (:func:`sdtheory.metrics.decision_margins`); NaN where not trained.
      pll_tie_tol, pll_decision_margin, pll_min_margin, pll_target_margin: (B,) the same for
        the PLL student, and the decision margin of its top-2 targets in the teacher
        (:func:`pll_target_margin`).
      outputs: per round, (B, U, K) outputs (``keep_outputs`` only, else None); rows of
        problems not trained that round are NaN.
      pll_outputs: (B, U, K) PLL outputs (``keep_outputs`` and ``pll``).
      fits: per round, the :class:`~sdtheory.solvers.base.BatchFit` of all problems
        (``keep_outputs`` only).
    """

    train_acc: np.ndarray
    clean_acc: np.ndarray
    noisy_acc: np.ndarray
    strict_acc: np.ndarray
    residual: np.ndarray
    uncertainty: np.ndarray
    ok: np.ndarray
    r_star: np.ndarray
    pll_acc: np.ndarray
    pll_clean_acc: np.ndarray
    pll_noisy_acc: np.ndarray
    pll_strict_acc: np.ndarray
    pll_residual: np.ndarray
    tie_tol: np.ndarray | None = None
    decision_margin: np.ndarray | None = None
    min_margin: np.ndarray | None = None
    pll_tie_tol: np.ndarray | None = None
    pll_decision_margin: np.ndarray | None = None
    pll_min_margin: np.ndarray | None = None
    pll_target_margin: np.ndarray | None = None
    outputs: list | None = None
    pll_outputs: np.ndarray | None = None
    fits: list | None = None
    pll_fit: object | None = None

    @property
    def best_acc(self) -> np.ndarray:
        """(B,) the best SD accuracy over the rounds trained."""
        return np.nanmax(self.train_acc, axis=0)

    @property
    def fragile(self) -> np.ndarray:
        """(R + 1, B): rounds whose accuracy would change with the tie tolerance scaled by 10
        or 1/10 (:func:`sdtheory.metrics.fragile` of the decision margin)."""
        return fragile(self.decision_margin)

    @property
    def r_star_fragile(self) -> np.ndarray:
        """(B,): r* (or "not reached") would change with the tie tolerance scaled by 10 or
        1/10: the smallest margin of a round up to r* (all rounds trained if none) lies in
        (1/10, 10] (:mod:`sdtheory.metrics`)."""
        R = self.min_margin.shape[0]
        upto = np.arange(R)[:, None] <= np.where(self.r_star < 0, R, self.r_star)[None, :]
        return np.any(fragile(self.min_margin) & upto, axis=0)

    @property
    def pll_fragile(self) -> np.ndarray:
        """(B,): the PLL student's accuracy, or its top-2 targets in the teacher, would change
        with the tie tolerance scaled by 10 or 1/10."""
        return fragile(self.pll_decision_margin) | fragile(self.pll_target_margin)


def next_targets(T0, P, label_weight: float = 0.0, relation=None) -> np.ndarray:
    """The targets of the round after outputs P: alpha T0 + (1 - alpha) R P (plain SD: P;
    docs/theory.md sections 14 and 15). P and T0 are (U, K) or (B, U, K); the relation R,
    (U, U) dense or scipy.sparse, acts on the units of each problem."""
    P = np.asarray(P, dtype=np.float64)
    if relation is not None:
        P = (np.asarray(relation @ P) if P.ndim == 2 else
             np.stack([np.asarray(relation @ Pb) for Pb in P]))
    if label_weight == 0:
        return P
    with np.errstate(over="ignore", invalid="ignore"):
        T = label_weight * np.asarray(T0) + (1.0 - label_weight) * P
    if not np.all(np.isfinite(T[np.isfinite(P)])):
        # a label weight far from [0, 1] (squared loss) can grow the targets round by round
        raise ValueError(f"label weight alpha = {label_weight:g} overflows float64 in the "
                         "targets alpha Y + (1 - alpha) P: use fewer rounds or alpha nearer "
                         "[0, 1]")
    return T


_PENDING_FLOATS = 2 ** 22
"""Most output numbers held for :meth:`_RoundLoop.flush` (32 MB)."""

_ROUND_FIELDS = ("train_acc", "clean_acc", "noisy_acc", "strict_acc", "residual", "uncertainty",
                 "tie_tol", "decision_margin", "min_margin")
_PLL_FIELDS = ("pll_acc", "pll_clean_acc", "pll_noisy_acc", "pll_strict_acc", "pll_residual",
               "pll_tie_tol", "pll_decision_margin", "pll_min_margin", "pll_target_margin")


def run_rounds(solver, rounds: int, *, pll: bool = False, pll_ties: str = "split",
               until_perfect: bool = False, keep_outputs: bool = False, targets0=None,
               on_failure: str = "raise", label_weight: float = 0.0,
               relation=None) -> Rounds:
    """Train the teacher and R students (rounds 0..R) of every problem of ``solver``.

    Args:
      solver: any solver (:class:`sdtheory.solvers.base.Solver`), one problem or a batch.
      rounds: R >= 0.
      pll: also train the PLL student on the teacher's top-2 labels (CE loss, section 1.3).
      pll_ties: tie rule of the top-2 labels (:func:`pll_targets`).
      until_perfect: stop each problem at its first round with every unit correct (r* is then
        known; later rounds stay NaN).
      keep_outputs: keep every round's outputs (memory: (R + 1) B U K floats).
      targets0: teacher targets (B, U, K) (default: one-hot given labels).
      on_failure: ``"raise"`` a :class:`~sdtheory.solvers.SolverError` when a training misses
        its tolerance, or ``"mark"`` the problem as failed (``ok`` False) and stop it.
      label_weight: alpha: round r >= 1 trains on alpha T_0 + (1 - alpha) P_(r-1) (0: plain
        SD; Borup & Andersen's alpha, Das & Sanghavi's teacher weight 1 - alpha), any finite
        number; softmax solvers accept only targets on the simplex, alpha in [0, 1].
      relation: a (U, U) row-stochastic matrix R (dense or scipy.sparse) on the units: round
        r >= 1 then trains on alpha T_0 + (1 - alpha) R P_(r-1) (relation-guided distillation,
        :mod:`sdtheory.relation`).

    Returns:
      :class:`Rounds`.
    """
    R = check_rounds(rounds)
    alpha = check_label_weight(label_weight)
    if on_failure not in ("raise", "mark"):
        raise ValueError(f"on_failure must be 'raise' or 'mark', got {on_failure!r}")
    B, U, K = solver.weight.shape[0], solver.true.size, solver.K
    T = (np.broadcast_to(np.eye(K)[solver.given], (B, U, K)).copy() if targets0 is None
         else np.array(targets0, dtype=np.float64).reshape(B, U, K))
    if relation is not None and tuple(relation.shape) != (U, U):
        raise ValueError(f"relation must be a ({U}, {U}) matrix on the units, got shape "
                         f"{tuple(relation.shape)}")
    T0 = T.copy() if alpha != 0 else None       # the labels, kept where targets mix them in
    loop = _RoundLoop(solver, R, on_failure, keep_outputs)
    carried = np.zeros(B)         # uncertainty of the targets, carried from earlier rounds
    warm = _WarmStart(B)
    active = np.arange(B)
    progress = Progress(log, total=R + 1, what="round")
    for r in range(R + 1):
        if active.size == 0:
            break
        fit = loop.train(active, T[active], warm.start(active))
        u = loop.uncertainty(fit) + carried[active]
        tol, strict = loop.record(r, active, fit, u)
        if r == 0 and pll:
            loop.pll_student(active, fit, tol, pll_ties)
        perfect = (strict == 1.0) & fit.ok
        newly = perfect & (loop.r_star[active] < 0)
        loop.r_star[active[newly]] = r
        T[active] = next_targets(None if T0 is None else T0[active], fit.P, alpha, relation)
        # the next targets carry this round's uncertainty, scaled by their weight 1 - alpha on
        # the outputs (a row-stochastic relation does not enlarge it in the max norm)
        carried[active] = abs(1.0 - alpha) * u
        warm.update(r, active, fit.x)
        keep = fit.ok & ~(perfect if until_perfect else np.zeros_like(perfect))
        active = active[keep]
        progress.step(f"{solver.name} solver, round {r}" + (
            f": {active.size} of {B} problems still running" if B > 1 else
            f": strict training accuracy {loop.table['strict_acc'][r, 0]:.4f}"))
    return loop.result()


class _RoundLoop:
    """The trainings of :func:`run_rounds` and what they record: per round and problem the
    metrics of :data:`_ROUND_FIELDS` ((R + 1, B), NaN where not trained), per problem those of
    the PLL student, whether every training met its tolerance, and r*."""

    def __init__(self, solver, R: int, on_failure: str, keep_outputs: bool) -> None:
        B = solver.weight.shape[0]
        self.solver, self.on_failure, self.keep_outputs = solver, on_failure, keep_outputs
        self.shape = (B, solver.true.size, solver.K)
        self.table = {k: np.full((R + 1, B), np.nan) for k in _ROUND_FIELDS}
        self.pll = {k: np.full(B, np.nan) for k in _PLL_FIELDS}
        self.ok = np.ones(B, dtype=bool)
        self.r_star = np.full(B, -1)
        self.outputs, self.fits, self.pll_P, self.pll_fit = [], [], None, None
        self.pending = []                 # rounds recorded, their accuracies not yet computed

    def train(self, idx, targets, x0):
        """Fit problems ``idx``; a missed tolerance raises or marks the problem failed."""
        fit = self.solver.fit_batch(targets, x0, idx)
        bad = ~fit.ok
        if bad.any():
            if self.on_failure == "raise":
                i = int(np.flatnonzero(bad)[0])
                raise SolverError(f"{self.solver.name} solver: problem {int(idx[i])} missed its "
                                  f"tolerance (certificate {fit.residual[i]:.3e})")
            self.ok[idx[bad]] = False
        return fit

    def uncertainty(self, fit):
        """Uncertainty of a training's outputs for exact targets: its certificate where the
        solver has one (the closed form's residual is not an uncertainty of its outputs)."""
        certified = getattr(self.solver, "certified", True)
        return fit.residual if certified else np.zeros_like(fit.residual)

    def _expand(self, active, P):
        """(B, U, K) outputs: those of the problems ``active``, NaN elsewhere."""
        full = np.full(self.shape, np.nan)
        full[active] = P
        return full

    def record(self, r, active, fit, u):
        """Record round r of the problems ``active`` with output uncertainty u; returns the
        tie tolerance and the strict accuracy. The other accuracies and the decision margins
        are computed for many rounds at once (:meth:`flush`): per round, for a few units,
        their cost was that of numpy's calls, not of the numbers."""
        solver, col = self.solver, self.table
        tol = tie_tolerance(u)
        st = strict_accuracy(fit.P, solver.true, solver.weight[active], tol)
        col["strict_acc"][r, active] = st
        col["residual"][r, active], col["uncertainty"][r, active] = fit.residual, u
        col["tie_tol"][r, active] = tol
        if self.pending and not np.array_equal(self.pending[0][1], active):
            self.flush()
        self.pending.append((r, active, fit.P))
        if len(self.pending) * fit.P.size >= _PENDING_FLOATS:
            self.flush()
        if self.keep_outputs:
            self.outputs.append(self._expand(active, fit.P))
            self.fits.append(fit)
        return tol, st

    def flush(self):
        """The accuracies and decision margins of the rounds recorded since the last flush
        (all of the same problems), as one batch."""
        if not self.pending:
            return
        solver, col = self.solver, self.table
        rs = np.array([p[0] for p in self.pending])
        active = self.pending[0][1]
        P = np.stack([p[2] for p in self.pending])                  # (rounds, B', U, K)
        self.pending = []
        at = (rs[:, None], active[None, :])
        w, tol = solver.weight[active], col["tie_tol"][at]
        a, c, n, _ = accuracy(P, solver.true, given_labels(solver, active), w, tol)
        col["train_acc"][at], col["clean_acc"][at], col["noisy_acc"][at] = a, c, n
        col["decision_margin"][at], col["min_margin"][at] = decision_margins(
            P, solver.true, w, tol)

    def pll_student(self, active, fit, tol, ties):
        """Train and record the PLL student on the top-2 labels of the teacher ``fit`` (tie
        tolerance ``tol``), from zero: the teacher's saturated outputs made a longer Newton
        path (docs/theory.md section 2.3)."""
        solver, out = self.solver, self.pll
        pfit = self.train(active, pll_targets(fit.P, tol[:, None], ties=ties), None)
        ptol = tie_tolerance(self.uncertainty(pfit))
        pa, pc, pn, ps = accuracy(pfit.P, solver.true, given_labels(solver, active),
                                  solver.weight[active], ptol)
        out["pll_tie_tol"][active] = ptol
        out["pll_decision_margin"][active], out["pll_min_margin"][active] = decision_margins(
            pfit.P, solver.true, solver.weight[active], ptol)
        out["pll_target_margin"][active] = pll_target_margin(fit.P, tol, solver.weight[active])
        out["pll_acc"][active], out["pll_clean_acc"][active] = pa, pc
        out["pll_noisy_acc"][active], out["pll_strict_acc"][active] = pn, ps
        out["pll_residual"][active] = pfit.residual
        if self.keep_outputs:
            self.pll_P = self._expand(active, pfit.P)
            self.pll_fit = pfit

    def result(self) -> Rounds:
        self.flush()
        keep = self.keep_outputs
        return Rounds(**self.table, **self.pll, ok=self.ok, r_star=self.r_star,
                      outputs=self.outputs if keep else None, pll_outputs=self.pll_P,
                      fits=self.fits if keep else None, pll_fit=self.pll_fit)


class _WarmStart:
    """Warm starts of the rounds of B problems: the linear extrapolation 2 x_r - x_(r-1) of the
    unknowns of the last two rounds, from round 1 on (docs/theory.md section 2.3); None for a
    solver without unknowns (fit.x None)."""

    def __init__(self, B: int) -> None:
        self.B = B
        self.x = self.next = None

    def start(self, active):
        return None if self.next is None else self.next[active]

    def update(self, r: int, active, x) -> None:
        """Take round r's unknowns x of the problems ``active``."""
        if x is None:
            return
        if self.x is None:
            self.x, self.next = np.zeros((self.B,) + x.shape[1:]), np.zeros((self.B,) + x.shape[1:])
        self.next[active] = 2.0 * x - self.x[active] if r > 0 else x
        self.x[active] = x


# --------------------------------------------------------------------------------------------
# One problem: every round's outputs
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RoundResult:
    """One training's outputs and metrics.

    Attributes:
      round: 0 for the teacher, r for the r-th student, -1 for the PLL student.
      P: (U, K) outputs on the training units.
      residual: the solver's certificate (see :class:`sdtheory.solvers.base.Fit`).
      train_acc, clean_acc, noisy_acc: accuracy against the true labels (all / given == true /
        given != true; ties broken uniformly at random, in expectation), None where a part is
        empty.
      train_acc_strict: strict accuracy (a tied true class counts as wrong).
      info: the solver's diagnostics (:class:`~sdtheory.solvers.base.NewtonInfo`,
        :class:`~sdtheory.solvers.base.TrainInfo`, or None for the closed form).
      tie_tol: the tie tolerance of its accuracy; decision_margin, min_margin: the decision
        margin of the accuracy and the smallest true-class margin, in units of tie_tol
        (:func:`sdtheory.metrics.decision_margins`); target_margin: PLL student only, the
        decision margin of its top-2 targets in the teacher (:func:`pll_target_margin`).
    """

    round: int
    P: np.ndarray
    residual: float
    train_acc: float
    clean_acc: float | None
    noisy_acc: float | None
    train_acc_strict: float
    info: NewtonInfo | TrainInfo | None = None
    tie_tol: float | None = None
    decision_margin: float | None = None
    min_margin: float | None = None
    target_margin: float | None = None

    @property
    def fit(self) -> Fit:
        return Fit(P=self.P, residual=self.residual, info=self.info)

    @property
    def fragile(self) -> bool:
        """The accuracy (PLL: or its top-2 targets) would change with the tie tolerance
        scaled by 10 or 1/10 (:func:`sdtheory.metrics.fragile`)."""
        return bool(any(fragile(v) for v in (self.decision_margin, self.target_margin)
                        if v is not None))


@dataclass(frozen=True)
class SDResult:
    """Rounds 0..R of self-distillation (and the PLL student) of one problem."""

    solver: str
    K: int
    true: np.ndarray
    given: np.ndarray
    weight: np.ndarray
    rounds: tuple[RoundResult, ...]
    pll: RoundResult | None

    @property
    def r_star(self) -> int | None:
        """First round with every sample correct (strictly) against the true labels (None:
        none)."""
        r = int(first_true([rr.train_acc_strict == 1.0 for rr in self.rounds]))
        return None if r < 0 else r

    def groups(self, rr: RoundResult) -> list[dict]:
        return group_means(rr.P, self.true, self.given, self.weight, self.K)

    def to_dict(self) -> dict:
        """The JSON form of the "solvers" entry of ``sdtheory simulate --json``."""

        def one(rr: RoundResult, with_round: bool) -> dict:
            d = {"round": rr.round} if with_round else {}
            d.update(train_acc=rr.train_acc, train_acc_strict=rr.train_acc_strict,
                     clean_acc=rr.clean_acc, noisy_acc=rr.noisy_acc, residual=rr.residual,
                     tie_tolerance=rr.tie_tol, decision_margin=_finite(rr.decision_margin),
                     min_margin=_finite(rr.min_margin), fragile=rr.fragile)
            if rr.target_margin is not None:
                d["target_margin"] = _finite(rr.target_margin)
            d["groups"] = self.groups(rr)
            return d

        return {"rounds": [one(rr, True) for rr in self.rounds],
                "pll": one(self.pll, False) if self.pll is not None else None,
                "r_star": self.r_star, "r_star_fragile": self.r_star_fragile}

    @property
    def r_star_fragile(self) -> bool:
        """r* (or "not reached") would change with the tie tolerance scaled by 10 or 1/10
        (:attr:`Rounds.r_star_fragile`)."""
        last = len(self.rounds) - 1 if self.r_star is None else self.r_star
        return bool(any(rr.min_margin is not None and fragile(rr.min_margin)
                        for rr in self.rounds[:last + 1]))


def _none(v) -> float | None:
    return None if np.isnan(v) else float(v)


def _finite(v) -> float | None:
    """A margin for JSON: None where infinite (no tolerance changes the verdict)."""
    return None if v is None or not np.isfinite(v) else float(v)


# Fields of Rounds that make a RoundResult: accuracies, tie tolerance, margins (PLL: and the
# margin of its targets).
_ROUND_VALUES = ("train_acc", "clean_acc", "noisy_acc", "strict_acc", "tie_tol",
                 "decision_margin", "min_margin")
_PLL_VALUES = ("pll_acc", "pll_clean_acc", "pll_noisy_acc", "pll_strict_acc", "pll_tie_tol",
               "pll_decision_margin", "pll_min_margin", "pll_target_margin")


def _round_result(r: int, P, fit, values) -> RoundResult:
    """The RoundResult of round r (-1: the PLL student) of problem 0, from its outputs P, its
    BatchFit and the values of :data:`_ROUND_VALUES` (PLL: :data:`_PLL_VALUES`)."""
    a, c, n, st, tol, dm, sm, *tm = values
    return RoundResult(round=r, P=P, residual=float(fit.residual[0]), train_acc=float(a),
                       clean_acc=_none(c), noisy_acc=_none(n), train_acc_strict=float(st),
                       info=None if fit.infos is None else fit.infos[0], tie_tol=float(tol),
                       decision_margin=float(dm), min_margin=float(sm),
                       target_margin=float(tm[0]) if tm else None)


def self_distill(solver, rounds: int, *, pll: bool = False, pll_ties: str = "split",
                 targets0=None, label_weight: float = 0.0, relation=None) -> SDResult:
    """Run the teacher and ``rounds`` students (rounds 0..R) of one problem, and optionally the
    PLL student; keep every round's outputs.

    Args:
      solver: any single-problem solver (exact, linear, trained).
      rounds: R >= 0; rounds 0..R are trained.
      pll: also train the PLL student on the teacher's top-2 labels (CE loss, section 1.3).
      pll_ties: tie rule of the top-2 partial labels (:func:`pll_targets`).
      targets0: teacher targets (default: one-hot given labels).
      label_weight: alpha of the targets alpha T_0 + (1 - alpha) P_(r-1) of rounds >= 1
        (:func:`run_rounds`).
      relation: a relation matrix R on the units: targets alpha T_0 + (1 - alpha) R P_(r-1)
        (:func:`run_rounds`, :mod:`sdtheory.relation`).

    Returns:
      :class:`SDResult` with one :class:`RoundResult` per round.

    Raises:
      SolverError: a training missed its tolerance.
    """
    if solver.weight.shape[0] != 1:
        raise ValueError(f"self_distill runs one problem; this solver holds "
                         f"{solver.weight.shape[0]} (use run_rounds)")
    rounds = check_rounds(rounds)
    U, K = solver.true.size, solver.K
    # every round's outputs, fixed-point logits and fit are kept: about 3 U x K arrays a round
    check_memory(24.0 * (rounds + 2) * U * K,
                 f"keeping the outputs of {rounds + 1} rounds of {U} units x {K} classes "
                 "(--rounds)")
    t0 = None if targets0 is None else np.asarray(targets0, dtype=np.float64)[None]
    res = run_rounds(solver, rounds, pll=pll, pll_ties=pll_ties, keep_outputs=True,
                     targets0=t0, label_weight=label_weight, relation=relation)

    out = tuple(_round_result(r, res.outputs[r][0], res.fits[r],
                              [getattr(res, k)[r, 0] for k in _ROUND_VALUES])
                for r in range(len(res.outputs)))
    pll_res = None
    if pll:
        pll_res = _round_result(-1, res.pll_outputs[0], res.pll_fit,
                                [getattr(res, k)[0] for k in _PLL_VALUES])
    return SDResult(solver=solver.name, K=solver.K, true=np.asarray(solver.true),
                    given=np.asarray(solver.given), weight=np.asarray(solver.weight[0]),
                    rounds=out, pll=pll_res)
