"""Relation-guided distillation (sdtheory.relation, docs/theory.md section 15): the relation
matrix against a brute-force construction, the round driver against explicit iterations, and
the method through simulate."""

import numpy as np
import pytest
from scipy import sparse

from sdtheory.distill import self_distill
from sdtheory.jobs.simulate import SimConfig, simulate
from sdtheory.models import two_level
from sdtheory.noise import (
    corrupt_exact,
    corruption_from_counts,
    exact_counts,
    transition_matrix,
)
from sdtheory.relation import gmm_view, relation_matrix, relation_purity
from sdtheory.solvers import LinearSolver


def test_relation_matrix_equals_brute_force(rng):
    Phi = rng.standard_normal((40, 5))
    k, tau = 6, 0.2
    R = relation_matrix(Phi, k=k, tau=tau).toarray()
    Z = Phi / np.linalg.norm(Phi, axis=1, keepdims=True)
    for i in range(40):
        s = np.array([Z[i] @ Z[j] if j != i else -np.inf for j in range(40)])
        nb = np.argsort(-s)[:k]
        w = np.exp(s[nb] / tau)
        want = np.zeros(40)
        want[nb] = w / w.sum()
        np.testing.assert_allclose(R[i], want, rtol=0, atol=1e-15)
    assert np.allclose(R.sum(axis=1), 1.0, atol=1e-15) and np.all(np.diag(R) == 0)


def test_relation_purity_grows_with_the_views_snr():
    y = np.repeat(np.arange(4), 50)
    pur = [relation_purity(relation_matrix(gmm_view(y, snr=s, seed=3), k=10), y)
           for s in (0.01, 0.1, 1.0, 10.0)]
    assert pur[0] < 0.45 and pur[-1] > 0.99                  # 1/K = 0.25 at no signal
    assert all(b > a for a, b in zip(pur, pur[1:]))


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_relation_rounds_equal_explicit_iteration(alpha, rng):
    """self_distill with a relation on the linearised solver against the explicit recursion
    P_r = 1/K + A (T_r - 1/K), T_r = alpha Y + (1 - alpha) R P_(r-1), A = G (G + K N lam)^-1
    from numpy's solve; R = I reduces to label-weighted SD."""
    model = two_level(3, 15, 0.5, 0.1)
    G = model.dense()
    cor = corrupt_exact(transition_matrix("sym", 3, 0.4), model.sizes)
    lam, N, K = 1e-3, 45, 3
    R = relation_matrix(gmm_view(cor.true, snr=0.5, seed=1), k=5)
    s = LinearSolver(gram=G, labels=cor, lam=lam)
    res = self_distill(s, 4, label_weight=alpha, relation=R)
    A = np.linalg.solve(G + K * N * lam * np.eye(N), G).T         # G (G + K N lam)^-1
    Y = s.targets0()
    T = Y
    for rr in res.rounds:
        P = 1 / K + A @ (T - 1 / K)
        np.testing.assert_allclose(rr.P, P, rtol=0, atol=1e-11)
        T = alpha * Y + (1 - alpha) * (R @ P)
    eye = self_distill(s, 4, label_weight=alpha, relation=np.eye(N))
    plain = self_distill(s, 4, label_weight=alpha)
    for a, b in zip(eye.rounds, plain.rounds):
        np.testing.assert_allclose(a.P, b.P, rtol=0, atol=1e-14)


def test_relation_method_corrects_labels_sooner_than_sd():
    """On a Gaussian mixture at sampled eta = 0.5 (K = 4, n = 100, lam = 1e-3), one round with a
    pure relation (view snr 2) corrects almost every label; plain SD's first student does not
    (measured: 0.998 against 0.877)."""
    common = dict(model="gmm", K=4, n=100, c=0.4, d=0.1, dim=50, lam=1e-3, eta=0.5,
                  sampled=True, rounds=1, solvers=("exact",))
    sd_doc = simulate(SimConfig(**common))
    rel_doc = simulate(SimConfig(**common, method="relation", relation_snr=2.0))
    assert rel_doc["relation_purity"] > 0.99 and rel_doc["r_star_theory"] is None
    sd1 = sd_doc["solvers"]["exact"]["rounds"][1]["train_acc"]
    rel1 = rel_doc["solvers"]["exact"]["rounds"][1]["train_acc"]
    assert rel1 >= 0.99 and rel1 >= sd1 + 0.05


def test_relation_refusals(rng):
    with pytest.raises(ValueError, match="relation neighbours k must be an integer in"):
        relation_matrix(rng.standard_normal((5, 2)), k=5)
    with pytest.raises(ValueError, match="relation temperature tau must be > 0"):
        relation_matrix(rng.standard_normal((5, 2)), k=2, tau=0)
    with pytest.raises(ValueError, match="zero row"):
        relation_matrix(np.zeros((5, 2)), k=2)
    with pytest.raises(ValueError, match="relation must be a"):
        model = two_level(3, 5, 0.5, 0.1)
        cor = corrupt_exact(transition_matrix("sym", 3, 0.2), model.sizes)
        self_distill(LinearSolver(gram=model.dense(), labels=cor, lam=1e-3), 1,
                     relation=np.eye(4))


@pytest.mark.parametrize("purity", [0.9, 0.4])
def test_block_relation_group_reduced_equals_per_sample(purity):
    """A block-constant relation (class_relation) on the group units of a block model
    (unit_relation with the group sizes) gives the same exact outputs as the per-sample
    relation R_ij = Rbar[y_i, y_j] / n on the dense G, round after round; the per-sample matrix
    is row-stochastic with the stated purity."""
    from sdtheory.relation import class_relation, unit_relation
    from sdtheory.solvers import ExactSolver

    model = two_level(3, 12, 0.5, 0.1)
    cor = corrupt_exact(transition_matrix("sym", 3, 0.4), model.sizes)
    Rbar = class_relation(3, purity)
    group = ExactSolver(gram=model, labels=cor.counts, lam=1e-4)
    dense = ExactSolver(gram=model.dense(), labels=cor, lam=1e-4)
    Rg = unit_relation(Rbar, group.true, group.weight[0])
    Rs = unit_relation(Rbar, dense.true, np.ones(dense.true.size))
    assert np.allclose(Rs.sum(axis=1), 1.0, atol=1e-15)
    assert relation_purity(sparse.csr_matrix(Rs), dense.true) == pytest.approx(purity,
                                                                              abs=1e-14)
    rg = self_distill(group, 4, label_weight=0.2, relation=Rg)
    rd = self_distill(dense, 4, label_weight=0.2, relation=Rs)
    unit_of = {(t, g): u for u, (t, g) in enumerate(zip(group.true, group.given))}
    u = np.array([unit_of[(t, g)] for t, g in zip(dense.true, dense.given)])
    for a, b in zip(rg.rounds, rd.rounds):
        np.testing.assert_allclose(a.P[u], b.P, rtol=0,
                                   atol=1e3 * (a.residual + b.residual) + 1e-12)
        assert a.train_acc == pytest.approx(b.train_acc, abs=1e-12)


def test_linearised_relation_rounds_converge_to_the_closed_form_limit():
    """Linearised relation-guided rounds converge at the spectral radius rho of
    M = (1 - alpha) A R to P_inf = 1/K + (I - M)^-1 alpha A (Y - 1/K): after 60 rounds the gap
    is below 2 rho^60 ||P_0 - P_inf|| (+ 1e-13), and the ratio of successive differences
    tends to rho."""
    from sdtheory.relation import relation_limit, relation_linear_map

    model = two_level(3, 15, 0.5, 0.1)
    G = model.dense()
    cor = corrupt_exact(transition_matrix("sym", 3, 0.4), model.sizes)
    R = relation_matrix(gmm_view(cor.true, snr=0.3, seed=2), k=6)
    s = LinearSolver(gram=G, labels=cor, lam=1e-2)
    alpha = 0.3
    rho = float(np.max(np.abs(np.linalg.eigvals(relation_linear_map(s.op, R, alpha)))))
    assert 0 < rho < 1
    limit = relation_limit(s.op, R, alpha, s.targets0(), 3)
    res = self_distill(s, 60, label_weight=alpha, relation=R)
    P = [rr.P for rr in res.rounds]
    gap0 = np.abs(P[0] - limit).max()
    assert np.abs(P[60] - limit).max() <= 2 * rho ** 60 * gap0 * P[0].size + 1e-13
    ratio = np.linalg.norm(P[40] - P[39]) / np.linalg.norm(P[39] - P[38])
    assert ratio == pytest.approx(rho, rel=0.05)
    with pytest.raises(ValueError, match="do not converge"):
        relation_limit(s.op, 3.0 * np.eye(45), 0.0, s.targets0(), 3)


@pytest.mark.parametrize("alpha,purity", [(0.0, 0.9), (0.6, 0.5)])
def test_relation_rate_is_the_radius_on_the_directions_that_carry_error(alpha, purity):
    """Block relation (purity q) on a dense two-level G: with balanced (symmetric exact)
    counts the global direction carries no error, and the rounds converge at the radius on
    the other directions, below rho; with unbalanced counts at rho. Measured: the ratio of
    successive differences of linearised rounds, taken where they have fallen by up to 1e9
    (rel. 2%)."""
    from sdtheory.relation import class_relation, relation_rate, unit_relation

    model = two_level(3, 15, 0.5, 0.1)
    G = model.dense()
    for counts, balanced in ((exact_counts(transition_matrix("sym", 3, 0.3), [15] * 3), True),
                             (np.array([[11, 4, 0], [1, 14, 0], [5, 0, 10]]), False)):
        cor = corruption_from_counts(counts)
        s = LinearSolver(gram=G, labels=cor, lam=3e-3)
        R = unit_relation(class_relation(3, purity), cor.true, np.ones(45))
        rate, rho = relation_rate(s.op, R, alpha, s.targets0(), 3)
        P = [rr.P for rr in self_distill(s, 40, label_weight=alpha, relation=R).rounds]
        diff = [np.linalg.norm(b - a) for a, b in zip(P, P[1:])]
        # the last ratio before the differences reach 1e-9 of the first (round-off)
        r = max(i for i in range(1, len(diff)) if diff[i] > 1e-9 * diff[0])
        measured = diff[r] / diff[r - 1]
        assert measured == pytest.approx(rate, rel=0.02)
        if balanced:
            assert rate < 0.95 * rho
        else:
            assert rate == pytest.approx(rho, rel=1e-9)
