"""Gradient-trained linear softmax models on explicit features (theory.md sections 1-2).

The closed forms of :mod:`sdtheory.solve` describe the *global minimiser* of one training,

    L(W) = (1/N) sum_i CE(t_i, softmax(W x_i)) + (lam/2) ||W||_F^2,     W in R^{K x D},

a bias-free linear softmax classifier at temperature 1 on fixed features x_i (rows of X, N x D)
with soft targets t_i (rows of T, N x K). This module trains that model for real, so the theory
can be checked against training rather than against itself:

* ``"lbfgs"``: :func:`optax.lbfgs` with its zoom line search, run until the gradient norm is
  tiny; its outputs satisfy the fixed point (E) of theory.md to about the gradient tolerance
  times ||X||_2 / lam.
* ``"gd"``: plain full-batch gradient descent with a fixed step, by default 1/L with the
  smoothness bound L = ||X||_2^2 / (2N) + lam (the Hessian of the softmax cross-entropy in the
  logits, diag(p) - p p^T, has largest eigenvalue at most 1/2). With step <= 1/L the objective
  never increases.
* ``"sgd"``: mini-batch SGD with momentum and weight decay lam, seeded shuffling and a
  per-epoch learning-rate decay, the recipe of the authors' linear-probing runs (lr 0.1,
  momentum 0.9, batch 128, 200 epochs, lr x 0.98 per epoch).

At a stationary point W = (T - P)^T X / (N lam) (theory.md section 2), so the training outputs
P = softmax(X W^T) satisfy P = softmax(G (T - P) / (N lam)) with G = X X^T. :class:`TrainedSolver`
reports the residual of that equation as its certificate, exactly as the exact solvers do, and
plugs into the round driver of :mod:`sdtheory.distill` through the
:class:`~sdtheory.solve.Solver` protocol. :func:`feature_factor` turns any Gram model into
explicit features X with X X^T = G, so every Gram model can be trained explicitly.

All computations are float64: call :func:`sdtheory.enable_x64` first (the JAX entry points
refuse to run in float32).
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
from scipy.special import log_softmax, softmax

from sdtheory._x64 import require_x64
from sdtheory.solve import Fit, SolverError

__all__ = [
    "TrainResult",
    "TrainedSolver",
    "feature_factor",
    "feature_residual",
    "smoothness_bound",
    "softmax_objective",
    "train_softmax",
]

METHODS = ("lbfgs", "gd", "sgd")
DEFAULT_MAX_ITER = {"lbfgs": 10_000, "gd": 100_000}
# Seconds between two progress lines on stderr.
PROGRESS_INTERVAL = 2.0


# --------------------------------------------------------------------------------------------
# Features from a Gram matrix
# --------------------------------------------------------------------------------------------


def feature_factor(G: np.ndarray, *, method: str = "eigh") -> np.ndarray:
    """Explicit features X with X X^T = G, so a Gram model can be trained explicitly.

    ``method="eigh"``: G = V diag(mu) V^T, X = V diag(sqrt(mu)) (columns with mu = 0 dropped, so
    D = rank G). ``method="cholesky"``: X = the lower Cholesky factor (D = N) when G is
    numerically positive definite, otherwise the ``"eigh"`` factor. Eigenvalues in
    [-1e-12 max|mu|, 0) are rounding noise and are clipped to 0; anything more negative means
    G is not positive semi-definite (not a Gram matrix) and raises.

    Args:
      G: (N, N) symmetric positive semi-definite matrix.
      method: ``"eigh"`` or ``"cholesky"``.

    Returns:
      X: (N, D) float64 features, X @ X.T == G up to rounding (about N eps max|mu|).

    Raises:
      ValueError: G not square, not finite, not symmetric (to 1e-12 relative), or with an
        eigenvalue below -1e-12 max|mu| (the message names the most negative eigenvalue).

    Example:
      >>> from sdtheory.gram import two_level
      >>> G = two_level(K=3, n=4).dense()
      >>> X = feature_factor(G)
      >>> bool(abs(X @ X.T - G).max() < 1e-12)
      True
    """
    G = np.asarray(G, dtype=np.float64)
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise ValueError(f"G must be a square matrix, got shape {G.shape}")
    if not np.all(np.isfinite(G)):
        raise ValueError("G contains NaN or infinite entries")
    if method not in ("eigh", "cholesky"):
        raise ValueError(f"method must be 'eigh' or 'cholesky', got {method!r}")
    scale = float(np.abs(G).max()) if G.size else 0.0
    if scale == 0.0:
        return np.zeros((G.shape[0], 0))
    asym = float(np.abs(G - G.T).max())
    if asym > 1e-12 * scale:
        raise ValueError(f"G must be symmetric: max |G - G^T| = {asym:.3g}")
    G = 0.5 * (G + G.T)
    if method == "cholesky":
        try:
            return np.linalg.cholesky(G)
        except np.linalg.LinAlgError:
            pass  # not numerically PD: fall back to the eigendecomposition
    mu, V = np.linalg.eigh(G)
    floor = -1e-12 * float(np.abs(mu).max())
    if mu[0] < floor:
        raise ValueError(
            f"G is not positive semi-definite: most negative eigenvalue {mu[0]:.6g} "
            f"(tolerance {floor:.3g}); a Gram matrix has none"
        )
    keep = mu > 0.0
    return V[:, keep] * np.sqrt(mu[keep])


# --------------------------------------------------------------------------------------------
# Objective, smoothness, certificate (numpy, float64)
# --------------------------------------------------------------------------------------------


def softmax_objective(W: np.ndarray, X: np.ndarray, T: np.ndarray, lam: float) -> float:
    """The regularised objective L(W) = (1/N) sum_i CE(t_i, softmax(W x_i)) + (lam/2)||W||_F^2.

    CE(t, p) = -sum_k t_k log p_k (cross-entropy, not KL: the two differ by the target entropy,
    a constant). Computed in numpy float64 with a stable log-softmax.

    Args:
      W: (K, D) weights.
      X: (N, D) features, one row per sample.
      T: (N, K) targets, rows on the simplex.
      lam: weight decay lam > 0.

    Returns:
      L(W) as a Python float.
    """
    W = np.asarray(W, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    logp = log_softmax(X @ W.T, axis=1)
    return float(-np.sum(T * logp) / X.shape[0] + 0.5 * lam * np.sum(W * W))


def smoothness_bound(X: np.ndarray, lam: float) -> float:
    """Lipschitz constant of grad L: L_smooth = ||X||_2^2 / (2N) + lam.

    The Hessian of L in vec(W) is (1/N) sum_i (diag(p_i) - p_i p_i^T) kron x_i x_i^T + lam I, and
    the largest eigenvalue of diag(p) - p p^T is at most 1/2, so the Hessian is bounded by
    ||X||_2^2 / (2N) + lam. Gradient descent with step 1/L_smooth decreases L monotonically.

    Args:
      X: (N, D) features.
      lam: weight decay.

    Returns:
      The bound, a float.
    """
    X = np.asarray(X, dtype=np.float64)
    return 0.5 * float(np.linalg.norm(X, 2)) ** 2 / X.shape[0] + float(lam)


def feature_residual(X: np.ndarray, T: np.ndarray, P: np.ndarray, lam: float) -> float:
    """Certificate of theory.md eq. (E): max |P - softmax(G (T - P) / (N lam))| with G = X X^T.

    G (T - P) is computed as X (X^T (T - P)), without forming the N x N matrix. At the exact
    minimiser the residual is 0; for a trained W with gradient g, the logits differ from those of
    (E) by X g^T / lam, so the residual is at most about ||X||_2 ||g||_F / (2 lam).

    Args:
      X: (N, D) features.
      T: (N, K) targets.
      P: (N, K) outputs on the training inputs.
      lam: weight decay.

    Returns:
      The residual (max-abs), a float.
    """
    X = np.asarray(X, dtype=np.float64)
    R = np.asarray(T, dtype=np.float64) - np.asarray(P, dtype=np.float64)
    Z = X @ (X.T @ R) / (X.shape[0] * lam)
    return float(np.abs(np.asarray(P) - softmax(Z, axis=1)).max())


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    """Outcome of one training of the linear softmax model.

    Attributes:
      W: (K, D) trained weights.
      method: ``"lbfgs"``, ``"gd"`` or ``"sgd"``.
      iterations: optimiser steps taken (L-BFGS iterations, GD steps, or SGD mini-batch steps).
      loss: final objective L(W).
      grad_norm: final full-batch gradient norm ||grad L(W)||_F.
      grad_tol: the absolute gradient tolerance used (tol times the reference gradient norm).
      converged: whether grad_norm <= grad_tol.
      wall_time: seconds spent training (compilation included).
      history: objective after each step, starting with L(W0) (``"lbfgs"`` and ``"gd"``: one
        entry per iteration; ``"sgd"``: one entry per epoch).
      epochs: SGD epochs run (0 for the full-batch methods).
    """

    W: np.ndarray
    method: str
    iterations: int
    loss: float
    grad_norm: float
    grad_tol: float
    converged: bool
    wall_time: float
    history: np.ndarray = field(repr=False)
    epochs: int = 0


# --------------------------------------------------------------------------------------------
# JAX kernels
# --------------------------------------------------------------------------------------------


def _loss(W, X, T, lam):
    """L(W) in JAX (mean cross-entropy plus (lam/2)||W||^2)."""
    logp = jax.nn.log_softmax(X @ W.T, axis=1)
    return -jnp.sum(T * logp) / X.shape[0] + 0.5 * lam * jnp.sum(W * W)


_value_and_grad = jax.value_and_grad(_loss)


@functools.lru_cache(maxsize=None)
def _lbfgs(memory_size: int, max_linesearch_steps: int):
    """The optax L-BFGS transformation and a jitted chunk of its iterations."""
    opt = optax.lbfgs(
        memory_size=memory_size,
        linesearch=optax.scale_by_zoom_linesearch(
            max_linesearch_steps=max_linesearch_steps, initial_guess_strategy="one"
        ),
    )
    value_and_grad = optax.value_and_grad_from_state(_loss)

    @functools.partial(jax.jit, static_argnames=("chunk",))
    def run_chunk(W, state, it, X, T, lam, gtol, max_iter, *, chunk):
        """Up to ``chunk`` L-BFGS iterations; stop at ||grad|| <= gtol or it == max_iter."""
        hist = jnp.full((chunk,), jnp.nan, dtype=W.dtype)

        def gnorm(state):
            return otu.tree_norm(otu.tree_get(state, "grad"))

        def cond(carry):
            _, state, it, j, _ = carry
            return (j < chunk) & (it < max_iter) & (gnorm(state) > gtol)

        def body(carry):
            W, state, it, j, hist = carry
            value, grad = value_and_grad(W, X, T, lam, state=state)
            updates, state = opt.update(
                grad, state, W, value=value, grad=grad, value_fn=_loss, X=X, T=T, lam=lam
            )
            W = optax.apply_updates(W, updates)
            hist = hist.at[j].set(otu.tree_get(state, "value"))
            return W, state, it + 1, j + 1, hist

        W, state, it, j, hist = jax.lax.while_loop(cond, body, (W, state, it, 0, hist))
        return W, state, it, j, hist, otu.tree_get(state, "value"), gnorm(state)

    return opt, run_chunk


@functools.partial(jax.jit, static_argnames=("chunk",))
def _gd_chunk(W, it, X, T, lam, step, gtol, max_iter, *, chunk):
    """Up to ``chunk`` GD evaluations: record L(W_t); stop if converged or out of steps; step.

    Returns the weights, the step count, the number of evaluations done, their objective values,
    and the value and gradient norm at the last evaluated point (which is the returned W when the
    loop stopped on convergence or on max_iter).
    """
    hist = jnp.full((chunk,), jnp.nan, dtype=W.dtype)

    def cond(carry):
        _, _, j, _, _, _, stop = carry
        return (j < chunk) & ~stop

    def body(carry):
        W, it, j, hist, _, _, _ = carry
        value, grad = _value_and_grad(W, X, T, lam)
        gn = jnp.sqrt(jnp.sum(grad * grad))
        hist = hist.at[j].set(value)
        stop = (gn <= gtol) | (it >= max_iter)
        W = jnp.where(stop, W, W - step * grad)
        return W, it + jnp.where(stop, 0, 1), j + 1, hist, value, gn, stop

    zero = jnp.zeros((), W.dtype)
    init = (W, it, 0, hist, zero, zero, jnp.asarray(False))
    W, it, j, hist, value, gn, stop = jax.lax.while_loop(cond, body, init)
    return W, it, j, hist, value, gn, stop


@jax.jit
def _sgd_step(W, v, Xb, Tb, lam, lr, momentum):
    """One SGD step with heavy-ball momentum (PyTorch convention) and weight decay lam.

    g = grad of the mini-batch objective (1/B) sum_b CE + (lam/2)||W||^2; v <- momentum v + g;
    W <- W - lr v.
    """
    _, g = _value_and_grad(W, Xb, Tb, lam)
    v = momentum * v + g
    return W - lr * v, v


@jax.jit
def _sgd_epoch(W, v, Xs, Ts, lam, lr, momentum):
    """SGD steps over stacked full batches Xs (nb, B, D), Ts (nb, B, K)."""

    def body(carry, batch):
        W, v = carry
        W, v = _sgd_step(W, v, batch[0], batch[1], lam, lr, momentum)
        return (W, v), None

    (W, v), _ = jax.lax.scan(body, (W, v), (Xs, Ts))
    return W, v


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _check_inputs(X, T, lam, W0):
    X = np.asarray(X, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a non-empty (N, D) matrix, got shape {X.shape}")
    if T.ndim != 2 or T.shape[0] != X.shape[0] or T.shape[1] < 2:
        raise ValueError(f"T must be (N, K) with N = {X.shape[0]} and K >= 2, got {T.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite entries")
    if not np.all(np.isfinite(T)) or T.min() < 0.0:
        raise ValueError("T must be finite and non-negative (rows are distributions)")
    row_err = float(np.abs(T.sum(axis=1) - 1.0).max())
    if row_err > 1e-8:
        raise ValueError(f"rows of T must sum to 1 (max deviation {row_err:.3g})")
    if not (np.isfinite(lam) and lam > 0):
        raise ValueError(f"lam must be a finite number > 0, got {lam}")
    K, D = T.shape[1], X.shape[1]
    if W0 is None:
        W0 = np.zeros((K, D))
    else:
        W0 = np.asarray(W0, dtype=np.float64)
        if W0.shape != (K, D):
            raise ValueError(f"W0 must have shape (K, D) = {(K, D)}, got {W0.shape}")
    return X, T, float(lam), W0


def _progress_line(method, it, loss, gn):
    print(f"[sdtheory.train {method}] iter {it:>8d}  loss {loss:.15g}  |grad| {gn:.3e}",
          file=sys.stderr, flush=True)


def train_softmax(
    X: np.ndarray,
    T: np.ndarray,
    lam: float,
    *,
    method: str = "lbfgs",
    tol: float = 1e-12,
    max_iter: int | None = None,
    W0: np.ndarray | None = None,
    seed: int = 0,
    progress: bool = False,
    step: float | None = None,
    memory_size: int = 20,
    max_linesearch_steps: int = 30,
    lr: float = 0.1,
    momentum: float = 0.9,
    batch_size: int = 128,
    epochs: int = 200,
    lr_decay: float = 0.98,
    chunk: int | None = None,
) -> TrainResult:
    """Train the bias-free linear softmax classifier on features X and soft targets T.

    Minimises L(W) = (1/N) sum_i CE(t_i, softmax(W x_i)) + (lam/2) ||W||_F^2 over W in
    R^{K x D}, starting from W0 (zeros by default), in float64. Convergence is measured by the
    full-batch gradient grad L(W) = (P - T)^T X / N + lam W against the absolute tolerance

        grad_tol = tol * max(||grad L(0)||_F, ||grad L(W0)||_F),

    with grad L(0) = (1/K - T)^T X / N (so ``tol`` is relative and scale-free).

    Args:
      X: (N, D) features, one row per training sample.
      T: (N, K) targets, rows on the simplex.
      lam: weight decay lam > 0 (for ``"sgd"``: the SGD weight decay).
      method: ``"lbfgs"`` (to convergence), ``"gd"`` (fixed step) or ``"sgd"`` (mini-batches).
      tol: relative gradient-norm tolerance (stops ``"lbfgs"`` and ``"gd"``; for ``"sgd"`` it
        only sets ``converged``).
      max_iter: most iterations for ``"lbfgs"`` / ``"gd"`` (defaults 10,000 / 100,000); ignored
        by ``"sgd"``, which runs ``epochs`` epochs.
      W0: (K, D) initial weights (default zeros).
      seed: seed of the SGD batch shuffling (the full-batch methods are deterministic).
      progress: print a line (iteration, loss, gradient norm) to stderr every ~2 s and at the end.
      step: GD step size (default 1 / :func:`smoothness_bound`, which guarantees monotone decrease).
      memory_size: L-BFGS memory.
      max_linesearch_steps: most zoom line-search steps per L-BFGS iteration.
      lr: SGD initial learning rate.
      momentum: SGD heavy-ball momentum (PyTorch convention).
      batch_size: SGD mini-batch size; each epoch is a seeded permutation cut into batches, the
        last one possibly smaller (as a PyTorch DataLoader with ``drop_last=False``).
      epochs: SGD epochs.
      lr_decay: SGD learning rate multiplied by this after every epoch.
      chunk: iterations per compiled chunk between two Python-side checks (default 200 for
        ``"lbfgs"``, 2,000 for ``"gd"``).

    Returns:
      A :class:`TrainResult`. Not converging is not an error here (see
      :class:`TrainedSolver`, which raises for ``"lbfgs"``).

    Raises:
      ValueError: bad shapes or values (non-finite X or T, rows of T not summing to 1, lam <= 0,
        unknown method).
      RuntimeError: float64 is off.
    """
    require_x64("train_softmax")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    X, T, lam, W0 = _check_inputs(X, T, lam, W0)
    if not (tol >= 0):
        raise ValueError(f"tol must be >= 0, got {tol}")
    t_start = time.perf_counter()
    N, K = T.shape
    Xj, Tj = jnp.asarray(X), jnp.asarray(T)

    g_zero = (1.0 / K - T).T @ X / N
    g_init = (softmax(X @ W0.T, axis=1) - T).T @ X / N + lam * W0
    scale = max(float(np.linalg.norm(g_zero)), float(np.linalg.norm(g_init)))
    gtol = float(tol) * scale

    if method == "lbfgs":
        max_iter = DEFAULT_MAX_ITER["lbfgs"] if max_iter is None else int(max_iter)
        opt, run_chunk = _lbfgs(int(memory_size), int(max_linesearch_steps))
        W = jnp.asarray(W0)
        state = opt.init(W)
        value, grad = _value_and_grad(W, Xj, Tj, lam)
        # Seed the state with the value and gradient at W0 so the stopping test sees them.
        state = otu.tree_set(state, value=value, grad=grad)
        history = [float(value)]
        gn = float(jnp.linalg.norm(grad))
        it = 0
        last_print = time.perf_counter()
        if progress:
            _progress_line(method, 0, history[-1], gn)
        while gn > gtol and it < max_iter:
            W_before = W
            W, state, it_j, j, hist, value, gn_j = run_chunk(
                W, state, jnp.asarray(it), Xj, Tj, lam, gtol, max_iter, chunk=chunk or 200
            )
            done = int(j)
            if done == 0 or bool(jnp.all(W == W_before)):
                # Nothing left to do, or a whole chunk without moving: the line search can no
                # longer find a decrease in float64 (the caller sees converged=False).
                it = int(it_j)
                history.extend(np.asarray(hist[:done]).tolist())
                gn = float(gn_j) if done else gn
                break
            it = int(it_j)
            history.extend(np.asarray(hist[:done]).tolist())
            gn = float(gn_j)
            if progress and time.perf_counter() - last_print >= PROGRESS_INTERVAL:
                _progress_line(method, it, float(value), gn)
                last_print = time.perf_counter()
        W = np.asarray(W)
        iterations = it
        epochs_run = 0
    elif method == "gd":
        max_iter = DEFAULT_MAX_ITER["gd"] if max_iter is None else int(max_iter)
        step = 1.0 / smoothness_bound(X, lam) if step is None else float(step)
        if not step > 0:
            raise ValueError(f"step must be > 0, got {step}")
        W = jnp.asarray(W0)
        it = 0
        history = []
        last_print = time.perf_counter()
        stop = False
        while not stop:
            W, it_j, j, hist, value, gn_j, stop_j = _gd_chunk(
                W, jnp.asarray(it), Xj, Tj, lam, step, gtol, max_iter, chunk=chunk or 2000
            )
            it = int(it_j)
            history.extend(np.asarray(hist[: int(j)]).tolist())
            gn = float(gn_j)
            stop = bool(stop_j)
            if progress and (stop or time.perf_counter() - last_print >= PROGRESS_INTERVAL):
                _progress_line(method, it, float(value), gn)
                last_print = time.perf_counter()
        W = np.asarray(W)
        iterations = it
        epochs_run = 0
    else:  # sgd
        if int(batch_size) < 1 or int(epochs) < 0:
            raise ValueError(f"batch_size must be >= 1 and epochs >= 0, got {batch_size}, {epochs}")
        B = min(int(batch_size), N)
        rng = np.random.default_rng(seed)
        W = jnp.asarray(W0)
        v = jnp.zeros_like(W)
        history = [softmax_objective(W0, X, T, lam)]
        cur_lr = float(lr)
        nb, rest = divmod(N, B)
        last_print = time.perf_counter()
        for epoch in range(int(epochs)):
            perm = rng.permutation(N)
            full = perm[: nb * B].reshape(nb, B)
            W, v = _sgd_epoch(W, v, Xj[full], Tj[full], lam, cur_lr, float(momentum))
            if rest:
                tail = perm[nb * B:]
                W, v = _sgd_step(W, v, Xj[tail], Tj[tail], lam, cur_lr, float(momentum))
            cur_lr *= float(lr_decay)
            history.append(softmax_objective(np.asarray(W), X, T, lam))
            if progress and (epoch == int(epochs) - 1
                             or time.perf_counter() - last_print >= PROGRESS_INTERVAL):
                gn_now = float(jnp.linalg.norm(_value_and_grad(W, Xj, Tj, lam)[1]))
                _progress_line(method, (epoch + 1) * (nb + (rest > 0)), history[-1], gn_now)
                last_print = time.perf_counter()
        W = np.asarray(W)
        iterations = int(epochs) * (nb + (rest > 0))
        epochs_run = int(epochs)
        gn = float(np.linalg.norm((softmax(X @ W.T, axis=1) - T).T @ X / N + lam * W))

    loss = softmax_objective(W, X, T, lam)
    if method == "lbfgs" and progress:
        _progress_line(method, iterations, loss, gn)
    return TrainResult(
        W=W,
        method=method,
        iterations=int(iterations),
        loss=loss,
        grad_norm=float(gn),
        grad_tol=gtol,
        converged=bool(gn <= gtol),
        wall_time=time.perf_counter() - t_start,
        history=np.asarray(history, dtype=np.float64),
        epochs=epochs_run,
    )


# --------------------------------------------------------------------------------------------
# Solver protocol
# --------------------------------------------------------------------------------------------


class TrainedSolver:
    """One training by gradient descent on explicit features, as a :class:`~sdtheory.solve.Solver`.

    Each :meth:`fit` trains W from W0 (zeros: every round "from scratch", theory.md section 1)
    on the given targets and returns the training outputs P = softmax(X W^T) with the
    certificate of (E),

        residual = max |P - softmax(G (T - P) / (N lam))|,   G = X X^T,

    which is 0 at the exact minimiser. Units are samples (``weight`` = 1).

    Args:
      X: (N, D) features (for a Gram model use :func:`feature_factor`).
      given: (N,) given (possibly noisy) labels in 0..K-1.
      lam: weight decay lam > 0.
      true: (N,) true labels (default: ``given``, i.e. no known corruption).
      method: ``"lbfgs"``, ``"gd"`` or ``"sgd"`` (see :func:`train_softmax`).
      tol: relative gradient-norm tolerance of :func:`train_softmax`.
      max_iter: most L-BFGS / GD iterations (None: the method's default).
      seed: SGD shuffling seed.
      progress: periodic progress lines on stderr.
      K: number of classes (default: 1 + the largest label in ``given`` and ``true``).
      W0: initial weights for every fit (default zeros).
      options: further keyword arguments for :func:`train_softmax` (``step``, ``lr``,
        ``momentum``, ``batch_size``, ``epochs``, ``lr_decay``, ``memory_size``, ...).

    Attributes:
      K, true, given, weight, name: the :class:`~sdtheory.solve.Solver` protocol
        (``name == "trained"``).
      X, lam, method, tol, max_iter, seed, progress, W0, options: as given.

    Example:
      >>> import numpy as np
      >>> from sdtheory.gram import two_level
      >>> model = two_level(K=3, n=10)
      >>> X = feature_factor(model.dense())
      >>> solver = TrainedSolver(X, model.labels(), lam=1e-2)
      >>> fit = solver.fit(np.eye(3)[model.labels()])    # doctest: +SKIP
      >>> fit.residual < 1e-8                              # doctest: +SKIP
      True
    """

    name = "trained"

    def __init__(
        self,
        X: np.ndarray,
        given: np.ndarray,
        lam: float,
        *,
        true: np.ndarray | None = None,
        method: str = "lbfgs",
        tol: float = 1e-12,
        max_iter: int | None = None,
        seed: int = 0,
        progress: bool = False,
        K: int | None = None,
        W0: np.ndarray | None = None,
        options: Mapping | None = None,
    ) -> None:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be an (N, D) matrix, got shape {X.shape}")
        given = np.asarray(given)
        if given.shape != (X.shape[0],) or not np.issubdtype(given.dtype, np.integer):
            raise ValueError(f"given must be {X.shape[0]} integer labels, got {given.shape} "
                             f"{given.dtype}")
        true = given.copy() if true is None else np.asarray(true)
        if true.shape != given.shape or not np.issubdtype(true.dtype, np.integer):
            raise ValueError(f"true must be {X.shape[0]} integer labels like given")
        if K is None:
            K = int(max(given.max(), true.max())) + 1
        K = int(K)
        if K < 2:
            raise ValueError(f"K must be >= 2, got {K}")
        if min(given.min(), true.min()) < 0 or max(given.max(), true.max()) >= K:
            raise ValueError(f"labels must lie in 0..K-1 = 0..{K - 1}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if not (np.isfinite(lam) and lam > 0):
            raise ValueError(f"lam must be a finite number > 0, got {lam}")
        self.X = X
        self.given = given
        self.true = true
        self.K = K
        self.weight = np.ones(X.shape[0])
        self.lam = float(lam)
        self.method = method
        self.tol = float(tol)
        self.max_iter = max_iter
        self.seed = int(seed)
        self.progress = bool(progress)
        self.W0 = None if W0 is None else np.asarray(W0, dtype=np.float64)
        self.options = dict(options or {})

    def train(self, T: np.ndarray) -> TrainResult:
        """Train on targets T (N x K) and return the full :class:`TrainResult`."""
        T = np.asarray(T, dtype=np.float64)
        if T.shape != (self.X.shape[0], self.K):
            raise ValueError(f"T must have shape (N, K) = {(self.X.shape[0], self.K)}, "
                             f"got {T.shape}")
        return train_softmax(
            self.X, T, self.lam, method=self.method, tol=self.tol, max_iter=self.max_iter,
            W0=self.W0, seed=self.seed, progress=self.progress, **self.options,
        )

    def fit(self, T: np.ndarray) -> Fit:
        """Train once on targets T; return P = softmax(X W^T) and the residual of (E).

        Args:
          T: (N, K) targets, rows on the simplex.

        Returns:
          :class:`~sdtheory.solve.Fit` with ``info`` keys ``method``, ``iterations``, ``loss``,
          ``grad_norm``, ``grad_tol``, ``converged``, ``seconds`` (wall time), ``history``
          (objective per iteration, or per epoch for SGD), ``epochs``, and ``W`` (the trained
          K x D weights).

        Raises:
          SolverError: ``method="lbfgs"`` did not reach the gradient tolerance within max_iter
            (GD and SGD are returned as trained; check ``info["converged"]``).
        """
        res = self.train(T)
        if self.method == "lbfgs" and not res.converged:
            raise SolverError(
                f"L-BFGS stopped after {res.iterations} iterations at gradient norm "
                f"{res.grad_norm:.3e} > tolerance {res.grad_tol:.3e} (raise max_iter or tol)"
            )
        P = softmax(self.X @ res.W.T, axis=1)
        residual = feature_residual(self.X, T, P, self.lam)
        info = {
            "method": res.method,
            "iterations": res.iterations,
            "loss": res.loss,
            "grad_norm": res.grad_norm,
            "grad_tol": res.grad_tol,
            "converged": res.converged,
            "seconds": res.wall_time,
            "history": res.history,
            "epochs": res.epochs,
            "W": res.W,
        }
        return Fit(P=P, residual=residual, info=info)

