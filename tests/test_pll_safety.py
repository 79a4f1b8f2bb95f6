"""The PLL student with unbalanced counts at low noise (docs/theory.md section 8.3): the
three-term margin, the model without its global level, the constant-cycle lemma, and the
collapse of one PLL round measured with the exact solver."""

import numpy as np
import pytest

import sdtheory as sd
from sdtheory import theory as th
from sdtheory.distill import pll_targets, self_distill
from sdtheory.metrics import margins
from sdtheory.solvers import ExactSolver, LinearSolver

# Section 8.3, example (a): K = 4, n = 28, six mislabelled samples, label 1 given 31 times.
EX_MODEL = dict(K=4, n=28, c=0.61, d=0.447)
EX_COUNTS = np.array([[26, 1, 1, 0], [0, 28, 0, 0], [1, 1, 26, 0], [1, 1, 0, 26]])
EX_LAM = 3.372e-4
# Exact PLL student margins p(true) - max other of the groups (0,0) (0,1) (0,2) (1,1) (2,0)
# (2,1) (2,2) (3,0) (3,1) (3,3), from the exact solver (certificate 1.3e-14).
EX_EXACT_MARGINS = [-0.006685900356430907, -0.006685900356430907, 0.25721700413572823,
                    0.010478829122815503, 0.21485157357399826, -0.015638498615772267,
                    -0.015638498615772156, 0.2131190032252015, -0.016948803725337358,
                    -0.016948803725337358]


def _a(model, lam):
    """a1, a2, a3 from the eigenvalues of section 5.1, written out here."""
    K, n, c, d = model.K, model.sizes[0], model.c, model.d
    KNlam = K * K * n * lam
    mus = (1 + (n - 1) * c + (K - 1) * n * d, 1 + (n - 1) * c - n * d, 1 - c)
    return [mu / (mu + KNlam) for mu in mus]


@pytest.fixture(scope="module")
def example():
    m = sd.two_level(**EX_MODEL)
    exact = self_distill(ExactSolver(gram=m, labels=EX_COUNTS, lam=EX_LAM), 2, pll=True)
    return m, exact


def test_example_exact_sd_reaches_100_but_pll_collapses(example):
    m, res = example
    assert res.pll.residual <= 1e-12 and max(r.residual for r in res.rounds) <= 1e-12
    # SD: 106 of 112 samples in rounds 0 and 1, all 112 from round 2
    assert [r.train_acc for r in res.rounds] == [106 / 112, 106 / 112, 1.0]
    assert res.r_star == 2
    # PLL: only class 1 (28) and three mislabelled samples are right: 31 of 112, no ties
    assert res.pll.train_acc == res.pll.train_acc_strict == 31 / 112
    mg = margins(res.pll.P, res.true)
    np.testing.assert_allclose(mg, EX_EXACT_MARGINS, rtol=0, atol=1e-9)
    assert np.min(np.abs(mg)) > 1e-3                    # far from the tie tolerance
    # every sample is predicted as class 1 except the groups (0,2), (2,0), (3,0)
    pred = np.argmax(res.pll.P, axis=1)
    right = [(int(k), int(j)) for k, j, p in zip(res.true, res.given, pred) if p == k]
    assert right == [(0, 2), (1, 1), (2, 0), (3, 0)]
    assert set(pred[pred != res.true]) == {1}
    # no tie in the teacher's top 3 (the collapse is not a tie-rule effect)
    top = -np.sort(-res.rounds[0].P, axis=1)
    assert np.min(top[:, 0] - top[:, 1]) > 0.1 and np.min(top[:, 1] - top[:, 2]) > 5e-4


def test_example_linear_prediction_agrees_group_by_group(example):
    m, res = example
    safe, info = th.pll_safe(m, EX_COUNTS, EX_LAM)
    s = th.pll_student(m, EX_COUNTS, EX_LAM)
    assert not safe and info["cause"] == "global"
    assert info["accuracy"] == 31 / 112 and info["dominant"] == 1
    assert info["constant_cycle"] is None and info["teacher_ties"] == 0
    # same partial labels as the exact teacher, same sign of every group's margin
    np.testing.assert_array_equal(
        s.targets, pll_targets(res.rounds[0].P, 100 * res.rounds[0].residual))
    np.testing.assert_array_equal(s.margin > 0, margins(res.pll.P, res.true) > 0)
    # the worst group (3, 1), against class 1, by the formula of section 8.3 with the means
    # counted by hand: class 3's groups get {0,3} (1 sample) and {1,3} (27), so
    # tbar_3(3) - tbar_3(1) = 1/56; label 1 is a candidate of 109 of 224 target halves,
    # class 3 of 28: tbar(3) - tbar(1) = -81/224.
    a1, a2, a3 = _a(m, EX_LAM)
    assert info["worst_group"] == (3, 1) and info["rival"] == 1
    assert info["instance"] == 0.0
    assert info["class"] == pytest.approx((a2 - a3) / 56, abs=1e-15)
    assert info["global"] == pytest.approx((a1 - a2) * (-81 / 224), abs=1e-15)
    assert info["margin"] == pytest.approx((a2 - a3) / 56 - (a1 - a2) * 81 / 224, abs=1e-15)
    assert info["margin"] == pytest.approx(-0.005252966229849776, abs=1e-12)
    # without the global level the same targets leave class 3 correct or tied, never wrong
    assert info["margin_without_global"] == 0.0


def test_linear_regime_teacher_correct_pll_one_quarter():
    """dev0 = 0.1 (linear regime): the teacher is 100% correct, every class k != 0 gets the
    partial label {k, 0} and class 0 gets {0, 2}; the student predicts class 0 (exactly 1/4
    of the samples are right, exact and linearised), a cycle 0 -> 2 -> 0."""
    m = sd.two_level(4, 97, 0.646, 0.557)
    C = np.array([[91, 0, 6, 0], [0, 89, 2, 6], [9, 0, 88, 0], [11, 1, 2, 83]])
    lam = 0.046
    res = self_distill(ExactSolver(gram=m, labels=C, lam=lam), 0, pll=True)
    assert res.rounds[0].train_acc == 1.0 and res.r_star == 0
    assert res.pll.train_acc == res.pll.train_acc_strict == 0.25
    safe, info = th.pll_safe(m, C, lam)
    s = th.pll_student(m, C, lam)
    assert np.max(np.abs(s.teacher - 0.25)) == pytest.approx(0.1, abs=0.01)
    assert not safe and info["cause"] == "global" and info["accuracy"] == 0.25
    assert info["constant_cycle"] == [0, 2] and info["tbar_dominant"] == 0.5
    # every class except 0 fails against class 0, by the global term alone:
    # (a1 - a2)(tbar(k) - 1/2), class and instance terms exactly 0
    a1, a2, _ = _a(m, lam)
    fail = s.true != 0
    assert np.all(s.rival[fail] == 0)
    np.testing.assert_array_equal(s.terms["class"][fail], 0.0)
    np.testing.assert_array_equal(s.terms["instance"][fail], 0.0)
    np.testing.assert_allclose(s.terms["global"][fail],
                               (a1 - a2) * (s.tbar[s.true[fail]] - 0.5), rtol=0, atol=1e-15)
    exact = margins(res.pll.P, res.true)
    np.testing.assert_array_equal(exact > 0, s.margin > 0)
    np.testing.assert_allclose(exact, [0.17312721228293776] * 2 + [-0.2641640155823574] * 3
                               + [-0.17312721228293776] * 2 + [-0.2641640155823574] * 4,
                               rtol=0, atol=1e-9)


def test_balanced_sym_control_is_safe():
    """Exact sym counts: split ties keep tbar uniform, the global term is 0, PLL is safe by a
    margin outside the measured band of section 8.3, and the exact student is 100% correct."""
    m = sd.two_level(4, 60, 0.4, 0.1)
    C = sd.exact_counts(sd.transition_matrix("sym", 4, 0.2), 60)
    safe, info = th.pll_safe(m, C, 1e-2)
    s = th.pll_student(m, C, 1e-2)
    assert safe and info["cause"] == "safe" and info["accuracy"] == 1.0
    np.testing.assert_allclose(s.tbar, 0.25, rtol=0, atol=1e-15)
    np.testing.assert_allclose(s.terms["global"], 0.0, atol=1e-15)
    assert info["teacher_ties"] == 4                   # the clean groups' tied wrong classes
    assert info["margin"] == pytest.approx(0.20025031289111384, abs=1e-12)
    assert info["margin"] > 0.03
    res = self_distill(ExactSolver(gram=m, labels=C, lam=1e-2), 0, pll=True)
    assert res.pll.train_acc_strict == 1.0
    assert np.min(margins(res.pll.P, res.true)) == pytest.approx(0.2153829, abs=1e-6)


def test_balanced_asym_cycle_ties_every_sample():
    """Asym eta = 0.2, K = 3, lam = 0.1: every class k gets {k, k+1}, a cycle 0 -> 1 -> 2;
    tbar is uniform, so every margin is exactly 0: 0% strictly correct, exact and linear."""
    m = sd.two_level(3, 60, 0.4, 0.1)
    C = sd.exact_counts(sd.transition_matrix("asym", 3, 0.2), 60)
    safe, info = th.pll_safe(m, C, 0.1)
    assert not safe and info["cause"] == "tie" and info["constant_cycle"] == [0, 1, 2]
    res = self_distill(ExactSolver(gram=m, labels=C, lam=0.1), 0, pll=True)
    assert res.rounds[0].train_acc == 1.0
    assert res.pll.train_acc_strict == 0.0 and res.pll.train_acc == 0.5
    assert np.max(np.abs(margins(res.pll.P, res.true))) < 1e-12


# ------------------------------------------------------------------------- the three terms

@pytest.mark.parametrize("seed", range(6))
def test_terms_are_the_closed_forms_for_equal_sizes(seed):
    """instance a3 (t_u(k) - t_u(l)), class (a2 - a3)(tbar_k(k) - tbar_k(l)), global
    (a1 - a2)(tbar(k) - tbar(l)) against the rival l; they sum to the margin."""
    rng = np.random.default_rng(seed)
    K, n = int(rng.integers(3, 6)), int(rng.integers(10, 60))
    c = float(rng.uniform(0.2, 0.9))
    m = sd.two_level(K, n, c, float(rng.uniform(-0.02, c - 0.05)))
    C = np.array([rng.multinomial(n, rng.dirichlet(np.ones(K))) for _ in range(K)])
    lam = float(10 ** rng.uniform(-4, -1))
    s = th.pll_student(m, C, lam)
    a1, a2, a3 = _a(m, lam)
    u = np.arange(s.true.size)
    k, rv = s.true, s.rival
    T, w = s.targets, s.count
    tbar = (w[:, None] * T).sum(0) / w.sum()
    tk = np.zeros((K, K))
    np.add.at(tk, k, w[:, None] * T)
    tk /= n
    np.testing.assert_allclose(s.terms["instance"], a3 * (T[u, k] - T[u, rv]), atol=1e-15)
    np.testing.assert_allclose(s.terms["class"], (a2 - a3) * (tk[k, k] - tk[k, rv]), atol=1e-15)
    np.testing.assert_allclose(s.terms["global"], (a1 - a2) * (tbar[k] - tbar[rv]), atol=1e-15)
    np.testing.assert_allclose(sum(s.terms.values()), s.margin, atol=1e-15)
    np.testing.assert_allclose(s.tbar, tbar, atol=1e-15)


def test_three_level_global_term_is_a_glob_minus_a_sup():
    m = sd.three_level(2, 2, 15, 0.6, 0.3, 0.1)
    C = np.array([[11, 2, 1, 1], [0, 13, 2, 0], [3, 0, 12, 0], [0, 1, 0, 14]])
    s = th.pll_student(m, C, 2e-3)
    a = th.averaging_eigenvalues(m, 2e-3)
    np.testing.assert_allclose(s.terms["global"], (a["global"] - a["superclass"])
                               * (s.tbar[s.true] - s.tbar[s.rival]), rtol=0, atol=1e-15)


@pytest.mark.parametrize("model", [
    sd.two_level(3, (5, 7, 9), 0.5, 0.2),
    sd.two_level(4, (3, 6, 4, 8), 0.7, -0.05),
    sd.three_level(2, 2, (4, 6, 5, 3), 0.6, 0.3, 0.1),
], ids=["two-level", "two-level-negative-d", "three-level"])
def test_without_global_is_the_gram_matrix_less_its_all_samples_level(model, rng):
    """A0 of section 8.3 built densely from G - g 11^T (g = d, or e three-level) on the
    samples, against margin_without_global of the group-level student; and the student
    itself against the linear solver's PLL round."""
    K, lam = model.K, 3e-3
    C = np.array([rng.multinomial(nk, rng.dirichlet(np.ones(K))) for nk in model.sizes])
    s = th.pll_student(model, C, lam)
    ref = self_distill(LinearSolver(gram=model, labels=C, lam=lam), 0, pll=True)
    np.testing.assert_allclose(s.P, ref.pll.P, rtol=0, atol=1e-15)
    np.testing.assert_allclose(s.teacher, ref.rounds[0].P, rtol=0, atol=1e-15)
    g = model.e if model.three_level else model.d
    G0 = model.dense() - g
    N = model.N
    A0 = G0 @ np.linalg.inv(G0 + K * N * lam * np.eye(N))
    # samples in (true, given) group order: class by class, then given label
    unit = np.repeat(np.arange(s.true.size), s.count.astype(int))
    assert np.array_equal(s.true[unit], model.labels())
    P0 = 1 / K + A0 @ (s.targets[unit] - 1 / K)
    np.testing.assert_allclose(margins(P0, s.true[unit]), s.margin_without_global[unit],
                               rtol=0, atol=1e-12)
    m0, lam0 = th.without_global(model, lam)
    assert lam0 == pytest.approx(lam / (1 - g), rel=1e-15)
    np.testing.assert_allclose(m0.dense() * (1 - g), G0, rtol=0, atol=1e-15)


# --------------------------------------------------------------------- the constant cycle

def test_constant_cycle_finds_cycles_and_only_constant_classes():
    true = np.array([0, 0, 1, 1, 2, 2])
    half = lambda a, b: np.eye(3)[a] / 2 + np.eye(3)[b] / 2   # noqa: E731
    T = np.array([half(0, 1), half(0, 1), half(1, 0), half(1, 0), half(2, 0), half(2, 1)])
    assert th.pll_constant_cycle(T, true) == [0, 1]
    # class 1 not constant: no cycle (2 is not constant either)
    T2 = T.copy()
    T2[3] = half(1, 2)
    assert th.pll_constant_cycle(T2, true) is None
    # ... unless the odd unit has no samples
    assert th.pll_constant_cycle(T2, true, weight=[5, 1, 3, 0, 2, 2]) == [0, 1]
    # split targets (1/4 each on two tied second classes) are not a pair {k, s(k)}
    T3 = T.copy()
    T3[0] = T3[1] = [0.5, 0.25, 0.25]
    assert th.pll_constant_cycle(T3, true) is None
    T4 = np.array([half(0, 1), half(0, 1), half(1, 2), half(1, 2), half(2, 0), half(2, 0)])
    assert th.pll_constant_cycle(T4, true) == [0, 1, 2]


def test_without_global_rejects_out_of_range_lam():
    with pytest.raises(ValueError, match="lam"):
        th.without_global(sd.two_level(3, 10, 0.4, 0.1), 0.0)
