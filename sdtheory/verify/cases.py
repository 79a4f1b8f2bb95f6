"""Case generators and helpers shared by the checks of ``sdtheory verify``."""

from __future__ import annotations

import numpy as np

from sdtheory.distill import run_rounds
from sdtheory.noise import corrupt_sampled, exact_counts, transition_matrix
from sdtheory.solvers import ExactSolver

__all__ = ["random_balanced", "exact_first_perfect", "sampled_counts", "noise_counts", "named"]


def random_balanced(K: int, n: int, rng, n_perm: int) -> np.ndarray:
    """Balanced counts: n_perm random permutation matrices plus the identity, with random
    integer weights summing to n (every row and column sums to n)."""
    w = rng.multinomial(n, rng.dirichlet(np.ones(n_perm + 1)))
    C = np.diag(np.full(K, w[0]))
    for wp in w[1:]:
        C[np.arange(K), rng.permutation(K)] += wp
    return C.astype(np.int64)


def exact_first_perfect(model, counts, lam, cap: int) -> int | None:
    """First round r <= cap at which the exact group solver is 100% correct (None: none)."""
    res = run_rounds(ExactSolver(gram=model, labels=counts, lam=lam), cap, until_perfect=True)
    r = int(res.r_star[0])
    return None if r < 0 else r


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
