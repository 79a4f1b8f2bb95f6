"""Properties over the validated parameter ranges (docs/theory.md sections 2.3 and 9): for lam in
[1e-8, 1e3], K in [2, 100] and eta in [0, 1), every output is finite, every row a
distribution, every accuracy in [0, 1], and every exact certificate within its acceptance
bound max(100 tol, eps s ||G||_inf), computed here from the block model's entries.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdtheory.distill import self_distill
from sdtheory.models import two_level
from sdtheory.noise import corrupt_sampled, transition_matrix
from sdtheory.solvers import ExactSolver, LinearSolver
from sdtheory.solvers.newton import ACCEPT_FACTOR, DEFAULT_TOL

EPS = np.finfo(float).eps


def _bound(model, lam):
    """max(100 tol, eps s max_i sum_j |G_ij|) for a two-level model with c, d >= 0."""
    n = np.asarray(model.sizes, float)
    N = n.sum()
    row = 1.0 + (n - 1) * model.c + (N - n) * abs(model.d)
    return max(ACCEPT_FACTOR * DEFAULT_TOL, EPS * row.max() / (N * lam))


def _run(solver_cls, K, n, eta, lam, seed, rounds=2):
    m = two_level(K, n, 0.4, 0.1)
    cor = corrupt_sampled(transition_matrix("sym", K, eta), m.labels(), seed)
    res = self_distill(solver_cls(gram=m, labels=cor.counts, lam=lam), rounds, pll=True)
    return m, res


def _assert_sane(res, *, exact_bound=None):
    for r in list(res.rounds) + [res.pll]:
        assert np.all(np.isfinite(r.P)), r
        assert np.all(np.isfinite([r.residual, r.train_acc, r.train_acc_strict]))
        assert 0.0 <= r.train_acc_strict <= r.train_acc <= 1.0
        assert np.allclose(r.P.sum(axis=1), 1.0, atol=1e-12, rtol=0)
        if exact_bound is not None:
            assert np.all(r.P >= 0.0) and np.all(r.P <= 1.0)
            assert r.residual <= exact_bound, (r.residual, exact_bound)


lams = st.floats(min_value=-8.0, max_value=3.0).map(lambda e: float(10.0 ** e))
etas = st.floats(min_value=0.0, max_value=0.999)


_LINEAR_CASES = dict(K=st.integers(2, 100), n=st.integers(1, 30), eta=etas, lam=lams,
                     seed=st.integers(0, 2 ** 16))
_EXACT_CASES = dict(K=st.integers(2, 12), n=st.integers(1, 40), eta=etas, lam=lams,
                    seed=st.integers(0, 2 ** 16))


def _linear_sane(K, n, eta, lam, seed):
    _, res = _run(LinearSolver, K, n, eta, lam, seed)
    _assert_sane(res)


def _exact_sane(K, n, eta, lam, seed):
    m, res = _run(ExactSolver, K, n, eta, lam, seed)
    _assert_sane(res, exact_bound=_bound(m, lam))


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(**_LINEAR_CASES)
def test_linear_outputs_finite_over_validated_range(K, n, eta, lam, seed):
    """Ten cases (the same on every run); 25 in the slow set."""
    _linear_sane(K, n, eta, lam, seed)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(**_LINEAR_CASES)
def test_linear_outputs_finite_over_validated_range_more_cases(K, n, eta, lam, seed):
    _linear_sane(K, n, eta, lam, seed)


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(**_EXACT_CASES)
def test_exact_outputs_finite_and_certified_over_validated_range(K, n, eta, lam, seed):
    """Six cases (the same on every run; each a new group count, so a new program to
    compile); 20 in the slow set."""
    _exact_sane(K, n, eta, lam, seed)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(**_EXACT_CASES)
def test_exact_outputs_finite_and_certified_over_validated_range_more_cases(K, n, eta, lam,
                                                                             seed):
    _exact_sane(K, n, eta, lam, seed)


@pytest.mark.parametrize("K, lam", [(20, 1e-8), pytest.param(100, 1e-8, marks=pytest.mark.slow),
                                    (100, 1e3)])
def test_exact_outputs_finite_and_certified_at_K100(K, lam):
    """The range's corners at K = 100 (2 K non-empty groups: one mislabelled sample per
    class, given the next class); lam = 1e-8 (Newton's longest solve) at K = 20 in the fast
    set, at K = 100 in the slow one."""
    counts = 2 * np.eye(K, dtype=int) + np.roll(np.eye(K, dtype=int), 1, axis=1)
    m = two_level(K, 3, 0.4, 0.1)
    res = self_distill(ExactSolver(gram=m, labels=counts, lam=lam), 1, pll=True)
    _assert_sane(res, exact_bound=_bound(m, lam))
