"""Theory layer (docs/theory.md sections 4, 7, 8): a_j, the per-instance form, Delta, r*, the
PLL conditions."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import sdtheory as sd
from sdtheory import theory as th
from sdtheory.distill import accuracy, self_distill
from sdtheory.solvers import ExactSolver, LinearSolver

# docs/theory.md section 8 (a): the public reference counts
REF_COUNTS = [[60, 30, 20, 10], [10, 60, 30, 20], [20, 10, 60, 30], [30, 20, 10, 60]]


# ------------------------------------------------------------------------------ a_j

def test_averaging_eigenvalues_two_level_formula():
    m = sd.two_level(4, 120, 0.4, 0.1)
    a = th.averaging_eigenvalues(m, 1e-3)
    KNlam = 4 * 480 * 1e-3
    mu1, mu2, mu3 = 1 + 119 * 0.4 + 3 * 120 * 0.1, 1 + 119 * 0.4 - 120 * 0.1, 0.6
    assert list(a) == ["global", "class", "instance"]
    assert a["global"] == pytest.approx(mu1 / (mu1 + KNlam), rel=1e-15)
    assert a["class"] == pytest.approx(mu2 / (mu2 + KNlam), rel=1e-15)
    assert a["instance"] == pytest.approx(0.6 / 2.52, rel=1e-15)
    assert a["instance"] == pytest.approx(mu3 / (mu3 + KNlam), rel=1e-15)


@pytest.mark.parametrize("model", [
    sd.two_level(3, 7, 0.5, 0.2),
    sd.two_level(2, 5, 0.3, -0.05),
    sd.three_level(2, 3, 4, 0.6, 0.3, 0.1),
    sd.three_level(3, 2, 5, 0.7, 0.2, -0.02),
], ids=["two", "two-negative-d", "three-2x3", "three-3x2"])
def test_averaging_eigenvalues_are_the_spectrum_of_A(model):
    """a_j with their multiplicities = eigenvalues of A = G (G + K N lam I)^{-1} (dense)."""
    lam = 3e-3
    G = model.dense()
    A = G @ np.linalg.inv(G + model.K * model.N * lam * np.eye(model.N))
    ev = np.sort(np.linalg.eigvals(A).real)
    a = th.averaging_eigenvalues(model, lam)
    expected = np.sort(np.repeat([a[e.name] for e in model.spectrum()],
                                 [e.multiplicity for e in model.spectrum()]))
    np.testing.assert_allclose(ev, expected, rtol=0, atol=1e-12)


def test_averaging_eigenvalues_reject_bad_input():
    with pytest.raises(ValueError, match="lam"):
        th.averaging_eigenvalues(sd.two_level(3, 5), 0.0)
    with pytest.raises(ValueError, match="equal class sizes"):
        th.averaging_eigenvalues(sd.two_level(3, (4, 5, 6)), 1e-3)


# ------------------------------------------------------------------------------ section 7 form

def _random_counts(rng, K, n):
    return np.array([rng.multinomial(n, rng.dirichlet(np.ones(K))) for _ in range(K)])


@pytest.mark.parametrize("r", [0, 1, 4, 25])
def test_decomposition_equals_linear_solver_reference_counts(r):
    m = sd.two_level(4, 120, 0.4, 0.1)
    D = th.decompose(m, REF_COUNTS, 1e-3, r)
    P = LinearSolver(gram=m, labels=REF_COUNTS, lam=1e-3).round_outputs(r)
    np.testing.assert_allclose(D.P, P, rtol=0, atol=1e-12)
    assert set(D.terms) == {"uniform", "global", "class", "instance"}
    # balanced counts: y-bar = 1/K, the global term vanishes
    np.testing.assert_allclose(D.terms["global"], 0.0, atol=1e-15)


def test_decomposition_reference_round0_value():
    """docs/theory.md section 8 (a): linearised teacher output of group (true 0, given 1)."""
    D = th.decompose(sd.two_level(4, 120, 0.4, 0.1), REF_COUNTS, 1e-3, 0)
    u = int(np.flatnonzero((D.true == 0) & (D.given == 1))[0])
    np.testing.assert_allclose(D.P[u], [0.3684913217623498, 0.42857142857142855,
                                        0.13113781338080402, 0.07179943628541759], atol=1e-14)


@pytest.mark.parametrize("seed", range(6))
def test_decomposition_equals_linear_solver_unbalanced(seed):
    rng = np.random.default_rng(seed)
    K = int(rng.integers(2, 7))
    n = int(rng.integers(3, 300))
    c = rng.uniform(0.2, 0.9)
    m = sd.two_level(K, n, c, rng.uniform(0.0, c - 0.05))
    C = _random_counts(rng, K, n)
    lam = 10 ** rng.uniform(-5, 0)
    lin = LinearSolver(gram=m, labels=C, lam=lam)
    for r in (0, 2, 9):
        D = th.decompose(m, C, lam, r)
        np.testing.assert_allclose(D.P, lin.round_outputs(r), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(D.true, lin.true)
        np.testing.assert_array_equal(D.given, lin.given)
    assert not sd.is_balanced(C)


@pytest.mark.parametrize("S,m_", [(2, 2), (3, 2), (2, 3), (1, 4), (4, 1)])
def test_decomposition_three_level_equals_linear_solver(S, m_, rng):
    model = sd.three_level(S, m_, 30, 0.6, 0.3, 0.1)
    C = _random_counts(rng, model.K, 30)
    for r in (0, 3):
        D = th.decompose(model, C, 1e-3, r)
        assert "superclass" in D.terms
        lin = LinearSolver(gram=model, labels=C, lam=1e-3)
        np.testing.assert_allclose(D.P, lin.round_outputs(r),
                                   rtol=0, atol=1e-12)


def test_decomposition_terms_are_the_stated_formula():
    """Each term is a_j^t times its label projection (docs/theory.md section 5), t = r + 1."""
    m = sd.two_level(3, 10, 0.4, 0.1)
    C = np.array([[6, 3, 1], [2, 7, 1], [0, 5, 5]])
    lam, r = 1e-2, 2
    D = th.decompose(m, C, lam, r)
    a = th.averaging_eigenvalues(m, lam)
    ybar_k = C / 10.0
    ybar = C.sum(axis=0) / 30.0
    for u, (k, j) in enumerate(zip(D.true, D.given)):
        np.testing.assert_allclose(D.terms["global"][u], a["global"] ** 3 * (ybar - 1 / 3),
                                   atol=1e-15)
        np.testing.assert_allclose(D.terms["class"][u], a["class"] ** 3 * (ybar_k[k] - ybar),
                                   atol=1e-15)
        np.testing.assert_allclose(D.terms["instance"][u],
                                   a["instance"] ** 3 * (np.eye(3)[j] - ybar_k[k]), atol=1e-15)
    assert D.count.tolist() == C[D.true, D.given].tolist()


def test_decomposition_rejects_bad_input():
    m = sd.two_level(3, 10)
    with pytest.raises(ValueError, match="row 1 sums to 9"):
        th.decompose(m, [[10, 0, 0], [0, 9, 0], [0, 0, 10]], 1e-3, 0)
    with pytest.raises(ValueError, match="round r must be an integer >= 0"):
        th.decompose(m, np.diag([10, 10, 10]), 1e-3, -1)


# ------------------------------------------------------------------------------ eta boundary

@pytest.mark.parametrize("kind,K,m,expected", [
    ("sym", 2, None, 0.5), ("sym", 4, None, 0.75), ("sym", 10, None, 0.9),
    ("asym", 2, None, 0.5), ("asym", 4, None, 2 / 3), ("asym", 10, None, 10 / 12),
    ("pairflip", 2, None, 0.5), ("pairflip", 7, None, 0.5),
    ("superclass", 6, 2, 0.5), ("superclass", 6, 3, 2 / 3), ("superclass", 12, 4, 0.75),
])
def test_eta_boundary_against_delta_of_transition_matrix(kind, K, m, expected):
    eb = th.eta_boundary(kind, K, m)
    assert eb == pytest.approx(expected, abs=1e-15)
    sup = tuple(k // m for k in range(K)) if m else None

    def dlt(eta):
        return sd.delta(sd.transition_matrix(kind, K, eta, superclass_of=sup))

    assert dlt(eb - 1e-9) > 0
    assert abs(dlt(eb)) < 1e-12
    assert dlt(eb + 1e-9) < 0
    for eta in np.linspace(0, 0.99, 12):
        assert th.delta_from_eta(kind, K, eta, m) == pytest.approx(dlt(eta), abs=1e-15)


def test_eta_boundary_sym_formula_of_theory_md():
    """Section 6.3: symmetric noise Delta = (K - 1 - K eta)/(K - 1)."""
    for K in (2, 3, 5):
        for eta in (0.0, 0.2, 0.6):
            assert th.delta_from_eta("sym", K, eta) == pytest.approx((K - 1 - K * eta) / (K - 1))


def test_eta_boundary_rejects_bad_input():
    with pytest.raises(ValueError, match="kind"):
        th.eta_boundary("uniform", 4)
    with pytest.raises(ValueError, match="K"):
        th.eta_boundary("sym", 1)
    with pytest.raises(ValueError, match="m"):
        th.eta_boundary("superclass", 6)
    with pytest.raises(ValueError, match="divide"):
        th.eta_boundary("superclass", 7, 2)


# ------------------------------------------------------------------------------ r*

def test_r_star_closed_strict_at_exact_integer():
    # (a2/a3)^t = 2^t, 1 + 1/Delta = 4: t = 2 gives equality, not enough; r* = 2 (t = 3)
    assert th.r_star_closed(1 / 3, 0.8, 0.4) == 2
    # just above and below the integer
    assert th.r_star_closed(1 / 3 + 1e-9, 0.8, 0.4) == 1
    assert th.r_star_closed(1 / 3 - 1e-9, 0.8, 0.4) == 2
    assert th.r_star_closed(0.5, 0.9, 0.3) == 1     # 3^t > 3 first at t = 2
    assert th.r_star_closed(2.0, 0.9, 0.3) == 0     # 3 > 1.5 at t = 1


def test_r_star_closed_none_cases():
    assert th.r_star_closed(0.0, 0.9, 0.3) is None
    assert th.r_star_closed(-0.2, 0.9, 0.3) is None
    assert th.r_star_closed(None, 0.9, 0.3) is None
    assert th.r_star_closed(0.5, 0.3, 0.3) is None


def test_r_star_closed_matches_floor_formula_off_integers(rng):
    for _ in range(200):
        dlt = rng.uniform(0.01, 1.0)
        a3 = rng.uniform(0.01, 0.9)
        a2 = rng.uniform(a3 * 1.001, 1.0)
        x = math.log(1 + 1 / dlt) / math.log(a2 / a3)
        if abs(x - round(x)) < 1e-9:
            continue
        assert th.r_star_closed(dlt, a2, a3) == math.floor(x)


def test_r_star_public_reference_authors_defaults():
    """docs/theory.md section 8 (b): K=4, n=500, c=.4, d=.1, lam=1e-5, sym exact counts; the
    linearised r* of the public vectors is 6, 7, 11, 14 at eta = 0.1, 0.3, 0.5, 0.6."""
    m = sd.two_level(4, 500, 0.4, 0.1)
    got = []
    for eta, dl in ((0.1, 0.872), (0.3, 0.6), (0.5, 0.336), (0.6, 0.2)):
        C = sd.exact_counts(sd.transition_matrix("sym", 4, eta), 500)
        assert sd.delta(C) == pytest.approx(dl, abs=1e-12)
        got.append(th.r_star_theory(m, C, 1e-5))
        assert th.r_star_linear(m, C, 1e-5) == got[-1]
    assert got == [6, 7, 11, 14]


def _linear_solver_r_star(m, C, lam, last):
    lin = LinearSolver(gram=m, labels=C, lam=lam)
    for r in range(last + 1):
        if accuracy(lin.round_outputs(r), lin.true, lin.given, lin.weight[0])[0] == 1.0:
            return r
    return None


@settings(max_examples=150, deadline=None)
@given(K=st.integers(2, 6), n=st.integers(5, 200), c=st.floats(0.15, 0.95),
       gap=st.floats(0.02, 0.6), log_lam=st.floats(-6, -1), eta_frac=st.floats(0.0, 1.2))
def test_r_star_closed_equals_linear_solver(K, n, c, gap, log_lam, eta_frac):
    """Section 7.2, balanced sym noise with exact counts: the closed-form r* is the first round
    at which the linear solver's outputs are 100% correct."""
    d = c - gap
    try:
        m = sd.two_level(K, n, c, d)
    except ValueError:
        assume(False)
    lam = 10.0 ** log_lam
    eta = min(0.99, eta_frac * th.eta_boundary("sym", K))
    C = sd.exact_counts(sd.transition_matrix("sym", K, eta), n)
    a = th.averaging_eigenvalues(m, lam)
    dlt = sd.delta(C)
    rc = th.r_star_theory(m, C, lam)
    assume(rc is None or rc <= 500)
    if rc is not None and rc > 0 and np.any(C[~np.eye(K, dtype=bool)]):
        # the decisive margins a3^t((a2/a3)^t - 1) Delta - a3^t at t = r*, r* + 1 must be
        # resolvable next to the accuracy rule's tie tolerance (1e-12)
        for t in (rc, rc + 1):
            mg = (a["class"] ** t - a["instance"] ** t) * dlt - a["instance"] ** t
            assume(abs(mg) > 1e-10)
    last = 300 if rc is None else rc
    assert _linear_solver_r_star(m, C, lam, last) == rc
    assert th.r_star_linear(m, C, lam, max_rounds=last) == rc


def test_r_star_three_level_superclass_noise():
    """Section 7.2: superclass noise on the three-level model uses (a_cls, a_inst)."""
    m = sd.three_level(2, 3, 40, 0.6, 0.3, 0.1)
    C = sd.exact_counts(sd.transition_matrix("superclass", 6, 0.5,
                                             superclass_of=m.superclass_of), 40)
    a = th.averaging_eigenvalues(m, 1e-4)
    assert th.closed_form_factors(m, C, 1e-4) == (a["class"], a["instance"])
    rc = th.r_star_theory(m, C, 1e-4)
    assert rc == th.r_star_closed(sd.delta(C), a["class"], a["instance"])
    assert rc == _linear_solver_r_star(m, C, 1e-4, rc) == th.r_star_linear(m, C, 1e-4)
    assert rc is not None and rc > 0


def test_r_star_unbalanced_uses_margins_and_can_be_lost_again():
    """Unbalanced counts: the a1 term decides late rounds (section 7.3, direct margins)."""
    m = sd.two_level(3, 20, 0.4, 0.1)
    C = np.array([[12, 6, 2], [2, 12, 6], [8, 2, 10]])
    lam = 1e-2
    assert not sd.is_balanced(C)
    with pytest.raises(ValueError, match="balanced"):
        th.closed_form_factors(m, C, lam)
    rl = th.r_star_linear(m, C, lam, max_rounds=200)
    assert rl == th.r_star_theory(m, C, lam, max_rounds=200)
    assert rl == _linear_solver_r_star(m, C, lam, 200)
    margins, _, _ = th.group_margins(m, C, lam, range(0, 400))
    ok = np.all(margins > 0, axis=1)
    assert ok[rl] and not ok[:rl].any()
    # label 0 is the most frequent given label: the global term eventually wins
    assert not ok[-1]


def test_first_perfect_linear_several_tolerances_equal_round_by_round(rng):
    """Several tolerances in one call (the sweep's r* and its fragility) give, per tolerance,
    the first round whose smallest margin sum_l coef[p, l] a_l^(r+1) exceeds it, evaluated
    here round by round; and each equals a call with that tolerance alone. Margins are set
    to cross the tolerances at different rounds (some cells never)."""
    C, P, L, R = 300, 6, 3, 40
    a = rng.uniform(0.3, 0.99, size=(C, L))
    coef = rng.normal(size=(C, P, L))
    coef[:, :, 0] = np.abs(coef[:, :, 0]) + 0.05          # the slowest-decaying level wins
    a[:, 0] = 0.995
    tols = np.array([1e-2, 1e-2 * 10, 1e-2 / 10])
    got = th.first_perfect_linear(coef, a, R, tie_tol=tols)
    t = np.arange(1, R + 2)
    worst = np.min(np.einsum("cpl,ctl->ctp", coef, a[:, None, :] ** t[None, :, None]), axis=2)
    for i, tol in enumerate(tols):
        ok = worst > tol
        want = np.where(ok.any(axis=1), np.argmax(ok, axis=1), np.nan)
        np.testing.assert_array_equal(got[i], want)
        np.testing.assert_array_equal(th.first_perfect_linear(coef, a, R, tie_tol=tol), want)
    assert np.isnan(got).any() and (np.nan_to_num(got) > 0).any() and (got == 0).any()
    assert not np.array_equal(got[1], got[2])


def test_r_star_noiseless_is_zero():
    m = sd.two_level(3, 10, 0.4, 0.1)
    assert th.r_star_theory(m, np.diag([10, 10, 10]), 1e-5) == 0


def test_group_margins_match_exact_teacher_signs_at_large_lam():
    """Large lam: outputs near 1/K, where (L) is accurate; margins agree with (E) in sign."""
    m = sd.two_level(4, 120, 0.4, 0.1)
    lam = 1.0
    margins, true, given = th.group_margins(m, REF_COUNTS, lam, [0, 1, 2])
    res = self_distill(ExactSolver(gram=m, labels=REF_COUNTS, lam=lam), 2)
    for r in range(3):
        P = res.rounds[r].P
        idx = np.arange(P.shape[0])
        others = P.copy()
        others[idx, true] = -np.inf
        exact = P[idx, true] - others.max(axis=1)
        np.testing.assert_allclose(margins[r], exact, rtol=0.05, atol=1e-6)


# ------------------------------------------------------------------------------ PLL (section 8)

def test_pll_conditions_public_reference_margins():
    """Reference counts (reference a): plurality and pair mass hold with margin 1/4; the
    teacher-ranking condition fails for the (k, k+3) groups, yet the PLL student reaches 1.0
    (the conditions are sufficient, not necessary: the teacher ranks k first, j second)."""
    m = sd.two_level(4, 120, 0.4, 0.1)
    ok, mg = th.pll_conditions(m, REF_COUNTS, 1e-3)
    a = th.averaging_eigenvalues(m, 1e-3)
    a2, a3 = a["class"], a["instance"]
    assert mg["plurality"] == pytest.approx(0.25, abs=1e-15)
    assert mg["pair_mass"] == pytest.approx(0.25, abs=1e-15)
    assert mg["teacher_ranking"] == pytest.approx(a3 - (a2 - a3) * (0.5 - 10 / 120), abs=1e-15)
    assert mg["teacher_ranking"] == pytest.approx(-0.05859664738169412, abs=1e-12)
    assert not ok
    res = self_distill(ExactSolver(gram=m, labels=REF_COUNTS, lam=1e-3), 0, pll=True)
    assert res.pll.train_acc == 1.0


def test_pll_conditions_hold_and_imply_one_round_for_sym_noise():
    m = sd.two_level(4, 100, 0.4, 0.1)
    C = sd.exact_counts(sd.transition_matrix("sym", 4, 0.6), 100)   # C_kk = .4, C_kl = .2
    ok, mg = th.pll_conditions(m, C, 1e-4)
    assert ok
    assert mg["plurality"] == pytest.approx(0.2, abs=1e-15)
    assert mg["pair_mass"] == pytest.approx(0.4, abs=1e-15)
    assert self_distill(ExactSolver(gram=m, labels=C, lam=1e-4), 0, pll=True).pll.train_acc == 1.0


def test_pll_conditions_pairflip_tie_has_zero_pair_mass():
    m = sd.two_level(3, 10, 0.4, 0.1)
    C = sd.exact_counts(sd.transition_matrix("pairflip", 3, 0.3), 10)
    ok, mg = th.pll_conditions(m, C, 1e-3)
    assert mg["pair_mass"] == 0.0 and not ok


def test_pll_conditions_reject_unbalanced_and_three_level():
    with pytest.raises(ValueError, match="balanced"):
        th.pll_conditions(sd.two_level(3, 10), [[8, 2, 0], [0, 10, 0], [0, 0, 10]], 1e-3)
    with pytest.raises(ValueError, match="two-level"):
        th.pll_conditions(sd.three_level(2, 2, 5, 0.6, 0.3, 0.1), np.diag([5] * 4), 1e-3)


def test_pll_conditions_no_mislabelled_sample():
    ok, mg = th.pll_conditions(sd.two_level(3, 10), np.diag([10, 10, 10]), 1e-3)
    assert mg["teacher_ranking"] == math.inf
    assert mg["pair_mass"] == pytest.approx(0.0) and not ok
