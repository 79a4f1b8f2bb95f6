"""One training: the Newton core and its problems, the exact solver (group-reduced, full N),
the linearised closed form (L).

Tolerances follow from the certificates: two solutions of (E) whose certificates are c1 and c2
agree to SENSITIVITY * (c1 + c2) + 1e-13; SENSITIVITY bounds ||(I + D s M)^{-1}||, the factor
by which a fixed-point residual becomes an error in the outputs (docs/theory.md section 2.3).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax

import sdtheory
from sdtheory.models import jitter, three_level, two_level
from sdtheory.noise import (
    corrupt_exact,
    corruption_from_counts,
    corruption_from_labels,
    transition_matrix,
)
from sdtheory.solvers import (
    AveragingOperator,
    ExactSolver,
    LinearSolver,
    SolverError,
    dense_solver,
    feature_solver,
    newton_solver,
    one_hot,
    spectrum,
)
from sdtheory.solvers.newton import CONVERGED, FAILED, ROUNDOFF, newton
from tests.reference import public_vectors

REF = public_vectors()["block_k4_n120"]
SENSITIVITY = 1e3


def certificate(G, T, P, lam, weight=None):
    """Independent numpy certificate of (E): max |P - softmax(G (T - P) / (N lam))|."""
    N = P.shape[0] if weight is None else float(np.sum(weight))
    return float(np.max(np.abs(P - softmax(G @ (T - P) / (N * lam), axis=1))))


def agree(P1, P2, c1, c2):
    """Two certified solutions agree within what their certificates allow."""
    assert max(c1, c2) <= 1e-10
    np.testing.assert_allclose(P1, P2, rtol=0, atol=SENSITIVITY * (c1 + c2) + 1e-13)


def _ref_groups(entries):
    return {(g["true"], g["given"]): np.array(g["p"]) for g in entries}


def unit_matrix(model, true, weight):
    """Unit-level matrix M = diag I + B diag(m) built entry by entry from the Gram model's
    definition (an independent construction of the group reduction, docs/theory.md 3.1)."""
    G = model.dense()
    first = np.cumsum([0] + list(model.sizes))[:-1]
    i = first[true]                         # a sample of each unit's class, and another one
    B = G[i[:, None], i[None, :] + (true[:, None] == true[None, :])]
    return (1.0 - model.c) * np.eye(true.size) + B * np.asarray(weight)[None, :]


# ---------------------------------------------------------------- reference outputs, round 0


def test_teacher_matches_reference_exact_and_linear():
    model = two_level(4, 120, 0.4, 0.1)
    gs = ExactSolver(gram=model, labels=REF["counts"], lam=REF["lam"])
    P = gs.fit(gs.targets0()).P
    ref = _ref_groups(REF["rounds"][0]["groups"])
    for k, j, p in zip(gs.true, gs.given, P):
        np.testing.assert_allclose(p, ref[(k, j)], atol=1e-10, rtol=0)
    ls = LinearSolver(gram=model, labels=REF["counts"], lam=REF["lam"])
    ref = _ref_groups(REF["rounds"][0]["linear_groups"])
    for k, j, p in zip(ls.true, ls.given, ls.round_outputs(0)):
        np.testing.assert_allclose(p, ref[(k, j)], atol=1e-10, rtol=0)


# ---------------------------------------------------------------- the Newton core


@pytest.mark.parametrize("three", [False, True], ids=["two-level", "three-level"])
def test_group_newton_direction_equals_dense_jacobian_solve(three, rng):
    """The block elimination of docs/theory.md 3.2 against a dense solve of J dZ = -F with
    J = I + s M D built from the unit matrix (K^2 units, some empty)."""
    model = (three_level(2, 2, 20, 0.6, 0.3, 0.05) if three else two_level(4, 30, 0.4, -0.02))
    K = model.K
    counts = np.stack([rng.multinomial(model.sizes[k], rng.dirichlet(np.ones(K)))
                       for k in range(K)])
    counts[0, 0] += counts[0, 1]
    counts[0, 1] = 0                                   # an empty group
    solver = ExactSolver.group_batch(*(), **_structure(model), counts=counts[None],
                                     lam=np.array([1e-3]))
    problem = solver._problem
    import jax

    one = jax.tree_util.tree_map(lambda a: a[0], problem)
    Z = rng.standard_normal((K, K, K))
    T = np.broadcast_to(np.eye(K), (K, K, K))
    P, _, F = one.evaluate(Z, T)
    dZ = np.asarray(one.direction(Z, P, F, 1.0)[0]).reshape(K * K, K)
    true = np.repeat(np.arange(K), K)
    M = unit_matrix(model, true, counts.reshape(-1))
    s = 1.0 / (model.N * 1e-3)
    Pn = np.asarray(P).reshape(K * K, K)
    H = np.stack([np.diag(p) - np.outer(p, p) for p in Pn])
    J = np.eye(K * K * K) + s * np.einsum("uv,vab->uavb", M, H).reshape(K ** 3, K ** 3)
    ref = np.linalg.solve(J, -np.asarray(F).reshape(-1)).reshape(K * K, K)
    rel = np.abs(dZ - ref).max() / np.abs(ref).max()
    assert rel <= 1e-12 * np.linalg.cond(J)


def _structure(model):
    diag, alpha, L, w = model.class_structure()
    return dict(diag=np.array([diag]), alpha=np.array([alpha]), L=L[None], w=w[None])


def test_newton_statuses_and_error(rng, monkeypatch):
    """CONVERGED at the tolerance; with tolerance 0, ROUNDOFF at the float64 floor
    eps s max_i sum_j |G_ij| (docs/theory.md section 2.3), checked against the dense G; FAILED
    when the steps run out: ExactSolver then raises with the certificate in the message."""
    model = two_level(3, 20, 0.4, 0.1)
    C = np.array([[14, 4, 2], [2, 14, 4], [4, 2, 14]])
    lam = 1e-3
    s = ExactSolver(gram=model, labels=C, lam=lam)
    fit = s.fit(s.targets0())
    assert fit.info.status == "converged" and fit.residual <= 1e-12
    T0 = s._layout(s.targets0()[None])
    res = newton(s._problem, T0, np.zeros((1, 3, 3, 3)), tol=0.0, max_iter=50, batched=True)
    G = model.dense()
    floor = np.finfo(float).eps * np.abs(G).sum(axis=1).max() / (model.N * lam)
    assert res.accept[0] == pytest.approx(floor, rel=1e-12)
    assert res.status[0] == ROUNDOFF and res.certificate[0] <= floor
    res = newton(s._problem, T0, np.zeros((1, 3, 3, 3)), max_iter=1, batched=True)
    assert res.status[0] == FAILED and res.certificate[0] > 1e-3
    monkeypatch.setattr(newton_solver, "RETRY_MAX_ITER", 1)
    with pytest.raises(SolverError, match="certificate"):
        ExactSolver(gram=model, labels=C, lam=lam, max_iter=1).fit(s.targets0())
    assert {CONVERGED, ROUNDOFF, FAILED} == {0, 1, 2}


def test_batched_group_solver_equals_one_at_a_time(rng):
    """One vmapped batch of cells (different n, c, d, lam, counts) = each cell alone."""
    K = 3
    models = [two_level(K, n, c, d) for n, c, d in ((10, 0.4, 0.1), (25, 0.6, 0.2), (7, 0.5, 0.0))]
    lams = np.array([1e-3, 3e-4, 1e-2])
    counts = np.stack([np.stack([rng.multinomial(m.sizes[k], rng.dirichlet(np.ones(K)))
                                 for k in range(K)]) for m in models])
    st_ = [m.class_structure() for m in models]
    batch = ExactSolver.group_batch(diag=[s[0] for s in st_], alpha=[s[1] for s in st_],
                                    L=np.stack([s[2] for s in st_]),
                                    w=np.stack([s[3] for s in st_]),
                                    counts=counts, lam=lams)
    out = batch.fit_batch(batch.targets0())
    for i, m in enumerate(models):
        single = ExactSolver(gram=m, labels=counts[i], lam=lams[i])
        fit = single.fit(single.targets0())
        sel = counts[i].reshape(-1) > 0
        agree(out.P[i][sel], fit.P, out.residual[i], fit.residual)


def test_warm_start_reaches_the_same_solution_in_fewer_steps():
    model = two_level(4, 120, 0.4, 0.1)
    s = ExactSolver(gram=model, labels=REF["counts"], lam=1e-4)
    f0 = s.fit(s.targets0())
    cold = s.fit(f0.P)
    warm = s.fit(f0.P, f0.info.logits)
    agree(cold.P, warm.P, cold.residual, warm.residual)
    assert warm.info.iterations < cold.info.iterations


# ---------------------------------------------------------------- full vs group-reduced


def _full_vs_group(model, counts, lam, T_units=None):
    cor = corruption_from_counts(np.asarray(counts), sizes=model.sizes)
    gs = ExactSolver(gram=model, labels=counts, lam=lam)
    T_units = gs.targets0() if T_units is None else T_units
    fg = gs.fit(T_units)
    es = ExactSolver(gram=model.dense(), labels=cor, lam=lam)
    fe = es.fit(gs.expand(T_units))
    return gs, fg, fe


@settings(max_examples=15, deadline=None)
@given(
    K=st.integers(2, 4),
    n=st.integers(2, 12),
    c=st.floats(0.2, 0.9),
    gap=st.floats(0.05, 0.6),
    log_lam=st.floats(-5, -1),
    seed=st.integers(0, 10_000),
)
def test_group_reduced_equals_full_solver(K, n, c, gap, log_lam, seed):
    d = max(c - gap, 0.0)
    model = two_level(K, n, c, d)
    rng = np.random.default_rng(seed)
    counts = np.stack([rng.multinomial(n, rng.dirichlet(np.ones(K))) for _ in range(K)])
    gs, fg, fe = _full_vs_group(model, counts, 10.0 ** log_lam)
    agree(gs.expand(fg.P), fe.P, fg.residual, fe.residual)


def test_group_reduced_equals_full_three_level_soft_targets(rng):
    model = three_level(2, 2, 6, 0.6, 0.3, 0.05)
    counts = np.array([[3, 2, 1, 0], [1, 4, 0, 1], [0, 1, 3, 2], [2, 0, 1, 3]])
    U = int(np.count_nonzero(counts))
    T = rng.dirichlet(np.ones(4), size=U)
    gs, fg, fe = _full_vs_group(model, counts, 3e-3, T)
    agree(gs.expand(fg.P), fe.P, fg.residual, fe.residual)


def test_full_solver_at_small_lam_equals_group_solver():
    """N K = 1440 at lam = 1e-5 (saturated outputs, preconditioned GMRES)."""
    model = two_level(4, 90, 0.4, 0.1)
    counts = np.array([[60, 20, 5, 5], [5, 60, 20, 5], [5, 5, 60, 20], [20, 5, 5, 60]])
    gs, fg, fe = _full_vs_group(model, counts, 1e-5)
    assert fe.info.iterations >= 1
    agree(gs.expand(fg.P), fe.P, fg.residual, fe.residual)


def test_randomized_spectrum_path_equals_eigh_path(monkeypatch):
    """Above EIGH_MAX the preconditioner comes from a randomized subspace iteration and the PSD
    check from a Cholesky factorisation: the same solution, certified."""
    model = two_level(3, 60, 0.4, 0.1)
    G = jitter(model.dense(), 0.01, seed=4)
    cor = corrupt_exact(transition_matrix("sym", 3, 0.4), model.sizes)
    full = ExactSolver(gram=G, labels=cor, lam=1e-4)
    monkeypatch.setattr(spectrum, "EIGH_MAX", 50)
    rand = ExactSolver(gram=G, labels=cor, lam=1e-4)
    assert full.spectrum["method"] == "eigh" and rand.spectrum["method"] == "randomized+cholesky"
    N = G.shape[0]
    # the matrix solved is G itself, not the shifted matrix the Cholesky check factorised
    np.testing.assert_array_equal(np.asarray(rand._problem.G)[:N, :N], G)
    assert not np.any(np.asarray(rand._problem.G)[N:])
    f1, f2 = full.fit(full.targets0()), rand.fit(rand.targets0())
    T = full.targets0()
    c1, c2 = certificate(G, T, f1.P, 1e-4), certificate(G, T, f2.P, 1e-4)
    assert max(abs(c1 - f1.residual), abs(c2 - f2.residual)) <= 1e-13
    agree(f1.P, f2.P, c1, c2)
    with pytest.raises(ValueError, match="not positive semi-definite: smallest eigenvalue -"):
        ExactSolver(gram=G - 0.7 * np.eye(G.shape[0]), labels=cor, lam=1e-4)


# ---------------------------------------------------------------- invariants of exact outputs


def test_residual_rows_and_independent_certificate(rng):
    model = two_level(3, 15, 0.5, 0.1)
    G = jitter(model.dense(), 0.02, seed=1)
    y = model.labels()
    T = rng.dirichlet(np.ones(3), size=y.size)
    fit = ExactSolver(gram=G, labels=corruption_from_labels(y, y), lam=1e-3).fit(T)
    assert fit.residual <= 1e-12
    # the certificate recomputed independently in numpy: equal to rounding of G (T - P)
    assert abs(certificate(G, T, fit.P, 1e-3) - fit.residual) <= 1e-13
    np.testing.assert_allclose(fit.P.sum(axis=1), 1.0, atol=1e-14)
    assert np.all(fit.P > 0)


def test_permuting_samples_permutes_outputs(rng):
    model = two_level(3, 12, 0.5, 0.2)
    G = jitter(model.dense(), 0.03, seed=2)
    y = model.labels()
    T = rng.dirichlet(np.ones(3), size=y.size)
    perm = rng.permutation(y.size)
    f = ExactSolver(gram=G, labels=corruption_from_labels(y, y), lam=1e-3).fit(T)
    fp = ExactSolver(gram=G[np.ix_(perm, perm)], labels=corruption_from_labels(y[perm], y[perm]),
                     lam=1e-3).fit(T[perm])
    agree(fp.P, f.P[perm], fp.residual, f.residual)


def test_exact_outputs_minimise_the_primal_objective(rng):
    """Independent check: no nearby W does better than the W rebuilt from the solution."""
    model = two_level(3, 8, 0.5, 0.1)
    G = model.dense()
    X = np.linalg.cholesky(G)
    N, K, lam = G.shape[0], 3, 1e-2
    T = one_hot(model.labels(), K)
    fit = ExactSolver(gram=G, labels=corruption_from_labels(model.labels(), model.labels()),
                      lam=lam).fit(T)
    P = fit.P
    W = (T - P).T @ X / (N * lam)                 # stationarity, docs/theory.md section 2.1

    def L(W):
        Q = softmax(X @ W.T, axis=1)
        return -np.mean(np.sum(T * np.log(Q), axis=1)) + 0.5 * lam * np.sum(W * W)

    np.testing.assert_allclose(softmax(X @ W.T, axis=1), P, atol=SENSITIVITY * fit.residual
                               + 1e-13)
    base = L(W)
    for _ in range(20):
        assert L(W + 1e-4 * rng.standard_normal(W.shape)) > base


def test_solvers_refuse_float32():
    model = two_level(3, 5, 0.4, 0.1)
    with sdtheory.x64():
        s = ExactSolver(gram=model, labels=5 * np.eye(3, dtype=int), lam=1e-2)
    import jax

    if jax.config.jax_enable_x64:          # the test session enables float64 globally
        with jax.enable_x64(False):
            with pytest.raises(RuntimeError, match="needs float64"):
                s.fit(s.targets0())
            with pytest.raises(RuntimeError, match="needs float64"):
                ExactSolver(gram=model, labels=5 * np.eye(3, dtype=int), lam=1e-2)


# ---------------------------------------------------------------- linearised form (L)


def test_linear_closed_form_equals_iterated_kernel_ridge_regression():
    """(L) = KRR of the centred labels with ridge K lam, iterated (Borup & Andersen)."""
    K, lam = 3, 2e-3
    model = two_level(K, 10, 0.45, 0.15)
    G = jitter(model.dense(), 0.02, seed=3)
    cor = corrupt_exact(transition_matrix("sym", K, 0.3), model.sizes)
    N = G.shape[0]
    F = one_hot(cor.given, K) - 1.0 / K
    ls = LinearSolver(gram=G, labels=cor, lam=lam)
    for r in range(6):
        # KRR: min_a (1/N) ||F - G a||^2 + (K lam) a^T G a  =>  a = (G + N K lam I)^{-1} F
        a = np.linalg.solve(G + N * K * lam * np.eye(N), F)
        F = G @ a
        np.testing.assert_allclose(1.0 / K + F, ls.round_outputs(r), atol=1e-12, rtol=0)


@pytest.mark.parametrize("model", [two_level(4, 30, 0.4, 0.1), two_level(3, (5, 9, 14), 0.5, 0.2),
                                   three_level(2, 2, 8, 0.6, 0.3, 0.05)],
                         ids=["two-level", "unequal-sizes", "three-level"])
def test_block_averaging_operator_equals_dense_eigendecomposition(model, rng):
    """Class space + instance level (docs/theory.md 3.3) = A^t from eigh of the dense G."""
    K = model.K
    counts = np.stack([rng.multinomial(model.sizes[k], rng.dirichlet(np.ones(K)))
                       for k in range(K)])
    cor = corruption_from_counts(counts)
    block = LinearSolver(gram=model, labels=counts, lam=1e-3)
    dense = LinearSolver(gram=model.dense(), labels=cor, lam=1e-3)
    for r in (0, 1, 4, 2.5):
        P = block.op.apply(block.targets0() - 1.0 / K, r + 1.0)
        Pd = dense.op.apply(dense.targets0() - 1.0 / K, r + 1.0)
        np.testing.assert_allclose(np.repeat(P, counts[block.true, block.given], axis=0), Pd,
                                   atol=1e-12, rtol=0)


def test_linear_rounds_iterate_to_closed_power():
    model = two_level(4, 120, 0.4, 0.1)
    ls = LinearSolver(gram=model, labels=REF["counts"], lam=1e-3)
    T = ls.targets0()
    for r in range(5):
        fit = ls.fit(T)
        np.testing.assert_allclose(fit.P, ls.round_outputs(r), atol=1e-13)
        assert fit.residual <= 1e-12
        T = fit.P


def test_averaging_eigenvalues_are_mu_over_mu_plus_KNlam():
    model = two_level(4, 30, 0.4, 0.1)
    lam, K, N = 1e-3, 4, model.N
    op = AveragingOperator(model.dense(), lam, K)
    expected = model.eigvals() / (model.eigvals() + K * N * lam)
    np.testing.assert_allclose(np.sort(op.a), np.sort(expected), atol=1e-12)


def _linear_gap(model, lam):
    """max |P_exact - P_linear| of the teacher on the reference counts, and the certificate."""
    gs = ExactSolver(gram=model, labels=REF["counts"], lam=lam)
    ls = LinearSolver(gram=model, labels=REF["counts"], lam=lam)
    T = gs.targets0()
    fit = gs.fit(T)
    return np.abs(fit.P - ls.fit(T).P).max(), fit.residual


def test_linear_gap_to_exact_peaks_then_falls_like_lam_minus_2_asymptotically():
    """The linearisation gap max |P_exact - P_linear| on the reference case (docs/theory.md
    section 12.1, Finding 2), pinned:

    * it peaks at lam = 4.932e-4 with 0.056149 (bounded search on log lam); on the grid
      10^(k/4) the largest value is 0.055829 at lam = 10^-3.25 = 5.62e-4; at lam = 1e-5 both
      forms saturate and the gap is 0.0092728;
    * for lam >= 1e-3 it falls monotonically, but gap * lam^2 still rises 24.72-fold from
      lam = 1e-2 (1.20093e-6) to lam = 10 (2.96859e-5): the lam^-2 law is asymptotic only.

    Tolerances: the gaps are differences of outputs certified to 1e-12 (asserted), so 1e-6
    relative on values >= 1e-7; the peak's location is flat to second order, hence 1e-3.
    """
    from scipy.optimize import minimize_scalar

    model = two_level(4, 120, 0.4, 0.1)
    best = minimize_scalar(lambda x: -_linear_gap(model, 10.0 ** x)[0], bounds=(-4, -3),
                           method="bounded", options={"xatol": 1e-8})
    assert 10.0 ** best.x == pytest.approx(4.932e-4, rel=1e-3)
    assert -best.fun == pytest.approx(0.0561488, abs=2e-7)
    pinned = {1e-5: 0.00927279, 10 ** -3.25: 0.0558291, 1e-2: 1.20093e-2, 10.0: 2.96859e-7}
    for lam, value in pinned.items():
        gap, cert = _linear_gap(model, lam)
        assert cert <= 1e-12
        assert gap == pytest.approx(value, rel=1e-5), (lam, gap)
    lams = np.logspace(-3, 1, 9)
    gaps = np.array([_linear_gap(model, lam)[0] for lam in lams])
    assert np.all(np.diff(gaps) < 0), gaps
    rise = (gaps[-1] * lams[-1] ** 2) / (gaps[2] * lams[2] ** 2)     # lam = 10 vs lam = 1e-2
    assert rise == pytest.approx(24.72, rel=1e-3)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda m, C: ExactSolver(gram=m, labels=C, lam=0.0), "lam"),
        (lambda m, C: ExactSolver(gram=m, labels=C, lam=-1e-3), "lam"),
        (lambda m, C: ExactSolver(gram=m, labels=C, lam=float("nan")), "lam"),
        (lambda m, C: ExactSolver(gram=m, labels=np.array(C)[:, :3], lam=1e-3),
         r"counts must be a square K x K matrix .* got shape \(4, 3\)"),
        (lambda m, C: ExactSolver(gram=m, labels=np.array(C) + np.eye(4, dtype=int), lam=1e-3),
         "row 0 sums to 121"),
        (lambda m, C: ExactSolver(gram=m, labels=np.array(C) + 0.5, lam=1e-3), "integers"),
        (lambda m, C: ExactSolver(gram=m, labels=C, lam=1e-3).fit(np.full((16, 4), 0.3)),
         "distribution"),
        (lambda m, C: ExactSolver(gram=m, labels=C, lam=1e-3).fit(np.full((16, 3), 1 / 3)),
         "shape"),
        (lambda m, C: ExactSolver(gram=np.ones((3, 4)), labels=C, lam=1e-3), "square"),
        (lambda m, C: ExactSolver(gram=np.array([[1.0, 0.5], [0.4, 1.0]]), labels=C, lam=1e-3),
         "symmetric"),
        (lambda m, C: ExactSolver(gram=np.array([[1.0, 2.0], [2.0, 1.0]]),
                                  labels=corruption_from_labels([0, 1], [0, 1]), lam=1e-3),
         "positive semi-definite"),
        (lambda m, C: ExactSolver(gram=np.eye(3), labels=C, lam=1e-3), "Corruption"),
        (lambda m, C: ExactSolver(gram=np.eye(3), labels=corruption_from_labels([0, 1], [0, 1]),
                                  lam=1e-3), "2 samples but G is 3 x 3"),
        (lambda m, C: corruption_from_labels([0, 1, 5], [0, 1, 5], 3), "true labels must lie"),
    ],
)
def test_bad_input_raises_clear_error(make, match):
    model = two_level(4, 120, 0.4, 0.1)
    with pytest.raises(ValueError, match=match):
        make(model, REF["counts"])


def test_indefinite_G_has_several_fixed_points():
    """docs/theory.md section 2.2: with an indefinite G, (E) can have several solutions (a
    solution always exists, by Brouwer). Two samples, K = 2, both labelled class 0,
    G = [[1, 2], [2, 1]] (eigenvalues 3 and -1), s = 1/(N lam) = 20: the Newton core started
    from three points finds three distinct fixed points, each certified by an independent
    numpy evaluation of (E). The symmetric one solves z = s (1 + r)(1 - tanh(z/2)) for the
    logit gap z, found here by bisection."""
    import jax.numpy as jnp
    from scipy.optimize import brentq

    from sdtheory.solvers.problems import DenseProblem

    G = np.array([[1.0, 2.0], [2.0, 1.0]])
    s = 20.0
    mu, V = np.linalg.eigh(G)
    problem = DenseProblem(s=jnp.asarray(s), G=jnp.asarray(G), V=jnp.asarray(V),
                           mu=jnp.asarray(mu), mu_rest=jnp.asarray(0.0))
    T = np.array([[1.0, 0.0], [1.0, 0.0]])
    found = []
    for z1, z2 in ((3.5, 3.5), (2.0, 6.0), (6.0, 2.0)):
        x0 = np.array([[z1 / 2, -z1 / 2], [z2 / 2, -z2 / 2]])
        r = newton(problem, T, x0)
        assert r.status == CONVERGED
        P = r.P
        cert = np.abs(P - softmax(s * G @ (T - P), axis=1)).max()       # independent check
        assert cert <= 1e-12
        found.append(P[:, 0])
    found = np.array(found)
    gaps = [np.abs(found[i] - found[j]).max() for i in range(3) for j in range(i)]
    assert min(gaps) > 0.01                                   # three distinct solutions
    zs = brentq(lambda z: z - s * 3.0 * (1 - np.tanh(z / 2)), 0.0, 100.0, xtol=1e-14)
    np.testing.assert_allclose(found[0], 1.0 / (1.0 + np.exp(-zs)), atol=1e-12, rtol=0)
    # the two asymmetric solutions are mirror images of each other
    np.testing.assert_allclose(found[1], found[2][::-1], atol=1e-12, rtol=0)


# ---------------------------------------------------------------- explicit features (weight space)


def _features_problem(N, D, K, rank, seed):
    """Low-rank features with class structure (rank <= min(rank + K, D) < N), rows of unit
    norm (so G = X X^T has a unit diagonal, like the Gram models), and sampled labels with
    about 30% of them flipped."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, N)
    y[:K] = np.arange(K)                                     # every class present
    means = rng.standard_normal((K, D))
    X = (means[y] + rng.standard_normal((N, rank)) @ rng.standard_normal((rank, D))
         / np.sqrt(rank))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    given = np.where(rng.random(N) < 0.3, rng.integers(0, K, N), y)
    return X, corruption_from_labels(y, given, K)


_FEATURE_VS_DENSE = dict(
    N=st.integers(20, 300),
    D_frac=st.floats(0.05, 1.0),
    K=st.integers(2, 6),
    rank_frac=st.floats(0.0, 1.0),
    log_lam=st.floats(-5, -1),
    seed=st.integers(0, 10_000),
    direct=st.booleans(),
)


@pytest.mark.parametrize("N, D_frac, K, rank_frac, log_lam, seed, direct", [
    (150, 0.5, 4, 0.5, -3.0, 1, True),
    (90, 0.3, 3, 1.0, -4.5, 2, False),
])
def test_feature_solver_equals_dense_solver(N, D_frac, K, rank_frac, log_lam, seed, direct):
    """Two fixed cases of :func:`_feature_equals_dense`, one per way of solving the feature
    systems (fixed shapes: a repeat run loads their programs from the compilation cache; the
    slow test draws eight random cases, each a new shape to compile)."""
    _feature_equals_dense(N, D_frac, K, rank_frac, log_lam, seed, direct)


@pytest.mark.slow
@settings(max_examples=8, deadline=None, derandomize=True)
@given(**_FEATURE_VS_DENSE)
def test_feature_solver_equals_dense_solver_more_cases(N, D_frac, K, rank_frac, log_lam, seed,
                                                       direct):
    """Eight random cases of :func:`_feature_equals_dense`, the same on every run (as the
    property tests of tests/test_properties.py), so that a repeat run loads their programs from
    the compilation cache instead of compiling eight new shapes (42 s of the full suite)."""
    _feature_equals_dense(N, D_frac, K, rank_frac, log_lam, seed, direct)


def _feature_equals_dense(N, D_frac, K, rank_frac, log_lam, seed, direct):
    """ExactSolver on Features(X) (Newton on the weights, each system by CG or, ``direct``,
    formed and factorised: docs/theory.md section 2.5) and on the dense G = X X^T
    (Newton-GMRES on the logits, section 2.4) give the same outputs to 1e-10, round after
    round (warm-started) and for the PLL student; every certificate is checked first, and
    recomputed independently from G."""
    from sdtheory.distill import self_distill
    from sdtheory.models import Features

    D = max(2, min(N - 1, int(round(D_frac * 64))))
    rank = max(1, int(round(rank_frac * (D - 1))))
    X, cor = _features_problem(N, D, K, rank, seed)
    lam = 10.0 ** log_lam
    G = X @ X.T
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(feature_solver, "FEATURE_DIRECT_MAX", 10 ** 6 if direct else 0)
        mp.setattr(feature_solver, "FEATURE_DIRECT_WORK", 10 ** 12)
        feat = ExactSolver(gram=Features(X), labels=cor, lam=lam)
    assert feat._problem.direct is direct
    dense = ExactSolver(gram=G, labels=cor, lam=lam)
    rf = self_distill(feat, 3, pll=True)
    rd = self_distill(dense, 3, pll=True)
    T = one_hot(cor.given, K)
    for a, b in zip(rf.rounds, rd.rounds):
        assert a.residual <= 1e-10 and b.residual <= 1e-10
        assert a.info.status in ("converged", "round-off")
        assert certificate(G, T, a.P, lam) <= 1e-10            # independent, from G itself
        np.testing.assert_allclose(a.P, b.P, rtol=0, atol=1e-10)
        T = a.P
    assert rf.pll.residual <= 1e-10 and rd.pll.residual <= 1e-10
    np.testing.assert_allclose(rf.pll.P, rd.pll.P, rtol=0, atol=1e-10)
    assert [r.train_acc for r in rf.rounds] == pytest.approx([r.train_acc for r in rd.rounds])


def test_feature_solver_weights_reproduce_outputs(rng, monkeypatch):
    """The weights W of a feature-space fit: softmax(X W^T) = P, W = (T - P)^T X / (N lam)
    (docs/theory.md section 2.1, population.weights_from_outputs)."""
    from scipy.special import softmax as sp_softmax

    from sdtheory.models import Features
    from sdtheory.population import weights_from_outputs

    N, D, K, lam = 240, 30, 5, 1e-3
    X, cor = _features_problem(N, D, K, 12, seed=7)
    monkeypatch.setattr(feature_solver, "FEATURE_DIRECT_MAX", 0)     # the CG path
    s = ExactSolver(gram=Features(X), labels=cor, lam=lam)
    assert s.kind == "features" and s.spectrum["method"] == "eigh"
    T = rng.dirichlet(np.ones(K), size=N)
    fit = s.fit(T)
    assert fit.residual <= 1e-12
    W = fit.info.weights
    assert W.shape == (K, D)
    np.testing.assert_allclose(sp_softmax(X @ W.T, axis=1), fit.P, rtol=0, atol=1e-12)
    Wfix = (T - fit.P).T @ X / (N * lam)
    np.testing.assert_allclose(W, Wfix, rtol=0, atol=1e-10 * np.abs(W).max())
    np.testing.assert_allclose(weights_from_outputs(X, T, fit.P, lam), Wfix, rtol=0,
                               atol=1e-15 * np.abs(W).max())
    # the certificate is max |P - softmax(X Wfix^T)|: Wfix gives the outputs to the certificate
    assert np.abs(sp_softmax(X @ Wfix.T, axis=1) - fit.P).max() <= fit.residual + 1e-15
    np.testing.assert_allclose(fit.info.logits, X @ W.T, rtol=0, atol=1e-12)
    assert fit.info.krylov_iterations >= fit.info.iterations      # every CG solve iterates


def test_feature_solver_warm_starts_from_weights_or_logits():
    """fit(T, x0) accepts the weights or the logits of an earlier fit, and fit_batch the
    unknowns W^T (b, D, K) that run_rounds passes from round to round: the same solution in
    fewer Newton steps."""
    from sdtheory.models import Features

    X, cor = _features_problem(200, 24, 4, 8, seed=3)
    s = ExactSolver(gram=Features(X), labels=cor, lam=1e-4)
    f0 = s.fit(s.targets0())
    cold = s.fit(f0.P)
    for x0 in (f0.info.weights, f0.info.logits):
        warm = s.fit(f0.P, x0)
        agree(cold.P, warm.P, cold.residual, warm.residual)
        assert warm.info.iterations < cold.info.iterations
    batch = s.fit_batch(f0.P[None], f0.info.weights.T[None])
    assert batch.x.shape == (1, 24, 4)
    agree(cold.P, batch.P[0], cold.residual, batch.residual[0])
    with pytest.raises(ValueError, match="x0 must be weights"):
        s.fit(f0.P, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="x0 must have shape"):
        s.fit_batch(f0.P[None], np.zeros((1, 4, 24)))
    with pytest.raises(ValueError, match="200 samples but X has 199 rows"):
        ExactSolver(gram=Features(X[:-1]), labels=cor, lam=1e-4)
    with pytest.raises(ValueError, match="Corruption"):
        ExactSolver(gram=Features(X), labels=np.eye(4, dtype=int), lam=1e-4)


def test_feature_solver_label_sets_batched_equal_one_at_a_time(monkeypatch):
    """Several label sets of one X in one FeatureSolver (one batch on the shared problem,
    docs/theory.md section 2.5) give, round after round and for the PLL student, the outputs
    of solving each alone, within their certificates; each keeps its own given
    labels, so its clean and noisy accuracies are its own."""
    from scipy.special import softmax as sp_softmax

    from sdtheory.distill import run_rounds
    from sdtheory.models import Features

    monkeypatch.setattr(feature_solver, "FEATURE_DIRECT_MAX", 0)       # the CG path
    X, cor = _features_problem(150, 20, 4, 8, seed=5)
    rng = np.random.default_rng(1)
    sets = [cor] + [corruption_from_labels(
        cor.true, np.where(rng.random(150) < rate, rng.integers(0, 4, 150), cor.true), 4)
        for rate in (0.0, 0.5)]
    batch = ExactSolver(gram=Features(X), labels=sets, lam=1e-4)
    assert batch.given.shape == (3, 150) and batch.B == 3
    rb = run_rounds(batch, 2, pll=True, keep_outputs=True)
    for b, c in enumerate(sets):
        ra = run_rounds(ExactSolver(gram=Features(X), labels=c, lam=1e-4), 2, pll=True,
                        keep_outputs=True)
        for r in range(3):
            agree(ra.outputs[r][0], rb.outputs[r][b], ra.residual[r, 0], rb.residual[r, b])
            # each problem's weights give its own outputs
            W = rb.fits[r].infos[b].weights
            np.testing.assert_allclose(sp_softmax(X @ W.T, axis=1), rb.outputs[r][b], rtol=0,
                                       atol=1e-12)
        agree(ra.pll_outputs[0], rb.pll_outputs[b], ra.pll_residual[0], rb.pll_residual[b])
        for key in ("train_acc", "clean_acc", "noisy_acc"):
            np.testing.assert_array_equal(getattr(rb, key)[:, b], getattr(ra, key)[:, 0])
    assert np.isnan(rb.noisy_acc[:, 1]).all() and not np.isnan(rb.noisy_acc[:, 2]).any()
    with pytest.raises(ValueError, match="share K and the true labels"):
        ExactSolver(gram=Features(X), labels=[cor, corruption_from_labels(
            np.roll(cor.true, 1), cor.given, 4)], lam=1e-4)


def test_feature_randomized_spectrum_path_equals_eigh_path(monkeypatch):
    """Above FEATURE_EIGH_MAX the leading eigenpairs of X^T X come from a randomized subspace
    iteration through products with X: the same certified solution."""
    from sdtheory.models import Features

    X, cor = _features_problem(300, 40, 3, 20, seed=5)
    monkeypatch.setattr(feature_solver, "FEATURE_DIRECT_MAX", 0)     # the spectrum serves CG
    full = ExactSolver(gram=Features(X), labels=cor, lam=1e-4)
    monkeypatch.setattr(spectrum, "FEATURE_EIGH_MAX", 16)
    rand = ExactSolver(gram=Features(X), labels=cor, lam=1e-4)
    assert full.spectrum["method"] == "eigh" and rand.spectrum["method"] == "randomized"
    np.testing.assert_allclose(rand.spectrum["nu"][:3], full.spectrum["nu"][:3], rtol=1e-8)
    f1, f2 = full.fit(full.targets0()), rand.fit(rand.targets0())
    agree(f1.P, f2.P, f1.residual, f2.residual)


@pytest.mark.parametrize("lam", [1e-5, 1e-8])
def test_dense_newton_directions_meet_their_tolerance(monkeypatch, lam):
    """DenseProblem.direction, with and without the float32 stage: the float64 residual of
    J dZ = -F, computed in numpy, meets rtol. Where the float32 stage alone serves (rtol >=
    SINGLE_RTOL) its products' rounding, about 1e-6 relative, is allowed on top (10 x that);
    the float64 stage meets rtol down to 1e-6 (at lam = 1e-8 and rtol = 1e-9 its residual
    stops near 6e-8, with JAX's GMRES as with this one: not asserted)."""
    import jax

    from sdtheory.solvers.problems import SINGLE_RTOL

    m = two_level(4, 75, 0.4, 0.1)
    G = jitter(m.dense(), 0.01, seed=2)
    cor = corrupt_exact(transition_matrix("sym", 4, 0.5), m.sizes)
    plain = ExactSolver(gram=G, labels=cor, lam=lam)._problem
    monkeypatch.setattr(dense_solver, "SINGLE_MIN_SIZE", 64)
    mixed = ExactSolver(gram=G, labels=cor, lam=lam)._problem
    Np = plain.G.shape[0]
    T = np.full((Np, 4), 0.25)
    T[:300] = one_hot(cor.given, 4)
    Z = 3.0 * np.random.default_rng(0).standard_normal((Np, 4))
    Gn, s = np.asarray(plain.G), float(plain.s)
    evaluate = jax.jit(lambda problem, Z, T: problem.evaluate(Z, T))
    direction = jax.jit(lambda problem, Z, P, F, rtol: problem.direction(Z, P, F, rtol))
    for problem in (plain, mixed):
        P, _, F = (np.asarray(a) for a in evaluate(problem, Z, T))
        for rtol in (1e-1, 1e-2, 1e-3, 1e-4, 1e-6):
            d, its = (np.asarray(v) for v in direction(problem, Z, P, F, rtol))
            assert its >= 1
            Jd = d + s * Gn @ (P * d - P * np.sum(P * d, axis=1, keepdims=True))
            rel = np.linalg.norm(Jd + F) / np.linalg.norm(F)
            single = problem is mixed and rtol >= SINGLE_RTOL
            assert rel <= rtol + (1e-5 if single else 1e-3 * rtol), (rtol, rel)


@pytest.mark.parametrize("lam", [1e-5, 1e-8])
def test_single_precision_stage_gives_the_float64_solution(monkeypatch, lam):
    """From SINGLE_MIN_SIZE on, a dense problem keeps a float32 copy of G and solves each
    Newton system in two GMRES stages, float32 products then float64 (docs/theory.md
    section 2.4): the same certified solutions as the float64-only solve, for the teacher and
    for a warm-started student, each certificate checked independently in numpy."""
    m = two_level(4, 75, 0.4, 0.1)
    G = jitter(m.dense(), 0.01, seed=2)
    cor = corrupt_exact(transition_matrix("sym", 4, 0.5), m.sizes)
    plain = ExactSolver(gram=G, labels=cor, lam=lam)
    monkeypatch.setattr(dense_solver, "SINGLE_MIN_SIZE", 64)
    mixed = ExactSolver(gram=G, labels=cor, lam=lam)
    assert plain._problem.G32 is None and mixed._problem.G32.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(mixed._problem.G32)[:300, :300],
                                  G.astype(np.float32))
    T = plain.targets0()
    f_plain, f_mixed = plain.fit(T), mixed.fit(T)
    for f in (f_plain, f_mixed):
        assert certificate(G, T, f.P, lam) <= 1e-12
    agree(f_plain.P, f_mixed.P, f_plain.residual, f_mixed.residual)
    T1 = f_plain.P
    s_plain = plain.fit(T1, f_plain.info.logits)
    s_mixed = mixed.fit(T1, f_plain.info.logits)
    for f in (s_plain, s_mixed):
        assert certificate(G, T1, f.P, lam) <= 1e-12
    agree(s_plain.P, s_mixed.P, s_plain.residual, s_mixed.residual)
