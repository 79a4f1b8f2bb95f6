"""Checks of the PLL student (docs/theory.md section 8)."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np

from sdtheory import theory as th
from sdtheory.distill import pll_targets, self_distill
from sdtheory.metrics import margins as unit_margins
from sdtheory.models import two_level
from sdtheory.noise import delta
from sdtheory.solvers import LinearSolver
from sdtheory.verify.cases import exact_batch, named, noise_counts, random_balanced
from sdtheory.verify.harness import Tally, check


@check("pll_conditions",
       "balanced counts meeting sec. 8.1's one-round conditions (plurality, pair mass, teacher "
       "ranking): the PLL student is 100% correct after one round (exact group solver and "
       "linear solver); margin = min_i p_i(true) - max_other")
def _pll_conditions(t: Tally) -> None:
    """Section 8.1: the sufficient one-round conditions of the PLL student.

    Counts: sym and asym exact counts (circulant C) and random balanced counts (sums of
    permutation matrices, not circulant in general).
    """
    rng = np.random.default_rng(17)
    cases = []
    Ks = (3, 4) if t.quick else (3, 4, 5, 6)
    fracs = (0.5, 0.95) if t.quick else (0.2, 0.5, 0.8, 0.95)
    lams = (1e-3,) if t.quick else (1e-5, 1e-3, 1e-1)
    kinds = ("sym",) if t.quick else ("sym", "asym")
    for K, kind, f, lam in itertools.product(Ks, kinds, fracs, lams):
        m = two_level(K, 40, 0.4, 0.1)
        cases.append((m, noise_counts(m, kind, f * th.eta_boundary(kind, K)), lam, kind))
    n_rand = 6 if t.quick else 60
    fam = Counter()
    nonuniform = 0
    while n_rand:
        K = int(rng.integers(3, 7))
        n = int(rng.integers(8, 50))
        c = float(rng.uniform(0.2, 0.8))
        m = two_level(K, n, c, float(rng.uniform(0.0, c - 0.05)))
        C = random_balanced(K, n, rng, int(rng.integers(1, 4)))
        lam = float(10 ** rng.uniform(-5, -1))
        if th.pll_conditions(m, C, lam)[0]:
            cases.append((m, C, lam, "random balanced"))
            n_rand -= 1
    cases = [c for c in cases if th.pll_conditions(*c[:3])[0]]
    exact = exact_batch([c[:3] for c in cases], 0, pll=True, keep_outputs=True)
    for (m, C, lam, label), ex in zip(cases, exact):
        _, conditions = th.pll_conditions(m, C, lam)
        lin = self_distill(LinearSolver(gram=m, labels=C, lam=lam), 0, pll=True)
        runs = (("exact", ex.P0, ex.P_pll, ex.pll_acc, ex.true, ex.weight),
                ("linear", lin.rounds[0].P, lin.pll.P, lin.pll.train_acc, lin.true, lin.weight))
        for name, P0, P_pll, pll_acc, true, w in runs:
            used = w > 0
            mg = float(np.min(unit_margins(P_pll, true)[used]))
            passed = pll_acc == 1.0
            # mean PLL target over all samples: uniform for circulant C; sec. 8.1 drops its term
            tbar = (w[:, None] * pll_targets(P0)).sum(axis=0) / w.sum()
            fam[(label, name, passed)] += 1
            if not passed and np.max(np.abs(tbar - 1.0 / m.K)) > 1e-12:
                nonuniform += 1
            t.case(named(solver=name, K=m.K, n=m.sizes[0], c=m.c, d=m.d, lam=lam,
                         noise=label), mg, passed=passed, pll_acc=pll_acc,
                   conditions=conditions, counts=C, mean_pll_target=tbar)
    t.note("passed/tried by counts and solver: " + ", ".join(
        f"{lab} {sol}: {fam[(lab, sol, True)]}/{fam[(lab, sol, True)] + fam[(lab, sol, False)]}"
        for lab, sol in sorted({k[:2] for k in fam})))
    if t.passed < t.tried:
        t.note(f"{nonuniform} of the {t.tried - t.passed} failures have a non-uniform mean PLL "
               "target tbar, whose global term (a1 - a2)(tbar(k) - tbar(j)) sec. 8.1 leaves out")


@check("pll_beats_sd_high_noise",
       "K >= 3, sym/asym exact counts with 0 < Delta <= 0.25: PLL student accuracy >= the best "
       "SD accuracy over rounds 0..4 (exact group solver); margin = acc_PLL - max_r acc_SD")
def _pll_beats_sd(t: Tally) -> None:
    """Section 8: at high noise one PLL round beats a fixed small budget of SD rounds.

    K = 2 and pure pair-flip noise are excluded: there the top-2 targets of the true and the
    flipped class tie exactly (section 8.2), so the PLL student cannot separate them.
    """
    Ks = (3, 4) if t.quick else (3, 4, 6)
    deltas = (0.1,) if t.quick else (0.05, 0.15, 0.25)
    lams = (1e-4, 1e-2) if t.quick else (1e-5, 1e-4, 1e-3, 1e-2)
    ns = (40,) if t.quick else (40, 400)
    kinds = ("sym",) if t.quick else ("sym", "asym")
    strict = 0
    fails = Counter()
    cases = []
    for K, kind, dl, lam, n in itertools.product(Ks, kinds, deltas, lams, ns):
        # eta with Delta(eta) = dl (sec. 6.3): Delta is linear in eta, 1 at eta = 0
        eta = (1.0 - dl) * th.eta_boundary(kind, K)
        m = two_level(K, n, 0.4, 0.1)
        C = noise_counts(m, kind, eta)
        if 0 < delta(C) <= 0.25:
            cases.append((m, C, lam, kind, eta))
    for (m, C, lam, kind, eta), res in zip(cases, exact_batch([c[:3] for c in cases], 4,
                                                              pll=True)):
        sd_best = float(np.max(res.train_acc))
        gap = res.pll_acc - sd_best
        strict += gap > 0
        cond_ok, cond = th.pll_conditions(m, C, lam)
        if gap < 0:
            fails[(kind, cond_ok)] += 1
        t.case(named(K=m.K, n=m.sizes[0], lam=lam, noise=kind, eta=eta, delta=delta(C)), gap,
               passed=gap >= 0, pll_acc=res.pll_acc, sd_accs=res.train_acc.tolist(),
               pll_conditions=cond)
    t.note(f"PLL strictly better in {strict}/{t.tried} cases")
    if fails:
        t.note("failures by (noise, sec. 8.1 conditions hold): "
               + ", ".join(f"({k}, {ok}): {v}" for (k, ok), v in sorted(fails.items())))
