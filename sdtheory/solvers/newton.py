"""The Newton core: every exact solve of the fixed point (E) runs through :func:`newton`.

One training's outputs P solve (docs/theory.md section 2)

    P = softmax_rows(Zfix),    Zfix = s M (T - P),    s = 1 / (N lam),

where M is the Gram matrix seen by the unknowns (the N x N matrix G, the unit-level matrix of
the group reduction, or X X^T through the features). A *problem* is a JAX pytree that knows its
M and offers two methods on an unknown x (the logits Z, or the transposed weights W^T):

* ``evaluate(x, T) -> (P, Zfix, F)``: the outputs, the fixed-point logits and the residual F(x)
  whose root is the solution (F = Z - Zfix in logit space);
* ``direction(x, P, F, rtol) -> (dx, iterations)``: a Newton direction, J dx = -F (exactly,
  or by a Krylov method to the relative residual ``rtol`` that :func:`forcing` asks for), and
  the Krylov iterations it took (0 for an exact direction).

:func:`newton` is the one driver: damped Newton with a backtracking line search on ||F||, one
acceptance rule, one round-off rule and one certificate,

    certificate = max |P - softmax(Zfix)|        (:func:`certificate`),

jitted end to end (``lax.while_loop``, no host round trip per step) and vmapped over a batch of
independent problems of the same structure and shapes. The structure of M enters only through
the problem's ``direction`` (:mod:`sdtheory.solvers.problems`).

Stopping (docs/theory.md section 2.3):

* ``CONVERGED``: certificate <= ``tol`` (default 1e-12);
* ``ROUNDOFF``: certificate <= the acceptance bound and a full Newton step no longer halves
  ||F||: the iteration has reached float64 round-off, where quadratic convergence is lost; the
  better of the two iterates is kept. The acceptance bound is the larger of ``accept_tol``
  (default 100 ``tol``) and the round-off floor of the certificate itself,
  ``ROUNDOFF_FACTOR * eps * problem.roundoff_scale()`` (docs/theory.md section 2.3): Zfix =
  s M (T - P) is evaluated in float64, so its entries carry errors up to about
  eps * s * max_i sum_j |M_ij| (|T - P| <= 1), and no iterate can be certified below that at
  small lam;
* ``FAILED``: anything else (out of steps, no decrease found, non-finite numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CONVERGED",
    "ROUNDOFF",
    "FAILED",
    "STATUS_NAMES",
    "DEFAULT_TOL",
    "ACCEPT_FACTOR",
    "ROUNDOFF_FACTOR",
    "NewtonResult",
    "certificate",
    "forcing",
    "newton",
    "local_devices",
]

CONVERGED, ROUNDOFF, FAILED = 0, 1, 2
STATUS_NAMES = {CONVERGED: "converged", ROUNDOFF: "round-off", FAILED: "failed"}

DEFAULT_TOL = 1e-12
"""Certificate the exact solvers aim for."""

ACCEPT_FACTOR = 100.0
"""A certificate within this factor of the tolerance is accepted at the round-off floor only
(a full Newton step no longer halves ||F||; docs/theory.md section 2.3)."""

ROUNDOFF_FACTOR = 1.0
"""Multiple of eps * s * ||M||_inf (the float64 error bound of the fixed-point logits) accepted
at the round-off floor (docs/theory.md section 2.3)."""


def forcing(normF, cert, tol):
    """The relative residual asked of a Krylov solve of J dx = -F (docs/theory.md section 2.3):

        min(1e-2, max(1e-10, 0.1 ||F||, 0.1 tol / certificate)).

    0.1 ||F|| keeps the convergence superlinear; 0.1 tol / certificate is all a step needs to
    bring a certificate proportional to ||F|| to a tenth of the tolerance, so the last step of a
    solve asks no more of the Krylov method than the certificate needs."""
    import jax.numpy as jnp

    tiny = jnp.finfo(cert.dtype).tiny
    return jnp.clip(jnp.maximum(0.1 * normF, 0.1 * tol / jnp.maximum(cert, tiny)), 1e-10, 1e-2)


_ARMIJO = 1e-4          # sufficient decrease: ||F(x + a dx)|| <= (1 - 1e-4 a) ||F(x)||
_MIN_STEP = 1e-10       # smallest line-search step before giving up


def certificate(P, Zfix):
    """The certificate of (E): max |P - softmax(Zfix)| over all entries (JAX)."""
    import jax
    import jax.numpy as jnp

    return jnp.max(jnp.abs(P - jax.nn.softmax(Zfix, axis=-1)))


def _evaluate(problem, x, T):
    import jax.numpy as jnp

    P, Zfix, F = problem.evaluate(x, T)
    return P, F, jnp.sqrt(jnp.sum(F * F)), certificate(P, Zfix)


def _like(v, value):
    """The constant ``value`` computed from ``v`` (same batching under ``jax.vmap``).

    A loop carry that starts as a plain constant is unbatched; under vmap the loop's body
    makes it batched, and JAX then traces the loop (and the line search inside it) again.
    Starting every carry batched saves those passes."""
    import jax.numpy as jnp

    return jnp.where(v == v, value, value)


def _newton_one(problem, T, x0, tol, accept_tol, max_iter):
    """Damped Newton on one problem; returns (x, P, certificate, iterations, status, accept,
    Krylov iterations)."""
    import jax
    import jax.numpy as jnp

    P0, F0, n0, c0 = _evaluate(problem, x0, T)
    eps = jnp.finfo(P0.dtype).eps
    accept_tol = jnp.maximum(accept_tol, ROUNDOFF_FACTOR * eps * problem.roundoff_scale())

    def cond(st):
        it, _, _, _, _, cert, stop, _ = st
        return (cert > tol) & (it < max_iter) & ~stop

    def body(st):
        it, x, P, F, nF, cert, _, kry = st
        dx, kits = problem.direction(x, P, F, forcing(nF, cert, tol))
        x1 = x + dx
        full = (_like(nF, 1.0), x1) + _evaluate(problem, x1, T)
        # Round-off floor: the certificate is already acceptable and a full Newton step does
        # not even halve ||F|| (it would more than square it in exact arithmetic).
        floor = (cert <= accept_tol) & ~(full[4] <= 0.5 * nF)

        def ls_cond(ls):
            alpha, _, _, _, nFn, _ = ls
            return ~floor & ~(nFn <= (1.0 - _ARMIJO * alpha) * nF) & (alpha >= _MIN_STEP)

        def ls_body(ls):
            alpha = ls[0] * 0.5
            xn = x + alpha * dx
            return (alpha, xn) + _evaluate(problem, xn, T)

        alpha, xn, Pn, Fn, nFn, cn = jax.lax.while_loop(ls_cond, ls_body, full)
        ok = jnp.where(floor, cn < cert, nFn <= (1.0 - _ARMIJO * alpha) * nF)

        def pick(new, old):
            return jnp.where(ok, new, old)

        return (it + 1, pick(xn, x), pick(Pn, P), pick(Fn, F), pick(nFn, nF), pick(cn, cert),
                floor | ~ok, kry + kits.astype(kry.dtype))

    init = (_like(c0, 0), x0, P0, F0, n0, c0, _like(c0, False), _like(c0, 0))
    it, x, P, _, _, cert, _, kry = jax.lax.while_loop(cond, body, init)
    status = jnp.where(cert <= tol, CONVERGED, jnp.where(cert <= accept_tol, ROUNDOFF, FAILED))
    return x, P, cert, it, status, accept_tol, kry


_JITTED = {}


def _compiled(batched: bool, devices: int = 1, shared: bool = False):
    """jit(_newton_one), or jit(vmap(_newton_one)) over a leading batch axis of the problem,
    the targets and the starting point (``shared``: of the targets and the starting point
    only, one problem for all); with ``devices`` > 1 the batch is split evenly over the first
    ``devices`` local devices (``jax.shard_map``: each device runs its own Newton loop on its
    share, with no communication). One compilation per problem structure, shapes and device
    count."""
    key = (batched, devices, shared)
    if key not in _JITTED:
        import jax

        fn = _newton_one
        if batched:
            fn = jax.vmap(fn, in_axes=(None if shared else 0, 0, 0, None, None, None))
            if devices > 1:
                from jax.sharding import Mesh
                from jax.sharding import PartitionSpec as Spec

                mesh = Mesh(np.array(jax.local_devices()[:devices]), ("batch",))
                problem = Spec() if shared else Spec("batch")
                fn = jax.shard_map(fn, mesh=mesh,
                                   in_specs=(problem,) + (Spec("batch"),) * 2 + (Spec(),) * 3,
                                   out_specs=Spec("batch"), check_vma=False)
        _JITTED[key] = jax.jit(fn)
    return _JITTED[key]


def local_devices() -> int:
    """Number of devices of JAX's default backend in this process: the batches of
    :func:`newton` are sharded over them when there are several (one CPU unless the process
    was started with, e.g., ``XLA_FLAGS=--xla_force_host_platform_device_count=4``)."""
    import jax

    return jax.local_device_count()


@dataclass(frozen=True)
class NewtonResult:
    """What :func:`newton` returns (numpy arrays; a leading batch axis when batched).

    Attributes:
      x: the unknowns at the end (logits Z, or weights W^T for feature-space problems).
      P: the outputs softmax(logits).
      certificate: max |P - softmax(Zfix)| per problem.
      iterations: Newton steps taken per problem.
      status: :data:`CONVERGED`, :data:`ROUNDOFF` or :data:`FAILED` per problem.
      accept: the acceptance bound of a ``ROUNDOFF`` status per problem (the larger of
        ``accept_tol`` and the round-off floor of the certificate).
      krylov: Krylov iterations (CG or GMRES) of all Newton directions per problem (0 for
        exact directions).
      devices: number of devices the batch was sharded over (1: not sharded).
    """

    x: np.ndarray
    P: np.ndarray
    certificate: np.ndarray
    iterations: np.ndarray
    status: np.ndarray
    accept: np.ndarray
    krylov: np.ndarray
    devices: int = 1


def newton(problem, T, x0, *, tol: float = DEFAULT_TOL, accept_tol: float | None = None,
           max_iter: int = 60, batched: bool = False, shared: bool = False) -> NewtonResult:
    """Solve the fixed point (E) of ``problem`` for targets T from the start x0.

    Args:
      problem: a problem pytree (:mod:`sdtheory.solvers.problems`); with ``batched`` every
        array leaf carries a leading batch axis.
      T: targets, shaped like the outputs (with the batch axis when batched).
      x0: starting unknowns (zeros: the uniform outputs; or the previous round's, warm).
      tol: certificate to reach.
      accept_tol: certificate accepted at the round-off floor (default ``ACCEPT_FACTOR * tol``;
        raised to the problem's round-off floor where that is larger).
      max_iter: Newton steps per problem.
      batched: solve a batch of independent problems at once (``jax.vmap``). Where JAX has
        several local devices (:func:`local_devices`), the batch is padded to a multiple of
        their number and sharded over them.
      shared: with ``batched``, one problem (no batch axis) for every targets T[b] and start
        x0[b]: its arrays are held once and its products act on the whole batch at once (the
        label sets of one feature matrix, :class:`~sdtheory.solvers.FeatureSolver`).

    Returns:
      :class:`NewtonResult` (numpy). Nothing is raised here: the caller decides what a
      ``FAILED`` status means (:class:`sdtheory.solvers.SolverError` for single solves).
    """
    import jax

    accept = ACCEPT_FACTOR * tol if accept_tol is None else accept_tol
    # numpy arrays go to the program as they are (one transfer each): jnp.asarray would first
    # run a conversion program, one more to load or compile for every new shape
    T, x0 = (a if isinstance(a, jax.Array) else np.asarray(a) for a in (T, x0))
    B = T.shape[0] if batched else 1
    devices = min(local_devices(), B) if batched else 1
    if devices > 1 and B % devices:          # pad with copies of the last problem
        pad = np.concatenate([np.arange(B), np.full(devices - B % devices, B - 1)])
        T, x0 = (a[pad] for a in (T, x0))
        if not shared:
            problem = jax.tree_util.tree_map(lambda a: a[pad], problem)
    args = (problem, T, x0, float(tol), float(accept), int(max_iter))
    out = _compiled(bool(batched), devices, bool(batched and shared))(*args)
    return NewtonResult(*(np.array(v)[:B] if batched else np.array(v) for v in out),
                        devices=devices)
