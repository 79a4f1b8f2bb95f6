"""Gradient-trained linear softmax models on explicit features (docs/theory.md section 11).

The exact solvers of :mod:`sdtheory.solvers` describe the *global minimiser* of one training,

    L(W) = (1/N) sum_i CE(t_i, softmax(W x_i)) + (lam/2) ||W||_F^2,     W in R^{K x D},

a bias-free linear softmax classifier at temperature 1 on fixed features x_i (rows of X, N x D)
with soft targets t_i (rows of T, N x K). This module trains that model for real, so the theory
can be checked against training rather than against itself:

* ``"lbfgs"``: :func:`optax.lbfgs` with its zoom line search, run until the gradient norm is
  tiny; its outputs satisfy the fixed point (E) to about the gradient tolerance
  times ||X||_2 / lam.
* ``"gd"``: plain full-batch gradient descent with a fixed step, by default 1/L with the
  smoothness bound L = ||X||_2^2 / (2N) + lam (the Hessian of the softmax cross-entropy in the
  logits, diag(p) - p p^T, has largest eigenvalue at most 1/2). With step <= 1/L the objective
  never increases.
* ``"sgd"``: mini-batch SGD with momentum and weight decay lam (:func:`optax.sgd` with an
  exponential, per-epoch learning-rate decay), seeded shuffling: the recipe of the authors'
  linear-probing runs (lr 0.1, momentum 0.9, batch 128, 200 epochs, lr x 0.98 per epoch).
  SGD also trains the generalised cross-entropy (``loss="gce"``, Zhang & Sabuncu 2018),
  GCE_q(t, p) = sum_k t_k (1 - p_k^q) / q, with which the authors train the PLL student
  (q = 0.7, t = 1/2 on each of the teacher's top two classes), and can monitor a score after
  every epoch (e.g. a held-out accuracy) and keep the best epoch's weights.

At a stationary point W = (T - P)^T X / (N lam) (docs/theory.md section 2.1), so the training
outputs P = softmax(X W^T) satisfy P = softmax(G (T - P) / (N lam)) with G = X X^T.
:class:`TrainedSolver` reports the certificate of that equation, computed exactly as for the
exact solvers (:func:`feature_residual`), and plugs into the round driver of
:mod:`sdtheory.distill` through the :class:`~sdtheory.solvers.base.Solver` protocol. Any Gram
input is trained through explicit features X with X X^T = G
(:func:`sdtheory.models.feature_factor`).

Progress goes to the ``logging`` logger of this module (INFO): the library stays quiet unless
the caller (the ``sdtheory`` command) attaches a handler.

All computations are float64: call :func:`sdtheory.enable_x64` first (the JAX entry points
refuse to run in float32).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
from scipy.special import log_softmax, softmax

from sdtheory._progress import Progress
from sdtheory._validate import check_features, check_lam
from sdtheory._x64 import require_x64
from sdtheory.models import BlockModel, Features, feature_factor
from sdtheory.solvers.base import Fit, SingleProblem, SolverError, TrainInfo

__all__ = [
    "TrainOptions",
    "TrainedSolver",
    "feature_residual",
    "smoothness_bound",
    "softmax_objective",
    "train_softmax",
]

log = logging.getLogger(__name__)

OPTIMISERS = ("lbfgs", "gd", "sgd")
DEFAULT_MAX_ITER = {"lbfgs": 10_000, "gd": 100_000}


# --------------------------------------------------------------------------------------------
# Objective, smoothness, certificate (numpy, float64)
# --------------------------------------------------------------------------------------------


SOFTMAX_LOSSES = ("ce", "gce")
"""The losses of softmax training: ce, cross-entropy; gce, generalised cross-entropy (the PLL
student). (The closed forms' losses are :data:`~sdtheory.solvers.linear.CLOSED_FORM_LOSSES`.)"""


def softmax_objective(W: np.ndarray, X: np.ndarray, T: np.ndarray, lam: float,
                      loss: str = "ce", q: float = 0.7) -> float:
    """The regularised objective L(W) = (1/N) sum_i loss(t_i, softmax(W x_i)) + (lam/2)||W||_F^2.

    ``"ce"``: CE(t, p) = -sum_k t_k log p_k (cross-entropy, not KL: the two differ by the
    target entropy, a constant). ``"gce"``: GCE_q(t, p) = sum_k t_k (1 - p_k^q) / q (tends to
    CE as q -> 0). Computed in numpy float64 with a stable log-softmax.

    Args:
      W: (K, D) weights.
      X: (N, D) features, one row per sample.
      T: (N, K) targets, rows on the simplex.
      lam: weight decay lam > 0.
      loss: ``"ce"`` or ``"gce"``; q: the GCE exponent in (0, 1].

    Returns:
      L(W) as a Python float.
    """
    W = np.asarray(W, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    logp = log_softmax(X @ W.T, axis=1)
    data = (-np.sum(T * logp) if loss == "ce"
            else np.sum(T * (1.0 - np.exp(q * logp))) / q)
    return float(data / X.shape[0] + 0.5 * lam * np.sum(W * W))


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


def feature_residual(X: np.ndarray, T: np.ndarray, W: np.ndarray, lam: float) -> float:
    """Certificate of (E) for trained weights: max |P - softmax(G (T - P) / (N lam))|,
    P = softmax(X W^T), G = X X^T.

    Computed by the feature-space problem of the Newton core
    (:class:`sdtheory.solvers.problems.FactorProblem`) and its one certificate formula, as X
    (X^T (T - P)), without forming the N x N matrix. At the exact minimiser the residual is 0;
    for weights with gradient g the logits differ from those of (E) by X g^T / lam, so the
    residual is at most about ||X||_2 ||g||_F / (2 lam).
    """
    from sdtheory.solvers.newton import certificate
    from sdtheory.solvers.problems import FactorProblem

    X = jnp.asarray(X, dtype=jnp.float64)
    problem = FactorProblem(s=jnp.asarray(1.0 / (X.shape[0] * lam)), X=X, Vf=jnp.zeros((0, 0)),
                            nu=jnp.zeros(0), nu_rest=jnp.asarray(0.0))
    P, Zfix, _ = problem.evaluate(jnp.asarray(W).T, jnp.asarray(T))
    return float(certificate(P, Zfix))


# --------------------------------------------------------------------------------------------
# JAX kernels
# --------------------------------------------------------------------------------------------


def _loss(W, X, T, lam):
    """L(W) in JAX (mean cross-entropy plus (lam/2)||W||^2)."""
    logp = jax.nn.log_softmax(X @ W.T, axis=1)
    return -jnp.sum(T * logp) / X.shape[0] + 0.5 * lam * jnp.sum(W * W)


_value_and_grad = jax.value_and_grad(_loss)


@functools.cache
def _loss_value_and_grad(loss: str, q: float):
    """value_and_grad of L(W) for ``"ce"`` (:func:`_loss`) or ``"gce"`` (mean GCE_q plus
    (lam/2)||W||^2; the same formula as :func:`softmax_objective`)."""
    if loss == "ce":
        return _value_and_grad

    def gce(W, X, T, lam):
        logp = jax.nn.log_softmax(X @ W.T, axis=1)
        return (jnp.sum(T * (1.0 - jnp.exp(q * logp))) / (q * X.shape[0])
                + 0.5 * lam * jnp.sum(W * W))

    return jax.value_and_grad(gce)


@functools.cache
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


@functools.cache
def _sgd(momentum: float, loss: str = "ce", q: float = 0.7):
    """A jitted epoch of optax SGD (heavy-ball momentum, the PyTorch convention:
    v <- momentum v + g, W <- W - lr v) on the mini-batch objective, weight decay included in
    the loss: g = grad of (1/B) sum_b loss + (lam/2)||W||^2 (loss: CE or GCE_q)."""
    value_and_grad = _loss_value_and_grad(loss, q)

    def opt(lr):
        return optax.sgd(learning_rate=lr, momentum=momentum)

    @jax.jit
    def step(W, state, Xb, Tb, lam, lr):
        _, g = value_and_grad(W, Xb, Tb, lam)
        updates, state = opt(lr).update(g, state, W)
        return optax.apply_updates(W, updates), state

    @jax.jit
    def epoch(W, state, Xs, Ts, lam, lr):
        def body(carry, batch):
            return step(*carry, batch[0], batch[1], lam, lr), None

        (W, state), _ = jax.lax.scan(body, (W, state), (Xs, Ts))
        return W, state

    return opt, step, epoch


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _check_inputs(X, T, lam, W0):
    X = check_features(X)
    T = np.asarray(T, dtype=np.float64)
    if T.ndim != 2 or T.shape[0] != X.shape[0] or T.shape[1] < 2:
        raise ValueError(f"T must be (N, K) with N = {X.shape[0]} and K >= 2, got {T.shape}")
    if not np.all(np.isfinite(T)) or T.min() < 0.0:
        raise ValueError("T must be finite and non-negative (rows are distributions)")
    row_err = float(np.abs(T.sum(axis=1) - 1.0).max())
    if row_err > 1e-8:
        raise ValueError(f"rows of T must sum to 1 (max deviation {row_err:.3g})")
    lam = check_lam(lam)
    K, D = T.shape[1], X.shape[1]
    if W0 is None:
        W0 = np.zeros((K, D))
    else:
        W0 = np.asarray(W0, dtype=np.float64)
        if W0.shape != (K, D):
            raise ValueError(f"W0 must have shape (K, D) = {(K, D)}, got {W0.shape}")
    return X, T, float(lam), W0


@dataclass(frozen=True)
class TrainOptions:
    """How :func:`train_softmax` trains: the method and its settings.

    Attributes:
      method: ``"lbfgs"`` (to convergence), ``"gd"`` (fixed step) or ``"sgd"`` (mini-batches).
      tol: relative gradient-norm tolerance (stops ``"lbfgs"`` and ``"gd"``; for ``"sgd"`` it
        only sets ``converged``).
      max_iter: most iterations for ``"lbfgs"`` / ``"gd"`` (defaults 10,000 / 100,000); ignored
        by ``"sgd"``, which runs ``epochs`` epochs.
      seed: seed of the SGD batch shuffling (the full-batch methods are deterministic).
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
      loss: ``"ce"`` (every method) or ``"gce"`` (``"sgd"`` only): the data term of L(W)
        (:func:`softmax_objective`); q: the GCE exponent in (0, 1].
      monitor: ``"sgd"`` only: a function of the weights (K, D) called after every epoch (e.g.
        a held-out accuracy); its values are returned in ``TrainInfo.monitor``.
      keep_best: with a monitor: return the weights of the epoch with the largest monitored
        value (the first such epoch) instead of the last iterate.
    """

    method: str = "lbfgs"
    tol: float = 1e-12
    max_iter: int | None = None
    seed: int = 0
    step: float | None = None
    memory_size: int = 20
    max_linesearch_steps: int = 30
    lr: float = 0.1
    momentum: float = 0.9
    batch_size: int = 128
    epochs: int = 200
    lr_decay: float = 0.98
    chunk: int | None = None
    loss: str = "ce"
    q: float = 0.7
    monitor: Callable[[np.ndarray], float] | None = None
    keep_best: bool = False

    def check(self) -> None:
        """Refuse an unknown method or loss, a loss or monitor the method does not train, and
        q outside (0, 1]."""
        if self.method not in OPTIMISERS:
            raise ValueError(f"method must be one of {OPTIMISERS}, got {self.method!r}")
        if self.loss not in SOFTMAX_LOSSES:
            raise ValueError(f"loss must be one of {SOFTMAX_LOSSES}, got {self.loss!r}")
        if self.loss != "ce" and self.method != "sgd":
            raise ValueError(f"loss {self.loss!r} is trained by method 'sgd' only, "
                             f"got {self.method!r}")
        if not 0.0 < float(self.q) <= 1.0:
            raise ValueError(f"q (the GCE exponent) must be in (0, 1], got {float(self.q)}")
        if (self.monitor is not None or self.keep_best) and self.method != "sgd":
            raise ValueError("monitor and keep_best apply to method 'sgd' only")
        if self.keep_best and self.monitor is None:
            raise ValueError("keep_best needs a monitor")


@dataclass(frozen=True)
class _Training:
    """One training's data: features, targets (numpy and JAX), weight decay, initial weights,
    absolute gradient tolerance, and the progress reporter."""

    X: np.ndarray
    T: np.ndarray
    lam: float
    W0: np.ndarray
    gtol: float
    progress: Progress

    @property
    def jax(self):
        return jnp.asarray(self.X), jnp.asarray(self.T)


@dataclass(frozen=True)
class _Trained:
    """What an optimiser returns: weights, step count, final gradient norm, objective history,
    and (SGD) the epochs run, the monitored values and the best epoch."""

    W: np.ndarray
    iterations: int
    grad_norm: float
    history: list
    epochs: int = 0
    scores: np.ndarray | None = None
    best_epoch: int | None = None


def train_softmax(X: np.ndarray, T: np.ndarray, lam: float, *, W0: np.ndarray | None = None,
                  options: TrainOptions | None = None, **settings) -> TrainInfo:
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
      W0: (K, D) initial weights (default zeros).
      options: a :class:`TrainOptions` (default: its defaults).
      **settings: fields of :class:`TrainOptions` (``method``, ``tol``, ``max_iter``, ``seed``,
        ``step``, ``lr``, ``epochs``, ...), each replacing that of ``options``.

    Returns:
      A :class:`~sdtheory.solvers.base.TrainInfo`. Progress (iteration, loss, gradient norm)
      goes to this module's logger every ~2 s. Not converging is not an error here (see
      :class:`TrainedSolver`, which raises for ``"lbfgs"``).

    Raises:
      ValueError: bad shapes or values (non-finite X or T, rows of T not summing to 1, lam <= 0,
        unknown method).
      TypeError: a setting that is no field of :class:`TrainOptions`.
      RuntimeError: float64 is off.
    """
    require_x64("train_softmax")
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(TrainOptions)})
    if unknown:
        raise TypeError(f"train_softmax() got an unexpected keyword argument {unknown[0]!r}")
    opts = dataclasses.replace(options or TrainOptions(), **settings)
    opts.check()
    X, T, lam, W0 = _check_inputs(X, T, lam, W0)
    if not (opts.tol >= 0):
        raise ValueError(f"tol must be >= 0, got {opts.tol}")
    t_start = time.perf_counter()
    progress = Progress(log, what=f"{opts.method} iteration")
    training = _Training(X, T, lam, W0, _gradient_tolerance(X, T, lam, W0, opts.tol), progress)
    run = {"lbfgs": _train_lbfgs, "gd": _train_gd, "sgd": _train_sgd}[opts.method]
    res = run(training, opts)
    final = softmax_objective(res.W, X, T, lam, opts.loss, float(opts.q))
    log.debug("%s: %d iterations, loss %.15g, |grad| %.3e", opts.method, res.iterations, final,
              res.grad_norm)
    return TrainInfo(
        W=res.W,
        method=opts.method,
        iterations=int(res.iterations),
        loss=final,
        grad_norm=float(res.grad_norm),
        grad_tol=training.gtol,
        converged=bool(res.grad_norm <= training.gtol),
        seconds=time.perf_counter() - t_start,
        history=np.asarray(res.history, dtype=np.float64),
        epochs=res.epochs,
        monitor=res.scores,
        best_epoch=res.best_epoch,
    )


def _gradient_tolerance(X, T, lam, W0, tol) -> float:
    """tol * max(||grad L(0)||_F, ||grad L(W0)||_F): the absolute stopping tolerance."""
    N, K = T.shape
    g_zero = (1.0 / K - T).T @ X / N
    g_init = (softmax(X @ W0.T, axis=1) - T).T @ X / N + lam * W0
    scale = max(float(np.linalg.norm(g_zero)), float(np.linalg.norm(g_init)))
    return float(tol) * scale


def _train_lbfgs(training: _Training, opts: TrainOptions) -> _Trained:
    """L-BFGS with a zoom line search, in compiled chunks, until ||grad|| <= gtol or max_iter;
    stops early when a whole chunk leaves W unchanged (no decrease left in float64)."""
    max_iter = DEFAULT_MAX_ITER["lbfgs"] if opts.max_iter is None else int(opts.max_iter)
    opt, run_chunk = _lbfgs(int(opts.memory_size), int(opts.max_linesearch_steps))
    Xj, Tj = training.jax
    lam, gtol = training.lam, training.gtol
    W = jnp.asarray(training.W0)
    state = opt.init(W)
    value, grad = _value_and_grad(W, Xj, Tj, lam)
    # Seed the state with the value and gradient at W0 so the stopping test sees them.
    state = otu.tree_set(state, value=value, grad=grad)
    history = [float(value)]
    gn = float(jnp.linalg.norm(grad))
    it = 0
    while gn > gtol and it < max_iter:
        W_before = W
        W, state, it_j, j, hist, value, gn_j = run_chunk(
            W, state, jnp.asarray(it), Xj, Tj, lam, gtol, max_iter, chunk=opts.chunk or 200
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
        training.progress.step(f"loss {float(value):.15g}, |grad| {gn:.3e}", n=done)
    return _Trained(W=np.asarray(W), iterations=it, grad_norm=gn, history=history)


def _train_gd(training: _Training, opts: TrainOptions) -> _Trained:
    """Full-batch gradient descent with a fixed step, in compiled chunks, until
    ||grad|| <= gtol or max_iter."""
    max_iter = DEFAULT_MAX_ITER["gd"] if opts.max_iter is None else int(opts.max_iter)
    step = (1.0 / smoothness_bound(training.X, training.lam) if opts.step is None
            else float(opts.step))
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    Xj, Tj = training.jax
    W = jnp.asarray(training.W0)
    it = 0
    history = []
    stop = False
    while not stop:
        W, it_j, j, hist, value, gn_j, stop_j = _gd_chunk(
            W, jnp.asarray(it), Xj, Tj, training.lam, step, training.gtol, max_iter,
            chunk=opts.chunk or 2000
        )
        training.progress.step(f"loss {float(value):.15g}, |grad| {float(gn_j):.3e}",
                              n=int(it_j) - it, force=bool(stop_j))
        it = int(it_j)
        history.extend(np.asarray(hist[: int(j)]).tolist())
        gn = float(gn_j)
        stop = bool(stop_j)
    return _Trained(W=np.asarray(W), iterations=it, grad_norm=gn, history=history)


def _train_sgd(training: _Training, opts: TrainOptions) -> _Trained:
    """Mini-batch SGD with momentum for ``epochs`` epochs, learning rate x lr_decay after each;
    with a monitor, its value after every epoch (and, with keep_best, the best epoch's W)."""
    X, T, lam = training.X, training.T, training.lam
    loss, q = opts.loss, float(opts.q)
    N = X.shape[0]
    if int(opts.batch_size) < 1 or int(opts.epochs) < 0:
        raise ValueError(f"batch_size must be >= 1 and epochs >= 0, got {opts.batch_size}, "
                         f"{opts.epochs}")
    B = min(int(opts.batch_size), N)
    rng = np.random.default_rng(opts.seed)
    opt, sgd_step, sgd_epoch = _sgd(float(opts.momentum), loss, q)
    Xj, Tj = training.jax
    W = jnp.asarray(training.W0)
    state = opt(float(opts.lr)).init(W)
    history = [softmax_objective(training.W0, X, T, lam, loss, q)]
    scores, best, best_W = [], None, None
    nb, rest = divmod(N, B)
    # lr x lr_decay after every epoch (optax.exponential_decay, staircase per epoch).
    schedule = optax.exponential_decay(float(opts.lr), transition_steps=1,
                                       decay_rate=float(opts.lr_decay), staircase=True)
    epochs = int(opts.epochs)
    training.progress.total = epochs
    training.progress.what = "SGD epoch"
    for epoch in range(epochs):
        lr_e = jnp.asarray(schedule(epoch))
        perm = rng.permutation(N)
        full = perm[: nb * B].reshape(nb, B)
        W, state = sgd_epoch(W, state, Xj[full], Tj[full], lam, lr_e)
        if rest:
            tail = perm[nb * B:]
            W, state = sgd_step(W, state, Xj[tail], Tj[tail], lam, lr_e)
        Wn = np.asarray(W)
        history.append(softmax_objective(Wn, X, T, lam, loss, q))
        if opts.monitor is not None:
            scores.append(float(opts.monitor(Wn)))
            if opts.keep_best and (best is None or scores[-1] > scores[best]):
                best, best_W = epoch, Wn
        training.progress.step(f"loss {history[-1]:.15g}")
    W = np.asarray(W) if best_W is None else best_W
    _, g_end = _loss_value_and_grad(loss, q)(jnp.asarray(W), Xj, Tj, lam)
    return _Trained(W=W, iterations=epochs * (nb + (rest > 0)),
                    grad_norm=float(jnp.linalg.norm(g_end)), history=history, epochs=epochs,
                    scores=np.asarray(scores) if opts.monitor is not None else None,
                    best_epoch=best)


# --------------------------------------------------------------------------------------------
# Solver protocol
# --------------------------------------------------------------------------------------------


class TrainedSolver(SingleProblem):
    """One training by gradient descent on explicit features, as a solver.

    Each :meth:`fit` trains W from W0 (zeros: every round "from scratch", docs/theory.md
    section 1.2) on the given targets and returns the training outputs P = softmax(X W^T) with
    the certificate of (E) (:func:`feature_residual`), which is 0 at the exact minimiser.
    Units are samples (weight 1).

    Args:
      gram: :class:`~sdtheory.models.Features` (trained as they are), or an (N, N) Gram matrix
        or a :class:`~sdtheory.models.BlockModel`, trained through a factor X X^T = G
        (:func:`~sdtheory.models.feature_factor`).
      labels: :class:`~sdtheory.noise.Corruption` (true and given label per sample).
      lam: weight decay lam > 0.
      method: ``"lbfgs"``, ``"gd"`` or ``"sgd"`` (see :func:`train_softmax`).
      tol: relative gradient-norm tolerance of :func:`train_softmax`.
      max_iter: most L-BFGS / GD iterations (None: the method's default).
      seed: SGD shuffling seed.
      W0: initial weights for every fit (default zeros).
      options: further keyword arguments for :func:`train_softmax` (``step``, ``lr``,
        ``momentum``, ``batch_size``, ``epochs``, ``lr_decay``, ``memory_size``, ...).

    Example:
      >>> import sdtheory as sd; sd.enable_x64()
      >>> model = sd.two_level(K=3, n=10)
      >>> cor = sd.noise.corruption_from_counts(10 * np.eye(3, dtype=int))
      >>> solver = TrainedSolver(gram=model, labels=cor, lam=1e-2)
      >>> fit = solver.fit(solver.targets0())     # doctest: +SKIP
      >>> fit.residual < 1e-8                     # doctest: +SKIP
      True
    """

    name = "trained"

    def __init__(self, *, gram, labels, lam, method: str = "lbfgs", tol: float = 1e-12,
                 max_iter: int | None = None, seed: int = 0, W0: np.ndarray | None = None,
                 options: Mapping | None = None) -> None:
        from sdtheory.noise import Corruption

        if isinstance(gram, Features):
            X = gram.X
        elif isinstance(gram, BlockModel):
            X = feature_factor(gram.dense())
        else:
            X = feature_factor(gram)
        if not isinstance(labels, Corruption):
            raise ValueError("labels must be a Corruption (true and given label per sample, "
                             "sdtheory.noise)")
        if labels.N != X.shape[0]:
            raise ValueError(f"labels has {labels.N} samples but the features have "
                             f"{X.shape[0]} rows")
        if method not in OPTIMISERS:
            raise ValueError(f"method must be one of {OPTIMISERS}, got {method!r}")
        self.X = X
        self.true, self.given, self.K = labels.true, labels.given, labels.K
        self.weight = np.ones((1, X.shape[0]))
        self.lam = check_lam(lam)
        self.method = method
        self.tol = float(tol)
        self.max_iter = max_iter
        self.seed = int(seed)
        self.W0 = None if W0 is None else np.asarray(W0, dtype=np.float64)
        self.options = dict(options or {})

    def targets0(self) -> np.ndarray:
        """One-hot given labels."""
        return np.eye(self.K)[self.given]

    def train(self, T: np.ndarray) -> TrainInfo:
        """Train on targets T (N x K) and return the full :class:`TrainInfo`."""
        T = np.asarray(T, dtype=np.float64)
        if T.shape != (self.X.shape[0], self.K):
            raise ValueError(f"T must have shape (N, K) = {(self.X.shape[0], self.K)}, "
                             f"got {T.shape}")
        return train_softmax(
            self.X, T, self.lam, method=self.method, tol=self.tol, max_iter=self.max_iter,
            W0=self.W0, seed=self.seed, **self.options,
        )

    def fit(self, T: np.ndarray, x0=None) -> Fit:
        """Train once on targets T; return P = softmax(X W^T) and the certificate of (E).

        ``x0`` is ignored: every round trains from W0 (from scratch).

        Raises:
          SolverError: ``method="lbfgs"`` did not reach the gradient tolerance within max_iter
            (GD and SGD are returned as trained; check ``fit.info.converged``).
        """
        res = self.train(T)
        if self.method == "lbfgs" and not res.converged:
            raise SolverError(
                f"L-BFGS stopped after {res.iterations} iterations at gradient norm "
                f"{res.grad_norm:.3e} > tolerance {res.grad_tol:.3e} (raise max_iter or tol)"
            )
        P = softmax(self.X @ res.W.T, axis=1)
        return Fit(P=P, residual=feature_residual(self.X, T, res.W, self.lam), info=res)
