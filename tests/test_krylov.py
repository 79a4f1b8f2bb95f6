"""The Krylov methods of the Newton directions (sdtheory.solvers.krylov): GMRES against the least
residual over its Krylov space computed independently in numpy, and its product count; CG
against numpy's solve."""

import numpy as np
import pytest


def _krylov_case(n, seed, spread):
    """A nonsymmetric system: A = I + spread * Gaussian / sqrt(n), and a right-hand side shaped
    like the logits (n / 4, 4)."""
    rng = np.random.default_rng(seed)
    A = np.eye(n) + spread * rng.standard_normal((n, n)) / np.sqrt(n)
    return A, rng.standard_normal((n // 4, 4))


def _counted(A):
    """x -> A x on (n / 4, 4) arrays (JAX), and a list that grows by one per product."""
    import jax

    calls = []
    A_j = jax.numpy.asarray(A)

    def matvec(v):
        jax.debug.callback(lambda: calls.append(1))
        return (A_j @ v.reshape(-1)).reshape(v.shape)

    return matvec, calls


@pytest.mark.parametrize("rtol", [1e-2, 1e-6, 1e-12])
def test_gmres_stops_at_the_first_iterate_that_meets_rtol(rtol):
    """krylov.gmres, one cycle from zero: its residual norm is the true one, it meets rtol,
    the iterate before it does not (the least residual over the Krylov space of one dimension
    less, computed independently in numpy, is above rtol), and it spent one product an
    iteration (docs/theory.md section 2.4)."""
    import jax

    from sdtheory.solvers.krylov import gmres

    A, b = _krylov_case(160, 0, 0.6)
    matvec, calls = _counted(A)
    x, rnorm, its = jax.jit(lambda b: gmres(matvec, b, None, rtol, 160, 1))(b)
    x, rnorm, its = np.asarray(x).reshape(-1), float(rnorm), int(its)
    jax.effects_barrier()
    nb, eps = np.linalg.norm(b), np.finfo(float).eps
    true = np.linalg.norm(b.reshape(-1) - A @ x)
    roundoff = 10 * its * eps * (nb + np.linalg.norm(A, 2) * np.linalg.norm(x))
    assert abs(true - rnorm) <= roundoff
    assert true <= rtol * nb * (1 + 1e-6)

    def least_residual(j):
        """min ||b - A y|| over y in span(b, A b, ..., A^(j-1) b): an orthonormal basis by
        modified Gram-Schmidt, then least squares on A Q."""
        Q = np.zeros((b.size, j))
        Q[:, 0] = b.reshape(-1) / nb
        for i in range(1, j):
            v = A @ Q[:, i - 1]
            for _ in range(2):
                for c in range(i):
                    v -= (Q[:, c] @ v) * Q[:, c]
            Q[:, i] = v / np.linalg.norm(v)
        y = np.linalg.lstsq(A @ Q, b.reshape(-1), rcond=None)[0]
        return np.linalg.norm(b.reshape(-1) - A @ (Q @ y))

    assert least_residual(its - 1) > 1.05 * rtol * nb            # measured 1.11 to 1.88
    assert abs(least_residual(its) - true) <= roundoff
    assert len(calls) == its                 # from zero: no product for the start residual


def test_gmres_restarts_from_a_start():
    """krylov.gmres from x0 with restarts: it meets rtol; products: one for x0's residual,
    one an iteration and one a restart."""
    import jax

    from sdtheory.solvers.krylov import gmres

    A, b = _krylov_case(160, 1, 0.9)
    x_star = np.linalg.solve(A, b.reshape(-1))
    x0 = (x_star + 0.1 * np.random.default_rng(2).standard_normal(160)).reshape(b.shape)
    matvec, calls = _counted(A)
    restart, rtol = 4, 1e-10
    x, rnorm, its = jax.jit(lambda b, x0: gmres(matvec, b, x0, rtol, restart, 100))(b, x0)
    jax.effects_barrier()
    its = int(its)
    true = np.linalg.norm(b.reshape(-1) - A @ np.asarray(x).reshape(-1))
    assert true <= rtol * np.linalg.norm(b) * (1 + 1e-4)
    assert its > 2 * restart                                      # measured 29
    assert len(calls) == 1 + its + (-(-its // restart) - 1)
    x, rnorm, its = gmres(matvec, np.zeros_like(b), None, rtol, restart, 100)
    assert not np.any(np.asarray(x)) and int(its) == 0 and float(rnorm) == 0.0


def _with_condition(n, cond, seed, symmetric):
    """A (n x n) with singular values geometric in [1, cond] (symmetric: SPD, eigenvalues)."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    V = U if symmetric else np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = (U * np.geomspace(1.0, cond, n)) @ V.T
    return 0.5 * (A + A.T) if symmetric else A


@pytest.mark.parametrize("cond", [1e2, 1e6, 1e12])
def test_gmres_at_high_condition_numbers(cond):
    """krylov.gmres on systems of condition number up to 1e12: its residual estimate is the
    true residual to the round-off of forming it, and the true residual meets rtol up to that
    round-off, 10 j eps (||b|| + ||A|| ||x||) after j iterations."""
    import jax

    from sdtheory.solvers.krylov import gmres

    n, rtol = 96, 1e-6
    A = _with_condition(n, cond, 3, symmetric=False)
    b = np.random.default_rng(4).standard_normal((n // 4, 4))
    A_j = jax.numpy.asarray(A)
    x, rnorm, its = jax.jit(lambda b: gmres(lambda v: (A_j @ v.reshape(-1)).reshape(v.shape),
                                            b, None, rtol, n, 1))(b)
    x = np.asarray(x).reshape(-1)
    eps = np.finfo(float).eps
    roundoff = 10 * int(its) * eps * (np.linalg.norm(b) + cond * np.linalg.norm(x))
    true = np.linalg.norm(b.reshape(-1) - A @ x)
    assert abs(true - float(rnorm)) <= roundoff
    assert true <= rtol * np.linalg.norm(b) + roundoff


@pytest.mark.parametrize("cond", [1e2, 1e6, 1e12])
def test_pcg_at_high_condition_numbers(cond):
    """krylov.pcg on SPD systems of condition number up to 1e12, preconditioned by the exact
    inverse and by the inverse of a spectral approximation (eigenvalues off by factors in
    [1/2, 2], as the solvers' preconditioners approximate J): the true residual meets rtol up
    to the round-off of the products, 10 n eps ||A|| ||x||, and x is numpy's solution to
    within cond times that."""
    import jax

    from sdtheory.solvers.krylov import pcg

    n, rtol = 96, 1e-8
    rng = np.random.default_rng(5)
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    mu = np.geomspace(1.0, cond, n)
    A = (U * mu) @ U.T
    A = 0.5 * (A + A.T)
    b = rng.standard_normal(n)
    ref = np.linalg.solve(A, b)
    A_j = jax.numpy.asarray(A)
    eps = np.finfo(float).eps
    for scale in (np.ones(n), rng.uniform(0.5, 2.0, n)):
        M_j = jax.numpy.asarray((U / (mu * scale)) @ U.T)
        x, its = jax.jit(lambda b, M_j=M_j: pcg(lambda v: A_j @ v, b, lambda r: M_j @ r,
                                                 rtol, 10 * n))(b)
        x = np.asarray(x)
        roundoff = 10 * n * eps * cond * np.linalg.norm(x)
        assert np.linalg.norm(b - A @ x) <= rtol * np.linalg.norm(b) + roundoff, int(its)
        assert np.linalg.norm(x - ref) <= cond * (rtol * np.linalg.norm(b) + roundoff)
