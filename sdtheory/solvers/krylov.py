"""Krylov methods for the Newton systems of the structured problems (docs/theory.md section 2.4).

Both work on pytrees of one array (the unknowns' shape, e.g. (N, K)) through a function that
applies the matrix, inside ``jax.jit`` and ``jax.vmap``:

* :func:`pcg`: preconditioned conjugate gradients, for symmetric positive definite systems
  (the feature-space Jacobian);
* :func:`gmres`: restarted GMRES, for the non-symmetric right-preconditioned dense Jacobian.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

__all__ = ["gmres", "pcg"]


def _dot(u, v):
    return jnp.sum(u * v)


def pcg(A, b, M, rtol, maxiter: int):
    """Preconditioned conjugate gradients for A x = b, A and M symmetric positive definite,
    from x = 0, until ||b - A x|| <= rtol ||b|| or ``maxiter`` iterations.

    Returns:
      (x, iterations).
    """
    bound = (rtol * jnp.sqrt(_dot(b, b))) ** 2
    z = M(b)
    st = (jnp.asarray(0), jnp.zeros_like(b), b, z, z, _dot(b, z))

    def cond(st):
        it, _, r, _, _, _ = st
        return (_dot(r, r) > bound) & (it < maxiter)

    def body(st):
        it, x, r, z, p, rz = st
        Ap = A(p)
        alpha = rz / _dot(p, Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        z = M(r)
        rz_new = _dot(r, z)
        return it + 1, x, r, z, z + (rz_new / rz) * p, rz_new

    it, x, _, _, _, _ = jax.lax.while_loop(cond, body, st)
    return x, it


def gmres(A, b, x0, rtol, restart: int, maxiter: int):
    """Restarted GMRES for A x = b, A a function (for a right-preconditioned system, the matrix
    composed with the preconditioner), from x0 (None: zero), until ||b - A x|| <= rtol ||b||
    or ``maxiter`` cycles of ``restart`` iterations.

    Arnoldi with classical Gram-Schmidt applied twice; Givens rotations give the residual norm
    of every iterate without forming it, so a cycle stops at the first iteration that meets
    rtol. Products with A: one an iteration, one for the residual of x0 (none from zero) and
    one for the true residual a new cycle restarts from (none after the last cycle or where
    rtol is met); ``jax.scipy.sparse.linalg.gmres`` spends one more on a zero start and at
    the end of every cycle.

    Returns:
      (x, residual norm, iterations): the norm is GMRES's own (Givens) estimate of
      ||b - A x|| from the last cycle, or the computed ||b - A x0|| where x0 already met rtol.
    """
    m = int(restart)
    dtype = b.dtype
    target = rtol * jnp.sqrt(_dot(b, b))
    x = jnp.zeros_like(b) if x0 is None else x0
    r = b if x0 is None else b - A(x0)

    def cycle(st):
        x, r, beta, its, cycles = st
        V = jnp.zeros((m + 1,) + b.shape, dtype).at[0].set(r / beta)
        R = jnp.eye(m, dtype=dtype)              # the rotated Hessenberg matrix, upper triangular
        g = jnp.zeros(m + 1, dtype).at[0].set(beta)  # the rotated right-hand side beta e1
        cs, sn = jnp.ones(m, dtype), jnp.zeros(m, dtype)

        def more(c):
            j, _, _, g, _, _ = c
            return (j < m) & (jnp.abs(g[j]) > target)

        def arnoldi(c):
            j, V, R, g, cs, sn = c
            w = A(V[j])
            h = jnp.tensordot(V, w, axes=w.ndim)          # unused columns of V are zero
            w = w - jnp.tensordot(h, V, axes=1)
            h2 = jnp.tensordot(V, w, axes=w.ndim)         # twice is enough
            w = w - jnp.tensordot(h2, V, axes=1)
            hn = jnp.sqrt(_dot(w, w))
            V = V.at[j + 1].set(w / jnp.where(hn > 0, hn, 1.0))
            h = (h + h2).at[j + 1].set(hn)

            def rotate(i, h):
                a, c = h[i], h[i + 1]
                return h.at[i].set(cs[i] * a - sn[i] * c).at[i + 1].set(sn[i] * a + cs[i] * c)

            h = jax.lax.fori_loop(0, j, rotate, h)
            a, c = h[j], h[j + 1]
            d = jnp.sqrt(a * a + c * c)
            safe = jnp.where(d > 0, d, 1.0)
            cj, sj = jnp.where(d > 0, a / safe, 1.0), jnp.where(d > 0, -c / safe, 0.0)
            R = R.at[:, j].set(h[:m].at[j].set(d))
            g = g.at[j + 1].set(sj * g[j]).at[j].set(cj * g[j])
            return j + 1, V, R, g, cs.at[j].set(cj), sn.at[j].set(sj)

        j, V, R, g, _, _ = jax.lax.while_loop(more, arnoldi, (0, V, R, g, cs, sn))
        # columns j..m-1 of R are still the identity's and their right-hand side is zero
        y = solve_triangular(R, jnp.where(jnp.arange(m) < j, g[:m], 0.0), lower=False)
        x = x + jnp.tensordot(y, V[:m], axes=1)
        cycles = cycles + 1
        again = (jnp.abs(g[j]) > target) & (cycles < maxiter)
        r = jax.lax.cond(again, lambda: b - A(x), lambda: r)
        beta = jnp.where(again, jnp.sqrt(_dot(r, r)), jnp.abs(g[j]))
        return x, r, beta, its + j, cycles

    def cond(st):
        _, _, beta, _, cycles = st
        return (beta > target) & (cycles < maxiter)

    st = (x, r, jnp.sqrt(_dot(r, r)), 0, 0)
    x, _, beta, its, _ = jax.lax.while_loop(cond, cycle, st)
    return x, beta, its
