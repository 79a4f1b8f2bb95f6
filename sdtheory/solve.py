"""One training on fixed features: exact and linearised student outputs.

Every solver answers the same question: given targets T (one row per training unit, each row a
distribution over K classes), what does the global minimiser of

    L(W) = (1/N) sum_i CE(t_i, softmax(W x_i)) + (lam/2) ||W||_F^2

output on the training inputs?  The exact answer solves the fixed point (theory.md eq. E)

    P = softmax_rows( G (T - P) / (N lam) ).

A *unit* is a training sample (full solvers) or a group of samples sharing
(true class, given label, target) (group-reduced solvers); ``weight`` is how many samples a unit
stands for. All solvers share the :class:`Solver` protocol, so :mod:`sdtheory.distill` runs rounds
with any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sdtheory.noise import check_counts

__all__ = [
    "Fit",
    "Solver",
    "SolverError",
    "ExactSolver",
    "GroupSolver",
    "LinearSolver",
    "AveragingOperator",
    "unit_matrix",
    "fixed_point_residual",
    "one_hot",
    "check_lam",
    "check_targets",
]


class SolverError(RuntimeError):
    """A solver did not reach its tolerance: nothing is returned rather than a wrong answer."""


@dataclass(frozen=True)
class Fit:
    """Outputs of one training.

    Attributes:
      P: (U, K) outputs on the training units, rows on the simplex.
      residual: certificate, max |P - softmax(G (T - P) / (N lam))| for exact solvers; for the
        linearised form, the residual of (L).
      info: solver-specific diagnostics (iterations, time, ...).
    """

    P: np.ndarray
    residual: float
    info: dict = field(default_factory=dict)


class Solver(Protocol):
    """What :mod:`sdtheory.distill` needs from a solver of one training.

    Attributes:
      K: number of classes.
      true: (U,) true class of each unit.
      given: (U,) given (possibly noisy) label of each unit.
      weight: (U,) number of training samples each unit stands for (1 for full solvers).
      name: short name for tables ("exact", "linear", "trained", ...).
    """

    K: int
    true: np.ndarray
    given: np.ndarray
    weight: np.ndarray
    name: str

    def fit(self, T: np.ndarray) -> Fit:
        """Train once on targets T (U x K, rows are distributions); return the outputs."""
        ...


# --------------------------------------------------------------------------------------------
# Validation shared by all solvers
# --------------------------------------------------------------------------------------------

def check_lam(lam) -> float:
    """lam must be a finite float > 0 (the ridge makes the problem strictly convex)."""
    lam = float(lam)
    if not np.isfinite(lam) or lam <= 0:
        raise ValueError(f"lam must be a finite number > 0, got {lam!r}")
    return lam


def check_targets(T, U: int, K: int, name: str = "T", *, simplex: bool = True) -> np.ndarray:
    """Targets: a (U, K) array whose rows are probability distributions.

    ``simplex=False`` (the linearised form, whose outputs may leave the simplex) only asks
    for rows summing to 1.
    """
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (U, K):
        raise ValueError(f"{name} must have shape ({U}, {K}) (units x classes), got {T.shape}")
    if not np.all(np.isfinite(T)):
        raise ValueError(f"{name} must be finite")
    if (simplex and np.any(T < -1e-12)) or np.any(np.abs(T.sum(axis=1) - 1.0) > 1e-9):
        raise ValueError(f"every row of {name} must be a distribution (entries >= 0, sum 1)")
    return T


def check_labels(labels, U: int, K: int, name: str) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (U,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be {U} integer labels, got shape {y.shape}, dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= K):
        raise ValueError(f"{name} must lie in 0..{K - 1}")
    return y.astype(np.int64)


def one_hot(labels, K: int) -> np.ndarray:
    return np.eye(K)[np.asarray(labels)]


def softmax_np(Z: np.ndarray) -> np.ndarray:
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def fixed_point_residual(G, T, P, lam, weight=None) -> float:
    """Certificate of (E): max |P - softmax(G (T - P) / (N lam))|.

    With ``weight`` (units standing for several samples), G is the unit-level matrix of the
    group reduction, G_eff = diag I + B diag(weight), and N = sum(weight).
    """
    N = float(np.sum(weight)) if weight is not None else P.shape[0]
    Z = np.asarray(G) @ (np.asarray(T) - np.asarray(P)) / (N * lam)
    return float(np.max(np.abs(P - softmax_np(Z))))


# --------------------------------------------------------------------------------------------
# Newton's method on the fixed point, in logit space
# --------------------------------------------------------------------------------------------
#
# Unknown Z (U x K), P = softmax(Z). With s = 1/(N lam) and M the (unit-level) Gram matrix,
#     F(Z) = Z - s M (T - softmax(Z)) = 0
# is equivalent to (E). Its Jacobian is J = I + s M D(Z), D = blockdiag_i(diag(p_i) - p_i p_i^T).
# For PSD M (or M similar to a PSD matrix, as in the group reduction) the eigenvalues of M D are
# real and >= 0, so J is invertible everywhere; Newton with a backtracking line search on ||F||
# converges from Z = 0 (the problem is the optimality condition of a strictly convex program).
#
# Small systems (U K <= _DENSE_LIMIT) build J and solve it directly. Large ones (the full N x N
# problem) use GMRES, preconditioned by the exact inverse of J with D replaced by its mean
# block I (x) Dbar: in the eigenbasis of M (computed once per Gram matrix) and of Dbar that
# operator is diagonal, 1 + s mu_j sigma_l.

_DENSE_LIMIT = 1200


def _hess_apply(P, V):
    """Row-wise (diag(p) - p p^T) v."""
    import jax.numpy as jnp

    return P * V - P * jnp.sum(P * V, axis=1, keepdims=True)


def _hess_blocks(P):
    import jax
    import jax.numpy as jnp

    return jax.vmap(lambda p: jnp.diag(p) - jnp.outer(p, p))(P)


def _residuals_impl(Z, T, M, s):
    """F(Z), ||F|| and the certificate max |P - softmax(s M (T - P))|."""
    import jax
    import jax.numpy as jnp

    P = jax.nn.softmax(Z, axis=1)
    Zfix = s * (M @ (T - P))
    F = Z - Zfix
    cert = jnp.max(jnp.abs(P - jax.nn.softmax(Zfix, axis=1)))
    return F, jnp.sqrt(jnp.sum(F * F)), cert


def _dense_direction_impl(Z, F, M, s):
    """Newton direction by a dense solve of J dZ = -F, J[u,a,v,b] = d + s M_uv H_v[a,b]."""
    import jax
    import jax.numpy as jnp

    P = jax.nn.softmax(Z, axis=1)
    U, K = P.shape
    H = _hess_blocks(P)
    J = s * M[:, None, :, None] * H.transpose(1, 0, 2)[None, :, :, :]
    J = J.reshape(U * K, U * K) + jnp.eye(U * K)
    return jnp.linalg.solve(J, -F.reshape(-1)).reshape(U, K)


def _krylov_direction_impl(Z, F, rtol, M, V, mu, s):
    """Newton direction by right-preconditioned GMRES (preconditioner: D -> mean block)."""
    import jax
    import jax.numpy as jnp
    from jax.scipy.sparse.linalg import gmres

    P = jax.nn.softmax(Z, axis=1)
    sig, W = jnp.linalg.eigh(jnp.mean(_hess_blocks(P), axis=0))
    den = 1.0 + s * jnp.maximum(mu, 0.0)[:, None] * jnp.maximum(sig, 0.0)[None, :]

    def precond(Y):
        return V @ (((V.T @ Y) @ W) / den) @ W.T

    def jac(Y):
        return Y + s * (M @ _hess_apply(P, Y))

    # Right preconditioning, J Minv y = -F, dZ = Minv y: GMRES then measures the true
    # residual (jax's M= argument measures the preconditioned one against ||F||, which
    # stops at once when Minv is strongly contracting).
    y, _ = gmres(lambda Y: jac(precond(Y)), -F, tol=rtol, restart=30, maxiter=20,
                 solve_method="incremental")
    dZ = precond(y)
    lin = jnp.sqrt(jnp.sum((jac(dZ) + F) ** 2)) / jnp.sqrt(jnp.sum(F * F))
    return dZ, lin


_JIT = {}


def _jitted(name):
    """Module-level jit cache: one compilation per function and array shapes, shared by all
    solver instances (big matrices are arguments, never baked-in constants)."""
    if name not in _JIT:
        import jax

        impl = {"residuals": _residuals_impl, "dense": _dense_direction_impl,
                "krylov": _krylov_direction_impl}[name]
        _JIT[name] = jax.jit(impl)
    return _JIT[name]


def _make_kernels(M, s: float):
    """F(Z) / certificate and dense Newton direction for one unit-level matrix M."""
    import jax.numpy as jnp

    Mj, sj = jnp.asarray(M), jnp.asarray(s)
    res, dense = _jitted("residuals"), _jitted("dense")
    return (lambda Z, T: res(Z, T, Mj, sj)), (lambda Z, F: dense(Z, F, Mj, sj))


def _make_krylov(M, s: float, mu, V):
    """Preconditioned GMRES Newton direction for the full problem."""
    import jax.numpy as jnp

    Mj, Vj, muj, sj = jnp.asarray(M), jnp.asarray(V), jnp.asarray(mu), jnp.asarray(s)
    kry = _jitted("krylov")
    return lambda Z, F, rtol: kry(Z, F, rtol, Mj, Vj, muj, sj)


_STALL_FACTOR = 100.0


def _newton(residuals, direction, T, Z0, *, tol: float, max_iter: int, krylov: bool):
    """Damped Newton on F(Z) = 0 with backtracking on ||F||; returns (Z, cert, iterations)."""
    import jax.numpy as jnp

    Tj = jnp.asarray(T)
    Z = jnp.asarray(Z0)
    F, normF, cert = residuals(Z, Tj)
    history = []
    for it in range(max_iter + 1):
        cert_f, normF_f = float(cert), float(normF)
        history.append(cert_f)
        if cert_f <= tol:
            return Z, cert_f, it, history
        if it == max_iter:
            break
        if krylov:
            # Inexact Newton: forcing term tightens as ||F|| falls (superlinear convergence).
            dZ, _ = direction(Z, F, min(1e-2, max(1e-10, 0.1 * normF_f)))
        else:
            dZ = direction(Z, F)
        alpha = 1.0
        while True:
            F_new, normF_new, cert_new = residuals(Z + alpha * dZ, Tj)
            if float(normF_new) <= (1.0 - 1e-4 * alpha) * normF_f or alpha < 1e-10:
                break
            if cert_f <= _STALL_FACTOR * tol:
                # Round-off floor: a full Newton step no longer reduces ||F||, and the
                # certificate is already within _STALL_FACTOR of the tolerance (measured: at
                # lam ~ 2e-6, n = 500 the certificate stalls at 1.1e-12 - 1.3e-12).
                return Z, cert_f, it, history
            alpha *= 0.5
        if alpha < 1e-10:
            break
        Z, F, normF, cert = Z + alpha * dZ, F_new, normF_new, cert_new
    raise SolverError(
        f"exact solver did not reach residual {tol:g} in {it} Newton steps "
        f"(residual {history[-1]:.3e}); history: {[f'{h:.1e}' for h in history[-5:]]}"
    )


# --------------------------------------------------------------------------------------------
# Exact solvers
# --------------------------------------------------------------------------------------------

class ExactSolver:
    """Exact student outputs on a full N x N Gram matrix (theory.md eq. E).

    The Gram matrix is eigendecomposed once (the GMRES preconditioner); every :meth:`fit`
    afterwards costs a handful of Newton steps of O(N^2 K) work each.

    Args:
      G: (N, N) symmetric positive semi-definite Gram matrix.
      lam: ridge parameter lambda > 0.
      given: (N,) given labels (targets of the teacher); optional for a bare solver.
      true: (N,) true labels, for accuracy metrics (defaults to ``given``).
      K: number of classes (default: max label + 1).
      tol: required certificate max |P - softmax(G(T-P)/(N lam))|.
      max_iter: Newton steps before :class:`SolverError`.
      psd_tol: smallest eigenvalue allowed, relative to the largest (an indefinite G is not a
        Gram matrix: the training problem behind (E) is then unbounded and (E) may have several
        solutions or none reachable, so the solver refuses it).

    Example:
      >>> from sdtheory import two_level, enable_x64; enable_x64()
      >>> m = two_level(3, 20, 0.4, 0.1)
      >>> s = ExactSolver(m.dense(), 1e-3, given=m.labels())
      >>> fit = s.fit(one_hot(m.labels(), 3)); fit.residual < 1e-12
      True
    """

    name = "exact"

    def __init__(self, G, lam, *, given=None, true=None, K=None, tol=1e-12, max_iter=60,
                 psd_tol=1e-10):
        from sdtheory._x64 import require_x64

        require_x64("ExactSolver")
        G = np.asarray(G, dtype=np.float64)
        if G.ndim != 2 or G.shape[0] != G.shape[1] or G.shape[0] < 1:
            raise ValueError(f"G must be a square N x N matrix, got shape {G.shape}")
        if not np.all(np.isfinite(G)):
            raise ValueError("G must be finite")
        if not np.allclose(G, G.T, rtol=0, atol=1e-12 * max(1.0, np.abs(G).max())):
            raise ValueError("G must be symmetric (a Gram matrix); the authors' non-symmetric "
                             "jitter is not supported by the exact solver")
        self.lam = check_lam(lam)
        self.G = G
        N = G.shape[0]
        if given is None:
            given = np.zeros(N, dtype=np.int64)
        given = np.asarray(given)
        self.K = int(K if K is not None else given.max() + 1)
        self.given = check_labels(given, N, self.K, "given")
        self.true = check_labels(true if true is not None else given, N, self.K, "true")
        self.weight = np.ones(N)
        self.tol, self.max_iter = float(tol), int(max_iter)
        self.mu, self.V = _eigh(G)
        if self.mu[0] < -psd_tol * max(1.0, abs(self.mu[-1])):
            raise ValueError(
                f"G is not positive semi-definite: smallest eigenvalue {self.mu[0]:.4g} "
                f"(largest {self.mu[-1]:.4g}). A jittered block model at this size needs a "
                "smaller eps, or project it with sdtheory.gram.nearest_psd(G).")
        self._s = 1.0 / (N * self.lam)
        self._krylov = N * self.K > _DENSE_LIMIT
        self._residuals, dense = _make_kernels(G, self._s)
        self._direction = _make_krylov(G, self._s, self.mu, self.V) if self._krylov else dense

    @property
    def N(self) -> int:
        return self.G.shape[0]

    def fit(self, T, Z0=None) -> Fit:
        """Exact outputs for targets T (N x K); ``Z0`` optionally warm-starts the logits."""
        return _newton_fit(self, check_targets(T, self.N, self.K), Z0, krylov=self._krylov)


def _newton_fit(solver, T: np.ndarray, Z0, *, krylov: bool) -> Fit:
    """Run :func:`_newton` with a solver's kernels and tolerances; package the :class:`Fit`."""
    import time

    Z0 = np.zeros_like(T) if Z0 is None else np.asarray(Z0, dtype=np.float64)
    t0 = time.perf_counter()
    Z, cert, its, hist = _newton(solver._residuals, solver._direction, T, Z0, tol=solver.tol,
                                 max_iter=solver.max_iter, krylov=krylov)
    Z = np.asarray(Z)
    return Fit(P=softmax_np(Z), residual=cert, info={
        "iterations": its, "seconds": time.perf_counter() - t0, "logits": Z, "history": hist})


def _eigh(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric eigendecomposition (ascending), by numpy's LAPACK.

    Not jnp.linalg.eigh: on CPU jaxlib calls scipy's bundled OpenBLAS, and two OpenBLAS thread
    pools (numpy's and scipy's) spinning against each other on a 2-core machine made one
    N = 2000 eigh take 10-20 s instead of 0.8 s (measured).
    """
    mu, V = np.linalg.eigh(G)
    return mu, V


def unit_matrix(model, true, weight) -> np.ndarray:
    """Unit-level Gram operator of the group reduction (theory.md section 2).

    For a unit u (samples of true class k_u, all sharing one target) standing for m_u samples,
    sum_j G_ij r_j over all samples equals (M r)_u with

        M = diag I + B diag(m),   B_uv = sum_l weight_l [part_l(k_u) == part_l(k_v)],

    where (diag, levels) = ``model.levels()``. M is similar to the symmetric PSD matrix
    diag I + m^(1/2) B m^(1/2), so the reduced problem inherits uniqueness.
    """
    diag, levels = model.levels()
    true = np.asarray(true)
    B = np.zeros((true.size, true.size))
    for w, part in levels:
        p = np.asarray(part)[true]
        B += w * (p[:, None] == p[None, :])
    return diag * np.eye(true.size) + B * np.asarray(weight, dtype=np.float64)[None, :]


class GroupSolver:
    """Exact outputs on a block model through the group reduction (cost independent of n).

    Units are the non-empty (true class, given label) groups of a count matrix; all samples of
    a unit share their target in every round of SD and PLL, hence their output.

    Args:
      model: :class:`sdtheory.gram.BlockModel` (two- or three-level, any class sizes).
      counts: (K, K) integer counts, row = true class, column = given label, rows summing to
        the model's class sizes.
      lam: ridge parameter lambda > 0.
    """

    name = "exact"

    def __init__(self, model, counts, lam, *, tol=1e-12, max_iter=60):
        from sdtheory._x64 import require_x64

        require_x64("GroupSolver")
        self.model = model
        self.K = model.K
        self.counts = check_counts(counts, model.sizes)
        self.true, self.given = np.nonzero(self.counts)
        self.weight = self.counts[self.true, self.given].astype(np.float64)
        self.lam = check_lam(lam)
        self.tol, self.max_iter = float(tol), int(max_iter)
        self.M = unit_matrix(model, self.true, self.weight)
        self._s = 1.0 / (model.N * self.lam)
        self._residuals, self._direction = _make_kernels(self.M, self._s)

    def fit(self, T, Z0=None) -> Fit:
        """Exact unit outputs for unit targets T (U x K); ``Z0`` optionally warm-starts."""
        return _newton_fit(self, check_targets(T, self.true.size, self.K), Z0, krylov=False)

    def expand(self, P_units: np.ndarray) -> np.ndarray:
        """Unit outputs -> per-sample outputs, samples ordered as ``noise.corrupt_exact``."""
        return np.repeat(P_units, self.weight.astype(np.int64), axis=0)


# --------------------------------------------------------------------------------------------
# Linearised closed form (L): the averaging operator
# --------------------------------------------------------------------------------------------

class AveragingOperator:
    """A = G (G + K N lam I)^{-1} through one eigendecomposition (theory.md eq. L).

    With G = sum_j mu_j v_j v_j^T, A^t = sum_j a_j^t v_j v_j^T, a_j = mu_j / (mu_j + K N lam).
    For a unit-level matrix M = diag I + B diag(m) (group reduction) the symmetric similar
    matrix S = m^(1/2) M m^(-1/2) is decomposed instead, A^t = m^(-1/2) S-power m^(1/2).

    Args:
      M: (U, U) Gram matrix, or unit-level matrix with ``weight``.
      lam, K: ridge and number of classes.
      N: number of samples (default: sum of weight).
      weight: samples per unit (default: ones).
    """

    def __init__(self, M, lam, K, *, weight=None, N=None):
        M = np.asarray(M, dtype=np.float64)
        w = np.ones(M.shape[0]) if weight is None else np.asarray(weight, dtype=np.float64)
        self.K, self.lam = int(K), check_lam(lam)
        self.N = float(w.sum() if N is None else N)
        self._sq = np.sqrt(w)
        S = M * self._sq[:, None] / self._sq[None, :]           # m^(1/2) M m^(-1/2)
        S = 0.5 * (S + S.T)
        self.mu, self.V = np.linalg.eigh(S)
        self.a = self.mu / (self.mu + self.K * self.N * self.lam)

    def power(self, t: float) -> np.ndarray:
        """A^t as a (U, U) matrix (t >= 0, real powers allowed)."""
        At = (self.V * self.a ** t) @ self.V.T
        return At / self._sq[:, None] * self._sq[None, :]

    def apply(self, Y, t: float = 1.0) -> np.ndarray:
        """A^t Y without forming A^t."""
        Yh = self.V.T @ (self._sq[:, None] * np.asarray(Y))
        return (self.V @ (self.a[:, None] ** t * Yh)) / self._sq[:, None]


class LinearSolver:
    """Linearised outputs (L): one training maps T to 1/K + A (T - 1/K).

    Round r of SD on one-hot labels Y gives 1/K + A^(r+1) (Y - 1/K); see
    :meth:`round_outputs` for any r without iterating. Build it with :meth:`full` (dense G) or
    :meth:`groups` (block model, unit level).
    """

    name = "linear"

    def __init__(self, M, lam, K, true, given, weight, N=None):
        self.K = int(K)
        self.lam = check_lam(lam)
        self.true = np.asarray(true, dtype=np.int64)
        self.given = np.asarray(given, dtype=np.int64)
        self.weight = np.asarray(weight, dtype=np.float64)
        self.M = np.asarray(M, dtype=np.float64)
        self.op = AveragingOperator(self.M, lam, K, weight=self.weight, N=N)

    @classmethod
    def full(cls, G, lam, *, given, true=None, K=None):
        G = np.asarray(G, dtype=np.float64)
        given = np.asarray(given)
        K = int(K if K is not None else given.max() + 1)
        N = G.shape[0]
        given = check_labels(given, N, K, "given")
        true = check_labels(true if true is not None else given, N, K, "true")
        return cls(G, lam, K, true, given, np.ones(N))

    @classmethod
    def groups(cls, model, counts, lam):
        C = check_counts(counts, model.sizes)
        true, given = np.nonzero(C)
        weight = C[true, given].astype(np.float64)
        return cls(unit_matrix(model, true, weight), lam, model.K, true, given, weight, N=model.N)

    def fit(self, T) -> Fit:
        T = check_targets(T, self.true.size, self.K, simplex=False)
        P = 1.0 / self.K + self.op.apply(T - 1.0 / self.K, 1.0)
        return Fit(P=P, residual=self.residual(T, P), info={})

    def round_outputs(self, r: int, Y=None) -> np.ndarray:
        """P_r = 1/K + A^(r+1) (Y - 1/K) directly (Y: one-hot given labels by default)."""
        Y = one_hot(self.given, self.K) if Y is None else Y
        return 1.0 / self.K + self.op.apply(Y - 1.0 / self.K, r + 1.0)

    def residual(self, T, P) -> float:
        """Residual of (L): max |P - 1/K - M (T - P) / (K N lam)|."""
        R = self.M @ (T - P) / (self.K * self.op.N * self.lam)
        return float(np.max(np.abs(P - 1.0 / self.K - R)))
