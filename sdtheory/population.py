"""Test accuracy on fresh Gaussian-mixture points (docs/theory.md section 10).

With explicit Gaussian-mixture features, a fresh point of class k is x = mu_k + sigma xi,
xi ~ N(0, I_D) (for the construction of docs/theory.md section 5.5: mu_k = sqrt(d) u_0 +
sqrt(c - d) u_k with orthonormal u's and sigma^2 = (1 - c) / D). A trained linear model W
(K x D, rows w_j) gives it the logits

    z = W mu_k + sigma W xi  ~  N(W mu_k, sigma^2 W W^T),

so the probability that it is classified correctly, P(z_k > z_j for all j != k), is a Gaussian
orthant probability of the K - 1 differences delta_j = z_k - z_j (j != k):

    delta ~ N(m, C),   m_j = (w_k - w_j) . mu_k,   C_jl = sigma^2 (w_k - w_j) . (w_k - w_l).

:func:`population_accuracy` evaluates it (exactly for K = 2 and K = 3, by Genz's quasi-Monte
Carlo algorithm to an absolute error ``abseps`` for K >= 4); :func:`population_accuracy_mc`
samples fresh points as a cross-check. Any linear model works: a trained one
(:class:`sdtheory.solvers.TrainedSolver` stores W in ``fit.info.W``) or a closed-form one,
W = (T - P)^T X / (N lam) (docs/theory.md section 2.1, :func:`weights_from_outputs`).
:func:`population_by_round` puts test accuracy next to training-label accuracy, round by round.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, softmax
from scipy.stats import multivariate_normal

from sdtheory._validate import as_float, check_lam
from sdtheory.metrics import accuracy

__all__ = [
    "PopulationByRound",
    "binary_accuracy",
    "population_accuracy",
    "population_accuracy_mc",
    "population_by_round",
    "weights_from_outputs",
    "takanami_optimal_error",
]

# Two rows of W closer than this (relative to the largest row norm) are equal: a tie.
_TIE_RTOL = 1e-12


def takanami_optimal_error(delta: float, alpha: float) -> float:
    """Noiseless optimal test error of Takanami et al.'s binary Gaussian mixture
    x = +-v/sqrt(D) + sqrt(delta) z at N = alpha D samples, D -> infinity:

        H(1 / sqrt(delta (1 + delta/alpha))),    H the Gaussian tail,

    computed with the Gaussian tail from :func:`scipy.special.ndtr`,

    the error of the mean-difference (Hebbian) classifier w = sum_i s_i x_i / N: w . v/sqrt(D)
    -> 1 and ||w||^2 -> 1 + delta/alpha, so s w . x is Gaussian with mean 1 and variance
    delta (1 + delta/alpha) (docs/theory.md section 16).
    """
    delta, alpha = as_float(delta, "delta"), as_float(alpha, "alpha")
    if not (delta > 0 and alpha > 0):
        raise ValueError(f"delta and alpha must be > 0, got {delta:g}, {alpha:g}")
    return float(ndtr(-1.0 / math.sqrt(delta * (1.0 + delta / alpha))))


def weights_from_outputs(X: np.ndarray, T: np.ndarray, P: np.ndarray, lam: float,
                         xp=np) -> np.ndarray:
    """Weights of the minimiser from its training outputs: W = (T - P)^T X / (N lam).

    This is the stationarity condition of L(W) (docs/theory.md section 2.1); with P from an exact
    solver of (E) it is the trained model itself, so its test accuracy is the population
    accuracy of the closed form.

    Args:
      X: (N, D) training features.
      T: (N, K) targets of the training.
      P: (N, K) its outputs on the training inputs.
      lam: weight decay lam > 0.
      xp: numpy (inputs validated), or jax.numpy (traced inputs, for gradients in lam).

    Returns:
      W: (K, D).
    """
    if xp is not np:
        return (T - P).T @ X / (X.shape[0] * lam)
    X = np.asarray(X, dtype=np.float64)
    R = np.asarray(T, dtype=np.float64) - np.asarray(P, dtype=np.float64)
    if R.shape[0] != X.shape[0]:
        raise ValueError(f"T and P must have N = {X.shape[0]} rows, got {R.shape[0]}")
    return R.T @ X / (X.shape[0] * check_lam(lam))


def binary_accuracy(W, means, sigma, xp=np):
    """Per-class test accuracy of a two-class linear model W (2, D) on fresh points
    x = mu_k + sigma xi: acc_k = Phi(m_k / s), m_k = (w_k - w_j) . mu_k, s = sigma ||w_k - w_j||
    (:func:`population_accuracy`, K = 2). ``xp``: numpy, or jax.numpy for gradients."""
    if xp is np:
        nd = ndtr
    else:
        from jax.scipy.special import ndtr as nd
    d = W[0] - W[1]
    s = sigma * xp.sqrt(xp.sum(d * d))
    return nd(xp.stack([d @ means[0], -(d @ means[1])]) / s)


def _check(W, means, sigma):
    W = np.asarray(W, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] < 2:
        raise ValueError(f"W must be (K, D) with K >= 2, got shape {W.shape}")
    if means.shape != W.shape:
        raise ValueError(f"means must be (K, D) = {W.shape} like W, got {means.shape}")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(means))):
        raise ValueError("W and means must be finite")
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
    return W, means, float(sigma)


def _orthant_class(W, means, sigma, k, abseps, maxpts, rng):
    """P(z_k > z_j for all j != k) for a point of class k (see :func:`population_accuracy`)."""
    Dk = W[k] - np.delete(W, k, axis=0)  # (K-1, D): rows w_k - w_j
    wscale = float(np.linalg.norm(W, axis=1).max())
    # w_j == w_k (to rounding): z_j == z_k for every point, a tie that is never won.
    if np.any(np.linalg.norm(Dk, axis=1) <= _TIE_RTOL * wscale):
        return 0.0
    m = Dk @ means[k]
    if sigma == 0.0:  # no noise: every point of class k is mu_k itself
        return float(np.all(m > 0.0))
    C = sigma**2 * (Dk @ Dk.T)
    q = m.size
    if q == 1:  # K = 2: Phi(m / s) = (1 + erf(m / (s sqrt 2))) / 2
        return float(binary_accuracy(W, means, sigma)[k])
    # P(delta > 0) = P(-delta <= 0) with -delta ~ N(-m, C): a multivariate normal cdf at 0.
    # q = 2: Genz's bivariate algorithm (exact to ~1e-15, correlation +-1 included);
    # q >= 3: Genz's lattice QMC on the permuted Cholesky factor, which integrates a singular
    # C on its range (no regularisation).
    p = multivariate_normal.cdf(
        np.zeros(q), mean=-m, cov=C, allow_singular=True, abseps=abseps, releps=0.0,
        maxpts=maxpts, rng=rng,
    )
    return float(np.clip(p, 0.0, 1.0))


def population_accuracy(
    W: np.ndarray,
    means: np.ndarray,
    sigma: float,
    *,
    abseps: float = 1e-7,
    maxpts: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """Exact test accuracy of the linear model W on fresh points x = mu_k + sigma xi.

    For class k the differences delta_j = z_k - z_j (j != k) are Gaussian with mean
    m_j = (w_k - w_j) . mu_k and covariance C_jl = sigma^2 (w_k - w_j) . (w_k - w_l), and

        acc_k = P(delta > 0)   (a Gaussian orthant probability in K - 1 dimensions).

    * K = 2: acc_k = Phi(m / s) = (1 + erf(m / (s sqrt 2))) / 2, s^2 = C (exact).
    * K = 3: Genz's bivariate normal algorithm (exact to about 1e-15).
    * K >= 4: Genz's randomised lattice rule (scipy) run until its error estimate (3 standard
      errors) is below ``abseps``; the lattice shifts come from ``seed``, so the answer is
      reproducible.

    Singular covariances are handled without regularisation:

    * w_j = w_k for some j != k (to 1e-12 of the largest row norm): z_j = z_k for every point,
      an exact tie, which counts as an error (acc_k = 0). So W = 0 has accuracy 0, not 1/K.
    * sigma = 0: every point is mu_k, acc_k = 1 if all m_j > 0, else 0.
    * Otherwise every difference has positive variance, but C may still be rank-deficient (W of
      rank < K - 1, or D < K - 1). The orthant probability is then an integral over the range
      of C, which both the bivariate formula (correlation +-1) and Genz's permuted-Cholesky
      algorithm evaluate directly (checked against Monte Carlo in the tests).

    The same convention holds in :func:`population_accuracy_mc`: a point counts as correct only
    if z_k is strictly the largest logit.

    Args:
      W: (K, D) weights of the linear model (logits z = W x, no bias).
      means: (K, D) class means mu_k (rows).
      sigma: per-coordinate noise standard deviation (>= 0).
      abseps: absolute error target of the K >= 4 integration.
      maxpts: most integration points for K >= 4 (default 10^6 (K - 1)).
      seed: seed of the lattice shifts (K >= 4).

    Returns:
      (per_class, mean): per_class[k] = acc_k (K,), mean = its average over classes (the test
      accuracy for balanced classes).

    Example:
      >>> import numpy as np
      >>> W = np.array([[1.0, 0.0], [-1.0, 0.0]])
      >>> acc, mean = population_accuracy(W, means=np.array([[1.0, 0.0], [-1.0, 0.0]]), sigma=1.0)
      >>> round(mean, 6)      # Phi(1)
      0.841345
    """
    W, means, sigma = _check(W, means, sigma)
    K = W.shape[0]
    maxpts = int(1e6 * (K - 1)) if maxpts is None else int(maxpts)
    rng = np.random.default_rng(seed)
    per_class = np.array([_orthant_class(W, means, sigma, k, abseps, maxpts, rng)
                          for k in range(K)])
    return per_class, float(per_class.mean())


def population_accuracy_mc(
    W: np.ndarray,
    means: np.ndarray,
    sigma: float,
    n_samples: int,
    seed: int,
    *,
    batch: int = 50_000,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Monte Carlo test accuracy: draw fresh x = mu_k + sigma xi, xi ~ N(0, I_D), and classify.

    A cross-check of :func:`population_accuracy` that samples the features themselves (D
    coordinates), not the logits. A point of class k is correct iff z_k > z_j for every j != k.

    Args:
      W: (K, D) weights.
      means: (K, D) class means.
      sigma: noise standard deviation.
      n_samples: points per class.
      seed: seed of the draws (same seed, same result).
      batch: points drawn at a time (memory bound: batch x D floats).

    Returns:
      (per_class, mean, stderr): per-class accuracy estimates (K,), their mean, and the binomial
      standard error of each per-class estimate, sqrt(a (1 - a) / n_samples) (K,). The standard
      error of ``mean`` is sqrt(sum stderr^2) / K.
    """
    W, means, sigma = _check(W, means, sigma)
    if int(n_samples) < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    n_samples = int(n_samples)
    K, D = W.shape
    rng = np.random.default_rng(seed)
    hits = np.zeros(K, dtype=np.int64)
    for k in range(K):
        left = n_samples
        zk = W @ means[k]
        while left > 0:
            b = min(batch, left)
            Z = zk + sigma * (rng.standard_normal((b, D)) @ W.T)
            others = np.delete(Z, k, axis=1)
            hits[k] += int(np.sum(np.all(Z[:, [k]] > others, axis=1)))
            left -= b
    per_class = hits / n_samples
    stderr = np.sqrt(per_class * (1.0 - per_class) / n_samples)
    return per_class, float(per_class.mean()), stderr


@dataclass(frozen=True)
class PopulationByRound:
    """Test (population) accuracy round by round, next to training-label accuracy.

    Attributes:
      test_per_class: (R, K) population accuracy of each class at each round.
      test: (R,) population accuracy (mean over classes).
      train: (R,) training accuracy against the true labels (argmax of the training outputs),
        or None when no true labels or outputs were available.
    """

    test_per_class: np.ndarray
    test: np.ndarray
    train: np.ndarray | None = None

    def rows(self) -> list[dict]:
        """One dict per round: ``{"round", "test_acc", "train_acc"}`` (for tables and JSON)."""
        out = []
        for r in range(len(self.test)):
            out.append({
                "round": r,
                "test_acc": float(self.test[r]),
                "train_acc": None if self.train is None else float(self.train[r]),
            })
        return out


def population_by_round(
    rounds: Sequence,
    means: np.ndarray,
    sigma: float,
    *,
    X: np.ndarray | None = None,
    lam: float | None = None,
    targets: Sequence[np.ndarray] | None = None,
    given: np.ndarray | None = None,
    true: np.ndarray | None = None,
    abseps: float = 1e-7,
    seed: int = 0,
) -> PopulationByRound:
    """Population accuracy of the model of each round (round 0 = teacher).

    Each element of ``rounds`` is the round's model, given as

    (a) a (K, D) weight matrix,
    (b) a :class:`~sdtheory.solvers.Fit` or :class:`~sdtheory.distill.RoundResult` whose ``info``
        carries the weights ``W`` (as :class:`~sdtheory.solvers.TrainedSolver` provides), or
    (c) a fit or round result of a closed-form solver on the full training set: then
        W = (T_r - P_r)^T X / (N lam) (:func:`weights_from_outputs`), which needs ``X``, ``lam``
        and the round's targets T_r: ``targets[r]``, or, for self-distillation rounds, ``given``
        (T_0 = one-hot given labels, T_r = P_{r-1}).

    Args:
      rounds: per-round weights, fits or round results (e.g. ``self_distill(...).rounds``).
      means: (K, D) class means.
      sigma: noise standard deviation of fresh points.
      X: (N, D) training features (for (c), and for training accuracy from bare weights).
      lam: weight decay (for (c)).
      targets: per-round targets T_r (for (c)).
      given: (N,) given labels: SD targets for (c) when ``targets`` is None.
      true: (N,) true training labels; if given, training accuracy is reported too (from the
        round's P, or softmax(X W^T) for bare weights), with the tie rule of
        :func:`sdtheory.metrics.accuracy`.
      abseps, seed: passed to :func:`population_accuracy`.

    Returns:
      :class:`PopulationByRound`.
    """
    K = np.asarray(means).shape[0]
    test_pc, train = [], []
    prev_P = None
    for r, item in enumerate(rounds):
        P = None
        if hasattr(item, "P") and hasattr(item, "info"):
            P = np.asarray(item.P)
            W = getattr(item.info, "W", None)
            if W is None:
                T_r = _round_targets(r, K, targets, given, prev_P)
                W = _closed_form_weights(r, X, lam, T_r, P)
            prev_P = P
        else:
            W = np.asarray(item, dtype=np.float64)
        pc, _ = population_accuracy(W, means, sigma, abseps=abseps, seed=seed)
        test_pc.append(pc)
        if true is not None:
            train.append(_train_accuracy(P, W, X, true))
    test_pc = np.asarray(test_pc).reshape(len(test_pc), -1)
    return PopulationByRound(
        test_per_class=test_pc,
        test=test_pc.mean(axis=1),
        train=None if true is None else np.asarray(train),
    )


def _round_targets(r: int, K: int, targets, given, prev_P):
    """The targets T_r of round r: ``targets[r]``, or for SD rounds the one-hot given labels
    (r = 0) and the outputs of the round before; None if neither is known."""
    if targets is not None:
        return targets[r]
    if given is not None:
        return np.eye(K)[np.asarray(given)] if r == 0 else prev_P
    return None


def _closed_form_weights(r: int, X, lam, T_r, P) -> np.ndarray:
    """W = (T_r - P)^T X / (N lam) of round r's closed-form fit (:func:`weights_from_outputs`)."""
    if X is None or lam is None or T_r is None:
        raise ValueError(
            f"round {r}: the fit carries no weights; pass X, lam and targets (or the "
            "given labels of SD rounds) so that W = (T - P)^T X / (N lam) can be formed"
        )
    return weights_from_outputs(X, T_r, P, lam)


def _train_accuracy(P, W, X, true) -> float:
    """Accuracy against the true labels of the outputs P (softmax(X W^T) for bare weights),
    with the tie rule of :func:`sdtheory.metrics.accuracy`."""
    if P is None:
        if X is None:
            raise ValueError("training accuracy from weights needs X")
        P = softmax(np.asarray(X, dtype=np.float64) @ np.asarray(W).T, axis=1)
    true_arr = np.asarray(true)
    return accuracy(P, true_arr, true_arr, np.ones(true_arr.size))[0]
