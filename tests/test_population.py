"""Population (test) accuracy on fresh Gaussian-mixture points: exact orthant vs Monte Carlo."""

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from sdtheory.distill import self_distill
from sdtheory.models import Features, gmm_features, gmm_means
from sdtheory.noise import corruption_from_labels
from sdtheory.population import (
    population_accuracy,
    population_accuracy_mc,
    population_by_round,
    weights_from_outputs,
)
from sdtheory.solvers import ExactSolver, TrainedSolver

C_, D_CORR = 0.4, 0.1
DIM = 40
N_MC = 200_000


def mixture(K, D=DIM, c=C_, d=D_CORR):
    return gmm_means(K, c, d, D), math.sqrt((1 - c) / D)


def assert_within_mc(W, means, sigma, seed, n_se=4.0):
    """Exact per-class accuracy inside n_se binomial standard errors of the MC estimate."""
    exact, exact_mean = population_accuracy(W, means, sigma)
    mc, mc_mean, se = population_accuracy_mc(W, means, sigma, N_MC, seed)
    # A class with accuracy 0 or 1 has se = 0: allow one sample's worth.
    tol = n_se * np.maximum(se, 1.0 / N_MC)
    assert np.all(np.abs(exact - mc) <= tol), (exact, mc, se)
    assert abs(exact_mean - exact.mean()) <= 1e-15
    return exact, mc, se


def test_k2_erf_formula():
    rng = np.random.default_rng(1)
    means, sigma = mixture(2)
    W = rng.standard_normal((2, DIM)) * 0.3 + 2.0 * means
    acc, _ = population_accuracy(W, means, sigma)
    for k in range(2):
        dk = W[k] - W[1 - k]
        m, s = dk @ means[k], sigma * np.linalg.norm(dk)
        erf_form = 0.5 * (1 + math.erf(m / (s * math.sqrt(2))))
        cdf_form = multivariate_normal.cdf([0.0], mean=[-m], cov=[[s * s]])
        assert acc[k] == pytest.approx(erf_form, abs=1e-15)
        assert acc[k] == pytest.approx(cdf_form, abs=1e-12)
    assert_within_mc(W, means, sigma, seed=2)


@pytest.mark.parametrize("K", [3, 4])
def test_orthant_matches_monte_carlo_random_weights(K):
    rng = np.random.default_rng(10 + K)
    means, sigma = mixture(K)
    # Signal along the means plus a random part comparable to the noise: accuracies well
    # inside (0, 1), where a wrong covariance would show.
    for scale in (0.5, 2.0):
        W = 1.5 * means + scale * sigma * math.sqrt(DIM) * rng.standard_normal((K, DIM)) / 3
        exact, mc, se = assert_within_mc(W, means, sigma, seed=K)
        assert np.all((exact > 0.05) & (exact < 0.995))


def test_orthant_matches_monte_carlo_trained_weights():
    """K = 4: W of a trained model on Gaussian-mixture features with noisy labels."""
    K, n = 4, 20
    X, y = gmm_features(K, n, C_, D_CORR, DIM, seed=3)
    means, sigma = mixture(K)
    given = y.copy()
    given[::7] = (given[::7] + 1) % K
    fit = TrainedSolver(gram=Features(X), labels=corruption_from_labels(y, given),
                        lam=1e-2).fit(np.eye(K)[given])
    assert_within_mc(fit.info.W, means, sigma, seed=5)


def test_singular_covariance_rank_deficient_weights():
    """K = 4 with W of rank 2: the 3 differences have a rank-2 covariance."""
    K = 4
    means, sigma = mixture(K)
    rng = np.random.default_rng(4)
    basis = np.linalg.qr(rng.standard_normal((DIM, 2)))[0].T  # (2, D) orthonormal
    basis[0] += 0.5 * means[0] / np.linalg.norm(means[0])
    coef = rng.standard_normal((K, 2))
    W = 3.0 * coef @ basis
    assert np.linalg.matrix_rank(W) == 2
    Dk = W[0] - W[1:]
    assert np.linalg.matrix_rank(Dk @ Dk.T) == 2
    assert_within_mc(W, means, sigma, seed=6)


def test_degenerate_cases():
    K = 3
    means, sigma = mixture(K)
    # sigma = 0: points sit at the means; correct iff the mean's logit is the strict maximum.
    W = means.copy()
    acc, mean = population_accuracy(W, means, 0.0)
    np.testing.assert_array_equal(acc, [1.0, 1.0, 1.0])
    # Two equal rows: classes 0 and 1 always tie (counted as errors); class 2 is unaffected.
    W2 = means.copy()
    W2[1] = W2[0]
    acc2, _ = population_accuracy(W2, means, sigma)
    assert acc2[0] == 0.0 and acc2[1] == 0.0
    mc2, _, se2 = population_accuracy_mc(W2, means, sigma, N_MC, seed=1)
    assert mc2[0] == 0.0 and mc2[1] == 0.0
    assert abs(acc2[2] - mc2[2]) <= 4 * se2[2]
    # W = 0: every class ties with every other.
    np.testing.assert_array_equal(population_accuracy(np.zeros_like(W), means, sigma)[0], 0.0)


def test_weights_from_outputs_equals_trained_weights():
    """W = (T - P)^T X / (N lam) recovers the trained model, hence its population accuracy."""
    K, n, lam = 3, 30, 1e-2
    X, y = gmm_features(K, n, C_, D_CORR, DIM, seed=8)
    means, sigma = mixture(K)
    given = y.copy()
    given[::5] = (given[::5] + 2) % K
    T = np.eye(K)[given]
    labels = corruption_from_labels(y, given)
    trained = self_distill(TrainedSolver(gram=Features(X), labels=labels, lam=lam), 2)
    teacher = trained.rounds[0]
    assert np.abs(weights_from_outputs(X, T, teacher.P, lam) - teacher.info.W).max() <= 1e-9
    # Three ways to pass each round's model give the same numbers (K = 3 is exact):
    # trained weights, bare weight matrices, and the exact solver's outputs on G = X X^T with
    # W rebuilt from the SD targets.
    fits = population_by_round(trained.rounds, means, sigma, true=y)
    bare = population_by_round([rr.info.W for rr in trained.rounds], means, sigma, X=X, true=y)
    exact = self_distill(ExactSolver(gram=X @ X.T, labels=labels, lam=lam), 2)
    closed = population_by_round(exact.rounds, means, sigma, X=X, lam=lam, given=given, true=y)
    np.testing.assert_allclose(fits.test, bare.test, rtol=0, atol=1e-15)
    np.testing.assert_allclose(closed.test_per_class, fits.test_per_class, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(fits.train, [rr.train_acc for rr in trained.rounds])
    np.testing.assert_array_equal(bare.train, fits.train)
    np.testing.assert_array_equal(closed.train, fits.train)
    assert [r["round"] for r in fits.rows()] == [0, 1, 2]
    with pytest.raises(ValueError, match="carries no weights"):
        population_by_round(exact.rounds, means, sigma)


def test_mc_reproducible_and_validation():
    means, sigma = mixture(3)
    W = 2 * means
    a = population_accuracy_mc(W, means, sigma, 1000, seed=3)
    b = population_accuracy_mc(W, means, sigma, 1000, seed=3)
    assert a[0].tobytes() == b[0].tobytes()
    with pytest.raises(ValueError, match="means must be"):
        population_accuracy(W, means[:2], sigma)
    with pytest.raises(ValueError, match="sigma must be"):
        population_accuracy(W, means, -1.0)


@pytest.mark.slow
def test_takanami_optimal_error_is_the_hebbian_limit():
    """H(1/sqrt(Delta (1 + Delta/alpha))) against the exact population error of the Hebbian
    classifier w = sum_i s_i x_i / N on one draw at D = 4000 (its fluctuation is O(D^-1/2),
    about 0.003 here), and the exact softmax teacher at lam = 100 against it through the verify
    check (quick grid)."""
    from sdtheory.jobs import verify
    from sdtheory.models import binary_gmm
    from sdtheory.population import takanami_optimal_error

    for delta, alpha in ((1.0, 2.0), (0.5, 4.0)):
        D = 4000
        X, y, means = binary_gmm(int(alpha * D), D, delta, seed=11)
        w = ((2 * y - 1)[:, None] * X).mean(axis=0)
        err = 1.0 - float(np.mean(population_accuracy(np.stack([-w, w]), means,
                                                      np.sqrt(delta))[0]))
        assert abs(err - takanami_optimal_error(delta, alpha)) <= 0.01
    x = 1.0 / math.sqrt(1.0 * (1.0 + 1.0 / 2.0))
    assert takanami_optimal_error(1.0, 2.0) == pytest.approx(0.5 * math.erfc(x / math.sqrt(2)),
                                                            abs=1e-15)
    (res,) = verify.run(["takanami_optimal_error"], quick=True)
    assert res.ok and res.worst_margin > 0
