"""Exact student outputs: the fixed point (E), every solve through the one Newton core.

:class:`ExactSolver` builds the problem that fits its Gram input and hands it to
:func:`sdtheory.solvers.newton.newton`:

* a :class:`~sdtheory.models.BlockModel`: the group reduction (docs/theory.md section 3); the
  units are the non-empty (true class, given label) groups and the cost does not depend on n;
* an (N, N) array: the full Gram matrix (docs/theory.md section 2.4), units = samples;
* a :class:`~sdtheory.models.Features` (N x D features X): the fixed point in weight space
  with G = X X^T never formed (docs/theory.md section 2.5), units = samples; each fit also
  returns the weights W (K x D), for outputs on held-out features;
* :meth:`ExactSolver.group_batch`: many block problems with the same K at once (sweeps,
  verification grids), units = the full K x K grid of groups, empty ones with weight 0.

Every returned solution carries its certificate max |P - softmax(G(T-P)/(N lam))|; a problem
that does not reach it is retried once from zero logits with more steps, and then reported as
failed (:class:`~sdtheory.solvers.SolverError` for :meth:`ExactSolver.fit`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from sdtheory._blas import lapack_threads, one_blas_thread
from sdtheory._validate import check_counts, check_labels, check_lam, check_targets
from sdtheory._x64 import require_x64
from sdtheory.models import BlockModel, Features, is_psd, psd_refusal, square_matrix
from sdtheory.noise import Corruption
from sdtheory.solvers.base import BatchFit, Fit, NewtonInfo, SolverError, one_hot
from sdtheory.solvers.newton import ACCEPT_FACTOR, DEFAULT_TOL, FAILED, STATUS_NAMES, newton
from sdtheory.solvers.problems import SINGLE_MIN_SIZE, padded_size

__all__ = ["ExactSolver", "EIGH_MAX", "FEATURE_DIRECT_MAX", "FEATURE_DIRECT_WORK",
           "FEATURE_EIGH_MAX", "FeatureNewtonInfo", "RETRY_MAX_ITER",
           "feature_spectrum", "leading_spectrum"]

log = logging.getLogger(__name__)

RETRY_MAX_ITER = 400
"""Newton steps of the second attempt, from zero logits, for a problem whose first (usually
warm-started) attempt failed."""

EIGH_MAX = 1000
"""Largest N for which the preconditioner comes from a full eigendecomposition of G; above it,
a Cholesky factorisation certifies G >= 0 and a randomized subspace iteration finds the leading
eigenpairs (docs/theory.md section 2.4), three times faster at N = 2000
(benchmarks/README.md)."""

FEATURE_EIGH_MAX = 2048
"""Largest feature dimension D for which the feature-space preconditioner comes from a full
eigendecomposition of the D x D matrix X^T X; above it, a randomized subspace iteration on
X^T X through products with X and X^T finds the leading eigenpairs (docs/theory.md
section 2.5)."""

FEATURE_DIRECT_MAX = 1024
"""Largest D K for which feature-space Newton systems are formed and solved by Cholesky
(:class:`~sdtheory.solvers.problems.FactorProblem` ``direct``) instead of by CG, provided
forming J (about N (D K)^2 operations a Newton step) costs at most :data:`FEATURE_DIRECT_WORK`."""

FEATURE_DIRECT_WORK = 2 ** 31
"""Most multiply-adds of forming one feature-space Jacobian for the direct solve."""

SMALL_BATCH = 64
"""The smaller of the two padded batch sizes of group problems (the other: :func:`batch_size`)."""


def batch_size(K: int) -> int:
    """Problems per batched call for K classes: 512, fewer for large K (memory ~ K^3 each).

    A problem's last digits depend on the size of the batch it is solved in (XLA picks its
    kernels by shape; measured up to 3.6e-13 in a certificate), so callers that must give
    identical results however they split the work (sweeps on several executors) cut their
    tasks the same way every time, in multiples of this size
    (:func:`sdtheory.sweep.engine._task_cells`)."""
    return int(max(SMALL_BATCH, min(512, 2 ** int(np.log2(2 ** 24 / K ** 3)))))


_PREC_RATIO = 4.0     # grow k until (1 + s mu_(k+1)/2) / (1 + s mean_rest/2) <= this
_PREC_KK_MAX = 1024   # ... but keep the preconditioner's (k K) x (k K) system at most this size


@dataclass(frozen=True, kw_only=True)
class FeatureNewtonInfo(NewtonInfo):
    """Diagnostics of one exact solve in feature space (``ExactSolver(gram=Features(X))``).

    Besides the attributes of :class:`~sdtheory.solvers.base.NewtonInfo` (``logits`` are X W^T):

    Attributes:
      weights: (K, D) the weights W of the solution, P = softmax(X W^T); outputs on held-out
        features X' are softmax(X' W^T).
    """

    weights: np.ndarray


class ExactSolver:
    """Exact outputs of one training (docs/theory.md section 2), through the Newton core.

    Args:
      gram: a :class:`~sdtheory.models.BlockModel` (group reduction), an (N, N) symmetric
        positive semi-definite Gram matrix, or :class:`~sdtheory.models.Features` X (N x D):
        the Gram matrix X X^T, solved in weight space without forming it (section 2.5).
      labels: a :class:`~sdtheory.noise.Corruption` (true and given label per sample, in the
        order of the Gram matrix or the rows of X); for a block model also a K x K count
        matrix (row = true class, column = given label, rows summing to the class sizes).
      lam: ridge parameter lambda > 0.
      tol: certificate to reach (a certificate up to 100 tol is accepted at float64 round-off).
      max_iter: Newton steps of the first attempt.

    Attributes:
      name: with K, true, given and weight, the :class:`~sdtheory.solvers.base.Solver`
        protocol (units: the non-empty groups of a block model, or the samples).
      kind: "group", "dense" or "features".
      spectrum: (dense and features) the preconditioner's spectral data
        (:func:`leading_spectrum`, :func:`feature_spectrum`).

    The unknowns passed between rounds (``BatchFit.x``, the ``x0`` of :meth:`fit_batch`) are
    the logits for the group and dense kinds and the transposed weights W^T (b, D, K) for
    features.

    Example:
      >>> import sdtheory as sd; sd.enable_x64()
      >>> m = sd.two_level(K=4, n=120, c=0.4, d=0.1)
      >>> C = [[60, 30, 20, 10], [10, 60, 30, 20], [20, 10, 60, 30], [30, 20, 10, 60]]
      >>> s = ExactSolver(gram=m, labels=C, lam=1e-3)
      >>> fit = s.fit(s.targets0()); fit.residual < 1e-12
      True
    """

    name = "exact"

    def __init__(self, *, gram, labels, lam, tol: float = DEFAULT_TOL, max_iter: int = 60):
        require_x64("ExactSolver")
        self.lam = check_lam(lam)
        self.tol, self.max_iter = float(tol), int(max_iter)
        if isinstance(gram, BlockModel):
            counts = check_counts(labels.counts if isinstance(labels, Corruption) else labels,
                                  gram.sizes)
            diag, alpha, L, w = gram.class_structure()
            self._init_groups(diag=np.array([diag]), alpha=np.array([alpha]), L=L[None],
                              w=w[None], counts=counts[None], lam=np.array([self.lam]),
                              keep_empty=False)
            self.model = gram
        elif isinstance(gram, Features):
            self._init_features(gram, labels)
        else:
            self._init_dense(gram, labels)

    # ------------------------------------------------------------------ construction

    @classmethod
    def group_batch(cls, *, diag, alpha, L, w, counts, lam, tol: float = DEFAULT_TOL,
                    max_iter: int = 60) -> ExactSolver:
        """B block problems with the same K, solved together (sweeps, verification grids).

        Units are the full K x K grid of (true class, given label) groups in row-major order;
        an empty group has weight 0 and acts on nothing.

        Args:
          diag, alpha: (B,) instance and class levels (:meth:`BlockModel.class_structure`).
          L, w: (B, K, r) and (B, r) coarser levels.
          counts: (B, K, K) integer counts (not re-validated: the caller built them).
          lam: (B,) ridge parameters.
        """
        require_x64("ExactSolver.group_batch")
        self = cls.__new__(cls)
        self.tol, self.max_iter = float(tol), int(max_iter)
        self.model = None
        self._init_groups(diag=np.asarray(diag, float), alpha=np.asarray(alpha, float),
                          L=np.asarray(L, float), w=np.asarray(w, float),
                          counts=np.asarray(counts), lam=np.asarray(lam, float),
                          keep_empty=True)
        return self

    def _init_groups(self, *, diag, alpha, L, w, counts, lam, keep_empty: bool) -> None:
        from sdtheory.solvers.problems import GroupProblem

        B, K, _ = counts.shape
        self.K = K
        self.kind = "group"
        m = counts.astype(np.float64)
        N = m.sum(axis=(1, 2))
        self.lam_b = lam
        # numpy leaves: batches are sliced on the host (one transfer per call, no device gathers)
        self._problem = GroupProblem(s=1.0 / (N * lam), diag=diag, alpha=alpha, L=L, w=w, m=m)
        flat = m.reshape(B, K * K)
        self._sel = np.arange(K * K) if keep_empty else np.flatnonzero(flat[0] > 0)
        grid_true, grid_given = np.divmod(np.arange(K * K), K)
        self.true, self.given = grid_true[self._sel], grid_given[self._sel]
        self.weight = flat[:, self._sel]
        self.counts = counts[0] if B == 1 else counts

    def _init_samples(self, labels, N: int, kind: str, what: str, size: str) -> None:
        """Units = the N samples of a Corruption (dense and feature kinds)."""
        if not isinstance(labels, Corruption):
            raise ValueError(f"{what} need{'s' if what != 'features' else ''} "
                             "labels=Corruption (true and given label per sample, "
                             "sdtheory.noise)")
        if labels.N != N:
            raise ValueError(f"labels has {labels.N} samples but {size}")
        self.K = labels.K
        self.kind = kind
        self.true = check_labels(labels.true, N, self.K, "true labels")
        self.given = check_labels(labels.given, N, self.K, "given labels")
        self.weight = np.ones((1, N))
        self.counts = labels.counts
        self.lam_b = np.array([self.lam])

    def _init_dense(self, G, labels) -> None:
        from sdtheory.solvers.problems import DenseProblem

        G = square_matrix(G, symmetric=True)
        N = G.shape[0]
        self._init_samples(labels, N, "dense", "a dense Gram matrix", f"G is {N} x {N}")
        s = 1.0 / (N * self.lam)
        import jax

        self.spectrum = sp = leading_spectrum(G, s, self.K)
        Np = padded_size(N)
        Gp = np.zeros((Np, Np))
        Gp[:N, :N] = G
        # Gp is handed to JAX only when complete and never written afterwards: a buffer given
        # to device_put must not change later, whatever the copy semantics (with a
        # factorisation run in it after device_put, the solved matrix once differed from G by
        # the Cholesky shift on its diagonal).
        G_device = jax.device_put(Gp)
        Vp = np.zeros((Np, sp["k"]))
        Vp[:N] = sp["V"]
        put = jax.device_put      # a transfer; jnp.asarray would also run a conversion program
        G32 = put(Gp.astype(np.float32)) if Np >= SINGLE_MIN_SIZE else None
        self._problem = DenseProblem(s=put(s), G=G_device, V=put(Vp), mu=put(sp["mu"]),
                                     mu_rest=put(sp["mu_rest"]), G32=G32)
        self._sel = np.arange(N)
        self.G = G

    def _init_features(self, features: Features, labels) -> None:
        import jax

        from sdtheory.solvers.problems import FactorProblem

        X = features.X
        N, D = X.shape
        self._init_samples(labels, N, "features", "features", f"X has {N} rows")
        s = 1.0 / (N * self.lam)
        X_device = jax.device_put(X)
        self.spectrum = sp = feature_spectrum(X, s, self.K, X_device=X_device)
        put = jax.device_put
        DK = D * self.K
        direct = DK <= FEATURE_DIRECT_MAX and N * DK * DK <= FEATURE_DIRECT_WORK
        self._problem = FactorProblem(s=put(s), X=X_device, Vf=put(sp["V"]), nu=put(sp["nu"]),
                                      nu_rest=put(sp["nu_rest"]), direct=direct)
        self._sel = np.arange(N)
        self.X = X

    # ------------------------------------------------------------------ properties

    @property
    def B(self) -> int:
        """Number of problems held."""
        return self.weight.shape[0]

    @property
    def U(self) -> int:
        """Number of units."""
        return self.true.size

    def targets0(self) -> np.ndarray:
        """Teacher targets: one-hot given labels, (U, K) for one problem, (B, U, K) for more."""
        Y = one_hot(self.given, self.K)
        return Y if self.B == 1 else np.broadcast_to(Y, (self.B,) + Y.shape).copy()

    def expand(self, P_units: np.ndarray) -> np.ndarray:
        """Unit outputs -> per-sample outputs, samples ordered as ``noise.corrupt_exact``
        (identity for a dense problem)."""
        if self.kind != "group":
            return np.asarray(P_units)
        return np.repeat(P_units, self.weight[0].astype(np.int64), axis=0)

    # ------------------------------------------------------------------ solving

    def _grid(self, T, b: int, fill: float | None = None):
        """Unit rows -> the problem's layout: the K x K grid of groups, or the padded samples;
        the added rows are ``fill`` (default 1/K: targets; logits use 0)."""
        K = self.K
        fill = 1.0 / K if fill is None else fill
        if self.kind == "features":
            return T
        if self.kind != "group":
            full = np.full((b, self._problem.G.shape[0], K), fill)
            full[:, :T.shape[1]] = T
            return full
        full = np.full((b, K * K, K), fill)
        full[:, self._sel] = T
        return full.reshape(b, K, K, K)

    def fit_batch(self, T, x0=None, idx=None) -> BatchFit:
        """Exact outputs of problems ``idx`` (default all) for targets T (b, U, K)."""
        require_x64("ExactSolver.fit")
        idx = np.arange(self.B) if idx is None else np.asarray(idx, dtype=np.int64)
        T = check_targets(T, (idx.size, self.U, self.K))
        Tg = self._grid(T, idx.size)
        x_shape = ((idx.size, self.X.shape[1], self.K) if self.kind == "features"
                   else Tg.shape)
        if x0 is None:
            x0 = np.zeros(x_shape)
        else:
            x0 = np.asarray(x0, dtype=np.float64)
            if x0.shape != x_shape:
                raise ValueError(f"x0 must have shape {x_shape}, got {x0.shape}")
        t0 = time.perf_counter()
        x, P, cert, its, status, kry = self._solve(idx, Tg, x0, self.max_iter)
        bad = np.flatnonzero(status == FAILED)
        if bad.size:     # second attempt from zero logits, more steps
            log.info("retrying %d of %d problems from zero logits", bad.size, idx.size)
            r2 = self._solve(idx[bad], Tg[bad], np.zeros_like(x0[bad]), RETRY_MAX_ITER)
            x[bad], P[bad], cert[bad], its[bad], status[bad] = r2[:5]
            kry[bad] += r2[5]            # both attempts' Krylov iterations
        seconds = time.perf_counter() - t0
        Pu = P.reshape(idx.size, -1, self.K)[:, self._sel]
        infos = None
        if self.kind == "features":
            W = x[0].T.copy()
            infos = (FeatureNewtonInfo(
                iterations=int(its[0]), status=STATUS_NAMES[int(status[0])], seconds=seconds,
                logits=self.X @ x[0], krylov_iterations=int(kry[0]), weights=W),)
        elif self.B == 1:     # per-problem diagnostics for single trainings (sweeps need none)
            infos = (NewtonInfo(iterations=int(its[0]), status=STATUS_NAMES[int(status[0])],
                                seconds=seconds, logits=x[0].reshape(-1, self.K)[self._sel],
                                krylov_iterations=int(kry[0])),)
        return BatchFit(P=Pu, residual=cert, ok=status != FAILED, x=x, infos=infos)

    def _solve(self, idx, T, x0, max_iter):
        """The Newton core on problems idx (a dense or feature problem is held, and solved,
        unbatched)."""
        import jax

        if self.kind != "group":
            r = newton(self._problem, T[0], x0[0], tol=self.tol, max_iter=max_iter)
            return tuple(np.asarray(v)[None] for v in (r.x, r.P, r.certificate, r.iterations,
                                                       r.status, r.krylov))
        if self.B == 1:
            r = newton(self._problem, T, x0, tol=self.tol, max_iter=max_iter, batched=True)
            return r.x, r.P, r.certificate, r.iterations, r.status, r.krylov
        # Batches are cut into chunks of two padded sizes (each size compiles once per K), so
        # that an active set that shrinks round after round does not recompile: full chunks of
        # the big size, the rest in chunks of SMALL_BATCH (benchmarks/README.md).
        big = batch_size(self.K)
        out = [np.empty((idx.size,) + T.shape[1:]), np.empty((idx.size,) + T.shape[1:]),
               np.empty(idx.size), np.empty(idx.size, dtype=np.int64),
               np.empty(idx.size, dtype=np.int64), np.empty(idx.size, dtype=np.int64)]
        at = 0
        while at < idx.size:
            size = big if idx.size - at >= big else SMALL_BATCH
            part = np.arange(at, min(idx.size, at + size))
            pad = np.concatenate([part, np.full(size - part.size, part[-1])])
            problem = jax.tree_util.tree_map(lambda a, i=idx[pad]: a[i], self._problem)
            r = newton(problem, T[pad], x0[pad], tol=self.tol, max_iter=max_iter, batched=True)
            for o, v in zip(out, (r.x, r.P, r.certificate, r.iterations, r.status, r.krylov)):
                o[part] = v[:part.size]
            at += size
        return tuple(out)

    def fit(self, T, x0=None) -> Fit:
        """Exact outputs for unit targets T (U, K); ``x0`` optionally warm-starts (the logits
        of an earlier solve, ``fit.info.logits``; for features also its weights
        ``fit.info.weights``, (K, D), which take precedence when the two shapes coincide:
        logits are turned into the minimum-norm weights with X W^T = logits by least squares).

        Raises:
          SolverError: the certificate did not reach the tolerance (nor, at the round-off
            floor, 100 x the tolerance or the float64 bound eps s ||G||_inf) after the retry.
        """
        if self.B != 1:
            raise ValueError(f"this solver holds {self.B} problems; use fit_batch")
        T = np.asarray(T, dtype=np.float64)
        if x0 is not None:
            x0 = np.asarray(x0, dtype=np.float64)
            if self.kind == "features":
                x0 = _feature_start(self.X, self.K, x0)[None]
            else:
                x0 = self._grid(x0[None], 1, fill=0.0)
        out = self.fit_batch(T[None], x0)
        if not out.ok[0]:
            raise SolverError(
                f"exact solver did not reach certificate {self.tol:g} (nor "
                f"{ACCEPT_FACTOR * self.tol:g} or the float64 floor at round-off): "
                f"certificate {out.residual[0]:.3e} "
                f"after {out.infos[0].iterations} Newton steps (lam = {self.lam_b[0]:g})")
        return out.single()


def _feature_start(X: np.ndarray, K: int, x0: np.ndarray) -> np.ndarray:
    """A warm start for the feature kind as the unknown W^T (D, K): from weights W (K, D), or
    from logits Z (N, K) through the minimum-norm least-squares solution of X W^T = Z."""
    N, D = X.shape
    if x0.shape == (K, D):
        return x0.T.copy()
    if x0.shape == (N, K):
        return np.linalg.lstsq(X, x0, rcond=None)[0]
    raise ValueError(f"x0 must be weights ({K}, {D}) or logits ({N}, {K}), got {x0.shape}")


def _on_gpu() -> bool:
    """Whether JAX's default backend is a GPU (then the eigendecompositions run there)."""
    import jax

    return jax.default_backend() == "gpu"


def _eigh(G: np.ndarray):
    """Full symmetric eigendecomposition (ascending): on a GPU by jax.numpy on the device, on
    the CPU by numpy's LAPACK.

    Not jnp.linalg.eigh on the CPU: two BLAS thread pools (numpy's and the one jaxlib calls)
    spinning against each other on a 2-core machine made one N = 2000 eigh 10 to 25 times
    slower (benchmarks/README.md).
    """
    if _on_gpu():
        import jax.numpy as jnp

        mu, V = jnp.linalg.eigh(jnp.asarray(G))
        return np.asarray(mu), np.asarray(V)
    return np.linalg.eigh(G)


def _choose_k(mu_desc: np.ndarray, mean_rest: np.ndarray, s: float) -> int:
    """Smallest k with (1 + s mu_(k+1)/2) / (1 + s mean_rest(k)/2) <= _PREC_RATIO."""
    ratio = (1.0 + 0.5 * s * np.maximum(mu_desc, 0)) / (1.0 + 0.5 * s * np.maximum(mean_rest, 0))
    ok = np.flatnonzero(ratio <= _PREC_RATIO)
    return int(ok[0]) if ok.size else mu_desc.size


def leading_spectrum(G: np.ndarray, s: float, K: int, *, seed: int = 0) -> dict:
    """PSD check and the preconditioner's spectral data of a dense Gram matrix.

    N <= :data:`EIGH_MAX`: a full eigendecomposition; above, a Cholesky factorisation of
    G + delta I certifies that no eigenvalue lies below -delta (delta = PSD_RTOL * scale) and
    a randomized subspace iteration finds the leading eigenpairs. In both cases k, the number
    of eigenpairs kept, is the smallest with (1 + s mu_(k+1)/2)/(1 + s mean_rest/2) <= 4
    (docs/theory.md section 2.4): the remaining eigenvalues are then well represented by their
    mean mu_rest; k K is capped at 1024 (the preconditioner factorises a (k K) x (k K) matrix).

    Args:
      G: (N, N) symmetric matrix.
      s: 1 / (N lam).
      K: number of classes.
      seed: seed of the random start of the subspace iteration.

    Returns:
      dict with "mu" (k,), "V" (N, k), "mu_rest", "k", "min_eig" (None when only certified by
      Cholesky), "method".

    Raises:
      ValueError: G is not positive semi-definite (the message names the eigenvalue).
    """
    N = G.shape[0]
    if N <= EIGH_MAX:
        mu, V = _eigh(G)
        if not is_psd(mu[0], mu[-1]):
            raise ValueError(psd_refusal(mu[0], mu[-1]))
        desc = mu[::-1]
        tail = np.cumsum(mu)[::-1]                       # sum of mu_desc[k:]
        mean_rest = tail / np.arange(N, 0, -1)
        k = min(max(1, _choose_k(desc, mean_rest, s)), N, max(1, _PREC_KK_MAX // K))
        rest = float(mean_rest[k]) if k < N else 0.0
        return {"mu": mu[::-1][:k].copy(), "V": V[:, ::-1][:, :k].copy(), "mu_rest": rest, "k": k,
                "min_eig": float(mu[0]), "method": "eigh"}
    return _randomized_spectrum(G, s, max(1, _PREC_KK_MAX // K), seed)


def _randomized_spectrum(G: np.ndarray, s: float, k_max: int, seed: int) -> dict:
    N = G.shape[0]
    rng = np.random.default_rng(seed)
    trace = float(np.trace(G))
    k = min(16, k_max)
    while True:
        p = k + 16                                        # oversampling
        Q, _ = np.linalg.qr(G @ rng.standard_normal((N, p)))
        for _ in range(3):                                # subspace (power) iterations
            Q, _ = np.linalg.qr(G @ Q)
        H = Q.T @ (G @ Q)
        mu, W = np.linalg.eigh(0.5 * (H + H.T))
        mu, W = mu[::-1], W[:, ::-1]
        rest = (trace - mu[:k].sum()) / (N - k)
        if _choose_k(mu[k:k + 1], np.array([rest]), s) == 0 or k >= k_max:
            break
        k = min(2 * k, k_max)
    delta = 1e-10 * max(1.0, float(mu[0]))
    # a contiguous N x N copy: in the zero-padded (2048, 2048) array the same factorisation
    # is 1.6 times slower at N = 2000 (a power-of-two leading dimension; benchmarks/README.md)
    A = np.array(G, order="C")
    A[np.diag_indices(N)] += delta
    # numpy's factorisation, not scipy's: a cold full-N solve then never imports scipy.linalg
    # (docs/theory.md section 2.4)
    try:
        with lapack_threads(N):
            np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        from scipy.sparse.linalg import eigsh

        low = float(eigsh(G, k=1, which="SA", tol=1e-4, return_eigenvectors=False)[0])
        raise ValueError(psd_refusal(low, float(mu[0]))) from None
    return {"mu": mu[:k].copy(), "V": (Q @ W[:, :k]).copy(), "mu_rest": float(rest), "k": k,
            "min_eig": None, "method": "randomized+cholesky"}


def feature_spectrum(X: np.ndarray, s: float, K: int, *, seed: int = 0, X_device=None) -> dict:
    """The feature-space preconditioner's spectral data: leading eigenpairs of X^T X (D x D).

    D <= :data:`FEATURE_EIGH_MAX`: a full eigendecomposition of X^T X; above, a randomized
    subspace iteration through products with X and X^T (never X^T X nor X X^T). k, the number
    of eigenpairs kept, follows the rule of the dense path (:func:`leading_spectrum`,
    docs/theory.md section 2.4) on the D eigenvalues of X^T X (the nonzero eigenvalues of
    G = X X^T): the smallest k with (1 + s nu_(k+1)/2)/(1 + s nu_rest/2) <= 4, nu_rest the
    mean of the other D - k. There is no cap from a factorisation here: the preconditioner is
    diagonal in the kept eigenbasis, O(D k K) an application. No PSD check is needed
    (X X^T is a Gram matrix).

    Args:
      X: (N, D) features.
      s: 1 / (N lam).
      K: number of classes (unused by the rule; kept for symmetry with leading_spectrum).
      seed: seed of the random start of the subspace iteration.
      X_device: X already on the JAX device (used for the products of the randomized path).

    Returns:
      dict with "nu" (k,), "V" (D, k), "nu_rest", "k", "method" ("eigh" or "randomized").
    """
    N, D = X.shape
    if D <= FEATURE_EIGH_MAX:
        A = X.T @ X
        if _on_gpu():
            nu, V = _eigh(A)
        else:
            with one_blas_thread():
                nu, V = np.linalg.eigh(A)
        nu, V = np.maximum(nu[::-1], 0.0), V[:, ::-1]
        tail = np.cumsum(nu[::-1])[::-1]                     # sum of nu[k:]
        mean_rest = tail / np.arange(D, 0, -1)
        k = min(max(1, _choose_k(nu, mean_rest, s)), D)
        rest = float(mean_rest[k]) if k < D else 0.0
        return {"nu": nu[:k].copy(), "V": V[:, :k].copy(), "nu_rest": rest, "k": k,
                "method": "eigh"}
    return _randomized_feature_spectrum(X, s, seed, X_device)


def _randomized_feature_spectrum(X: np.ndarray, s: float, seed: int, X_device) -> dict:
    """Leading eigenpairs of X^T X by subspace iteration with products X^T (X Q), k doubling
    from 16 (up to D/2) until the rule of :func:`feature_spectrum` holds."""
    import jax
    import jax.numpy as jnp

    N, D = X.shape
    Xd = jnp.asarray(X) if X_device is None else X_device
    gram_apply = jax.jit(lambda A, Q: A.T @ (A @ Q))
    rng = np.random.default_rng(seed)
    trace = float(np.sum(X * X))
    k_max = max(1, D // 2)
    k = min(16, k_max)
    while True:
        p = min(k + 16, D)                                   # oversampling
        Q, _ = np.linalg.qr(np.asarray(gram_apply(Xd, rng.standard_normal((D, p)))))
        for _ in range(3):                                   # subspace (power) iterations
            Q, _ = np.linalg.qr(np.asarray(gram_apply(Xd, Q)))
        H = Q.T @ np.asarray(gram_apply(Xd, Q))
        with one_blas_thread():
            nu, W = np.linalg.eigh(0.5 * (H + H.T))
        nu, W = np.maximum(nu[::-1], 0.0), W[:, ::-1]
        rest = max(trace - nu[:k].sum(), 0.0) / (D - k)
        if _choose_k(nu[k:k + 1], np.array([rest]), s) == 0 or k >= k_max:
            break
        k = min(2 * k, k_max)
    return {"nu": nu[:k].copy(), "V": (Q @ W[:, :k]).copy(), "nu_rest": float(rest), "k": k,
            "method": "randomized"}
