"""Label noise (docs/theory.md sections 5 and 7)."""

import numpy as np
import pytest

from sdtheory import noise
from sdtheory.featuredata import superclasses_from_features
from sdtheory.models import two_level
from sdtheory.noise import (
    Corruption,
    check_superclasses_for_noise,
    corrupt_exact,
    corrupt_sampled,
    corruption_from_counts,
    custom_transition,
    delta,
    exact_counts,
    is_balanced,
    transition_matrix,
)

# ------------------------------------------------------------------------ transition matrices


def test_sym_asym_pairflip_entries():
    np.testing.assert_allclose(transition_matrix("sym", 4, 0.3)[0], [0.7, 0.1, 0.1, 0.1])
    np.testing.assert_allclose(transition_matrix("asym", 4, 0.4),
                               [[0.6, 0.2, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1],
                                [0.1, 0.1, 0.6, 0.2], [0.2, 0.1, 0.1, 0.6]])
    np.testing.assert_allclose(transition_matrix("pairflip", 3, 0.25),
                               [[0.75, 0.25, 0], [0, 0.75, 0.25], [0.25, 0, 0.75]])
    np.testing.assert_array_equal(transition_matrix("sym", 5, 0.0), np.eye(5))


def test_superclass_transition():
    T = transition_matrix("superclass", 5, 0.4, superclass_of=[0, 0, 1, 1, 1])
    np.testing.assert_allclose(T, [[0.6, 0.4, 0, 0, 0], [0.4, 0.6, 0, 0, 0],
                                   [0, 0, 0.6, 0.2, 0.2], [0, 0, 0.2, 0.6, 0.2],
                                   [0, 0, 0.2, 0.2, 0.6]])


@pytest.mark.parametrize("kind", ["sym", "asym", "pairflip", "superclass"])
@pytest.mark.parametrize("K", [2, 4, 6])
@pytest.mark.parametrize("eta", [0.0, 0.35, 0.99])
def test_transition_rows_are_stochastic_with_flip_rate_eta(kind, K, eta):
    T = transition_matrix(kind, K, eta, superclass_of=np.arange(K) // 2)
    np.testing.assert_allclose(T.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.diag(T), 1 - eta)
    assert np.all(T >= 0)
    np.testing.assert_array_equal(custom_transition(T), T)


# ------------------------------------------------------------------------ exact-count mode

# authors' defaults K = 4, n = 500, sym exact counts: row 0 and Delta (shared reference vectors)
REFERENCE_ROWS = [(0.1, [452, 16, 16, 16], 0.872), (0.3, [350, 50, 50, 50], 0.6),
                  (0.5, [251, 83, 83, 83], 0.336), (0.6, [200, 100, 100, 100], 0.2)]


@pytest.mark.parametrize("eta, row0, delta_ref", REFERENCE_ROWS)
def test_exact_counts_reference_rows(eta, row0, delta_ref):
    counts = exact_counts(transition_matrix("sym", 4, eta), 500)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts[0], row0)
    for k in range(4):  # the other rows are the same up to the position of the diagonal
        np.testing.assert_array_equal(np.roll(counts[k], -k), row0)
    assert delta(counts) == pytest.approx(delta_ref, abs=1e-12)
    assert is_balanced(counts)
    corr = corrupt_exact(transition_matrix("sym", 4, eta), 500)
    assert corr.rate == pytest.approx((500 - row0[0]) / 500)  # 0.096, 0.3, 0.498, 0.6


def test_floor_tolerance_keeps_exact_integers():
    # 500 * (0.6 / 3) = 99.99999999999999 in floating point; the count must be 100
    assert 500 * (0.6 / 3) < 100
    assert exact_counts(transition_matrix("sym", 4, 0.6), 500)[0, 1] == 100


@pytest.mark.parametrize("K", [2, 3, 4, 10])
@pytest.mark.parametrize("n", [7, 120, 500])
@pytest.mark.parametrize("eta", [0.05, 0.2, 0.45])
def test_sym_exact_counts_balanced_and_delta_formula(K, n, eta):
    T = transition_matrix("sym", K, eta)
    counts = exact_counts(T, n)
    np.testing.assert_array_equal(counts.sum(axis=1), n)
    assert is_balanced(counts)
    f = np.floor(n * eta / (K - 1) + 1e-9)  # every off-diagonal count
    assert np.all(counts[~np.eye(K, dtype=bool)] == f)
    d = delta(counts)
    assert d == pytest.approx(1 - K * f / n, abs=1e-12)
    # versus the continuous formula (K-1-K eta)/(K-1): the floor only raises Delta, by < K/n
    ideal = (K - 1 - K * eta) / (K - 1)
    assert -1e-12 <= d - ideal < K / n
    corr = corrupt_exact(T, n)
    assert corr.rate == pytest.approx((K - 1) * f / n)
    assert eta - (K - 1) / n < corr.rate <= eta + 1e-12


def test_exact_counts_unequal_sizes_and_asym_pairflip():
    counts = exact_counts(transition_matrix("sym", 3, 0.3), [10, 20, 41])
    # T_kj = 0.15: floor(1.5) = 1, floor(3.0) = 3, floor(6.15) = 6
    np.testing.assert_array_equal(counts, [[8, 1, 1], [3, 14, 3], [6, 6, 29]])
    assert not is_balanced(counts)
    for kind in ("asym", "pairflip"):  # circulant T: exact counts stay balanced
        assert is_balanced(exact_counts(transition_matrix(kind, 5, 0.3), 100))
    np.testing.assert_array_equal(exact_counts(transition_matrix("asym", 4, 0.3), 100)[0],
                                  [71, 15, 7, 7])  # 7.5 floors to 7: rate 0.29


def test_corrupt_exact_ordering_matches_block_model_labels():
    T = transition_matrix("pairflip", 3, 0.5)
    corr = corrupt_exact(T, 4)
    np.testing.assert_array_equal(corr.true, two_level(3, 4).labels())
    np.testing.assert_array_equal(corr.given, [0, 0, 1, 1, 1, 1, 2, 2, 0, 0, 2, 2])
    np.testing.assert_array_equal(corr.counts, [[2, 2, 0], [0, 2, 2], [2, 0, 2]])
    assert corr.K == 3 and corr.N == 12
    np.testing.assert_array_equal(corr.sizes, [4, 4, 4])
    assert corr.rate == 0.5
    np.testing.assert_array_equal(corr.noisy, corr.true != corr.given)
    np.testing.assert_allclose(corr.C, [[.5, .5, 0], [0, .5, .5], [.5, 0, .5]])


def test_corruption_from_counts_public_vectors():
    # reference (a): every class 60 clean, 30 labelled k+1, 20 k+2, 10 k+3
    counts = np.array([[60, 30, 20, 10], [10, 60, 30, 20], [20, 10, 60, 30], [30, 20, 10, 60]])
    corr = corruption_from_counts(counts, sizes=120)
    assert isinstance(corr, Corruption)
    np.testing.assert_array_equal(corr.counts, counts)
    assert corr.rate == pytest.approx(0.5)
    assert delta(counts) == pytest.approx(0.25)
    assert is_balanced(counts)
    # samples of class 1: 10 labelled 0, then 60 labelled 1, ...
    np.testing.assert_array_equal(corr.given[120:130], 0)
    np.testing.assert_array_equal(corr.given[130:190], 1)
    # float counts with integral values are accepted
    np.testing.assert_array_equal(corruption_from_counts(counts.astype(float)).given, corr.given)


def test_delta_empty_max_and_negative_margin():
    # class 0 has no mislabelled sample: its margin is C_00 - 0 = 1
    assert delta([[5, 0, 0], [0, 4, 1], [1, 0, 4]]) == pytest.approx(0.6)
    # a class whose given labels are mostly wrong: Delta < 0
    assert delta([[2, 3], [0, 5]]) == pytest.approx(-0.2)
    assert delta(np.eye(3, dtype=int) * 7) == 1.0
    # fractions C give the same answer as counts
    assert delta([[0.9, 0.1], [0.3, 0.7]]) == pytest.approx(0.4)


def test_is_balanced_cases():
    assert is_balanced([[3, 1], [1, 3]])
    assert not is_balanced([[3, 1], [0, 4]])  # columns 3, 5
    assert not is_balanced([[3, 1], [2, 4]])  # rows 4, 6


# ---------------------------------------------------------------------------- sampled mode

def test_sampled_same_seed_same_labels():
    T = transition_matrix("sym", 4, 0.3)
    true = np.repeat(np.arange(4), 50)
    a = corrupt_sampled(T, true, seed=11)
    b = corrupt_sampled(T, true, seed=11)
    assert a.given.tobytes() == b.given.tobytes()
    assert not np.array_equal(a.given, corrupt_sampled(T, true, seed=12).given)
    np.testing.assert_array_equal(a.true, true)
    np.testing.assert_array_equal(a.counts.sum(axis=1), 50)
    # counts agree with the labels
    np.testing.assert_array_equal(
        a.counts, np.histogram2d(a.true, a.given, bins=[np.arange(5) - 0.5] * 2)[0])


@pytest.mark.parametrize("kind, eta", [("sym", 0.3), ("asym", 0.4), ("pairflip", 0.2)])
def test_sampled_rate_within_binomial_bound(kind, eta):
    K, n = 4, 10_000
    N = K * n
    T = transition_matrix(kind, K, eta)
    corr = corrupt_sampled(T, np.repeat(np.arange(K), n), seed=2024)
    sd = np.sqrt(eta * (1 - eta) / N)
    assert abs(corr.rate - eta) < 4 * sd
    # each cell: binomial(n, T_kj)
    sd_cell = np.sqrt(n * T * (1 - T))
    assert np.all(np.abs(corr.counts - n * T) <= 4 * sd_cell + 1e-12)
    # zero-probability transitions never happen
    assert np.all(corr.counts[T == 0] == 0)


def test_sampled_keeps_sample_order():
    T = transition_matrix("pairflip", 3, 0.0)
    true = np.array([2, 0, 1, 1, 2])
    np.testing.assert_array_equal(corrupt_sampled(T, true, seed=0).given, true)


# ---------------------------------------------------------------------------- superclasses

def _three_level_features(S, m, n, c, d, e, D, seed):
    """x = sqrt(e) u_0 + sqrt(d-e) v_s + sqrt(c-d) u_k + sigma xi (orthonormal u, v)."""
    K = S * m
    rng = np.random.default_rng(seed)
    means = np.zeros((K, D))
    means[:, 0] = np.sqrt(e)
    means[np.arange(K), 1 + np.arange(K) // m] = np.sqrt(d - e)
    means[np.arange(K), 1 + S + np.arange(K)] = np.sqrt(c - d)
    y = np.repeat(np.arange(K), n)
    return means[y] + np.sqrt((1 - c) / D) * rng.standard_normal((K * n, D)), y


def test_superclasses_recovered_from_three_level_features():
    X, y = _three_level_features(S=2, m=3, n=30, c=0.6, d=0.35, e=0.05, D=200, seed=5)
    np.testing.assert_array_equal(superclasses_from_features(X, y), [0, 0, 0, 1, 1, 1])
    # classes interleaved: numbering follows the first class of each cluster
    perm = np.array([3, 0, 4, 1, 5, 2])  # new class j = old class perm[j]
    inv = np.argsort(perm)
    np.testing.assert_array_equal(superclasses_from_features(X, inv[y]), [0, 1, 0, 1, 0, 1])
    # a cut at the top merges everything
    np.testing.assert_array_equal(superclasses_from_features(X, y, cut=1.0), np.zeros(6))


def test_single_class_cluster_gets_no_off_diagonal_mass():
    """A class alone in its cluster keeps all its labels under superclass noise (no crash, no
    off-diagonal mass); the others flip within their superclass at rate eta."""
    X, y = _three_level_features(S=3, m=2, n=20, c=0.6, d=0.35, e=0.05, D=200, seed=1)
    y = np.where(y == 5, 4, y)  # classes 0..4; class 4 is alone in its superclass
    s = superclasses_from_features(X, y)
    np.testing.assert_array_equal(s, [0, 0, 1, 1, 2])
    T = transition_matrix("superclass", 5, 0.2, superclass_of=s)
    np.testing.assert_array_equal(T[4], [0, 0, 0, 0, 1.0])
    np.testing.assert_allclose(T[:4, :4], [[0.8, 0.2, 0, 0], [0.2, 0.8, 0, 0],
                                           [0, 0, 0.8, 0.2], [0, 0, 0.2, 0.8]], atol=1e-15)
    cor = corrupt_sampled(T, y, seed=3)
    assert cor.counts[4, 4] == np.sum(y == 4) and cor.counts[4, :4].sum() == 0
    assert cor.counts[:4, 4].sum() == 0
    np.testing.assert_array_equal(check_superclasses_for_noise([0, 0, 1, 1]), [0, 0, 1, 1])


# ------------------------------------------------------------------------------ validation

def _noise_cases():
    nan = float("nan")
    sym = transition_matrix("sym", 3, 0.3)
    return [
        (transition_matrix, dict(kind="sym", K=1, eta=0.1),
         r"K .* must be an integer in \[2, 100000\]"),
        (transition_matrix, dict(kind="sym", K=3, eta=1.0), "eta must be a number in \\[0, 1\\)"),
        (transition_matrix, dict(kind="sym", K=3, eta=-0.1), "eta must be a number in \\[0, 1\\)"),
        (transition_matrix, dict(kind="sym", K=3, eta=nan), "eta must be a number in \\[0, 1\\)"),
        (transition_matrix, dict(kind="flip", K=3, eta=0.1), "kind must be one of"),
        (transition_matrix, dict(kind="superclass", K=4, eta=0.1), "superclass_of"),
        (transition_matrix, dict(kind="superclass", K=4, eta=0.1, superclass_of=[0, 0, 1]),
         "K = 4 entries"),
        (transition_matrix, dict(kind="superclass", K=3, eta=0.1, superclass_of=[0, -1, 1]),
         "superclass_of must be a 1-D sequence of non-negative integer"),
        (custom_transition, dict(T=[[0.5, 0.4], [0.3, 0.7]]), "row 0 sums to 0.9"),
        (custom_transition, dict(T=[[1.2, -0.2], [0.3, 0.7]]), "non-negative.*T\\[0, 1\\]"),
        (custom_transition, dict(T=[[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]), "square"),
        (custom_transition, dict(T=[[1.0]]), "K >= 2"),
        (custom_transition, dict(T=[[nan, 1.0], [0.0, 1.0]]), "finite"),
        (exact_counts, dict(T=sym, sizes=0), "sizes\\[0\\] = 0"),
        (exact_counts, dict(T=sym, sizes=[5, 5]), "K = 3 class sizes"),
        (corrupt_sampled, dict(T=sym, true=[0, 3], seed=0), "0..K-1"),
        (corrupt_sampled, dict(T=sym, true=[0.5, 1.0], seed=0), "integer class labels"),
        (corruption_from_counts, dict(counts=[[1, 2, 3], [4, 5, 6]]), "square"),
        (corruption_from_counts, dict(counts=[[3]]), "K >= 2"),
        (corruption_from_counts, dict(counts=[[3, -1], [0, 2]]), "non-negative.*\\[0, 1\\]"),
        (corruption_from_counts, dict(counts=[[3, 1.5], [0, 2]]), "integers.*\\[0, 1\\]"),
        (corruption_from_counts, dict(counts=[[3, 1], [0, 0]]), "row 1 sums to 0"),
        (corruption_from_counts, dict(counts=[[3, 1], [1, 3]], sizes=[4, 5]),
         "row 1 sums to 4, but class 1 has n_1 = 5"),
        (corruption_from_counts, dict(counts=[[3, 1], [1, 3]], sizes=3),
         "row 0 sums to 4"),
        (delta, dict(counts=[[1, 0], [0, 0]]), "row 1 sums to 0"),
        (delta, dict(counts=[[1, nan], [0, 1]]), "finite"),
        (superclasses_from_features, dict(X=[[1.0, nan], [0.0, 1.0]], y=[0, 1]),
         "X must be finite"),
        (superclasses_from_features, dict(X=np.eye(3), y=[0, 0, 0]), "K >= 2"),
        (superclasses_from_features, dict(X=np.eye(3), y=[0, 2, 2]), "class 1 is absent from y"),
        (superclasses_from_features, dict(X=np.eye(3), y=[0, 1, 1], cut=0.0), "cut"),
        (superclasses_from_features, dict(X=[[1.0, 0], [0, 1.0], [0.5, 0.5]], y=[0, 1, 1]),
         "row 2 has zero norm after centring"),
        (check_superclasses_for_noise, dict(superclass_of=[[0, 1, 1]]),
         "superclass_of must be a 1-D sequence"),
    ]


@pytest.mark.parametrize("fn, kwargs, message", _noise_cases(),
                         ids=lambda v: v.__name__ if callable(v) else None)
def test_validation_errors(fn, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fn(**kwargs)


def test_corruption_pickles_with_and_without_its_labels():
    """A Corruption survives pickling (the probe sends them to Dask workers): counts, labels,
    and a counts-only one stays unmaterialised until asked."""
    import pickle

    y = np.repeat(np.arange(3), 10)
    c = noise.corrupt_sampled(noise.transition_matrix("sym", 3, 0.3), y, 0)
    d = pickle.loads(pickle.dumps(c))
    np.testing.assert_array_equal(d.counts, c.counts)
    np.testing.assert_array_equal(d.given, c.given)
    np.testing.assert_array_equal(d.true, y)
    lazy = pickle.loads(pickle.dumps(noise.Corruption(counts=c.counts)))
    assert lazy._true is None
    assert lazy.rate == c.rate and np.bincount(lazy.true).tolist() == [10, 10, 10]
