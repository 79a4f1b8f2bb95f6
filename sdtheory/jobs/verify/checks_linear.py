"""Checks of the linearised form and label averaging (docs/theory.md sections 4, 5, 7.1)."""

from __future__ import annotations

import itertools
import math

import numpy as np

from sdtheory import theory as th
from sdtheory.jobs.verify.cases import named, noise_counts, sampled_counts
from sdtheory.jobs.verify.harness import Tally, check
from sdtheory.models import BlockModel, jitter, three_level, two_level
from sdtheory.noise import corrupt_sampled, corruption_from_counts, is_balanced, transition_matrix
from sdtheory.solvers import ExactSolver, LinearSolver, one_hot
from sdtheory.theory import level_components


@check("linear_fixed_point",
       "(L) P_r = 1/K + A^(r+1)(Y - 1/K) solves P - 1/K = G(T - P)/(K N lam), T = P_(r-1): "
       "residual <= 1e-12 kappa, kappa = max(1, mu_max/(K N lam)); margin = 1e-12 - "
       "residual/kappa")
def _linear_fixed_point(t: Tally) -> None:
    """Section 4: (L) is the exact solution of the linearised (E), on dense and group units.

    The residual max |P - 1/K - G(T-P)/(K N lam)| is itself computed in float64: G(T - P)
    loses about eps * mu_max * |T - P| to rounding, amplified by 1/(K N lam), so the tolerance
    is 1e-12 relative to kappa = max(1, mu_max/(K N lam)).
    """
    rng = np.random.default_rng(11)
    rounds = 4 if t.quick else 6
    worst_abs = 0.0

    def one(kind, params, solver):
        nonlocal worst_abs
        kappa = max(1.0, float(solver.op.mu.max()) / (solver.K * solver.op.N * solver.lam))
        T = one_hot(solver.given, solver.K)
        res = 0.0
        for r in range(rounds + 1):
            P = solver.round_outputs(r)
            res = max(res, solver.residual(T, P))
            T = P
        worst_abs = max(worst_abs, res)
        t.case(named(solver=kind, **params), 1e-12 - res / kappa, residual=res, kappa=kappa)

    Ks = (3,) if t.quick else (2, 4, 6)
    ns = (10, 500) if t.quick else (5, 50, 500)
    cds = ((0.4, 0.1),) if t.quick else ((0.4, 0.1), (0.7, 0.4), (0.3, -0.01))
    lams = (1e-5, 1e-2) if t.quick else (1e-6, 1e-4, 1e-2, 1.0)
    for K, n, (c, d), lam in itertools.product(Ks, ns, cds, lams):
        m = two_level(K, n, c, d)
        for noise in ("sym", "sampled"):
            if noise == "sym":
                C = noise_counts(m, "sym", 0.3)
            else:
                C = sampled_counts(m, transition_matrix("sym", K, 0.4), rng)
            one("groups", dict(K=K, n=n, c=c, d=d, lam=lam, noise=noise),
                LinearSolver(gram=m, labels=C, lam=lam))
    m3 = three_level(2, 2, 30 if t.quick else 100, 0.6, 0.3, 0.1)
    one("groups", dict(model="three_level(2,2)", lam=1e-3),
        LinearSolver(gram=m3, labels=noise_counts(m3, "superclass", 0.3), lam=1e-3))
    # dense Gram matrices: block, symmetrically jittered block, random features
    dense_cases = [(3, 20, 1e-3)] if t.quick else [(3, 20, 1e-3), (4, 40, 1e-5), (5, 30, 1e-1)]
    for K, n, lam in dense_cases:
        m = two_level(K, n, 0.4, 0.1)
        corr = corrupt_sampled(transition_matrix("sym", K, 0.3), m.labels(), 7)
        for kind, G in (("dense-block", m.dense()),
                        ("dense-jitter", jitter(m.dense(), 0.02, 3)),
                        ("dense-features", _feature_gram(m.N, 3 * m.N, rng))):
            one(kind, dict(K=K, n=n, lam=lam),
                LinearSolver(gram=G, labels=corr, lam=lam))
    t.note(f"largest absolute residual {worst_abs:.2e} (small lam amplifies rounding)")


def _feature_gram(N: int, D: int, rng) -> np.ndarray:
    X = rng.standard_normal((N, D))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X @ X.T


@check("block_spectrum",
       "BlockModel.spectrum = eigvalsh(dense G) (margin = 1e-11 max(1, mu_max) - err), and the "
       "sec. 7.1 per-instance terms sum to LinearSolver on model.dense() (margin = 1e-12 - "
       "err)")
def _block_spectrum(t: Tally) -> None:
    """Section 5 spectra and the section 7.1 decomposition against dense linear algebra."""
    rng = np.random.default_rng(12)
    models = []
    if t.quick:
        models += [("two", two_level(3, 15, 0.4, 0.1)), ("two-uneq", two_level(3, (5, 9, 14)))]
        models += [("three", three_level(2, 2, 10, 0.6, 0.3, 0.1))]
    else:
        for K, n, (c, d) in itertools.product((2, 3, 5), (1, 4, 30),
                                              ((0.4, 0.1), (0.7, 0.4), (0.3, -0.02))):
            models.append(("two", two_level(K, n, c, d)))
        for K in (2, 4, 6):
            models.append(("two-uneq", two_level(K, rng.integers(1, 40, size=K).tolist())))
        for S, m_, n in ((1, 3, 10), (2, 2, 10), (3, 2, 12), (2, 3, 15)):
            models.append(("three", three_level(S, m_, n, 0.6, 0.3, 0.1)))
        models.append(("three-uneq", BlockModel(sizes=(5, 8, 11, 6, 9), c=0.5, d=0.2, e=0.05,
                                                superclass_of=(0, 0, 0, 1, 1))))
    for kind, m in models:
        ev = np.linalg.eigvalsh(m.dense())
        err = float(np.max(np.abs(ev - m.eigvals())))
        tol = 1e-11 * max(1.0, float(abs(ev).max()))
        t.case(named(what="spectrum", model=kind, sizes=list(m.sizes), c=m.c, d=m.d, e=m.e),
               tol - err, err=err)
    # decomposition vs the dense linear solver, samples ordered as corruption_from_counts
    dec_models = [m for kind, m in models if m.equal_sizes() is not None and m.N <= 200]
    lams = (1e-3,) if t.quick else (1e-5, 1e-3, 1e-1)
    for m, lam in itertools.product(dec_models, lams):
        K = m.K
        for noise in ("sym", "sampled"):
            if noise == "sym":
                C = noise_counts(m, "sym", 0.3)
            else:
                C = sampled_counts(m, np.full((K, K), 1.0 / K), rng)
            corr = corruption_from_counts(C)
            lin = LinearSolver(gram=m.dense(), labels=corr, lam=lam)
            err = 0.0
            for r in (0, 1, 3, 10):
                D = th.decompose(m, C, lam, r)
                err = max(err, float(np.max(np.abs(np.repeat(D.P, D.count, axis=0)
                                                   - lin.round_outputs(r)))))
            t.case(named(what="decomposition", sizes=list(m.sizes), c=m.c, d=m.d, e=m.e, lam=lam,
                      noise=noise), 1e-12 - err, err=err, counts=C)


def _wnorm(X: np.ndarray, weight: np.ndarray) -> float:
    return float(np.sqrt(np.sum(weight[:, None] * X * X)))


@check("label_averaging",
       "per round the within-class component of P_r - 1/K shrinks by a3 and the class-mean "
       "component by a2 (3-level: class minus superclass means, a_cls), so their Frobenius "
       "ratio shrinks by a3/a2; margin = 1e-10 - max rel. error")
def _label_averaging(t: Tally) -> None:
    """Section 4: label averaging, measured on the outputs of the linear solvers.

    Q_r = P_r - 1/K from ``LinearSolver.round_outputs`` (dense per sample, or group units with
    weights), split into global / superclass / class / instance parts by averaging over
    samples; rounds while (a3/a1)^(r+2) >= 1e-4, beyond which float64 cannot resolve the
    instance part next to the global one.
    """
    rng = np.random.default_rng(13)
    cases = []
    if t.quick:
        cases += [("dense", two_level(3, 12, 0.4, 0.1), 1e-2),
                  ("groups", two_level(4, 200, 0.4, 0.1), 1e-4),
                  ("groups", three_level(2, 2, 50, 0.6, 0.3, 0.1), 1e-3)]
    else:
        for K, n, (c, d), lam in itertools.product((2, 3, 5), (6, 20), ((0.4, 0.1), (0.7, 0.4)),
                                                   (1e-4, 1e-2, 1e-1)):
            cases.append(("dense", two_level(K, n, c, d), lam))
        for K, n, lam in itertools.product((2, 4, 8), (50, 500), (1e-5, 1e-3, 1e-1)):
            cases.append(("groups", two_level(K, n, 0.4, 0.1), lam))
        for S, m_, lam in itertools.product((2, 3), (2, 3), (1e-4, 1e-2)):
            cases.append(("groups", three_level(S, m_, 40, 0.6, 0.3, 0.1), lam))
            cases.append(("dense", three_level(S, m_, 6, 0.6, 0.3, 0.1), lam))
    for kind, m, lam in cases:
        K = m.K
        while True:     # redraw labels without a class part (equal rows) or instance part
            C = sampled_counts(m, np.full((K, K), 0.5 / K) + 0.5 * np.eye(K), rng)
            corr = corruption_from_counts(C)
            parts0 = level_components(np.eye(K)[corr.given] - 1.0 / K, np.ones(corr.N),
                                      corr.true, m.superclass_of)
            cls0, inst0 = parts0["class"], parts0["instance"]
            if np.max(np.abs(cls0)) > 1e-9 and np.max(np.abs(inst0)) > 1e-9:
                break
        a = th.averaging_eigenvalues(m, lam)
        a_cls, a_inst = a["class"], a["instance"]
        if kind == "dense":
            lin = LinearSolver(gram=m.dense(), labels=corr, lam=lam)
        else:
            lin = LinearSolver(gram=m, labels=C, lam=lam)
        R = 0
        while R < 30 and (a_inst / a["global"]) ** (R + 2) >= 1e-4:
            R += 1
        err = 0.0
        prev = None
        for r in range(R + 1):
            Q = lin.round_outputs(r) - 1.0 / K
            parts = level_components(Q, lin.weight[0], lin.true, m.superclass_of)
            now = (_wnorm(parts["instance"], lin.weight[0]), _wnorm(parts["class"], lin.weight[0]))
            if prev is not None:
                f_inst, f_cls = now[0] / prev[0], now[1] / prev[1]
                ratio = (now[0] / now[1]) / (prev[0] / prev[1])
                err = max(err, abs(f_inst / a_inst - 1), abs(f_cls / a_cls - 1),
                          abs(ratio / (a_inst / a_cls) - 1))
            prev = now
        t.case(named(solver=kind, sizes=m.sizes[0], K=K, c=m.c, d=m.d, e=m.e, lam=lam,
                  rounds=R), 1e-10 - err, rel_err=err, a_inst_over_a_cls=a_inst / a_cls,
               counts=C)


@check("collapse",
       "P_r -> 1/K + a1^t(ybar - 1/K): linear max deviation <= a2^t + a3^t + 1e-14 for r <= "
       "200 (margin = 1 - dev/bound); exact max|P_r - 1/K| decays at rate -> a_lead (a1 if "
       "ybar != 1/K else a2): rel. err <= 1e-3 once dev < 1e-5 and the next rate's share has "
       "decayed below 1e-4 (margin = 1e-3 - err)")
def _collapse(t: Tally) -> None:
    """Section 4: SD rounds eventually average everything into the global label mean.

    Linear: the deviation from 1/K + a1^t (ybar - 1/K) is the sum of the class and instance
    terms, bounded by a2^t + a3^t (entries of ybar_k - ybar and e_j - ybar_k lie in [-1, 1]).
    Exact: near 1/K the softmax is linear (rows of the logits sum to 0), so the exact outputs
    must decay at the slowest linear rate present, a1 for unbalanced counts, else a2.
    """
    rng = np.random.default_rng(14)
    lin_cases = [(K, n, lam, bal) for K, n, lam, bal in itertools.product(
        (3,) if t.quick else (2, 4, 6), (20,) if t.quick else (20, 300),
        (1e-3,) if t.quick else (1e-5, 1e-3, 1e-1), (True, False))]
    for K, n, lam, bal in lin_cases:
        m = two_level(K, n, 0.4, 0.1)
        C = (noise_counts(m, "sym", 0.4) if bal else
             sampled_counts(m, transition_matrix("sym", K, 0.4), rng))
        a = th.averaging_eigenvalues(m, lam)
        lin = LinearSolver(gram=m, labels=C, lam=lam)
        ybar = C.sum(axis=0) / C.sum()
        worst = math.inf
        R = 200
        for r in list(range(0, 20)) + list(range(20, R + 1, 20)):
            tt = r + 1
            dev = float(np.max(np.abs(lin.round_outputs(r) - 1.0 / K
                                      - a["global"] ** tt * (ybar - 1.0 / K))))
            bound = a["class"] ** tt + a["instance"] ** tt + 1e-14    # + float resolution
            worst = min(worst, 1.0 - dev / bound)
        t.case(named(solver="linear", K=K, n=n, lam=lam, balanced=bal), worst)
    # exact solver: observed decay rate of max |P_r - 1/K|
    ex_cases = ([(4, 50, 1e-2, True), (3, 30, 3e-2, False)] if t.quick else
                [(K, n, lam, bal) for K, n, lam, bal in itertools.product(
                    (2, 4), (30, 100), (1e-2, 1e-1), (True, False))])
    rates = []
    for K, n, lam, bal in ex_cases:
        m = two_level(K, n, 0.4, 0.1)
        if bal:
            C = noise_counts(m, "sym", 0.3)
        else:
            C = sampled_counts(m, transition_matrix("sym", K, 0.4), rng)
            if is_balanced(C):
                continue
        a = th.averaging_eigenvalues(m, lam)
        # slowest linear rate present, and the next one (whose share must have died out)
        lead, sub = ((a["global"], a["class"]) if not is_balanced(C) else
                     (a["class"], a["instance"]))
        s = ExactSolver(gram=m, labels=C, lam=lam)
        T = one_hot(s.given, K)
        prev, rate, r = None, None, 0
        while r < 1000:
            P = s.fit(T).P
            dev = float(np.max(np.abs(P - 1.0 / K)))
            if prev is not None and ((prev < 1e-5 and (sub / lead) ** r < 1e-4)
                                     or prev < 1e-9):
                rate = dev / prev
                break
            prev, T, r = dev, P, r + 1
        params = named(solver="exact", K=K, n=n, lam=lam, balanced=bal)
        if rate is None:
            t.case(params, None, passed=False, reason="deviation did not fall below 1e-5 "
                   "within 1000 rounds", a_lead=lead)
            continue
        err = abs(rate / lead - 1.0)
        rates.append((r, rate, lead))
        t.case(params, 1e-3 - err, round=r, rate=rate, a_lead=lead)
    if rates:
        errs = [abs(rate / lead - 1.0) for _, rate, lead in rates]
        r, rate, lead = rates[int(np.argmax(errs))]
        t.note(f"exact decay rate max|P_(r+1) - 1/K| / max|P_r - 1/K| matches a_lead to rel. "
               f"err <= {max(errs):.1e} over {len(rates)} cases (worst: round {r}, rate "
               f"{rate:.6f} vs a_lead {lead:.6f}); measured at rounds "
               f"{min(x[0] for x in rates)}..{max(x[0] for x in rates)}")


