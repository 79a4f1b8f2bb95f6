"""Numerics at the conditioning users meet: the Newton directions of every problem structure on
systems of condition number up to 1e12, and whole solves on the bundled digits features across
the validated lam range [1e-8, 1e3].

A direction is checked by its normwise backward error against the exact Jacobian of F, formed
as a dense matrix (in numpy from its formula; JAX's forward-mode derivative for the group
reduction): ||J d + F|| <= rtol ||F|| + c eps (||J||
||d|| + ||F||), the bound of a backward-stable solve of J d = -F to the relative residual rtol
(c = 10 n, eps of the products' precision). A whole solve is checked by its certificate,
recomputed here in numpy, against the acceptance bound of docs/theory.md section 2.3.
"""

import numpy as np
import pytest
from scipy.special import softmax

from sdtheory.featuredata import block_statistics, feature_map, load_dataset
from sdtheory.models import Features, jitter, two_level
from sdtheory.noise import corrupt_exact, corrupt_sampled, transition_matrix
from sdtheory.solvers import ExactSolver, SolverError, one_hot
from sdtheory.solvers.newton import ACCEPT_FACTOR, DEFAULT_TOL, ROUNDOFF_FACTOR
from sdtheory.solvers.problems import SINGLE_RTOL, DenseProblem, FactorProblem, GroupProblem
from sdtheory.solvers.spectrum import feature_spectrum, leading_spectrum

EPS64 = np.finfo(np.float64).eps
EPS32 = float(np.finfo(np.float32).eps)
CONDS = [1e2, pytest.param(1e6, marks=pytest.mark.slow), pytest.param(1e9, marks=pytest.mark.slow),
         1e12]


def _hessians(P):
    """blockdiag_i(diag(p_i) - p_i p_i^T) for outputs P (N, K), as an (N K, N K) matrix."""
    from scipy.linalg import block_diag

    return block_diag(*(np.diag(p) - np.outer(p, p) for p in P))


def _dense_jacobian(G, s, Z):
    """dF/dZ = I + s (G kron I_K) Dblk, F(Z) = Z - s G (T - softmax Z), Z flattened by rows."""
    K = Z.shape[1]
    return np.eye(Z.size) + s * np.kron(G, np.eye(K)) @ _hessians(softmax(Z, axis=1))


def _feature_jacobian(X, s, W):
    """dF/dx = I + s (X^T kron I_K) Dblk (X kron I_K), F(x) = x - s X^T (T - softmax(X x))."""
    K = W.shape[1]
    XK = np.kron(X, np.eye(K))
    return np.eye(W.size) + s * XK.T @ _hessians(softmax(X @ W, axis=1)) @ XK


_JITTED = {}


def _jit(name, fn):
    import jax

    return _JITTED.setdefault(name, jax.jit(fn))


def _direction(problem, x, T, rtol):
    """(F, d, its) at x: the problem's residual and Newton direction for rtol."""
    P, _, F = _jit("evaluate", lambda pr, x, T: pr.evaluate(x, T))(problem, x, T)
    d, its = _jit("direction", lambda pr, x, P, F, rtol: pr.direction(x, P, F, rtol))(
        problem, x, P, F, rtol)
    return np.asarray(F).reshape(-1), np.asarray(d).reshape(-1), int(its)


def _group_jacobian(problem, Z, T):
    """The exact Jacobian of the group problem's F (forward-mode derivative), (n, n)."""
    import jax

    jac = _jit("group_jacobian",
               lambda pr, Z, T: jax.jacfwd(lambda Z: pr.evaluate(Z, T)[2])(Z))
    return np.asarray(jac(problem, Z, T)).reshape(Z.size, Z.size)


def _backward_error_ok(J, F, d, rtol, eps):
    """||J d + F|| within rtol ||F|| plus the round-off of a backward-stable solve."""
    n = F.size
    res = np.linalg.norm(J @ d + F)
    bound = rtol * np.linalg.norm(F) + 10 * n * eps * (np.linalg.norm(J, 2) * np.linalg.norm(d)
                                                       + np.linalg.norm(F))
    return res, bound


def _scaled(jacobian, target):
    """The s at which cond(jacobian(s)) is near ``target`` (cond(J) - 1 grows about linearly
    in s, so one probe at s = 1 fixes it), and the condition number reached there."""
    s = target / (np.linalg.cond(jacobian(1.0)) - 1.0)
    return s, float(np.linalg.cond(jacobian(s)))


def _logits(shape, seed):
    return 2.0 * np.random.default_rng(seed).standard_normal(shape)


def _digits(rows, fmap="l2", dataset="digits"):
    """The first ``rows`` training samples (None: all) of a bundled digits dataset."""
    data = feature_map(load_dataset(dataset), fmap)
    return data.X_train[:rows], data.y_train[:rows]


@pytest.mark.parametrize("cond", CONDS)
def test_dense_direction_at_high_condition(cond):
    """DenseProblem.direction (Woodbury preconditioner factorised by Cholesky, GMRES) on the
    Gram matrix of 48 digits samples, with and without the float32 GMRES stage: backward
    error within its bound, at cond(J) up to 1e12."""
    import jax.numpy as jnp

    X, y = _digits(48)
    G = X @ X.T
    K = 10
    T = one_hot(y, K)
    Z = _logits(T.shape, 1)

    def problem(s, single=False):
        sp = leading_spectrum(G, s, K)
        return DenseProblem(s=jnp.asarray(s), G=jnp.asarray(G), V=jnp.asarray(sp["V"]),
                            mu=jnp.asarray(sp["mu"]), mu_rest=jnp.asarray(sp["mu_rest"]),
                            G32=jnp.asarray(G, jnp.float32) if single else None)

    s, achieved = _scaled(lambda s: _dense_jacobian(G, s, Z), cond)
    assert cond / 30 <= achieved <= 30 * cond
    J = _dense_jacobian(G, s, Z)
    for rtol in (1e-2, 1e-6):
        for single in (False, True):
            F, d, its = _direction(problem(s, single), Z, T, rtol)
            # float32 products where the float32 stage alone may serve (rtol >= 1e-4)
            eps = EPS32 if single and rtol >= 1e-4 else EPS64
            res, bound = _backward_error_ok(J, F, d, rtol, eps)
            assert res <= bound, (rtol, single, res, bound, its)


def _with_modes(conds, modes):
    """(cond, mode) parameters, a condition's marks kept."""
    out = []
    for c in conds:
        value, marks = (c.values[0], c.marks) if hasattr(c, "values") else (c, ())
        out += [pytest.param(value, m, marks=marks) for m in modes]
    return out


@pytest.mark.parametrize("cond,mode", _with_modes(CONDS, ("cg", "direct"))
                         # within FEATURE_SINGLE_SCALE, where the feature solver uses float32 CG
                         + _with_modes(CONDS[:2], ("cg float32",)))
def test_feature_direction_at_high_condition(cond, mode):
    """FactorProblem.direction (preconditioned CG in weight space, in float64 or float32, or J
    formed and factorised by Cholesky) on 60 digits samples with the standard feature map:
    backward error within its bound, at cond(J) up to 1e12 (float32 CG: up to 1e6, within the
    scale where the solver uses it; it aims for max(rtol, SINGLE_RTOL), with float32's eps in
    the round-off term). At cond(J) = 1e9 and 1e12 float32 CG diverged (residual 80 times
    its bound after 2000 iterations)."""
    import jax.numpy as jnp

    X, y = _digits(60, "standard")
    K = 10
    T = one_hot(y, K)
    W = 0.05 * _logits((X.shape[1], K), 2)
    single = mode == "cg float32"

    def problem(s):
        sp = feature_spectrum(X, s, K)
        return FactorProblem(s=jnp.asarray(s), X=jnp.asarray(X), Vf=jnp.asarray(sp["V"]),
                             nu=jnp.asarray(sp["nu"]), nu_rest=jnp.asarray(sp["nu_rest"]),
                             maxiter=2000, direct=mode == "direct",
                             X32=jnp.asarray(X, dtype=jnp.float32) if single else None)

    s, achieved = _scaled(lambda s: _feature_jacobian(X, s, W), cond)
    assert cond / 30 <= achieved <= 30 * cond
    J = _feature_jacobian(X, s, W)
    for rtol in (1e-2, 1e-6):
        F, d, its = _direction(problem(s), W, T, rtol)
        assert d.dtype == np.float64
        aim, eps = (max(rtol, SINGLE_RTOL), EPS32) if single else (rtol, EPS64)
        res, bound = _backward_error_ok(J, F, d, aim, eps)
        assert res <= bound, (rtol, res, bound, its)


@pytest.mark.parametrize("cond", CONDS)
def test_group_direction_at_high_condition(cond):
    """GroupProblem.direction (block elimination, exact) on a two-level model with the block
    statistics of the digits features of classes 0-4 and sampled noise: backward error within
    the bound of an exact solve (rtol = 0), at cond(J) up to 1e12."""
    import jax.numpy as jnp

    X, y = _digits(300)
    X, y = X[y < 5], y[y < 5]
    st = block_statistics(X, y)
    K = 5
    model = two_level(K, np.bincount(y, minlength=K), st["c"], st["d_all"])
    counts = corrupt_sampled(transition_matrix("sym", K, 0.4), y, 0).counts
    diag, alpha, L, w = model.class_structure()
    T = np.broadcast_to(np.eye(K)[None, :, :], (K, K, K)).copy()     # unit (k, j): given j
    Z = _logits(T.shape, 3)

    def problem(s):
        return GroupProblem(s=jnp.asarray(s), diag=jnp.asarray(diag), alpha=jnp.asarray(alpha),
                            L=jnp.asarray(L), w=jnp.asarray(w),
                            m=jnp.asarray(counts, dtype=jnp.float64))

    s, achieved = _scaled(lambda s: _group_jacobian(problem(s), Z, T), cond)
    assert cond / 30 <= achieved <= 30 * cond
    J = _group_jacobian(problem(s), Z, T)
    F, d, its = _direction(problem(s), Z, T, 0.0)
    assert its == 0
    res, bound = _backward_error_ok(J, F, d, 0.0, EPS64)
    assert res <= bound, (res, bound)


# ------------------------------------------------------------------------------ whole solves


def _accept(G, lam):
    """The acceptance bound of a certificate at round-off: max(ACCEPT_FACTOR tol,
    ROUNDOFF_FACTOR eps s ||G||_inf) (docs/theory.md section 2.3)."""
    s = 1.0 / (G.shape[0] * lam)
    return max(ACCEPT_FACTOR * DEFAULT_TOL, ROUNDOFF_FACTOR * EPS64 * s * np.abs(G).sum(1).max())


def _feature_accept(X, lam):
    """The same for the feature path, whose round-off scale is s max|x_i| sum|x_j|
    (Cauchy-Schwarz) in place of s ||G||_inf."""
    norms = np.linalg.norm(X, axis=1)
    s = 1.0 / (X.shape[0] * lam)
    return max(ACCEPT_FACTOR * DEFAULT_TOL, ROUNDOFF_FACTOR * EPS64 * s * norms.max() * norms.sum())


def _solve_and_check(path, X, y, lam):
    """One teacher solve on the path's structure; its certificate recomputed in numpy must be
    within twice the acceptance bound (the recomputation carries the same round-off), or the
    solver must raise SolverError. Returns the fit (None if it raised)."""
    K = 10
    cor = corrupt_sampled(transition_matrix("sym", K, 0.4), y, 0)
    if path == "group":
        st = block_statistics(X, y)
        model = two_level(K, np.bincount(y, minlength=K), st["c"], st["d_all"])
        solver = ExactSolver(gram=model, labels=cor.counts, lam=lam)
        G = model.dense()           # samples in class order, as expand() lays them out
        T = one_hot(np.repeat(solver.given, solver.weight[0].astype(int)), K)
    else:
        G = X @ X.T
        solver = ExactSolver(gram=G if path == "dense" else Features(X), labels=cor, lam=lam)
        T = solver.targets0()
    try:
        fit = solver.fit(solver.targets0())
    except SolverError:
        return None
    P = solver.expand(fit.P)
    N = G.shape[0]
    cert = np.abs(P - softmax(G @ (T - P) / (N * lam), axis=1)).max()
    bound = _accept(G, lam)
    if path == "features":
        bound = max(bound, _feature_accept(X, lam))
    assert cert <= 2 * bound, (path, lam, cert, bound)
    return fit


FAST_LAMS = [1e-8, 1e-4, 1e3]
ALL_LAMS = [1e-8, 1e-6, 1e-4, 1e-2, 1.0, 1e3]


@pytest.mark.parametrize("path", ["group", "dense", "features"])
@pytest.mark.parametrize("fmap", ["l2", "standard"])
@pytest.mark.parametrize("lam", FAST_LAMS)
def test_real_features_every_solve_meets_its_certificate(path, fmap, lam):
    """60 digits samples (both feature maps, sampled symmetric noise 0.4), the validated lam
    range's ends and middle, on each solver structure: every solve converges within its
    acceptance bound."""
    X, y = _digits(60, fmap)
    assert _solve_and_check(path, X, y, lam) is not None


@pytest.mark.slow
@pytest.mark.parametrize("path", ["group", "dense", "features"])
@pytest.mark.parametrize("fmap", ["l2", "standard", "raw"])
@pytest.mark.parametrize("lam", ALL_LAMS)
def test_real_features_every_solve_meets_its_certificate_300(path, fmap, lam):
    """As the fast test, on 300 digits samples, every feature map and the whole lam range."""
    X, y = _digits(300, fmap)
    assert _solve_and_check(path, X, y, lam) is not None


@pytest.mark.slow
@pytest.mark.parametrize("rows", [300, 600])
def test_digits_l2_lam_1e_8_dense_converges(rows):
    """The case that a hand-written block inverse failed (certificate 1.0 after 400 Newton
    steps): digits with the l2 map, K = 10, sampled symmetric noise 0.4, lam = 1e-8 on the
    dense path. With Cholesky in the preconditioner it converges within its bound."""
    X, y = _digits(rows, "l2")
    fit = _solve_and_check("dense", X, y, 1e-8)
    assert fit is not None and fit.info.status in ("converged", "round-off")


def test_jittered_block_model_still_converges():
    """The dense path's usual input, a jittered two-level model (cond(S) about 1e2), next to
    the real-feature cases: one teacher to the certificate."""
    m = two_level(4, 30, 0.4, 0.1)
    G = jitter(m.dense(), 0.01, seed=1)
    cor = corrupt_exact(transition_matrix("sym", 4, 0.5), m.sizes)
    s = ExactSolver(gram=G, labels=cor, lam=1e-5)
    fit = s.fit(s.targets0())
    T = s.targets0()
    cert = np.abs(fit.P - softmax(G @ (T - fit.P) / (120 * 1e-5), axis=1)).max()
    assert cert <= 2 * _accept(G, 1e-5)


@pytest.mark.parametrize("lam", [1e-5, pytest.param(1e-8, marks=pytest.mark.slow)])
def test_feature_solver_float32_cg_equals_float64_cg(lam):
    """On the bundled EfficientNet-Lite0 digits features (N = 1257, D = 1280, l2 map: s nu_max
    = 0.82 / lam, within FEATURE_SINGLE_SCALE) the first attempt runs CG in float32: each
    teacher meets its acceptance bound and equals the float64-CG solve of the same problem
    (the retry's) to 1e-10."""
    from sdtheory.solvers.feature_solver import FEATURE_SINGLE_SCALE

    X, y = _digits(None, "l2", "digits-efficientnet-lite0")
    cors = [corrupt_sampled(transition_matrix("sym", 10, 0.4), y, seed) for seed in (0, 1)]
    solver = ExactSolver(gram=Features(X), labels=cors, lam=lam).solver
    s = 1.0 / (X.shape[0] * lam)
    assert s * solver.spectrum["nu"][0] <= FEATURE_SINGLE_SCALE
    assert solver._problem.X32 is not None and solver._problem64.X32 is None
    T = solver.targets0()
    single = solver.fit_batch(T)
    solver._problem = solver._problem64
    double = solver.fit_batch(T)
    bound = _feature_accept(X, lam)
    for fit in (single, double):
        assert fit.ok.all() and (fit.residual <= bound).all(), (fit.residual, bound)
    assert np.abs(single.P - double.P).max() <= 1e-10


def test_feature_solver_keeps_float64_cg_beyond_the_single_scale():
    """The standard map at lam = 1e-7 (s nu_max = 6.3e8): float32 CG took 60 Newton steps and
    three times the CG iterations there and stopped at the round-off floor's bound, so CG
    stays in float64."""
    from sdtheory.solvers.feature_solver import FEATURE_SINGLE_SCALE

    X, y = _digits(None, "standard", "digits-efficientnet-lite0")
    solver = ExactSolver(gram=Features(X), labels=corrupt_sampled(
        transition_matrix("sym", 10, 0.4), y, 0), lam=1e-7).solver
    assert 1.0 / (X.shape[0] * 1e-7) * solver.spectrum["nu"][0] > FEATURE_SINGLE_SCALE
    assert solver._problem.X32 is None
