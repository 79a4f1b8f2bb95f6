"""Gram models (docs/theory.md section 4): spectra, jitter, Gaussian-mixture and user features."""

import numpy as np
import pytest

from sdtheory.models import (
    BlockModel,
    Eigen,
    gmm_features,
    gmm_means,
    gram_from_features,
    jitter,
    min_eigenvalue,
    three_level,
    two_level,
)

MODELS = {
    "two K4 n5": lambda: two_level(4, 5),
    "two K2 n1": lambda: two_level(2, 1, 0.4, 0.1),
    "two K3 n7 d<0": lambda: two_level(3, 7, 0.6, -0.05),
    "two unequal": lambda: two_level(3, [2, 5, 1], 0.5, 0.2),
    "two unequal d<0": lambda: two_level(4, [3, 1, 6, 2], 0.7, -0.03),
    "three S2 m3": lambda: three_level(2, 3, 4, 0.5, 0.2, 0.05),
    "three S1 m3": lambda: three_level(1, 3, 2, 0.5, 0.2, 0.05),
    "three S3 m1": lambda: three_level(3, 1, 2, 0.5, 0.2, 0.05),
    "three e<0": lambda: three_level(3, 2, 3, 0.6, 0.3, -0.02),
    "three unequal n": lambda: three_level(2, 2, [3, 2, 4, 1], 0.5, 0.2, 0.0),
    "three unequal m": lambda: BlockModel((3, 3, 3), 0.5, 0.2, 0.0, (0, 0, 1)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_spectrum_matches_dense_eigvalsh(name):
    model = MODELS[name]()
    spec = model.spectrum()
    assert all(isinstance(ev, Eigen) and ev.multiplicity >= 1 for ev in spec)
    assert sum(ev.multiplicity for ev in spec) == model.N
    dense = np.linalg.eigvalsh(model.dense())
    np.testing.assert_allclose(model.eigvals(), dense, rtol=0, atol=1e-10)
    # Multiplicities: each analytic value occurs in the dense spectrum exactly that often
    # (counting the analytic entries with the same value together).
    for ev in spec:
        expected = sum(o.multiplicity for o in spec if abs(o.value - ev.value) < 1e-9)
        assert np.sum(np.abs(dense - ev.value) < 1e-9) == expected


def test_two_level_mu_formulas():
    K, n, c, d = 4, 500, 0.4, 0.1
    mu = two_level(K, n, c, d).mu()
    assert mu["global"] == pytest.approx(1 + (n - 1) * c + (K - 1) * n * d)  # 350.6
    assert mu["class"] == pytest.approx(1 + (n - 1) * c - n * d)  # 150.6
    assert mu["instance"] == pytest.approx(1 - c)
    assert mu["global"] == pytest.approx(350.6) and mu["class"] == pytest.approx(150.6)
    spec = two_level(K, n, c, d).spectrum()
    assert [(e.name, e.multiplicity) for e in spec] == [
        ("global", 1), ("class", K - 1), ("instance", K * (n - 1))]


def test_three_level_mu_formulas_and_multiplicities():
    S, m, n, c, d, e = 3, 2, 4, 0.5, 0.2, 0.05
    model = three_level(S, m, n, c, d, e)
    mu = model.mu()
    mu_cls = 1 - c + n * (c - d)
    mu_sup = mu_cls + m * n * (d - e)
    assert mu["instance"] == pytest.approx(1 - c)
    assert mu["class"] == pytest.approx(mu_cls)
    assert mu["superclass"] == pytest.approx(mu_sup)
    assert mu["global"] == pytest.approx(mu_sup + S * m * n * e)
    mult = {ev.name: ev.multiplicity for ev in model.spectrum()}
    assert mult == {"global": 1, "superclass": S - 1, "class": S * m - S,
                    "instance": S * m * (n - 1)}


def test_zero_multiplicity_levels_are_dropped_but_mu_keeps_them():
    model = two_level(3, 1)
    assert [ev.name for ev in model.spectrum()] == ["global", "class"]
    assert model.mu()["instance"] == pytest.approx(0.6)
    assert "superclass" not in [ev.name for ev in three_level(1, 4, 2, .5, .2, .1).spectrum()]


def test_mu_refuses_unequal_sizes():
    with pytest.raises(ValueError, match="equal class sizes"):
        two_level(3, [2, 3, 2]).mu()


def test_unequal_spectrum_is_class_space_plus_instance():
    model = two_level(3, [2, 5, 1], 0.5, 0.2)
    spec = model.spectrum()
    assert [ev.name for ev in spec] == ["class-space"] * 3 + ["instance"]
    assert spec[-1] == Eigen(0.5, 8 - 3, "instance")
    # trace identity: sum of the eigenvalues = N (G_ii = 1)
    assert sum(ev.value * ev.multiplicity for ev in spec) == pytest.approx(model.N)


def test_psd_boundary_is_accepted():
    # mu1 = 0 exactly: d = -(1 - c + n (c - d)) / (K n) solved for d.
    K, n, c = 3, 4, 0.5
    d = -(1 - c + n * c) / (K * n - n)
    model = two_level(K, n, c, d)
    assert model.mu()["global"] == pytest.approx(0.0, abs=1e-12)
    assert min(np.linalg.eigvalsh(model.dense())) > -1e-12


def test_two_level_dense_entries():
    G = two_level(2, 2, 0.4, 0.1).dense()
    np.testing.assert_array_equal(G, [[1, .4, .1, .1], [.4, 1, .1, .1],
                                      [.1, .1, 1, .4], [.1, .1, .4, 1]])


# ---------------------------------------------------------------------------------- jitter

def test_symmetric_jitter_properties():
    eps = 0.05
    G0 = two_level(3, 20).dense()
    G = jitter(G0, eps, seed=7)
    np.testing.assert_array_equal(G, G.T)
    np.testing.assert_array_equal(np.diag(G), np.diag(G0))
    off = ~np.eye(G.shape[0], dtype=bool)
    diff = (G - G0)[off]
    assert np.all(np.abs(diff) <= eps)
    assert np.abs(diff).max() > 0.9 * eps  # the full range is used
    # Uniform[-eps, eps] has variance eps^2 / 3 (1770 independent draws: 10% band)
    assert np.var(diff) == pytest.approx(eps**2 / 3, rel=0.1)
    assert jitter(G0, eps, seed=7).tobytes() == G.tobytes()
    assert not np.array_equal(jitter(G0, eps, seed=8), G)


def test_nonsymmetric_jitter_warns_and_is_not_symmetric():
    G0 = two_level(2, 10).dense()
    with pytest.warns(UserWarning, match="not a Gram matrix"):
        G = jitter(G0, 0.05, seed=1, symmetric=False)
    assert not np.array_equal(G, G.T)
    np.testing.assert_array_equal(np.diag(G), np.diag(G0))
    assert np.abs(G - G0).max() <= 0.05


def test_symmetric_jitter_can_make_G_indefinite():
    # Semicircle edge: lambda_min ~ (1 - c) - 2 eps sqrt(N / 3). N = 300, eps = 0.05: -0.4
    # (measured -0.37 at seed 0; the authors' N = 2000 gives about -1.96).
    K, n, c, eps = 3, 100, 0.4, 0.05
    G0 = two_level(K, n, c).dense()
    N = K * n
    lam_min = min_eigenvalue(jitter(G0, eps, seed=0))
    predicted = (1 - c) - 2 * eps * np.sqrt(N / 3)
    assert lam_min < 0
    assert lam_min == pytest.approx(predicted, abs=0.1)
    assert min_eigenvalue(G0) == pytest.approx(1 - c)


def test_min_eigenvalue_refuses_nonsymmetric():
    with pytest.raises(ValueError, match="symmetric"):
        min_eigenvalue(np.array([[1.0, 0.2], [0.1, 1.0]]))


# ----------------------------------------------------------------------- Gaussian mixture

def test_gmm_means_inner_products():
    c, d = 0.4, 0.1
    M = gmm_means(4, c, d, D=10)
    np.testing.assert_allclose(M @ M.T, (c - d) * np.eye(4) + d, atol=1e-15)


def test_gmm_features_shape_labels_and_reproducibility():
    X, y = gmm_features(3, [2, 4, 3], 0.4, 0.1, D=50, seed=3)
    assert X.shape == (9, 50) and X.dtype == np.float64
    np.testing.assert_array_equal(y, [0, 0, 1, 1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(y, two_level(3, [2, 4, 3]).labels())
    X2, _ = gmm_features(3, [2, 4, 3], 0.4, 0.1, D=50, seed=3)
    assert X2.tobytes() == X.tobytes()


def test_gmm_gram_concentrates_on_block_model():
    """Off-diagonal G - E[G] has std sqrt((2c(1-c) + (1-c)^2) / D) = sqrt((1 - c^2) / D).

    Measured at seed 0 (K = 3, n = 20, c = .4): RMS * sqrt(D) = 0.899, 0.868, 0.880, 0.915 for
    D = 100, 400, 1600, 6400 against sqrt(1 - c^2) = 0.9165; max * sqrt(D) between 3.1 and 3.3.
    """
    K, n, c, d = 3, 20, 0.4, 0.1
    G0 = two_level(K, n, c, d).dense()
    off = ~np.eye(K * n, dtype=bool)
    Ds = [100, 400, 1600, 6400]
    rms, mx = [], []
    for D in Ds:
        X, _ = gmm_features(K, n, c, d, D, seed=0)
        E = gram_from_features(X) - G0
        rms.append(np.sqrt(np.mean(E[off] ** 2)))
        mx.append(np.abs(E[off]).max())
    rms, mx = np.array(rms), np.array(mx)
    scaled = rms * np.sqrt(Ds)
    np.testing.assert_allclose(scaled, np.sqrt(1 - c**2), rtol=0.1)
    assert np.all(np.diff(rms) < 0) and np.all(np.diff(mx) < 0)
    # quadrupling D halves the error
    np.testing.assert_allclose(rms[:-1] / rms[1:], 2.0, rtol=0.15)
    # max error of 1770 pairs: about sqrt(2 log 1770) = 3.9 standard deviations at most
    assert np.all(mx * np.sqrt(Ds) < 4.5)
    assert mx[-1] < 0.05


# ------------------------------------------------------------------------- user features

def test_gram_from_features_centre_then_normalise():
    X = np.array([[3.0, 0.0], [1.0, 2.0], [2.0, 1.0]])
    np.testing.assert_allclose(gram_from_features(X), X @ X.T)
    Xc = X - X.mean(axis=0)  # mean (2, 1): rows (1, -1), (-1, 1), (0, 0)
    np.testing.assert_allclose(gram_from_features(X, center=True), Xc @ Xc.T)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    G = gram_from_features(X, normalize=True)
    np.testing.assert_allclose(G, Xn @ Xn.T)
    np.testing.assert_allclose(np.diag(G), 1.0)
    # centring first makes row 2 zero, so centre + normalise must refuse it
    with pytest.raises(ValueError, match="row 2 has zero norm after centring"):
        gram_from_features(X, center=True, normalize=True)
    Y = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]])  # centred: (1,-2/3), (-1,4/3), (0,-2/3)
    Yc = Y - Y.mean(axis=0)
    Yn = Yc / np.linalg.norm(Yc, axis=1, keepdims=True)
    np.testing.assert_allclose(gram_from_features(Y, center=True, normalize=True), Yn @ Yn.T)
    assert gram_from_features(Y, center=True, normalize=True)[0, 1] == pytest.approx(
        (-1 - 8 / 9) / (np.sqrt(1 + 4 / 9) * np.sqrt(1 + 16 / 9)))


# ------------------------------------------------------------------------------ validation

def _gram_cases():
    nan = float("nan")
    return [
        (two_level, dict(K=1, n=5), "K"),
        (two_level, dict(K=3, n=0), "n_k must be >= 1"),
        (two_level, dict(K=3, n=2.5), "n must be an integer"),
        (two_level, dict(K=3, n=[2, 2]), "K = 3"),
        (two_level, dict(K=3, n=4, c=0.1, d=0.1), "c > d"),
        (two_level, dict(K=3, n=4, c=0.1, d=0.3), "c > d"),
        (two_level, dict(K=3, n=4, c=1.2, d=0.1), "c must be <= 1"),
        (two_level, dict(K=3, n=4, c=nan, d=0.1), "c must be a finite"),
        (two_level, dict(K=3, n=4, c=0.4, d=float("inf")), "d must be a finite"),
        (two_level, dict(K=3, n=4, c=0.4, d=-0.3), "'global' eigenvalue is -"),
        (two_level, dict(K=3, n=[2, 9, 3], c=0.4, d=-0.3), "'class-space' eigenvalue is -"),
        (three_level, dict(S=2, m=2, n=3, c=0.5, d=0.2, e=0.2), "c > d > e"),
        (three_level, dict(S=2, m=2, n=3, c=0.5, d=0.1, e=0.3), "c > d > e"),
        (three_level, dict(S=2, m=2, n=3, c=0.5, d=0.2, e=nan), "e must be a finite"),
        (three_level, dict(S=0, m=2, n=3, c=0.5, d=0.2, e=0.0), "S"),
        (three_level, dict(S=2, m=0, n=3, c=0.5, d=0.2, e=0.0), "m"),
        (three_level, dict(S=1, m=1, n=3, c=0.5, d=0.2, e=0.0), "S \\* m must be >= 2"),
        (three_level, dict(S=2, m=3, n=3, c=0.5, d=0.2, e=-0.5), "'global' eigenvalue is -"),
        (BlockModel, dict(sizes=(2, 2), c=.5, d=.2, e=.1, superclass_of=(0,)), "K = 2 entries"),
        (BlockModel, dict(sizes=(2, 2, 2), c=.5, d=.2, e=.1, superclass_of=(0, 2, 2)),
         "superclass 1 has no class"),
        (BlockModel, dict(sizes=(2, 2), c=.5, d=.2, e=.1), "together"),
        (jitter, dict(G=np.ones((2, 3)), eps=0.1, seed=0), "G must be a square"),
        (jitter, dict(G=np.eye(2), eps=-0.1, seed=0), "eps must be >= 0"),
        (gmm_features, dict(K=3, n=2, c=0.4, d=0.1, D=3, seed=0), "D .* must be >= K \\+ 1"),
        (gmm_features, dict(K=3, n=2, c=0.4, d=-0.1, D=10, seed=0), "d >= 0"),
        (gmm_features, dict(K=3, n=2, c=0.1, d=0.2, D=10, seed=0), "c > d"),
        (gmm_features, dict(K=3, n=0, c=0.4, d=0.1, D=10, seed=0), "n_k must be >= 1"),
        (gram_from_features, dict(X=np.ones(3)), "features X must be an \\(N, D\\) matrix"),
        (gram_from_features, dict(X=[[1.0, np.nan], [0.0, 1.0]]), "X must be finite"),
        (gram_from_features, dict(X=[[1.0, 0.0], [0.0, 0.0]], normalize=True),
         "row 1 has zero norm"),
    ]


@pytest.mark.parametrize("fn, kwargs, message", _gram_cases(),
                         ids=lambda v: v.__name__ if callable(v) else None)
def test_validation_errors(fn, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fn(**kwargs)


def test_nearest_psd_repairs_indefinite_jitter_and_is_idempotent():
    from sdtheory.models import jitter, min_eigenvalue, nearest_psd, two_level

    G = jitter(two_level(3, 100, 0.4, 0.1).dense(), 0.1, seed=0)
    assert min_eigenvalue(G) < -0.5                  # semicircle radius 2 eps sqrt(N/3) = 2
    P = nearest_psd(G)
    assert min_eigenvalue(P) > -1e-10
    np.testing.assert_allclose(nearest_psd(P), P, atol=1e-10)
    # Frobenius distance equals the norm of the clipped negative eigenvalues
    mu = np.linalg.eigvalsh(G)
    assert np.linalg.norm(G - P) == pytest.approx(np.linalg.norm(mu[mu < 0]), rel=1e-9)


@pytest.mark.parametrize("factor, accepted", [(0.5, True), (2.0, False)])
def test_one_psd_tolerance_for_block_models_and_dense_matrices(factor, accepted):
    """A two-level model whose global eigenvalue is -factor x PSD_RTOL x the largest one: the
    analytic check of BlockModel and the eigenvalue check of its dense G (is_psd) agree, on
    either side of the one tolerance (eigh's error here, ~1e-15, is far below the 1.65e-10
    step)."""
    from sdtheory.models import PSD_RTOL, is_psd

    K, n, c = 3, 4, 0.4
    base = 1 - c + n * c                       # global = base + (K - 1) n d (docs/theory.md 5)
    d0 = -base / ((K - 1) * n)
    scale = 1 - c + n * (c - d0)               # the class eigenvalue, the largest
    d = -(base + factor * PSD_RTOL * scale) / ((K - 1) * n)
    mu = np.linalg.eigvalsh(np.block([[np.full((n, n), c if k == j else d)
                                       for j in range(K)] for k in range(K)])
                            + (1 - c) * np.eye(K * n))
    assert mu[0] == pytest.approx(-factor * PSD_RTOL * scale, rel=1e-4)
    assert is_psd(mu[0], mu[-1]) is accepted
    if accepted:
        assert BlockModel(sizes=(n,) * K, c=c, d=d).K == K
    else:
        with pytest.raises(ValueError, match="'global' eigenvalue is -"):
            BlockModel(sizes=(n,) * K, c=c, d=d)
