"""Structured problems for the Newton core: how M acts, and how a Newton system is solved.

Every problem is a frozen dataclass registered as a JAX pytree (array fields are data, shape
settings are static), so :func:`sdtheory.solvers.newton.newton` jits and vmaps it. The unknown
of :class:`GroupProblem` and :class:`DenseProblem` is the logit array Z, the residual is

    F(Z) = Z - s M (T - softmax Z),   J = dF/dZ = I + s M D(Z),

with D = blockdiag_i(diag(p_i) - p_i p_i^T) the softmax Hessians; for PSD M (or M similar to a
PSD matrix) every eigenvalue of J is >= 1, so every Newton system is well posed
(docs/theory.md section 2.3). :class:`FactorProblem` works on the weights instead.

* :class:`GroupProblem`: block Gram models through the group reduction (docs/theory.md
  section 3). Units are the K x J cells (true class k, subgroup j; j = given label), M acts as
  diag I + (class-level matrix Wc) on class sums, and Wc = alpha I + L diag(w) L^T is an
  identity plus a low-rank matrix. The Newton system is solved exactly by block elimination:
  per-unit Sherman-Morrison, one K x K solve per class and one (r K) x (r K) solve, O(K^4)
  work and O(K^3) memory per step (never the (U K)^2 Jacobian).
* :class:`DenseProblem`: a full N x N Gram matrix. Newton systems by right-preconditioned
  GMRES (:func:`gmres`); the preconditioner is the exact inverse of J with G replaced by its
  leading eigenpairs plus the mean of the other eigenvalues.
* :class:`FactorProblem`: explicit features X (N x D), G = X X^T never formed. The unknown is
  the transposed weights W^T (D x K); Newton systems by preconditioned conjugate gradients
  (J is symmetric positive definite in weight space) with products with X and X^T only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_factor, cho_solve

from sdtheory.solvers.krylov import gmres, pcg

__all__ = ["GroupProblem", "DenseProblem", "FactorProblem", "SINGLE_ITERATIONS",
           "SINGLE_MIN_SIZE", "SINGLE_RTOL", "hessian_apply", "padded_size"]


def hessian_apply(P, V):
    """Row-wise softmax Hessian times V: (diag(p) - p p^T) v for every row."""
    return P * V - P * jnp.sum(P * V, axis=-1, keepdims=True)


def _static(default=None):
    return field(default=default, metadata=dict(static=True))


def _mean_hessian_eigh(P):
    """Eigenpairs (sig >= 0, W) of the mean softmax Hessian Dbar = mean_i diag(p_i) - p_i p_i^T
    over the samples."""
    Dbar = (jnp.diag(jnp.sum(P, axis=0)) - P.T @ P) / P.shape[0]
    sig, W = jnp.linalg.eigh(Dbar)
    return jnp.maximum(sig, 0.0), W


def padded_size(N: int) -> int:
    """The size a dense problem of N samples is padded to: 64 or more, at most 12.5% above N
    (a few compiled shapes serve every N)."""
    if N <= 64:
        return 64
    step = 2 ** (int(N).bit_length() - 4)
    return -(-N // step) * step


# --------------------------------------------------------------------------------------------
# Group-reduced block models
# --------------------------------------------------------------------------------------------

@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class GroupProblem:
    """The group-reduced fixed point of a block model (docs/theory.md section 3).

    Units u = (k, j) on a K x J grid (j = the given label, J = K), all samples of a unit sharing
    one target, hence one output. For unit outputs R (K, J, K),

        (M R)_(k,j) = diag R_(k,j) + (Wc Y)_k,   Y_l = sum_j m_(l,j) R_(l,j),
        Wc = alpha I + L diag(w) L^T.

    Attributes:
      s: 1 / (N lam), N = sum of m.
      diag: the instance level, 1 - c.
      alpha: the class level, c - d (the weight of "same class").
      L: (K, r) indicators of the coarser levels (superclasses, everything).
      w: (r,) their weights (three-level: d - e per superclass, e; two-level: d).
      m: (K, J) samples per unit (0 for an empty group: it acts on nothing).
    """

    s: jax.Array
    diag: jax.Array
    alpha: jax.Array
    L: jax.Array
    w: jax.Array
    m: jax.Array

    def matvec(self, R):
        """M R for unit rows R (K, J, K)."""
        Y = jnp.einsum("kj,kja->ka", self.m, R)
        WcY = self.alpha * Y + self.L @ (self.w[:, None] * (self.L.T @ Y))
        return self.diag * R + WcY[:, None, :]

    def evaluate(self, Z, T):
        P = jax.nn.softmax(Z, axis=-1)
        Zfix = self.s * self.matvec(T - P)
        return P, Zfix, Z - Zfix

    def roundoff_scale(self):
        """s max_i sum_j |G_ij| over the samples (the scale of Zfix's round-off error)."""
        K = self.L.shape[0]
        Wc = self.alpha * jnp.eye(K, dtype=self.L.dtype) + (self.L * self.w) @ self.L.T
        rows = jnp.abs(self.diag) + jnp.abs(Wc) @ jnp.sum(self.m, axis=1)
        return self.s * jnp.max(jnp.where(jnp.sum(self.m, axis=1) > 0, rows, 0.0))

    def direction(self, Z, P, F, rtol):
        """Exact Newton direction by block elimination (docs/theory.md section 3.2); ``rtol``
        (the Krylov tolerance of the other problems) is not needed.

        With A_u = I + s diag D_u (inverted by Sherman-Morrison) and Y_l = sum_j m_lj D_lj V_lj,
        V_u = A_u^{-1} (b_u - s (Wc Y)_k), and Y solves Y_l + s Q_l (Wc Y)_l = beta_l with
        Q_l = sum_j m_lj D_lj A_lj^{-1} (symmetric: diag(q) - q q^T / sum q) and beta_l =
        sum_j m_lj D_lj A_lj^{-1} b_lj. Wc = alpha I + L diag(w) L^T reduces that K^2 system to
        K solves of K x K and one (r K) x (r K) solve for Zr = L^T Y.
        """
        K = P.shape[-1]
        s = self.s
        a_inv, da_inv, q, sq = _shifted_hessian_inverse(P, s * self.diag)
        b = -F
        eye = jnp.eye(K, dtype=P.dtype)
        beta = jnp.einsum("kj,kja->ka", self.m, da_inv(b))
        # Q_l = sum_j m_lj (diag(q) - q q^T / sum q), without the (K, J, K, K) array
        Q = (jnp.einsum("kj,kja->ka", self.m, q)[:, :, None] * eye
             - jnp.einsum("kj,kja,kjb->kab", self.m / sq[..., 0], q, q))
        Hrhs = jnp.linalg.solve(eye + s * self.alpha * Q,
                                jnp.concatenate([beta[:, :, None], Q], axis=2))
        Hb, HQ = Hrhs[:, :, 0], Hrhs[:, :, 1:]
        r = self.L.shape[1]
        big = (jnp.eye(r * K, dtype=P.dtype).reshape(r, K, r, K)
               + s * jnp.einsum("lq,lp,lab->qapb", self.L, self.L * self.w, HQ))
        rhs = jnp.einsum("lq,la->qa", self.L, Hb)
        Zr = jnp.linalg.solve(big.reshape(r * K, r * K), rhs.reshape(r * K)).reshape(r, K)
        g = self.L @ (self.w[:, None] * Zr)                   # (L diag(w) L^T Y)_l
        Y = Hb - s * jnp.einsum("lab,lb->la", HQ, g)
        WcY = self.alpha * Y + g
        return a_inv(b - s * WcY[:, None, :]), jnp.zeros((), jnp.int32)


# --------------------------------------------------------------------------------------------
# Full N x N Gram matrices
# --------------------------------------------------------------------------------------------

@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class DenseProblem:
    """The fixed point (E) on a full N x N Gram matrix G (docs/theory.md section 2.4).

    Newton systems J dZ = -F, J = I + s G D, are solved by GMRES (:func:`gmres`),
    right-preconditioned with the exact inverse of

        Jk = I + s Gk D,   Gk = V diag(mu) V^T + mu_rest (I - V V^T),

    J with G replaced by its k leading eigenpairs plus the mean mu_rest of the other
    eigenvalues, and every per-sample softmax Hessian D_i kept. Jk = A + s V diag(mu - mu_rest)
    V^T D with A = I + s mu_rest D block diagonal (Sherman-Morrison per sample), so by Woodbury
    one application costs O(N k K) plus a product with the inverse of a (k K) x (k K) SPD
    matrix, factorised by Cholesky once per Newton step (docs/theory.md section 2.4). With
    k = N the preconditioner is J itself. Each Krylov step costs one product with G.

    With a single-precision copy ``G32`` of G, each system is solved in two GMRES stages
    (docs/theory.md section 2.4): the first with products by G32 (half the memory traffic of
    the float64 products, which are memory-bound), to relative residual
    max(rtol, :data:`SINGLE_RTOL`) and at most :data:`SINGLE_ITERATIONS` iterations; the
    second in float64 from the first stage's solution, until the float64 residual meets
    rtol. Where rtol >= SINGLE_RTOL and the first stage met it, the second is skipped: the
    first stage's residual, about 1e-6 relative off the float64 one, stands for it. F, its
    norm and the certificate are always float64; the stages change only the Newton
    direction, never what is accepted.

    Problems are padded to a few sizes (:func:`padded_size`) so that one compilation serves
    many N: a padding sample has a zero row and column in G (and in V), target and output 1/K,
    and acts on nothing.

    Attributes:
      s: 1 / (N lam), N the number of real samples.
      G: (Np, Np) symmetric PSD Gram matrix, zero-padded.
      V: (Np, k) orthonormal leading eigenvectors of G; mu: (k,) their eigenvalues.
      mu_rest: mean of the other N - k eigenvalues (0 when k = N).
      G32: G rounded to float32, or None (every product in float64).
      restart, maxiter: GMRES restart length and restarts (static; a short restart was the
        fastest at N = 2000, benchmarks/README.md).
    """

    s: jax.Array
    G: jax.Array
    V: jax.Array
    mu: jax.Array
    mu_rest: jax.Array
    G32: jax.Array | None = None
    restart: int = _static(10)
    maxiter: int = _static(60)

    def evaluate(self, Z, T):
        P = jax.nn.softmax(Z, axis=-1)
        Zfix = self.s * (self.G @ (T - P))
        return P, Zfix, Z - Zfix

    def roundoff_scale(self):
        """s max_i sum_j |G_ij| (the scale of Zfix's round-off error)."""
        return self.s * jnp.max(jnp.sum(jnp.abs(self.G), axis=1))

    def direction(self, Z, P, F, rtol):
        s = self.s
        N, K = P.shape
        k = self.mu.shape[0]
        a_inv, da_inv, q, sq = _shifted_hessian_inverse(P, s * jnp.maximum(self.mu_rest, 0.0))
        DA = (q[:, :, None] * jnp.eye(K, dtype=P.dtype)
              - q[:, :, None] * q[:, None, :] / sq[:, :, None])           # D_i A_i^{-1}
        dmu = jnp.maximum(self.mu, 0.0) - jnp.maximum(self.mu_rest, 0.0)     # (k,)
        # The Woodbury system in symmetric form: with E = diag(dmu) on the eigenpairs and
        # C[(a, c), (b, d)] = sum_i V_ia V_ib (D_i A_i^{-1})_cd (symmetric PSD),
        # S = I + s E^(1/2) C E^(1/2) is symmetric positive definite, every eigenvalue >= 1.
        root = jnp.sqrt(dmu)
        Vh = self.V * root
        C = jnp.einsum("ia,icdb->acbd", Vh, DA[:, :, :, None] * Vh[:, None, None, :])
        S = cho_factor(jnp.eye(k * K, dtype=P.dtype) + s * C.reshape(k * K, k * K))

        def prec(B):
            # E (I + s C E)^(-1) u = E^(1/2) S^(-1) E^(1/2) u, u = V^T D A^(-1) B
            u = (Vh.T @ da_inv(B)).reshape(-1)
            Ey = cho_solve(S, u).reshape(k, K) * root[:, None]
            return a_inv(B - s * (self.V @ Ey))

        def jac(Y):
            return Y + s * (self.G @ hessian_apply(P, Y))

        # Right preconditioning, so that GMRES measures the true residual of J dZ = -F.
        def stage64(y):
            y, _, its = gmres(lambda u: jac(prec(u)), -F, y, rtol, self.restart, self.maxiter)
            return y, its

        if self.G32 is None:
            y, its = stage64(None)
            return prec(y), its

        def jac32(Y):
            H = hessian_apply(P, Y).astype(self.G32.dtype)
            # HIGHEST: no reduced-precision (TF32) products, which the skip rule below excludes
            GH = jnp.matmul(self.G32, H, precision=jax.lax.Precision.HIGHEST)
            return Y + s * GH.astype(Y.dtype)

        y, rnorm, its32 = gmres(lambda u: jac32(prec(u)), -F, None,
                                jnp.maximum(rtol, SINGLE_RTOL), self.restart,
                                SINGLE_ITERATIONS // self.restart)
        # Where rtol >= SINGLE_RTOL and stage 1 met it, its residual (float32 products, about
        # 1e-6 relative error) stands for the float64 one: no float64 product is spent.
        met = (rtol >= SINGLE_RTOL) & (rnorm <= rtol * jnp.sqrt(jnp.sum(F * F)))
        y, its64 = jax.lax.cond(met, lambda y: (y, jnp.zeros_like(its32)), stage64, y)
        return prec(y), its32 + its64


SINGLE_RTOL = 1e-4
"""Relative residual the single-precision GMRES stage of :class:`DenseProblem` (and the float32
CG of :class:`FactorProblem`) aims for at least. Its products carry relative errors of order
1e-7 times the conditioning of the preconditioned system, so it cannot go much lower: with a
floor of 1e-6 (and no second stage) GMRES stalled and ran to its iteration limit, slower than
float64 alone (benchmarks/README.md)."""

SINGLE_ITERATIONS = 30
"""Most iterations of the single-precision stage (a stalled stage wastes no more)."""

SINGLE_MIN_SIZE = 1152
"""Padded size from which :class:`~sdtheory.solvers.dense_solver.DenseSolver` gives a problem its
single-precision copy of G (N >= 1025; the padded sizes are multiples of 128 there). The
products are memory-bound, so float32 halves their cost from there on; at padded size 1024 the
float64 G stays in cache and the stage does not pay (benchmarks/README.md)."""


def _shifted_hessian_inverse(P, sig):
    """Per row, A = I + sig D (D = diag(p) - p p^T) by Sherman-Morrison: returns x -> A^{-1} x,
    x -> D A^{-1} x, q = p / (1 + sig p) and sum q (so that D A^{-1} = diag(q) - q q^T / sum q,
    docs/theory.md section 3.2)."""
    lam_ = 1.0 + sig * P
    q = P / lam_
    sq = jnp.sum(q, axis=-1, keepdims=True)                   # 1 - sig p.q = sum q

    def a_inv(x):
        return x / lam_ + (sig / sq) * q * jnp.sum(q * x, axis=-1, keepdims=True)

    def da_inv(x):
        return q * x - q * jnp.sum(q * x, axis=-1, keepdims=True) / sq

    return a_inv, da_inv, q, sq


# --------------------------------------------------------------------------------------------
# Explicit features: the fixed point in weight space
# --------------------------------------------------------------------------------------------

@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class FactorProblem:
    """The fixed point (E) with G = X X^T, solved for the weights (docs/theory.md section 2.5).

    The unknown is x = W^T (D x K); the outputs are P = softmax(X x) and stationarity reads

        F(x) = x - s X^T (T - softmax(X x)) = 0,   J = I + s X^T D X   (symmetric PD),

    so each Newton system is solved by preconditioned conjugate gradients using products with
    X and X^T only (never the N x N Gram matrix): two products a CG iteration, three an
    evaluation of F and the certificate. The preconditioner is the exact inverse of J with
    every softmax Hessian replaced by their mean Dbar and X^T X by its leading eigenpairs
    plus the mean of the rest,

        Jbar = I + s (Vf diag(nu) Vf^T + nu_rest (I - Vf Vf^T)) (x) Dbar,

    diagonal in the bases (Vf, eigenvectors of Dbar): O(D k K + D K^2) a CG iteration against
    O(N D K) for the products with X. The certificate is the same as for every other problem:
    max |P - softmax(s X X^T (T - P))|, computed as X (X^T (T - P)).

    With a single-precision copy ``X32`` of X, CG runs in float32 throughout (products,
    preconditioner and vectors; half the memory traffic of the float64 products) to the
    relative residual max(rtol, :data:`SINGLE_RTOL`), with no float64 stage: under ``vmap``
    the choice of a second stage becomes a select that runs it at every step
    (benchmarks/README.md). A looser direction costs Newton steps, never accuracy: F, its
    norm and the certificate stay float64 (docs/theory.md section 2.5).

    Attributes:
      s: 1 / (N lam).
      X: (N, D) features.
      Vf: (D, k) leading orthonormal eigenvectors of X^T X; nu: (k,) their eigenvalues.
      nu_rest: mean of the other D - k eigenvalues of X^T X (0 when k = D).
      maxiter: most CG iterations per Newton step (static).
      direct: form J ((D K) x (D K)) and solve each Newton system by Cholesky instead of CG
        (static; for small D K, where CG at small lam can stall: docs/theory.md section 2.5).
      X32: X rounded to float32, or None (CG in float64).
    """

    s: jax.Array
    X: jax.Array
    Vf: jax.Array
    nu: jax.Array
    nu_rest: jax.Array
    maxiter: int = _static(200)
    direct: bool = _static(False)
    X32: jax.Array | None = None

    def evaluate(self, x, T):
        P = jax.nn.softmax(self.X @ x, axis=-1)
        Wfix = self.s * (self.X.T @ (T - P))
        return P, self.X @ Wfix, x - Wfix

    def roundoff_scale(self):
        """s max_i |x_i| sum_j |x_j| >= s max_i sum_j |x_i . x_j| (Cauchy-Schwarz), without
        the N x N Gram matrix."""
        norms = jnp.sqrt(jnp.sum(self.X * self.X, axis=1))
        return self.s * jnp.max(norms) * jnp.sum(norms)

    def direction(self, x, P, F, rtol):
        s = self.s
        if self.direct:
            return self._direct_direction(P, F)
        sig, W = _mean_hessian_eigh(P)
        den = 1.0 + s * jnp.maximum(self.nu, 0.0)[:, None] * sig[None, :]
        den_rest = 1.0 + s * jnp.maximum(self.nu_rest, 0.0) * sig
        X, Vf = self.X, self.Vf
        if self.X32 is not None:
            f32 = self.X32.dtype
            X, (Vf, W, den, den_rest, P, s) = self.X32, (
                a.astype(f32) for a in (Vf, W, den, den_rest, P, s))
            rtol = jnp.maximum(rtol, SINGLE_RTOL)

        def prec(Y):
            C = Vf.T @ Y
            rest = Y - Vf @ C
            return Vf @ (((C @ W) / den) @ W.T) + ((rest @ W) / den_rest) @ W.T

        def jac(Y):
            return Y + s * (X.T @ hessian_apply(P, X @ Y))

        dx, its = pcg(jac, (-F).astype(X.dtype), prec, jnp.asarray(rtol, X.dtype), self.maxiter)
        return dx.astype(F.dtype), its

    def _direct_direction(self, P, F):
        """J dx = -F with J = I + s sum_i (x_i x_i^T) (x) (diag(p_i) - p_i p_i^T) formed,
        (D K) x (D K) with the unknown flattened by rows, and factorised by Cholesky."""
        D, K = F.shape
        diag = jnp.einsum("id,ie,ia->dae", self.X, self.X, P)         # sum_i x_id x_ie p_ia
        Y = (self.X[:, :, None] * P[:, None, :]).reshape(-1, D * K)   # rows x_i (x) p_i
        J = (jnp.eye(D * K, dtype=P.dtype)
             + self.s * (jnp.einsum("dae,ab->daeb", diag, jnp.eye(K, dtype=P.dtype))
                         .reshape(D * K, D * K) - Y.T @ Y))
        dx = cho_solve(cho_factor(J), -F.reshape(-1)).reshape(D, K)
        return dx, jnp.zeros((), jnp.int32)
