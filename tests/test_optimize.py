"""Differentiable theory (sdtheory.jobs.optimize, docs/theory.md section 17): the closed-form
margins against the linearised solver's outputs, JAX gradients against finite differences,
the optimiser against a grid search, and the command."""

import json
import math

import jax
import numpy as np
import pytest

from sdtheory.cli import main
from sdtheory.jobs.optimize import MarginModel, optimize
from sdtheory.metrics import margins
from sdtheory.models import three_level, two_level
from sdtheory.noise import corrupt_exact, transition_matrix
from sdtheory.solvers import LinearSolver
from sdtheory.theory import averaging_eigenvalues, r_star_closed


def _cases():
    m2 = two_level(4, 30, 0.4, 0.1)
    m3 = three_level(2, 3, 20, 0.6, 0.3, 0.1)
    return [(m2, corrupt_exact(transition_matrix("sym", 4, 0.5), m2.sizes).counts),
            (m2, corrupt_exact(transition_matrix("asym", 4, 0.3), m2.sizes).counts),
            (m3, corrupt_exact(transition_matrix("superclass", 6, 0.4,
                                                 superclass_of=m3.superclass_of),
                               m3.sizes).counts)]


@pytest.mark.parametrize("case", range(3))
def test_margin_equals_linear_solver_outputs(case):
    """min over groups of p(true) - max_other p from LinearSolver.round_outputs (the averaging
    operator on the group units) against the pair-coefficient closed form, for label weights
    0 and 0.4."""
    model, C = _cases()[case]
    mm = MarginModel(model, C)
    s_lam = {}
    for lam in (1e-5, 1e-3, 1e-1):
        s_lam[lam] = LinearSolver(gram=model, labels=C, lam=lam)
        for alpha in (0.0, 0.4):
            for r in (0, 1, 4):
                P = s_lam[lam].round_outputs(r, label_weight=alpha)
                want = margins(P, s_lam[lam].true).min()
                got = float(mm.margin(math.log(lam), alpha, r))
                assert abs(got - want) <= 1e-13, (lam, alpha, r)


def test_gradients_equal_finite_differences():
    """JAX gradients of the margin (in log lam and alpha) and of the continuous r* (in log lam)
    against central differences with step h = 1e-5: truncation error h^2 |f'''| / 6 < 1e-9
    here, rounding error eps |f| / h ~ 1e-11."""
    model, C = _cases()[0]
    mm = MarginModel(model, C)
    # compiled once each (the round r traced, as optimize() does), not op by op per call
    margin = jax.jit(mm.margin)
    grad_margin = jax.jit(jax.grad(mm.margin, argnums=(0, 1)))
    r_star = jax.jit(mm.r_star_continuous)
    grad_r_star = jax.jit(jax.grad(mm.r_star_continuous))
    h = 1e-5
    for log_lam in (math.log(1e-4), math.log(3e-3)):
        for alpha in (0.0, 0.35):
            for r in (1.0, 3.0):
                g_lam, g_alpha = grad_margin(log_lam, alpha, r)
                fd_lam = (float(margin(log_lam + h, alpha, r))
                          - float(margin(log_lam - h, alpha, r))) / (2 * h)
                fd_alpha = (float(margin(log_lam, alpha + h, r))
                            - float(margin(log_lam, alpha - h, r))) / (2 * h)
                assert abs(float(g_lam) - fd_lam) <= 1e-8
                assert abs(float(g_alpha) - fd_alpha) <= 1e-8
        dlt = 0.25
        g = float(grad_r_star(log_lam, dlt))
        fd = (float(r_star(log_lam + h, dlt)) - float(r_star(log_lam - h, dlt))) / (2 * h)
        assert abs(g - fd) <= 1e-7 * max(1.0, abs(fd))
        a = averaging_eigenvalues(model, math.exp(log_lam))
        x = float(mm.r_star_continuous(log_lam, dlt))
        assert r_star_closed(dlt, a["class"], a["instance"]) == math.floor(x)


def test_optimum_beats_a_grid_search():
    """For rounds 0, 2, 5 the L-BFGS-B optimum is at least the best of a 121 x 11 grid over
    log lam and alpha (minus 1e-12), and its margin is a local maximum: where lam is interior
    the gradient in log lam is below 1e-7 (the optimiser stops at a projected gradient of
    GTOL = 1e-9, or earlier when a step changes the margin by < 1e-15 relative)."""
    model, C = _cases()[0]
    mm = MarginModel(model, C)
    res = optimize(model, C, [0, 2, 5])
    grid_lam = np.linspace(math.log(1e-8), math.log(1e3), 121)
    # the whole grid in one compiled call (the round traced, as optimize() does)
    x, a = (g.ravel() for g in np.meshgrid(grid_lam, np.linspace(0, 1, 11)))
    on_grid = jax.jit(jax.vmap(mm.margin, in_axes=(0, 0, None)))
    for opt in res:
        grid = float(np.max(on_grid(x, a, float(opt.round))))
        assert opt.margin >= grid - 1e-12
        assert opt.margin == pytest.approx(float(mm.margin(math.log(opt.lam), opt.label_weight,
                                                           opt.round)), abs=1e-14)
        if 1e-8 < opt.lam < 1e3:
            g = float(jax.grad(lambda x, o=opt: mm.margin(x, o.label_weight, o.round))(
                math.log(opt.lam)))
            assert abs(g) <= 1e-7


def test_optimize_command(tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["--quiet", "optimize", "--K", "4", "--n", "30", "--eta", "0.5", "--max-rounds",
               "3", "--json", "--out", str(out)])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads((out / "optimize.json").read_text())
    margins_r = [r["margin"] for r in doc["rounds"]]
    model = two_level(4, 30, 0.4, 0.1)
    C = corrupt_exact(transition_matrix("sym", 4, 0.5), model.sizes).counts
    assert margins_r == pytest.approx([o.margin for o in optimize(model, C, range(4))],
                                      abs=1e-12)
    rec = doc["recommended"]
    assert rec["margin"] >= 0.99 * max(margins_r)
    assert all(r["margin"] < 0.99 * max(margins_r) for r in doc["rounds"][:rec["round"]])


def test_test_accuracy_model_equals_population_accuracy_and_its_gradient():
    """TestAccuracyModel (jax.numpy) against the numpy path: LinearSolver.round_outputs,
    weights_from_outputs and population_accuracy on a two-class Gaussian mixture (to 1e-13);
    its gradient in log lam against central differences with h = 1e-4 (truncation about
    2e-11 here; the model's own rounding, ~1e-14, contributes 1e-10)."""
    from sdtheory.jobs.optimize import TestAccuracyModel
    from sdtheory.models import gmm_features, gmm_means
    from sdtheory.noise import corrupt_sampled
    from sdtheory.population import population_accuracy, weights_from_outputs

    K, n, c, d, D = 2, 60, 0.4, 0.1, 30
    X, y = gmm_features(K, n, c, d, D, seed=0)
    cor = corrupt_sampled(transition_matrix("sym", 2, 0.3), y, seed=0)
    means, sigma = gmm_means(K, c, d, D), math.sqrt((1 - c) / D)
    tm = TestAccuracyModel(X, cor.given, means, sigma)
    h = 1e-4
    # compiled once per round (r is static in the model), not op by op per call
    accuracy = jax.jit(tm.accuracy, static_argnums=2)
    grad = jax.jit(jax.grad(tm.accuracy), static_argnums=2)
    for lam in (1e-4, 1e-2):
        s = LinearSolver(gram=X @ X.T, labels=cor, lam=lam)
        Y = s.targets0()
        for alpha in (0.0, 0.3):
            P = s.round_outputs(np.arange(3), label_weight=alpha)
            for r in (0, 2):
                T = Y if r == 0 else alpha * Y + (1 - alpha) * P[r - 1]
                want = population_accuracy(weights_from_outputs(X, T, P[r], lam), means,
                                           sigma)[1]
                x = math.log(lam)
                assert abs(float(accuracy(x, alpha, r)) - want) <= 1e-13
                g = float(grad(x, alpha, r))
                fd = (float(accuracy(x + h, alpha, r)) - float(accuracy(x - h, alpha, r))) / (2 * h)
                assert abs(g - fd) <= 1e-9
