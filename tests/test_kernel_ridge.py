"""Squared-loss (kernel-ridge) self-distillation with label-weighted targets
(sdtheory.kernel_ridge, docs/theory.md section 14): peers' published numbers and identities
between independent computations."""

import numpy as np
import pytest

from sdtheory.kernel_ridge import (
    KernelRidgeSD,
    borup_andersen_toy,
    mp_stieltjes,
    rbf_kernel,
    ridge_sd_agreement,
    ridge_sd_risk,
    spectral_mean,
    target_filter,
)
from sdtheory.models import jitter, two_level
from sdtheory.noise import corrupt_exact, transition_matrix
from sdtheory.solvers import LinearSolver

# Borup & Andersen (NeurIPS 2021), toy_example.ipynb of github.com/Kennethborup/
# self_distillation at commit 3d20499 (cells 7 and 8): test MSE of steps 1-6, printed to 5
# decimals.
PUBLISHED = {0.0: [0.16477, 0.15076, 0.14915, 0.15561, 0.16735, 0.18251],
             0.25: [0.16477, 0.15309, 0.14958, 0.14903, 0.14946, 0.15011]}


@pytest.mark.parametrize("alpha", [0.0, 0.25])
def test_borup_andersen_toy_reproduces_published_mse(alpha):
    """Agreement to 1e-5, the precision of the published values (measured: at most 4.7e-6)."""
    res = borup_andersen_toy(alpha)
    assert res["reference"] == PUBLISHED[alpha]            # the bundled copy is the published one
    np.testing.assert_allclose(res["mse"], PUBLISHED[alpha], rtol=0, atol=1e-5)


def _rbf_problem(rng, N=30, D=2):
    x = rng.uniform(0, 1, (N, D))
    return x, rbf_kernel(x, x, 5.0)


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0, -0.5, -1.0])
def test_target_filter_equals_the_recurrence(alpha):
    """t_r = alpha + (1 - alpha) a t_{r-1}, t_0 = 1, iterated, against the closed form; alpha
    = -1 with a = 1/2 gives b = 1, where the geometric sum is r. Tolerance: 1e-13 times the
    size of the summed terms, |alpha| sum_j |b|^j + |b|^r (both sides cancel terms up to
    2^11 here)."""
    a = np.array([0.0, 0.1, 0.5, 0.9, 0.999])
    b = np.abs((1 - alpha) * a)
    t = np.ones_like(a)
    for r in range(12):
        size = abs(alpha) * sum(b ** j for j in range(r)) + b ** r
        np.testing.assert_allclose(target_filter(a, alpha, r), t, rtol=0, atol=1e-13 * size.max())
        t = alpha + (1 - alpha) * a * t


def test_rounds_equal_explicit_kernel_ridge_solves(rng):
    """Round r of the spectral filter equals r + 1 explicit ridge solves with the targets
    alpha Y + (1 - alpha) P_{r-1} (Mobahi et al.'s repeated kernel ridge for alpha = 0), on
    the training points and at test points. Tolerance: the solves' backward error,
    20 (r + 1) eps cond(G + N lam I) max |P|."""
    x, G = _rbf_problem(rng)
    xt = rng.uniform(0, 1, (15, 2))
    Kt = rbf_kernel(xt, x, 5.0)
    Y = np.eye(3)[rng.integers(0, 3, x.shape[0])]
    N, lam = x.shape[0], 1e-3
    A = G + N * lam * np.eye(N)
    eps, cond = np.finfo(float).eps, np.linalg.cond(A)
    for alpha in (0.0, 0.3, -0.5):
        sd = KernelRidgeSD(G, lam, alpha)
        P, F = sd.train_outputs(Y, range(6)), sd.predict(Kt, Y, range(6))
        T = Y
        for r in range(6):
            c = np.linalg.solve(A, T)
            tol = 20 * (r + 1) * eps * cond * max(1.0, np.abs(G @ c).max())
            np.testing.assert_allclose(P[r], G @ c, rtol=0, atol=tol)
            np.testing.assert_allclose(F[r], Kt @ c, rtol=0, atol=tol)
            T = alpha * Y + (1 - alpha) * (G @ c)
    # at the training points the test formula gives the training outputs
    np.testing.assert_allclose(sd.predict(G, Y, [0, 3]), sd.train_outputs(Y, [0, 3]),
                               rtol=0, atol=1e-10)


def test_softmax_linearisation_is_kernel_ridge_with_ridge_K_lam():
    """docs/theory.md section 4: the closed form (L) of the softmax student is kernel ridge
    regression on the centred targets with ridge K lam: 1/K + KR_{K lam}^r (Y - 1/K), two
    independent computations (LinearSolver's averaging operator, this module's filter)."""
    model = two_level(3, 20, 0.5, 0.1)
    G = jitter(model.dense(), 0.01, seed=2)
    cor = corrupt_exact(transition_matrix("sym", 3, 0.4), model.sizes)
    lam = 1e-3
    lin = LinearSolver(gram=G, labels=cor, lam=lam)
    Y = lin.targets0()
    kr = KernelRidgeSD(G, 3 * lam)
    np.testing.assert_allclose(lin.round_outputs(np.arange(5)),
                               1 / 3 + kr.train_outputs(Y - 1 / 3, range(5)), rtol=0,
                               atol=1e-12)


def test_label_weight_limits(rng):
    """alpha = 1: every round is the teacher; alpha = 0: round r is A^(r+1) Y."""
    x, G = _rbf_problem(rng, N=12)
    Y = rng.standard_normal(12)
    lam = 1e-2
    teacher = KernelRidgeSD(G, lam, 1.0).train_outputs(Y, range(4))
    np.testing.assert_allclose(teacher, np.broadcast_to(teacher[0], teacher.shape), atol=1e-13)
    A = G @ np.linalg.inv(G + 12 * lam * np.eye(12))
    plain = KernelRidgeSD(G, lam).train_outputs(Y, range(4))
    for r in range(4):
        np.testing.assert_allclose(plain[r], np.linalg.matrix_power(A, r + 1) @ Y, atol=1e-11)


def test_bad_inputs(rng):
    x, G = _rbf_problem(rng, N=8)
    with pytest.raises(ValueError, match="label weight alpha must be a finite number, got nan"):
        KernelRidgeSD(G, 1e-3, float("nan"))
    with pytest.raises(ValueError, match="alpha = -1e\\+300 over 2 rounds overflows float64"):
        KernelRidgeSD(G, 1e-3, -1e300).train_outputs(np.ones(8), [2])
    with pytest.raises(ValueError, match="lam must be a number in"):
        KernelRidgeSD(G, 0.0)
    with pytest.raises(ValueError, match=r"K_test must be \(M, 8\) kernel rows"):
        KernelRidgeSD(G, 1e-3).predict(np.ones((3, 7)), np.ones(8), [0])
    with pytest.raises(ValueError, match="rounds must be an integer"):
        KernelRidgeSD(G, 1e-3).train_outputs(np.ones(8), [-1])
    with pytest.raises(ValueError, match="not positive semi-definite"):
        KernelRidgeSD(G - 2 * np.eye(8), 1e-3)


# ------------------------------------------ the squared loss and label weights in the solvers

def _block_case():
    model = two_level(3, 20, 0.5, 0.1)
    cor = corrupt_exact(transition_matrix("sym", 3, 0.4), model.sizes)
    return model, cor


@pytest.mark.parametrize("loss, alpha", [("mse", 0.0), ("mse", 0.3), ("mse", -0.5),
                                         ("ce", 0.0), ("ce", 0.3)])
def test_round_driver_with_label_weight_equals_closed_form(loss, alpha):
    """self_distill iterates one training per round with targets alpha Y + (1 - alpha) P_(r-1);
    LinearSolver.round_outputs evaluates the spectral filter a t_r(a) directly: the same
    outputs, on the block model's groups and on its dense Gram matrix (two operators)."""
    from sdtheory.distill import self_distill

    model, cor = _block_case()
    lam = 1e-3
    for gram, labels in ((model, cor.counts), (model.dense(), cor)):
        s = LinearSolver(gram=gram, labels=labels, lam=lam, loss=loss)
        assert s.name == ("ridge" if loss == "mse" else "linear")
        res = self_distill(s, 6, label_weight=alpha)
        closed = s.round_outputs(np.arange(7), label_weight=alpha)
        for r, rr in enumerate(res.rounds):
            scale = max(1.0, np.abs(rr.P).max())
            np.testing.assert_allclose(rr.P, closed[r], rtol=0, atol=1e-12 * scale)
            assert rr.residual <= 1e-12 * scale           # P solves its fixed point
    dense = LinearSolver(gram=model.dense(), labels=cor, lam=lam, loss=loss)
    block = LinearSolver(gram=model, labels=cor.counts, lam=lam, loss=loss)
    Pd = dense.round_outputs(np.arange(5), label_weight=alpha)
    Pb = block.round_outputs(np.arange(5), label_weight=alpha)
    for f, (t, g, w) in enumerate(zip(block.true, block.given, block.weight[0])):
        rows = np.flatnonzero((dense.true == t) & (dense.given == g))
        assert rows.size == w
        np.testing.assert_allclose(Pd[:, rows], np.broadcast_to(Pb[:, f, None],
                                                                Pd[:, rows].shape),
                                   rtol=0, atol=1e-11)


def test_squared_loss_solver_equals_kernel_ridge_and_exact_softmax_takes_label_weights():
    """LinearSolver(loss="mse") on a dense G is KernelRidgeSD's filter; the exact softmax
    solver with label weight 0.5 trains each round on 0.5 Y + 0.5 P_(r-1) (checked against
    explicit fits) and refuses a weight whose targets leave the simplex (alpha = -5: the given
    class gets -5 + 6 p, negative wherever the teacher's p < 5/6)."""
    from sdtheory.distill import self_distill
    from sdtheory.solvers import ExactSolver

    model, cor = _block_case()
    G = model.dense()
    lam = 1e-3
    s = LinearSolver(gram=G, labels=cor, lam=lam, loss="mse")
    Y = s.targets0()
    np.testing.assert_allclose(s.round_outputs(np.arange(4), label_weight=0.25),
                               KernelRidgeSD(G, lam, 0.25).train_outputs(Y, range(4)),
                               rtol=0, atol=1e-13)
    ex = ExactSolver(gram=model, labels=cor.counts, lam=lam)
    res = self_distill(ex, 3, label_weight=0.5)
    Y = ex.targets0()
    T = Y
    for rr in res.rounds:
        fit = ex.fit(T)
        np.testing.assert_allclose(rr.P, fit.P, rtol=0, atol=1e3 * max(fit.residual, 1e-15))
        T = 0.5 * Y + 0.5 * fit.P
    with pytest.raises(ValueError, match="must be a distribution"):
        self_distill(ex, 2, label_weight=-5.0)
    with pytest.raises(ValueError, match="loss must be one of ce, mse"):
        LinearSolver(gram=G, labels=cor, lam=lam, loss="hinge")


# --------------------------------------------------------------------------------------------
# Ridge self-distillation in the proportional limit (docs/theory.md section 14.1)
# --------------------------------------------------------------------------------------------

QUAD_REL = 1e-11
"""Relative agreement asked of the Marchenko-Pastur integrals: 100 x the relative error 1e-13
that spectral_mean asks of scipy's quad (whose error estimate is a heuristic)."""


@pytest.mark.parametrize("gamma", [0.3, 0.98, 1.0, 1.02, 2.5, 50.0])
def test_mp_integrals_against_closed_forms(gamma):
    """The numerical Marchenko-Pastur average against closed forms: mass 1 (atom 1 - 1/gamma
    included for gamma > 1), E[s] = 1, E[s^2] = 1 + gamma, and E[1/(s + lam)] against the
    Stieltjes transform in closed form, for lam from 1e-8 to 1e3 (the lower edge and the pole
    -lam nearly meet at gamma ~ 1, small lam)."""
    m = spectral_mean(lambda s: np.array([1.0, s, s * s]), 0.1, gamma)
    np.testing.assert_allclose(m, [1.0, 1.0, 1.0 + gamma], rtol=QUAD_REL, atol=0)
    for lam in (1e-8, 1e-4, 1e-2, 1.0, 1e3):
        got = spectral_mean(lambda s, lam=lam: 1.0 / (s + lam), lam, gamma)
        assert got == pytest.approx(mp_stieltjes(lam, gamma), rel=QUAD_REL, abs=0)


def test_mp_stieltjes_solves_its_quadratic():
    """m = E[1/(s + lam)] is the positive root of gamma lam m^2 + (1 - gamma + lam) m = 1, and
    tends to 1/(1 + lam) (all s = 1) as gamma -> 0. Tolerance: a few ulp of the terms."""
    for gamma in (1e-9, 0.5, 1.0, 4.0):
        for lam in (1e-8, 1e-3, 1.0, 1e3):
            m = mp_stieltjes(lam, gamma)
            terms = np.array([gamma * lam * m * m, (1 - gamma + lam) * m, 1.0])
            assert m > 0
            assert abs(terms[0] + terms[1] - 1.0) <= 8 * np.finfo(float).eps * np.abs(terms).max()
    assert mp_stieltjes(0.5, 1e-12) == pytest.approx(1 / 1.5, rel=1e-10)


@pytest.mark.parametrize("design,gamma", [("orthogonal", 0.5), ("gaussian", 0.5),
                                          ("gaussian", 1.0), ("gaussian", 3.0)])
def test_ridge_sd_quadratic_identities(design, gamma):
    """The risk is the quadratic (1 - xi)^2 R_T + 2 xi (1 - xi) cross + xi^2 R_S: xi* and the
    gain, computed from their own integrals, minimise it (value R_T - gain at xi*, larger
    on both sides); xi* > 0 below the optimal ridge gamma sigma^2 / r^2 and < 0 above it, 0
    there (any design). Tolerance: QUAD_REL of the terms, which at xi* reach (1 + xi*^2)
    times the risks."""
    r2, sigma2 = 1.5, 0.8
    opt = gamma * sigma2 / r2
    for lam in (0.2 * opt, opt, 5 * opt):
        res = ridge_sd_risk(lam, gamma, r2=r2, sigma2=sigma2, design=design)
        scale = (1 + res.xi_star ** 2) * max(res.teacher, res.student)
        assert res.risk(0.0) == res.teacher and res.risk(1.0) == res.student
        assert abs(res.risk(res.xi_star) - (res.teacher - res.gain)) <= QUAD_REL * scale
        for h in (-0.1, 0.1):
            assert res.risk(res.xi_star + h) > res.risk(res.xi_star)
        assert res.gain >= 0
        if lam < opt:
            assert res.xi_star > 0
        elif lam > opt:
            assert res.xi_star < 0
        else:
            assert abs(res.xi_star) <= QUAD_REL and res.gain <= QUAD_REL * res.teacher


def test_orthogonal_design_reaches_the_bayes_risk():
    """Orthogonal design (every s = 1): the teacher's risk is r^2 d^2 + gamma sigma^2 a^2
    (a = 1/(1 + lam), d = 1 - a), and the best mixed student, whose filter a (1 - xi d) takes
    any value, reaches the Bayes risk r^2 gamma sigma^2 / (r^2 + gamma sigma^2) at every lam
    (derived independently of the closed form's integrals)."""
    r2, sigma2, gamma = 2.0, 0.7, 0.6
    bayes = r2 * gamma * sigma2 / (r2 + gamma * sigma2)
    for lam in (1e-3, 0.1, 1.0, 30.0):
        res = ridge_sd_risk(lam, gamma, r2=r2, sigma2=sigma2, design="orthogonal")
        a = 1 / (1 + lam)
        assert res.teacher == pytest.approx(r2 * (1 - a) ** 2 + gamma * sigma2 * a * a,
                                            rel=1e-14)
        assert res.teacher - res.gain == pytest.approx(bayes, rel=1e-12)


def test_gaussian_design_tends_to_the_orthogonal_one():
    """As gamma -> 0 the Marchenko-Pastur law concentrates at s = 1 with variance gamma, so
    every quantity of the Gaussian design approaches the orthogonal design's at rate gamma
    (second-order: E[s] = 1): the relative gap falls about tenfold per decade of gamma."""
    def gap(gamma):
        g, o = (ridge_sd_risk(0.3, gamma, design=d) for d in ("gaussian", "orthogonal"))
        return max(abs(getattr(g, k) / getattr(o, k) - 1)
                   for k in ("teacher", "student", "cross", "xi_star", "gain"))
    g3, g4, g5 = gap(1e-3), gap(1e-4), gap(1e-5)
    assert g3 < 0.05
    assert 5 < g3 / g4 < 20 and 5 < g4 / g5 < 20


def test_noise_free_self_distillation_never_helps_the_teacher():
    """sigma^2 = 0: R_T - cross = -r^2 E[a d^2] < 0, so xi* < 0 at every lam (the labels are
    exact and every round of pure SD only shrinks further)."""
    for lam in (1e-6, 1e-2, 1.0, 1e3):
        for design, gamma in (("orthogonal", 0.5), ("gaussian", 2.0)):
            assert ridge_sd_risk(lam, gamma, sigma2=0.0, design=design).xi_star < 0


SIM_CASES = [("gaussian", 0.5, 0.1), ("orthogonal", 0.5, 1.0), ("gaussian", 2.0, 0.3),
             ("orthogonal", 0.25, 0.02)]


@pytest.mark.parametrize("design,gamma,lam", SIM_CASES)
def test_closed_forms_agree_with_finite_kernel_ridge_rounds(design, gamma, lam):
    """Finite samples (n = 300, 10 seeds), trained by KernelRidgeSD: the seed mean of every
    quantity (teacher, pure student, cross term, the mixed student trained with the closed
    form's xi*, and each sample's own xi* and gain) is within 4 standard errors of the closed
    form (xi* < 0 at the orthogonal lam = 1.0 case: a label weight alpha = 1 - xi* > 1)."""
    z = ridge_sd_agreement(design, 300, gamma, lam, range(10))["z"]
    assert max(abs(v) for v in z.values()) < 4, z


@pytest.mark.slow
@pytest.mark.parametrize("design,gamma,lam", SIM_CASES[:2])
def test_closed_forms_agree_with_finite_kernel_ridge_rounds_large(design, gamma, lam):
    """As above with n = 2000, 4 seeds."""
    z = ridge_sd_agreement(design, 2000, gamma, lam, range(4))["z"]
    assert max(abs(v) for v in z.values()) < 4, z


def test_ridge_sd_bad_inputs():
    with pytest.raises(ValueError, match=r"orthogonal design X\^T X / n = I needs p <= n"):
        ridge_sd_risk(0.1, 2.0, design="orthogonal")
    with pytest.raises(ValueError, match="design must be one of orthogonal, gaussian"):
        ridge_sd_risk(0.1, 0.5, design="toeplitz")
    with pytest.raises(ValueError, match=r"gamma = p/n must be a number in \(0, 1e6\]"):
        ridge_sd_risk(0.1, 0.0)
    with pytest.raises(ValueError, match="signal r\\^2 must be a finite number > 0"):
        ridge_sd_risk(0.1, 0.5, r2=0.0)
    with pytest.raises(ValueError, match="noise sigma\\^2 must be a finite number >= 0"):
        ridge_sd_risk(0.1, 0.5, sigma2=-1.0)
    with pytest.raises(ValueError, match="lam must be a number in"):
        ridge_sd_risk(0.0, 0.5)
