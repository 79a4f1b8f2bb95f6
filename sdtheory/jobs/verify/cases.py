"""Case generators and helpers shared by the checks of ``sdtheory verify``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdtheory._validate import check_counts
from sdtheory.distill import run_rounds
from sdtheory.noise import corrupt_sampled, exact_counts, transition_matrix
from sdtheory.solvers import ExactSolver

__all__ = ["CaseRounds", "exact_batch", "random_balanced", "random_mild_unbalanced",
           "exact_first_perfect", "sampled_counts", "noise_counts", "named"]


@dataclass(frozen=True)
class CaseRounds:
    """The exact rounds of one case of a batch (:func:`exact_batch`).

    Attributes:
      train_acc: (R + 1,) accuracy per round (NaN after the first 100% round when stopping).
      r_star: first 100% round, or None.
      pll_acc: PLL student accuracy (NaN without ``pll``).
      true, given, weight: the units: the K x K grid of (true, given) groups and their counts.
      P0, P_pll: teacher and PLL outputs on the units (``keep_outputs`` only).
    """

    train_acc: np.ndarray
    r_star: int | None
    pll_acc: float
    true: np.ndarray
    given: np.ndarray
    weight: np.ndarray
    P0: np.ndarray | None = None
    P_pll: np.ndarray | None = None


def exact_batch(cases, rounds: int, *, pll: bool = False, until_perfect: bool = False,
                keep_outputs: bool = False) -> list[CaseRounds]:
    """Exact SD rounds of many block-model cases: every group of cases with the same K and
    level structure is one batch of :class:`~sdtheory.solvers.ExactSolver`, run by
    :func:`sdtheory.distill.run_rounds` (a verification grid is just a batch).

    Args:
      cases: sequence of (model, counts, lam).
      rounds: R.
      pll, until_perfect, keep_outputs: as :func:`~sdtheory.distill.run_rounds`.

    Returns:
      one :class:`CaseRounds` per case, in order.
    """
    groups: dict = {}
    structs = []
    for i, case in enumerate(cases):
        model = case[0]
        st = model.class_structure()
        structs.append(st)
        groups.setdefault((model.K, st[2].shape[1]), []).append(i)
    out: list = [None] * len(cases)
    for idx in groups.values():
        st = [structs[i] for i in idx]
        counts = np.stack([check_counts(cases[i][1], cases[i][0].sizes) for i in idx])
        solver = ExactSolver.group_batch(diag=[s[0] for s in st], alpha=[s[1] for s in st],
                                         L=np.stack([s[2] for s in st]),
                                         w=np.stack([s[3] for s in st]), counts=counts,
                                         lam=[cases[i][2] for i in idx])
        res = run_rounds(solver, rounds, pll=pll, until_perfect=until_perfect,
                         keep_outputs=keep_outputs)
        for j, i in enumerate(idx):
            out[i] = CaseRounds(
                train_acc=res.train_acc[:, j],
                r_star=None if res.r_star[j] < 0 else int(res.r_star[j]),
                pll_acc=float(res.pll_acc[j]), true=solver.true, given=solver.given,
                weight=solver.weight[j],
                P0=res.outputs[0][j] if keep_outputs else None,
                P_pll=res.pll_outputs[j] if keep_outputs and pll else None)
    return out


def random_balanced(K: int, n: int, rng, n_perm: int) -> np.ndarray:
    """Balanced counts: n_perm random permutation matrices plus the identity, with random
    integer weights summing to n (every row and column sums to n)."""
    w = rng.multinomial(n, rng.dirichlet(np.ones(n_perm + 1)))
    C = np.diag(np.full(K, w[0]))
    for wp in w[1:]:
        C[np.arange(K), rng.permutation(K)] += wp
    return C.astype(np.int64)


def random_mild_unbalanced(rng, *, equal_sizes: bool, eta_max: float = 0.2):
    """A random two-level case with mild noise and unbalanced given-label totals (sec. 8.3).

    K in 3..5; class sizes in 20..200 (one size for all classes, or one per class); class k
    mislabels Binomial(n_k, eta_k) samples, eta_k ~ U(0, eta_max), spread over the other labels
    with Dirichlet(1/2) weights; counts with all column sums equal are redrawn. c ~ U(0.2, 0.9),
    d ~ U(0, c - 0.05), lam log-uniform in [1e-4, 1e-1].

    Returns:
      (model, counts, lam).
    """
    from sdtheory.models import two_level

    while True:
        K = int(rng.integers(3, 6))
        sizes = (np.full(K, int(rng.integers(20, 201))) if equal_sizes
                 else rng.integers(20, 201, size=K))
        eta = rng.uniform(0.0, eta_max, size=K)
        C = np.zeros((K, K), dtype=np.int64)
        for k in range(K):
            noisy = rng.binomial(sizes[k], eta[k])
            C[k, np.arange(K) != k] = rng.multinomial(noisy, rng.dirichlet(np.full(K - 1, 0.5)))
            C[k, k] = sizes[k] - noisy
        cols = C.sum(axis=0)
        if cols.max() == cols.min():
            continue
        c = float(rng.uniform(0.2, 0.9))
        d = float(rng.uniform(0.0, c - 0.05))
        lam = float(10 ** rng.uniform(-4, -1))
        return two_level(K, tuple(int(v) for v in sizes), c, d), C, lam


def exact_first_perfect(cases, caps) -> list[int | None]:
    """First round r <= cap at which the exact group solver is 100% correct (None: none), for
    each (model, counts, lam) case and its cap, in batches (:func:`exact_batch`)."""
    res = exact_batch(cases, int(max(caps)), until_perfect=True)
    return [None if r.r_star is None or r.r_star > cap else r.r_star
            for r, cap in zip(res, caps)]


def sampled_counts(model, T, rng) -> np.ndarray:
    """Counts of i.i.d. sampled corruption of the model's labels (seed drawn from ``rng``)."""
    return corrupt_sampled(T, model.labels(), int(rng.integers(2**31))).counts


def noise_counts(model, kind: str, eta: float) -> np.ndarray:
    """Exact counts of one noise kind on a block model."""
    sup = model.superclass_of if kind == "superclass" else None
    return exact_counts(transition_matrix(kind, model.K, eta, superclass_of=sup), model.sizes)


def named(**kw) -> dict:
    """Parameters for a counter-example, floats rounded for readability."""
    return {k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in kw.items()}
