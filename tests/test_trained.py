"""Gradient-trained linear softmax models against the fixed point (E) and an independent solver."""

import numpy as np
import pytest
from scipy.special import softmax

from sdtheory.distill import self_distill
from sdtheory.models import Features, feature_factor
from sdtheory.noise import corruption_from_labels
from sdtheory.solvers import (
    ExactSolver,
    SolverError,
    TrainedSolver,
    feature_residual,
    smoothness_bound,
    softmax_objective,
    train_softmax,
)

K, n, c, d = 4, 25, 0.4, 0.1
N = K * n


def two_level_gram(K, n, c, d):
    """G_ii = 1, c within a class, d across classes (docs/theory.md section 4), built directly."""
    y = np.repeat(np.arange(K), n)
    G = (1 - c) * np.eye(K * n) + (c - d) * (y[:, None] == y[None, :]) + d
    return G, y


@pytest.fixture(scope="module")
def problem():
    """Two-level block model, 15 flipped labels, a soft target matrix."""
    G, y = two_level_gram(K, n, c, d)
    X = feature_factor(G)
    rng = np.random.default_rng(7)
    given = y.copy()
    flip = rng.choice(N, size=15, replace=False)
    given[flip] = (given[flip] + rng.integers(1, K, size=15)) % K
    soft = rng.dirichlet(np.full(K, 0.5), size=N)
    soft = 0.6 * np.eye(K)[given] + 0.4 * soft
    return {"G": G, "X": X, "y": y, "given": given, "onehot": np.eye(K)[given], "soft": soft,
            "labels": corruption_from_labels(y, given)}


SENSITIVITY = 1e3   # certificate -> output error factor, as in tests/test_solvers.py


def certificate(G, T, P, lam):
    """Independent numpy certificate of (E) with the Gram matrix built directly."""
    Z = G @ (T - P) / (G.shape[0] * lam)
    return float(np.abs(P - softmax(Z, axis=1)).max())


def reference_outputs(G, T, lam):
    """Independent minimiser: the representer objective (docs/theory.md section 2) by Newton.

    f(A) = (1/N) sum_i CE(t_i, softmax((G A)_i)) + (lam/2) tr(A^T G A), with exact gradient
    and Hessian (vec row-major); returns P = softmax(G A*).
    """
    Nn, Kk = T.shape
    GI = np.kron(G, np.eye(Kk))
    P = None

    def parts(a):
        A = a.reshape(Nn, Kk)
        Z = G @ A
        P = softmax(Z, axis=1)
        return A, Z, P

    def f(a):
        A, Z, P = parts(a)
        logp = Z - Z.max(1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        return -np.sum(T * logp) / Nn + 0.5 * lam * np.sum(A * (G @ A))

    def grad(a):
        A, Z, P = parts(a)
        return (G @ ((P - T) / Nn + lam * A)).ravel()

    def hess(a):
        # H[(i,k),(j,l)] = sum_m G_im G_mj J_m[k,l] / N + lam G_ij delta_kl, J_m the softmax
        # Jacobian diag(p_m) - p_m p_m^T.
        _, _, P = parts(a)
        J = P[:, :, None] * np.eye(Kk) - P[:, :, None] * P[:, None, :]
        GJ = np.einsum("im,mkl->imkl", G, J)
        H = np.einsum("imkl,mj->ikjl", GJ, G, optimize=True) / Nn
        return H.reshape(Nn * Kk, Nn * Kk) + lam * GI

    # Damped Newton (Armijo backtracking) from A = 0; f is strictly convex (G is PD), so the
    # steps become full Newton steps and converge quadratically. Iterate until the certificate
    # of (E) stops improving, keep the best iterate, and return it with its certificate: the
    # caller asserts that accuracy before using the reference.
    a = np.zeros(Nn * Kk)
    best = (np.inf, None)
    for _ in range(100):
        g = grad(a)
        step = -np.linalg.solve(hess(a), g)
        decrement = -g @ step
        if decrement > 1e-20:
            t, fa = 1.0, f(a)
            while f(a + t * step) > fa - 1e-4 * t * decrement and t > 1e-12:
                t *= 0.5
            step = t * step
        a = a + step
        P = parts(a)[2]
        cert = certificate(G, T, P, lam)
        if cert >= best[0] and best[0] < 1e-11:
            break                         # converged: a further step only adds rounding
        best = min(best, (cert, P), key=lambda b: b[0])
    return best[1], best[0]


@pytest.mark.parametrize("lam", [1e-3, 1e-2])
@pytest.mark.parametrize("targets", ["onehot", "soft"])
def test_lbfgs_satisfies_fixed_point_and_matches_independent_solver(problem, lam, targets):
    T = problem[targets]
    solver = TrainedSolver(gram=Features(problem["X"]), labels=problem["labels"], lam=lam)
    fit = solver.fit(T)
    # Protocol attributes.
    assert solver.K == K and solver.name == "trained"
    np.testing.assert_array_equal(solver.weight, np.ones((1, N)))
    np.testing.assert_array_equal(solver.true, problem["y"])
    # Certificate of (E), with the Gram matrix built directly (not from X): the same number
    # up to the rounding of G (T - P) / (N lam) (|logits| <= 1e3 here, so 1e-12 absolute).
    residual = certificate(problem["G"], T, fit.P, lam)
    assert residual <= 1e-10
    assert fit.residual == pytest.approx(residual, abs=1e-12)
    assert fit.info.converged and fit.info.grad_norm <= fit.info.grad_tol
    # Same minimiser as the package's exact Newton solver of (E) and as an independent
    # second-order solver of the representer problem, each asserting its own certificate.
    exact = ExactSolver(gram=problem["G"], labels=problem["labels"], lam=lam).fit(T)
    P_ref, ref_cert = reference_outputs(problem["G"], T, lam)
    assert ref_cert <= 1e-10 and exact.residual <= 1e-12
    for other, c in ((exact.P, exact.residual), (P_ref, ref_cert)):
        np.testing.assert_allclose(fit.P, other, rtol=0,
                                   atol=SENSITIVITY * (fit.residual + c) + 1e-13)
    np.testing.assert_allclose(fit.P.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    # Stationarity: W = (T - P)^T X / (N lam) up to grad / lam.
    W_closed = (T - fit.P).T @ problem["X"] / (N * lam)
    assert np.abs(fit.info.W - W_closed).max() <= fit.info.grad_norm / lam + 1e-12


def test_lbfgs_raises_when_out_of_iterations(problem):
    solver = TrainedSolver(gram=Features(problem["X"]), labels=problem["labels"], lam=1e-3,
                           max_iter=3)
    with pytest.raises(SolverError, match="L-BFGS stopped after 3 iterations"):
        solver.fit(problem["onehot"])


def test_gd_monotone_and_reaches_lbfgs_optimum(problem):
    X, T, lam = problem["X"], problem["onehot"], 1e-2
    opt = train_softmax(X, T, lam, method="lbfgs", tol=1e-13)
    f_star = opt.loss
    L = smoothness_bound(X, lam)
    # Short run: monotone, and within the strongly convex rate (1 - lam/L)^t (f(0) - f*).
    t = 60
    short = train_softmax(X, T, lam, method="gd", max_iter=t, tol=0.0)
    h = short.history
    assert short.iterations == t and h.size == t + 1
    assert np.all(np.diff(h) <= 1e-14 * np.abs(h[:-1]))
    gap = short.loss - f_star
    bound = (1 - lam / L) ** t * (h[0] - f_star)
    assert -1e-14 <= gap <= bound
    # Full run to the gradient tolerance: same optimum to 1e-13, same outputs to 1e-9.
    full = train_softmax(X, T, lam, method="gd", tol=1e-12)
    assert full.converged
    assert np.all(np.diff(full.history) <= 1e-14 * np.abs(full.history[:-1]))
    assert abs(full.loss - f_star) <= 1e-13
    np.testing.assert_allclose(softmax(X @ full.W.T, axis=1), softmax(X @ opt.W.T, axis=1),
                               rtol=0, atol=1e-9)
    assert full.history[-1] == pytest.approx(softmax_objective(full.W, X, T, lam), abs=1e-15)


def test_sgd_reproducible_bit_for_bit(problem):
    X, T, lam = problem["X"], problem["soft"], 1e-2
    kw = dict(method="sgd", epochs=100, batch_size=16, lr=0.1, seed=11)
    a = train_softmax(X, T, lam, **kw)
    b = train_softmax(X, T, lam, **kw)
    assert a.W.tobytes() == b.W.tobytes()
    assert a.history.tobytes() == b.history.tobytes()
    other = train_softmax(X, T, lam, **{**kw, "seed": 12})
    assert np.abs(other.W - a.W).max() > 1e-6
    # 100 samples in batches of 16: 7 steps per epoch (the last batch has 4 samples).
    assert a.iterations == 100 * 7 and a.epochs == 100 and a.history.size == 101
    # The authors' recipe (momentum 0.9, lr decay 0.98 per epoch) ends near the minimiser:
    # measured gap 6.6e-5 after 100 epochs of batch 16 (the decayed step sets the noise floor).
    f_star = train_softmax(X, T, lam).loss
    assert 0.0 <= a.loss - f_star <= 2e-4


def test_feature_factor_reconstructs_gram():
    G, _ = two_level_gram(K, n, c, d)
    for method in ("eigh", "cholesky"):
        X = feature_factor(G, method=method)
        assert np.abs(X @ X.T - G).max() <= 1e-10
    # Singular PSD (rank 3): eigh keeps only the range.
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((30, 3))
    Gs = Y @ Y.T
    for method in ("eigh", "cholesky"):
        X = feature_factor(Gs, method=method)
        assert np.abs(X @ X.T - Gs).max() <= 1e-10 * np.abs(Gs).max()
    assert feature_factor(Gs).shape[1] <= 30


def test_feature_factor_rejects_non_psd():
    # Two-level with d > c: mu2 = 1 + (n-1)c - n d < 0 (docs/theory.md section 4).
    Kb, nb, cb, db = 3, 10, 0.2, 0.5
    G, _ = two_level_gram(Kb, nb, cb, db)
    mu2 = 1 + (nb - 1) * cb - nb * db
    assert mu2 < 0
    with pytest.raises(ValueError, match="not positive semi-definite: smallest eigenvalue") as err:
        feature_factor(G)
    assert f"{mu2:.4g}" in str(err.value)
    with pytest.raises(ValueError, match="symmetric"):
        feature_factor(G + np.triu(np.full_like(G, 1e-3), 1))


def test_progress_goes_to_the_logger_and_reports_the_final_state(problem, caplog):
    solver = TrainedSolver(gram=Features(problem["X"]), labels=problem["labels"], lam=1e-2)
    with caplog.at_level("DEBUG", logger="sdtheory.solvers.trained"):
        fit = solver.fit(problem["onehot"])
    last = caplog.records[-1].getMessage().split()
    assert last[0] == "lbfgs:" and int(last[1]) == fit.info.iterations
    assert float(last[-1]) == pytest.approx(fit.info.grad_norm, rel=1e-3)


def test_trained_solver_rejects_bad_targets(problem):
    solver = TrainedSolver(gram=Features(problem["X"]), labels=problem["labels"], lam=1e-2)
    with pytest.raises(ValueError, match="rows of T must sum to 1"):
        solver.fit(problem["onehot"] * 0.5)
    with pytest.raises(ValueError, match="lam must be"):
        TrainedSolver(gram=Features(problem["X"]), labels=problem["labels"], lam=0.0)
    with pytest.raises(ValueError, match="Corruption"):
        TrainedSolver(gram=Features(problem["X"]), labels=problem["given"], lam=1e-2)


def test_feature_residual_bound_from_gradient(problem):
    """Residual <= ||X||_2 ||grad||_F / (2 lam) (softmax is 1/2-Lipschitz in the 2-norm)."""
    X, T, lam = problem["X"], problem["soft"], 1e-3
    res = train_softmax(X, T, lam, method="gd", max_iter=50, tol=0.0)
    r = feature_residual(X, T, res.W, lam)
    assert 0 < r <= np.linalg.norm(X, 2) * res.grad_norm / (2 * lam)



def test_options_object_and_keywords_train_the_same(problem):
    """A TrainOptions and the same settings as keywords give bit-identical weights; keywords
    replace the object's fields; an unknown setting is refused by name."""
    from sdtheory.solvers.trained import TrainOptions

    X, T, lam = problem["X"], problem["soft"], 1e-3
    by_kw = train_softmax(X, T, lam, method="gd", max_iter=40, tol=0.0)
    by_obj = train_softmax(X, T, lam, options=TrainOptions(method="gd", max_iter=40, tol=0.0))
    mixed = train_softmax(X, T, lam, options=TrainOptions(method="gd", max_iter=7), max_iter=40,
                          tol=0.0)
    assert by_kw.iterations == 40
    for other in (by_obj, mixed):
        assert np.array_equal(other.W, by_kw.W) and other.iterations == by_kw.iterations
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        train_softmax(X, T, lam, method="sgd", epoch=3)

def test_self_distill_rounds_and_pll_match_exact_solver(problem):
    """Rounds 0..3 and the PLL student through the common driver: trained == exact."""
    G, X, lam = problem["G"], problem["X"], 1e-2
    trained = self_distill(TrainedSolver(gram=Features(X), labels=problem["labels"], lam=lam), 3,
                           pll=True)
    exact = self_distill(ExactSolver(gram=G, labels=problem["labels"], lam=lam), 3, pll=True)
    assert trained.solver == "trained" and len(trained.rounds) == 4
    for rt, re in zip((*trained.rounds, trained.pll), (*exact.rounds, exact.pll)):
        assert rt.residual <= 1e-10 and re.residual <= 1e-12
        np.testing.assert_allclose(rt.P, re.P, rtol=0,
                                   atol=SENSITIVITY * (rt.residual + re.residual) + 1e-13)
        assert rt.train_acc == re.train_acc
    # Label averaging (docs/theory.md section 3): outputs move towards uniform, round after round.
    spread = [np.abs(rr.P - 1 / K).max() for rr in trained.rounds]
    assert all(a > b for a, b in zip(spread, spread[1:]))


def test_verify_trained_vs_closed_form_check_passes_with_its_margin():
    """The `sdtheory verify` check built on training: every case within 1e-6 of (E)."""
    from sdtheory.jobs import verify

    (res,) = verify.run(["trained_vs_closed_form"], quick=True)
    assert res.ok and res.tried == 2
    assert res.worst_margin > 1e-6 - 1e-9          # gaps measured ~1e-12


def test_gce_objective_gradient_and_its_ce_limit(rng):
    """GCE_q(t, p) = sum_k t_k (1 - p_k^q)/q (docs/theory.md section 11): the JAX gradient
    used by SGD equals central differences of the numpy objective, and q -> 0 gives CE."""
    import jax.numpy as jnp

    from sdtheory.solvers.trained import _loss_value_and_grad

    X = rng.standard_normal((30, 5))
    T = rng.dirichlet(np.ones(3), size=30)
    W = rng.standard_normal((3, 5)) * 0.3
    lam, q = 1e-2, 0.7
    value, grad = _loss_value_and_grad("gce", q)(jnp.asarray(W), jnp.asarray(X),
                                                 jnp.asarray(T), lam)
    assert float(value) == pytest.approx(softmax_objective(W, X, T, lam, "gce", q), rel=1e-13)
    h = 1e-6
    num = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[idx] = h
        num[idx] = (softmax_objective(W + E, X, T, lam, "gce", q)
                    - softmax_objective(W - E, X, T, lam, "gce", q)) / (2 * h)
    np.testing.assert_allclose(np.asarray(grad), num, atol=1e-8, rtol=0)
    # (1 - p^q)/q = -log p - q log(p)^2/2 + O(q^2): at q = 1e-7 the two objectives agree to
    # ~1e-7 times the mean of log(p)^2 (here below 10)
    ce = softmax_objective(W, X, T, lam)
    assert softmax_objective(W, X, T, lam, "gce", 1e-7) == pytest.approx(ce, abs=1e-6)


def test_sgd_monitor_keeps_the_best_epoch(rng):
    """With a monitor and keep_best, SGD returns the weights of the epoch with the largest
    monitored value: re-evaluating the monitor on the returned weights gives that maximum,
    and without keep_best the last iterate is returned."""
    X = rng.standard_normal((60, 4))
    y = rng.integers(0, 3, 60)
    T = np.eye(3)[y]
    Xh, yh = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)

    def held_out(W):
        return float(np.mean(np.argmax(Xh @ W.T, axis=1) == yh))

    best = train_softmax(X, T, 1e-2, method="sgd", epochs=15, batch_size=16, lr=0.5,
                         monitor=held_out, keep_best=True)
    last = train_softmax(X, T, 1e-2, method="sgd", epochs=15, batch_size=16, lr=0.5,
                         monitor=held_out)
    assert best.monitor.shape == (15,)
    np.testing.assert_array_equal(best.monitor, last.monitor)     # same seeded run
    assert best.best_epoch == int(np.argmax(best.monitor))
    assert held_out(best.W) == best.monitor.max()
    assert held_out(last.W) == last.monitor[-1] and last.best_epoch is None
